"""E2E fixtures: one real etcd + kube-apiserver per test session, a fresh namespace per test.

On a machine that cannot build the control plane the fixture fails (never skips) with a message saying what
is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from planes import running_plane

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess
from support.sim import SimProcess


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_plane(tmp_path_factory.mktemp("ctlplane")) as plane:
        yield plane


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


# ------------------------------------------------------------------------------------------ operator tier

REPO = Path(__file__).resolve().parents[2]
CRD_PLURALS = ("goldrushpipelines", "goldrushcredentials", "clustergoldrushcredentials")
SIM_ARGS = ("--service-key", "dev-key=group_default", "--service-key", "other-key=group_other",
            "--deploy-seconds", "1", "--stop-seconds", "0.5", "--bounded-run-seconds", "3")


@pytest.fixture(scope="session")
def crd_installed(kubeconfig: Path) -> None:
    k = Kubectl(kubeconfig)
    for plural in CRD_PLURALS:
        k("apply", "-f", str(REPO / "crds" / f"goldrush.dev_{plural}.yaml"))
    for plural in CRD_PLURALS:
        k("wait", "--for=condition=Established", f"crd/{plural}.goldrush.dev", "--timeout=30s")


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess.start(*SIM_ARGS) as process:
        yield process


@pytest.fixture
def start_operator(
    kubeconfig: Path, namespace: str, sim: SimProcess, tmp_path: Path, crd_installed: None
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator (watching the test's namespace) against the test's simulator; stopped at the end."""
    started: list[OperatorProcess] = []

    def start(**kwargs: Any) -> OperatorProcess:
        kwargs.setdefault("namespaces", [namespace])
        log = tmp_path / f"operator-{len(started)}.log"
        proc = OperatorProcess.start(kubeconfig, sim.base_url, log, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.alive():
            proc.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()
