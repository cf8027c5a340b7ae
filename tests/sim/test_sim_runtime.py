"""Runtime phase machine of the simulator: status, logs, metrics, destination-health (real HTTP).

The session simulator runs with --deploy-seconds 0.3 --stop-seconds 0.2 --bounded-run-seconds 0.6.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.sim

NOT_RUNNING = "unable to upgrade connection: container not found"


def create_id(sim: SimProcess, **overrides: Any) -> str:
    response = sim.api("POST", "", example_pipeline(**overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def status(sim: SimProcess, pid: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.api("GET", f"{pid}/status/").json()["data"]
    return data


def logs(sim: SimProcess, pid: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.api("GET", f"{pid}/logs/").json()["data"]["pods"][0]
    return data


def metrics(sim: SimProcess, pid: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.api("GET", f"{pid}/metrics/").json()["data"]
    return data


def health(sim: SimProcess, pid: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.api("GET", f"{pid}/destination-health/").json()["data"]
    return data


def test_create_deploys_then_runs(sim: SimProcess) -> None:
    pid = create_id(sim)
    first = status(sim, pid)
    assert (first["status"], first["replicas"], first["ready"]) == ("DEPLOYING", 1, 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["start_time"])
    assert logs(sim, pid)["logs"] == NOT_RUNNING
    assert metrics(sim, pid)["records_consumed"] == 0
    running = sim.wait_phase(pid, "RUNNING", timeout=3)
    assert (running["replicas"], running["ready"]) == (1, 1)
    assert running["start_time"] == first["start_time"]


def test_pod_name_follows_kubernetes_generate_name(sim: SimProcess) -> None:
    pid = create_id(sim)
    uid = "covalent-postgres-" + pid.replace("_", "-")
    pod = logs(sim, pid)["pod"]
    assert len(pod) == 63
    assert pod.startswith(("pipeline-" + uid)[:58])
    assert re.fullmatch(r"[a-z0-9]{5}", pod[58:])
    assert logs(sim, pid)["pod"] == pod  # stable while the worker lives
    sim.api("PATCH", f"{pid}/", {"transforms": {}})  # redeploy -> new pod
    assert logs(sim, pid)["pod"] != pod


def test_running_logs_and_growing_metrics(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.wait_phase(pid, "RUNNING")
    time.sleep(0.3)
    first = metrics(sim, pid)
    time.sleep(0.3)
    second = metrics(sim, pid)
    assert second["records_consumed"] > first["records_consumed"] > 0
    assert second["last_offset"] >= first["last_offset"]
    assert second["last_block_height"] >= 44745000
    assert second["records_per_second"] > 0
    text = logs(sim, pid)["logs"]
    assert NOT_RUNNING not in text
    assert "starting pipeline" in text


def test_redeploy_resets_metrics(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.wait_phase(pid, "RUNNING")
    time.sleep(0.2)
    assert metrics(sim, pid)["records_consumed"] > 0
    sim.api("PATCH", f"{pid}/", {"execution_stop_from": "50000000"})
    assert status(sim, pid)["status"] == "DEPLOYING"
    assert metrics(sim, pid)["records_consumed"] == 0
    sim.wait_phase(pid, "RUNNING")


def test_cosmetic_patch_does_not_redeploy(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.wait_phase(pid, "RUNNING")
    sim.api("PATCH", f"{pid}/", {"name": "new name", "description": "new description"})
    assert status(sim, pid)["status"] == "RUNNING"
    same = sim.api("GET", f"{pid}/").json()["data"]["transforms"]
    sim.api("PATCH", f"{pid}/", {"transforms": same})  # unchanged value: no redeploy either
    assert status(sim, pid)["status"] == "RUNNING"


def test_pause_stops_then_pauses_and_resume_redeploys(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.wait_phase(pid, "RUNNING")
    time.sleep(0.1)
    sim.api("PUT", f"{pid}/", {"status": "paused"})
    stopping = status(sim, pid)
    assert stopping["status"] == "STOPPING"
    frozen = metrics(sim, pid)["records_consumed"]
    paused = sim.wait_phase(pid, "PAUSED", timeout=3)
    assert (paused["replicas"], paused["ready"]) == (0, 0)
    assert logs(sim, pid)["logs"] == NOT_RUNNING
    assert metrics(sim, pid)["records_consumed"] == frozen
    assert metrics(sim, pid)["records_per_second"] == 0
    sim.api("PATCH", f"{pid}/", {"status": "running"})
    assert status(sim, pid)["status"] == "DEPLOYING"
    sim.wait_phase(pid, "RUNNING")


def test_patch_while_paused_does_not_deploy(sim: SimProcess) -> None:
    pid = create_id(sim, status="paused")
    assert status(sim, pid)["status"] == "PAUSED"
    sim.api("PATCH", f"{pid}/", {"transforms": {}})
    assert status(sim, pid)["status"] == "PAUSED"
    sim.api("PUT", f"{pid}/", {"status": "paused"})
    assert status(sim, pid)["status"] == "PAUSED"


def test_created_paused_never_deployed(sim: SimProcess) -> None:
    pid = create_id(sim, status="paused")
    data = status(sim, pid)
    assert data == {**data, "status": "PAUSED", "replicas": 0, "ready": 0, "start_time": None}
    sim.api("PUT", f"{pid}/", {"status": "running"})
    assert status(sim, pid)["status"] == "DEPLOYING"


def test_transform_that_is_not_a_single_select_fails(sim: SimProcess) -> None:
    pid = create_id(sim, transforms={"swaps": "DELETE FROM swaps"})
    assert status(sim, pid)["status"] == "DEPLOYING"
    failed = sim.wait_phase(pid, "FAILED")
    assert (failed["replicas"], failed["ready"]) == (1, 0)
    assert (
        logs(sim, pid)["logs"]
        .splitlines()[-1]
        .endswith("transform 'swaps' failed: only a single SELECT statement is supported")
    )
    assert health(sim, pid) == {"healthy": True, "last_error": None}
    two = create_id(sim, transforms={"swaps": "SELECT 1 FROM swaps; SELECT 2 FROM swaps"})
    sim.wait_phase(two, "FAILED")
    ok = create_id(sim, transforms={"swaps": "select a from swaps;"})
    sim.wait_phase(ok, "RUNNING")


def test_fixing_the_configuration_recovers_from_failed(sim: SimProcess) -> None:
    pid = create_id(sim, transforms={"swaps": "DROP TABLE swaps"})
    sim.wait_phase(pid, "FAILED")
    sim.api("PATCH", f"{pid}/", {"transforms": {"swaps": "SELECT * FROM swaps"}})
    sim.wait_phase(pid, "RUNNING")


@pytest.mark.parametrize(
    ("dtype", "config"),
    [
        ("postgres", {"type": "postgres", "url": "postgresql://db.invalid:5432/x", "password": "p"}),
        ("clickhouse", {"type": "clickhouse", "url": "clickhouse://ch.example.invalid:8123/db"}),
        ("kafka", {"type": "kafka", "bootstrap_servers": "ok.example.com:9092,broker.invalid:9092"}),
        ("sqs", {"type": "sqs", "queue_url": "https://sqs.queue.invalid/1/q", "region": "us-east-1"}),
        ("object_storage", {"type": "object_storage", "provider": "r2", "endpoint": "https://r2.invalid"}),
        ("webhook", {"type": "webhook", "url": "https://hooks.invalid/x"}),
    ],
)
def test_unreachable_destination_fails_and_is_unhealthy(sim: SimProcess, dtype: str, config: dict[str, Any]) -> None:
    transforms: dict[str, str] = {} if dtype == "kafka" else {"swaps": "SELECT 1 FROM swaps"}
    pid = create_id(sim, destination_type=dtype, destination_config=config, transforms=transforms)
    assert health(sim, pid) == {"healthy": True, "last_error": None}  # not probed yet
    sim.wait_phase(pid, "FAILED")
    assert health(sim, pid) == {"healthy": False, "last_error": "connection refused"}
    assert "connection refused" in logs(sim, pid)["logs"].splitlines()[-1]


def test_reachable_hosts_are_healthy(sim: SimProcess) -> None:
    pid = create_id(sim, destination_config={"type": "postgres", "url": "postgresql://invalid.example.com/x"})
    sim.wait_phase(pid, "RUNNING")
    assert health(sim, pid)["healthy"] is True


def test_kafka_with_abi_fails_at_runtime(sim: SimProcess) -> None:
    kafka = {"type": "kafka", "bootstrap_servers": "b:9092", "output_topic": "t"}
    pid = create_id(sim, destination_type="kafka", destination_config=kafka, transforms={}, abi_file={"abi": []})
    sim.wait_phase(pid, "FAILED")
    assert "ABI" in logs(sim, pid)["logs"].splitlines()[-1]


def test_bounded_pipeline_stops_after_bounded_run(sim: SimProcess) -> None:
    pid = create_id(sim, execution_mode="bounded", execution_stop_from="44746000")
    sim.wait_phase(pid, "RUNNING")
    stopped = sim.wait_phase(pid, "STOPPED", timeout=3)
    assert (stopped["replicas"], stopped["ready"]) == (0, 0)
    final = metrics(sim, pid)
    assert final["records_consumed"] == 60
    assert final["records_per_second"] == 0
    assert sim.api("GET", f"{pid}/").json()["data"]["status"] == "running"  # intent unchanged
    assert logs(sim, pid)["logs"] == NOT_RUNNING


def test_unbounded_pipeline_keeps_running(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.wait_phase(pid, "RUNNING")
    time.sleep(0.7)
    assert status(sim, pid)["status"] == "RUNNING"


def test_pause_while_deploying_and_resume_while_stopping(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.api("PUT", f"{pid}/", {"status": "paused"})
    assert status(sim, pid)["status"] == "STOPPING"
    sim.api("PUT", f"{pid}/", {"status": "running"})
    assert status(sim, pid)["status"] == "DEPLOYING"
    sim.wait_phase(pid, "RUNNING")
