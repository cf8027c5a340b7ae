"""Guards the source layout: `operator/` is a source root, never a package shadowing the stdlib `operator`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
    assert set(config["project"]["scripts"]) == {"goldrush-operator", "kubectl-goldrush"}
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
