"""A private real control plane for an e2e test module or session (fails, never skips, when none can be built).

Used by tests/e2e/conftest.py (the session's plane), test_ops_helm.py, test_ops_rbac.py and
test_ha_server_sharding.py (their own planes); `install_operator_rbac` and `install_crds` prepare a plane for
the operator tier's fixtures, and `plane_fixtures` builds the fixtures of a plane (conftest.py: the
session's; test_ha_server_sharding.py: its module's, with a feature gate on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from identity import OPERATOR_NAMESPACE, NamespacedRBAC, wait_until_bound, write_operator_kubeconfig

from support.ctlplane import ControlPlane, ControlPlaneUnavailable, ensure_binaries
from support.kubectl import Kubectl

REPO = Path(__file__).resolve().parents[2]
CRD_PLURALS = ("goldrushpipelines", "goldrushcredentials", "clustergoldrushcredentials")


@contextmanager
def running_plane(workdir: Path, extra_apiserver_args: list[str] | None = None) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver in `workdir`, stopped when the block ends."""
    try:
        paths = ensure_binaries()
    except ControlPlaneUnavailable as exc:
        pytest.fail(f"e2e tests need a real control plane: {exc}", pytrace=False)
    plane = ControlPlane(workdir, paths["KUBE_APISERVER"], paths["ETCD"],
                         extra_apiserver_args=list(extra_apiserver_args or []))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def install_operator_rbac(kubeconfig: Path) -> NamespacedRBAC:
    """The namespaced overlay's RBAC; its cluster-scoped part (CRD and Namespace list/watch) is installed, and
    the Roles of the operator's own namespace in that namespace (as installed: an operator started without
    `POD_NAMESPACE` takes `goldrush-system` as its own and watches its Secrets there)."""
    admin = Kubectl(kubeconfig)
    rbac = NamespacedRBAC.rendered()
    rbac.install_cluster_scope(admin)
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    rbac.serve_as_operator_namespace(admin, OPERATOR_NAMESPACE)
    wait_until_bound(admin, OPERATOR_NAMESPACE)
    return rbac


def install_crds(kubeconfig: Path) -> None:
    """The three CRDs, applied and Established."""
    k = Kubectl(kubeconfig)
    for plural in CRD_PLURALS:
        k("apply", "-f", str(REPO / "crds" / f"goldrush.dev_{plural}.yaml"))
    k.wait_established(*(f"{plural}.goldrush.dev" for plural in CRD_PLURALS))


def plane_fixtures(
    scope: Any, label: str, extra_apiserver_args: list[str] | None = None,
) -> tuple[Callable[..., Any], ...]:
    """The fixtures `control_plane`, `kubeconfig`, `operator_rbac`, `operator_kubeconfig` and `crd_installed`
    of one plane at `scope` ("session" in conftest.py; "module" for a module with a plane of its own, whose
    tests then get conftest's per-test fixtures on that plane). Assign them to names of the same spelling."""

    @pytest.fixture(scope=scope)
    def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
        with running_plane(tmp_path_factory.mktemp(f"ctlplane-{label}"), extra_apiserver_args) as plane:
            yield plane

    @pytest.fixture(scope=scope)
    def kubeconfig(control_plane: ControlPlane) -> Path:
        return control_plane.kubeconfig

    @pytest.fixture(scope=scope)
    def operator_rbac(kubeconfig: Path) -> NamespacedRBAC:
        """The namespaced overlay's RBAC as installed (`install_operator_rbac`)."""
        return install_operator_rbac(kubeconfig)

    @pytest.fixture(scope=scope)
    def operator_kubeconfig(
        control_plane: ControlPlane, operator_rbac: NamespacedRBAC, tmp_path_factory: pytest.TempPathFactory
    ) -> Path:
        """A kubeconfig with the operator's ServiceAccount identity (what the default install's pod runs as)."""
        return write_operator_kubeconfig(control_plane,
                                         tmp_path_factory.mktemp(f"operator-identity-{label}") / "kubeconfig")

    @pytest.fixture(scope=scope)
    def crd_installed(kubeconfig: Path) -> None:
        install_crds(kubeconfig)

    return control_plane, kubeconfig, operator_rbac, operator_kubeconfig, crd_installed
