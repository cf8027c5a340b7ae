"""Reliability: Kubernetes-side faults (apiserver outage, operator SIGKILL during a burst) with invariants
I1-I7 (docs/reliability.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from invariants import Invariants, committed_writes, start_debug
from pipelines import pipeline_manifest, secret_manifest

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

Start = Callable[..., OperatorProcess]


def _apply_many(kubectl: Kubectl, names: list[str]) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": [pipeline_manifest(n) for n in names]})


@pytest.mark.slow
def test_apiserver_stopped_30s_while_objects_are_created(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, control_plane: ControlPlane
) -> None:
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    # Slow the API a little so that the outage lands in the middle of the creates.
    sim.faults(latency_ms=300)
    op = start_debug(start_operator, inv, env={"GOLDRUSH_MAX_CONCURRENCY": "2"})
    names = [f"p{i:02d}" for i in range(10)]
    _apply_many(kubectl, names)
    wait_for(lambda: committed_writes(sim)["create"] >= 2, 30, message="the first creates")
    control_plane.stop_apiserver()
    try:
        time.sleep(30)
        during = committed_writes(sim)["create"]
    finally:
        control_plane.start_apiserver()
    sim.clear_faults()
    assert op.alive(), op.log[-3000:]
    inv.check(writes={"create": 10}, timeout=120)
    assert during <= 10


@pytest.mark.slow
def test_sigkill_while_50_objects_are_created_then_restart(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start
) -> None:
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    # Slow answers and 4 requests in flight keep the burst at about 8 creates a second, so the kill lands mid-burst
    # however fast the operator or slow the machine is (at 100 ms and the default 10 in flight the whole burst
    # once committed before the test saw the tenth create).
    sim.faults(latency_ms=500)
    op = start_debug(start_operator, inv, env={"GOLDRUSH_MAX_CONCURRENCY": "4"})
    _apply_many(kubectl, [f"p{i:02d}" for i in range(50)])
    wait_for(lambda: committed_writes(sim)["create"] >= 10, 60, interval=0.1, message="10 creates")
    op.kill()
    before = committed_writes(sim)["create"]
    assert before < 50, "the kill came too late to prove anything"
    sim.clear_faults()
    start_debug(start_operator, inv)
    inv.check(writes={"create": 50}, timeout=150, quiet=3)
