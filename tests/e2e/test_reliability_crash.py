"""Reliability: the operator dies (os._exit, like SIGKILL) at every named step of create, update, pause,
resume and delete, then a normal operator starts; invariants I1-I7 must hold (docs/reliability.md).

`GOLDRUSH_CRASH_AT=<step>` makes the operator exit with code 86 when it reaches that step (`crash.STEPS`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from invariants import Invariants, start_debug
from pipelines import pipeline_manifest, secret_manifest, wait_phase

from goldrush_operator import crash
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

# What each step's scenario does, and the committed remote writes it intends.
_INTENDED = {
    "create": {"create": 1},
    "status": {"create": 1},
    "update": {"create": 1, "patch": 1},
    "pause": {"create": 1, "put": 1},
    "resume": {"create": 1, "put": 2},
    "delete": {"create": 1, "delete": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("step", crash.STEPS)
def test_crash_at_step_then_restart(
    step: str, kubectl: Kubectl, sim: SimProcess, start_operator: Callable[..., OperatorProcess]
) -> None:
    inv = Invariants(kubectl, sim)
    action = step.split(".")[0]
    crashing = start_debug(start_operator, inv, env={"GOLDRUSH_CRASH_AT": step})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))

    if action in ("update", "pause", "resume", "delete"):
        wait_phase(kubectl, "p1", "RUNNING", ready="True")
    if action == "update":
        kubectl.apply(pipeline_manifest("p1", description="changed by the test"))
    elif action == "pause":
        kubectl.apply(pipeline_manifest("p1", paused=True))
    elif action == "resume":
        kubectl.apply(pipeline_manifest("p1", paused=True))
        wait_phase(kubectl, "p1", "PAUSED", ready="True")
        kubectl.apply(pipeline_manifest("p1", paused=False))
    elif action == "delete":
        kubectl("delete", "goldrushpipeline", "p1", "--wait=false")
        inv.mark_deleted("p1")

    code = crashing.wait_exit(40)
    assert code == crash.EXIT_CODE, f"operator did not crash at {step} (exit {code}):\n{crashing.log[-3000:]}"
    assert f"GOLDRUSH_CRASH_AT={step}" in crashing.log

    start_debug(start_operator, inv)
    if action == "delete":
        wait_for(lambda: kubectl("get", "goldrushpipeline", "p1", check=False).returncode != 0, 40,
                 message="object deleted after restart")
    inv.check(writes=_INTENDED[action], timeout=60)
