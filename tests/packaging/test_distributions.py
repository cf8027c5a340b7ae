"""Packaging tier: the wheel and the sdist carry the LICENSE; the simulator is its own distribution, never in the
operator's wheel. (Builds run setuptools' PEP 517 hooks: slower than the unit tier, so they live here.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _build(project: Path, out: Path, kind: str) -> Path:
    """Build a wheel or sdist of `project` with setuptools' PEP 517 hooks (no isolation, no network)."""
    code = (
        "import sys; from setuptools import build_meta as b; "
        f"print(b.build_{kind}(sys.argv[1]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=project, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The repository's packaging inputs, copied (a build writes egg-info next to the sources)."""
    copy = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, copy / name if copy.exists() else _mkdir(copy) / name)
    shutil.copytree(REPO / "operator", copy / "operator", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return copy


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_wheel_and_sdist_carry_the_license_and_not_the_simulator(project_copy: Path, tmp_path: Path) -> None:
    wheel = _build(project_copy, tmp_path, "wheel")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_name).decode() == (REPO / "LICENSE").read_text()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert not [n for n in names if n.startswith("goldrush_sim")], "the simulator ships in the operator wheel"
    assert any(n.startswith("goldrush_operator/") for n in names)
    sdist = _build(project_copy, tmp_path, "sdist")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("/LICENSE") and m.count("/") == 1 for m in members), members
    assert not [m for m in members if "/goldrush_sim/" in m]
    sim_wheel = _build(project_copy / "operator", tmp_path / "sim", "wheel")
    with zipfile.ZipFile(sim_wheel) as archive:
        sim_names = archive.namelist()
    assert any(n.startswith("goldrush_sim/") for n in sim_names)
    assert not [n for n in sim_names if n.startswith(("goldrush_operator/", "operator/"))]
    assert [n for n in sim_names if n.endswith(".dist-info/licenses/LICENSE")]
