"""Guards the source layout: `operator/` is a source root, never a package shadowing the stdlib `operator`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_operator_dir_is_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists(), (
        "operator/__init__.py must never exist: it would shadow the standard library module 'operator'"
    )


def test_import_operator_from_repo_root_is_stdlib() -> None:
    code = "import operator, sys; print(operator.__file__); assert hasattr(operator, 'itemgetter')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    location = Path(proc.stdout.strip())
    assert REPO not in location.parents, f"'import operator' resolved to {location}, not the standard library"


def test_packaging_maps_packages_explicitly() -> None:
    """Two distributions from the one source root: the operator (root pyproject) and the simulator
    (operator/pyproject.toml, development only); neither installs a top-level `operator`."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "operator"}
    include = setuptools["packages"]["find"]["include"]
    assert include == ["goldrush_operator", "goldrush_operator.*"]
    assert set(config["project"]["scripts"]) == {"goldrush-operator"}
    assert config["project"]["license-files"] == ["LICENSE"]
    sim = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())
    assert sim["project"]["name"] == "goldrush-sim"
    assert sim["tool"]["setuptools"]["packages"]["find"]["include"] == ["goldrush_sim", "goldrush_sim.*"]
    assert set(sim["project"]["scripts"]) == {"goldrush-sim"}
    assert "goldrush-operator" not in " ".join(sim["project"]["dependencies"])


def test_license_is_the_apache_2_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX" in text
    assert (REPO / "operator" / "LICENSE").resolve() == (REPO / "LICENSE").resolve()


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


def test_only_adapters_import_their_libraries() -> None:
    """kopf only in handlers, kubernetes only in kube, httpx only in the goldrush_api package."""
    rules = {"kopf": {"handlers.py"}, "kubernetes": {"kube.py"}, "httpx": {"goldrush_api"}}
    pkg = REPO / "operator" / "goldrush_operator"
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        text = path.read_text()
        for lib, allowed in rules.items():
            imported = f"import {lib}" in text or f"from {lib} " in text or f"from {lib}." in text
            if imported:
                assert rel.parts[0] in allowed, f"{rel} imports {lib}; only {sorted(allowed)} may"
