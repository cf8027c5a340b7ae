"""E2E: polls of stable pipelines are paid from the read budget, and a remote FAILED is seen inside it.

10 RUNNING pipelines on a key limited to 20 requests/s with the default share (10 %: 2 reads/s): the status
reads are spread at about 5 s per pipeline, the measured read rate stays within the budget, and a pipeline
forced to FAILED shows `status.phase: FAILED` (and `Stalled`) after one status interval, not after the slow
poll (here 900 s, the default).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines import pipeline_manifest, secret_manifest, wait_phase, wait_reason

from support.kubectl import Kubectl
from support.operator import OperatorProcess
from support.sim import SimProcess

OBJECTS = 10
BUDGET = 20 * 0.1  # GOLDRUSH_RATE_LIMIT x GOLDRUSH_POLL_BUDGET_SHARE (default)


def test_failed_is_seen_within_the_budgeted_status_interval(
    kubectl: Kubectl, sim: SimProcess, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator(env={"GOLDRUSH_RATE_LIMIT": "20", "GOLDRUSH_POLL_FAST_SECONDS": "2",
                        "GOLDRUSH_POLL_SLOW_SECONDS": "900"})
    kubectl.apply(secret_manifest())
    for i in range(OBJECTS):
        kubectl.apply(pipeline_manifest(f"p{i}"))
    ids = [wait_phase(kubectl, f"p{i}", "RUNNING", ready="True", timeout=90)["status"]["pipelineId"]
           for i in range(OBJECTS)]

    # Idle: reads only, within the budget (a burst of a few reads is allowed by the bucket).
    time.sleep(5)
    seq = len(sim.journal())
    started = time.monotonic()
    time.sleep(20)
    window = time.monotonic() - started
    idle = sim.journal()[seq:]
    assert not [e for e in idle if e["method"] != "GET"], "writes while idle"
    assert len(idle) <= BUDGET * window + 6, f"{len(idle)} reads in {window:.0f}s exceed the read budget"
    polled = {e["path"].strip("/").split("/")[-2] for e in idle if e["route"] == "status"}
    assert polled == set(ids), "every pipeline is polled inside the window (spread evenly)"

    sim.force_phase(ids[3], "FAILED", log="sink error: relation does not exist")
    # One status interval is about 5 s; 30 s leaves room for a loaded machine but is far below the slow poll.
    obj = wait_reason(kubectl, "p3", "Stalled", "True", "RemoteFailed", timeout=30)
    assert obj["status"]["phase"] == "FAILED"
    assert "relation does not exist" in obj["status"]["conditions"][0]["message"]
