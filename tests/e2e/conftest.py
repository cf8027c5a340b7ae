"""E2E fixtures: one real etcd + kube-apiserver per test session (per pytest-xdist worker), a fresh namespace per test.

The operator runs as the default install's ServiceAccount under the RBAC of `deploy/overlays/namespaced`
(`identity.py`), never as the admin: the session installs the overlay's ClusterRoles once, every test
namespace gets the overlay's Role + RoleBinding (as the overlay binds them in each namespace it serves), and
`start_operator` gives the operator a kubeconfig with a client certificate for
`system:serviceaccount:goldrush-system:goldrush-operator`. A test fails if an operator's log shows a request
denied by RBAC (outside an apiserver restart, see `identity.forbidden_lines`), so the whole tier proves that
the default install's RBAC is enough (test_ops_rbac.py proves that it is no more than needed). A test that
needs more passes `as_admin="<why>"` to `start_operator`.
Kubectl calls of the tests themselves use the admin kubeconfig (`kubeconfig`, `kubectl`).

On a machine that cannot build the control plane the fixture fails (never skips) with a message saying what
is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from identity import (
    NamespacedRBAC,
    forbidden_lines,
    wait_until_bound,
)
from planes import plane_fixtures

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess
from support.sim import SimProcess

# The session's plane: control_plane, kubeconfig, operator_rbac, operator_kubeconfig, crd_installed.
control_plane, kubeconfig, operator_rbac, operator_kubeconfig, crd_installed = plane_fixtures("session", "session")


@pytest.fixture
def namespace(kubeconfig: Path, operator_rbac: NamespacedRBAC) -> str:
    """A new namespace with the operator's Role + RoleBinding in it, as the overlay binds a served namespace."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    Kubectl(kubeconfig).apply({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        *operator_rbac.for_namespace(name),
    ]})
    return name


@pytest.fixture
def operator_identity(kubeconfig: Path, operator_kubeconfig: Path, namespace: str) -> Path:
    """`operator_kubeconfig`, once its Role is in effect in the test's namespace (for tests that start the
    operator themselves; they check its log with `identity.forbidden_lines`)."""
    wait_until_bound(Kubectl(kubeconfig), namespace)
    return operator_kubeconfig


@pytest.fixture
def kubectl(kubeconfig: Path, namespace: str) -> Kubectl:
    return Kubectl(kubeconfig, namespace)


# ------------------------------------------------------------------------------------------ operator tier

SIM_ARGS = ("--service-key", "dev-key=group_default", "--service-key", "other-key=group_other",
            "--deploy-seconds", "1", "--stop-seconds", "0.5", "--bounded-run-seconds", "3")


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with SimProcess.start(*SIM_ARGS) as process:
        yield process


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, kubeconfig: Path, operator_identity: Path, operator_rbac: NamespacedRBAC,
    namespace: str, sim: SimProcess, tmp_path: Path, crd_installed: None,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator (watching the test's namespace) against the test's simulator; stopped at the end.

    It runs as the operator's ServiceAccount with the namespaced overlay's RBAC; other namespaces it is told
    to serve (`namespaces=[...]`, they must exist) get the overlay's Role first, and a namespace it is given
    as its own (`POD_NAMESPACE`, `GOLDRUSH_LEASE_NAMESPACE` in `env`) the Roles of the operator's namespace.
    `as_admin="<reason>"` runs it with the admin kubeconfig instead, for a test that needs more than the
    default install grants (watching all namespaces needs it: the namespaced overlay grants nothing
    cluster-wide). At the end the test fails
    if any operator log shows a request denied by RBAC (except while a test restarts the apiserver, which
    denies requests until its RBAC caches are filled: `identity.forbidden_lines`).
    """
    started: list[OperatorProcess] = []
    admin = Kubectl(kubeconfig)
    bound = {namespace}
    own_bound: set[str] = set()

    def start(*, as_admin: str | None = None, **kwargs: Any) -> OperatorProcess:
        kwargs.setdefault("namespaces", [namespace])
        log = tmp_path / f"operator-{len(started)}.log"
        if as_admin is not None:
            assert as_admin.strip(), "as_admin needs the reason the default install's RBAC is not enough"
            identity = kubeconfig
        else:
            served = list(kwargs["namespaces"] or [])
            assert served, ("all namespaces needs the cluster-wide overlay's RBAC, which the tier does not bind: "
                            "pass as_admin='<why>'")
            for ns in set(served) - bound:
                operator_rbac.serve(admin, ns)
                wait_until_bound(admin, ns)
                bound.add(ns)
            env = kwargs.get("env") or {}
            for ns in {env.get("POD_NAMESPACE"), env.get("GOLDRUSH_LEASE_NAMESPACE")} - {None} - own_bound:
                operator_rbac.serve_as_operator_namespace(admin, str(ns))
                wait_until_bound(admin, str(ns))
                own_bound.add(str(ns))
            identity = operator_identity
        proc = OperatorProcess.start(identity, sim.base_url, log, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.alive():
            proc.stop()
    windows = control_plane.unready_windows
    denied = {str(proc.log_path): lines for proc in started if (lines := forbidden_lines(proc.log, windows))}
    if denied:
        pytest.fail(f"the operator's requests were denied by RBAC: {denied}", pytrace=False)


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()
