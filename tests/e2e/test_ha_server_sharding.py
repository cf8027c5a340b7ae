"""Sharding on an apiserver that filters lists and watches by shard (feature gate `ShardedListAndWatch`,
alpha in Kubernetes 1.36): each replica's watch delivers only the objects of the shards it holds.

The module runs on a control plane of its own with the gate on (the session's plane has it off, as most
clusters do: test_ha.py checks the client-side fallback there). The scenario is test_ha's: three replicas on
three shards, one lost, one added, every object written exactly once per change. After each round every
replica must hold records of exactly the objects of its shards (`goldrush_watched_pipelines`, the uids'
shards by the apiserver's own hash): a replica that took a lost replica's shard received those objects
(its watch was restarted with the wider selector, or it could not have written them), and one that gave a
shard up forgot its objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from identity import NamespacedRBAC, wait_until_bound, write_operator_kubeconfig
from planes import running_plane
from test_ha import shard_holders, shards_rebalance, watched

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

REPO = Path(__file__).resolve().parents[2]
SHARDS = 3

pytestmark = pytest.mark.slow


# The session's fixtures, rebuilt on this module's plane (the `namespace`, `kubectl`, `sim` and
# `start_operator` fixtures of conftest.py then run against it).


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_plane(tmp_path_factory.mktemp("ctlplane-sharded"),
                       ["--feature-gates=ShardedListAndWatch=true"]) as plane:
        yield plane


@pytest.fixture(scope="module")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="module")
def operator_rbac(kubeconfig: Path) -> NamespacedRBAC:
    from identity import OPERATOR_NAMESPACE

    admin = Kubectl(kubeconfig)
    rbac = NamespacedRBAC.rendered()
    rbac.install_cluster_scope(admin)
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    rbac.serve_as_operator_namespace(admin, OPERATOR_NAMESPACE)
    wait_until_bound(admin, OPERATOR_NAMESPACE)
    return rbac


@pytest.fixture(scope="module")
def operator_kubeconfig(
    control_plane: ControlPlane, operator_rbac: NamespacedRBAC, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_operator_kubeconfig(control_plane, tmp_path_factory.mktemp("operator-identity-sharded") / "kubeconfig")


@pytest.fixture(scope="module")
def crd_installed(kubeconfig: Path) -> None:
    k = Kubectl(kubeconfig)
    plurals = ("goldrushpipelines", "goldrushcredentials", "clustergoldrushcredentials")
    for plural in plurals:
        k("apply", "-f", str(REPO / "crds" / f"goldrush.dev_{plural}.yaml"))
    k.wait_established(*(f"{plural}.goldrush.dev" for plural in plurals))


def test_each_replica_watches_only_the_objects_of_its_shards(
    kubectl: Kubectl, sim: SimProcess, start_operator: object, namespace: str
) -> None:
    from goldrush_operator.lease import shard_of

    def uids(names: list[str]) -> dict[str, str]:
        items = kubectl.json("get", "goldrushpipelines")["items"]
        return {i["metadata"]["name"]: i["metadata"]["uid"] for i in items if i["metadata"]["name"] in names}

    def only_their_shards(replicas: dict[str, OperatorProcess], names: list[str]) -> None:
        by_uid = uids(names)
        holders = shard_holders(kubectl, SHARDS)
        for name, op in replicas.items():
            assert "sharded watch: server-side" in op.log
            mine = sum(1 for uid in by_uid.values() if holders[shard_of(uid, SHARDS)] == name)
            wait_for(lambda op=op, mine=mine: watched(op) == mine, 30,
                     message=f"{name} watching exactly the {mine} objects of its shards")
        assert sum(watched(op) or 0 for op in replicas.values()) == len(names)
        assert all(h in replicas for h in holders), holders

    shards_rebalance(kubectl, sim, start_operator, namespace, only_their_shards)  # type: ignore[arg-type]
