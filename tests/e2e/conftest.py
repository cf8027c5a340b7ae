"""E2E fixtures: one real etcd + kube-apiserver per test session, a fresh namespace per test.

On a machine that cannot build the control plane the fixture fails (never skips) with a message saying what
is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ctlplane import ControlPlane, ControlPlaneUnavailable, ensure_binaries
from support.kubectl import Kubectl


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        paths = ensure_binaries()
    except ControlPlaneUnavailable as exc:
        pytest.fail(f"e2e tests need a real control plane: {exc}", pytrace=False)
    plane = ControlPlane(tmp_path_factory.mktemp("ctlplane"), paths["KUBE_APISERVER"], paths["ETCD"])
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture
def namespace(kubeconfig: Path) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    Kubectl(kubeconfig)("create", "namespace", name)
    return name


@pytest.fixture
def kubectl(kubeconfig: Path, namespace: str) -> Kubectl:
    return Kubectl(kubeconfig, namespace)
