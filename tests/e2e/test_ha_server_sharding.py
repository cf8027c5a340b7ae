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

import pytest
from planes import plane_fixtures
from test_ha import shard_holders, shards_rebalance, watched

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

SHARDS = 3

pytestmark = pytest.mark.slow


# The session's plane fixtures, rebuilt on this module's plane (conftest's per-test fixtures `namespace`,
# `kubectl`, `sim` and `start_operator` then run against it).
control_plane, kubeconfig, operator_rbac, operator_kubeconfig, crd_installed = plane_fixtures(
    "module", "sharded", ["--feature-gates=ShardedListAndWatch=true"])


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
