"""E2E: the operator against an API that takes the other side of two questions the documentation leaves open.

The simulator runs with `--status-without-runtime 404` (`/status/` of a paused pipeline answers 404 while the
pipeline exists) and `--echo-defaults` (reads fill in the documented defaults of destination settings the
spec leaves out). Neither may cost a second pipeline, nor a PATCH at every configuration check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from pipelines import condition, events, pipeline_manifest, secret_manifest, wait_phase, writes

from support.kubectl import Kubectl
from support.operator import OperatorProcess
from support.sim import SimProcess

SIM_ARGS = ("--service-key", "dev-key=group_default", "--deploy-seconds", "1", "--stop-seconds", "0.5",
            "--status-without-runtime", "404", "--echo-defaults")


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """Overrides the tier's `sim`: `start_operator` points the operator at this one."""
    with SimProcess.start(*SIM_ARGS) as process:
        yield process


def test_a_paused_pipeline_without_runtime_and_echoed_defaults_cost_no_extra_write(
    kubectl: Kubectl, sim: SimProcess, start_operator: Callable[..., OperatorProcess],
) -> None:
    start_operator(env={"GOLDRUSH_POLL_SLOW_SECONDS": "1"})  # a configuration check on almost every pass
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    pid = obj["status"]["pipelineId"]
    assert sim.api("GET", f"{pid}/").json()["data"]["destination_config"]["flush_interval_ms"] == 5000
    time.sleep(4)  # several configuration checks against a remote that shows defaults the spec leaves out
    assert [w["route"] for w in writes(sim)] == ["create"]

    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":true}}')
    obj = wait_phase(kubectl, "p1", "PAUSED", ready="True")
    assert condition(obj, "Ready")["reason"] == "Paused"  # type: ignore[index]
    assert sim.api("GET", f"{pid}/status/").status_code == 404
    time.sleep(4)  # polls of /status/ keep answering 404 while paused
    assert [w["route"] for w in writes(sim)] == ["create", "put"]
    assert [p["id"] for p in sim.pipelines()] == [pid]
    obj = kubectl.json("get", "goldrushpipeline", "p1")
    assert obj["status"]["pipelineId"] == pid and obj["status"]["phase"] == "PAUSED"
    assert "RemoteDeleted" not in {e["reason"] for e in events(kubectl)}

    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":false}}')
    wait_phase(kubectl, "p1", "RUNNING", ready="True")
    assert [w["route"] for w in writes(sim)] == ["create", "put", "put"]
