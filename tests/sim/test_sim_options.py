"""Command line options and process behaviour of `goldrush-sim` (one subprocess per test)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support.sim import SimProcess, SimStartError, example_pipeline, sim_executable

pytestmark = pytest.mark.sim


def test_defaults_ready_line_and_clean_sigterm() -> None:
    proc = subprocess.Popen(
        [str(sim_executable()), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("goldrush-sim listening on http://127.0.0.1:")
        assert line.endswith("\n")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        base = f"http://127.0.0.1:{port}/platform/pipeline-api/"
        response = httpx.get(base, headers={"Authorization": "Bearer dev-key"})
        assert response.status_code == 200
        created = httpx.post(base, json=example_pipeline(), headers={"Authorization": "Bearer dev-key"})
        assert created.json()["data"]["group"]["id"] == "group_default"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line on stdout


def test_sigint_stops_cleanly() -> None:
    process = SimProcess.start()
    os.kill(process.pid, signal.SIGINT)
    assert process.proc.wait(10) == 0
    process.stop()


def test_bad_arguments_fail_start_with_output() -> None:
    with pytest.raises(SimStartError) as info:
        SimProcess.start("--immutable-patch", "maybe", timeout=10)
    assert "invalid choice" in str(info.value)
    with pytest.raises(SimStartError) as info:
        SimProcess.start("--default-page-size", "500", timeout=10)
    assert "default_page_size" in str(info.value)


def test_port_in_use_fails() -> None:
    with SimProcess.start() as first, pytest.raises(SimStartError) as info:
        SimProcess.start("--port", str(first.port), timeout=10)
    assert "address already in use" in str(info.value).lower() or "errno" in str(info.value).lower()


def test_service_and_api_keys_from_the_command_line() -> None:
    with SimProcess.start(
        "--service-key",
        "k1",
        "--service-key",
        "k2=group_two",
        "--service-key",
        "cGFk==",
        "--api-key",
        "plain",
    ) as sim:
        assert sim.service_key == "k1"
        assert sim.api("POST", "", example_pipeline()).json()["data"]["group"]["id"] == "group_default"
        assert sim.api("POST", "", example_pipeline(), key="k2").json()["data"]["group"]["id"] == "group_two"
        assert sim.api("GET", "", key="cGFk==").status_code == 200
        assert sim.api("GET", "", key="plain").status_code == 403
        assert sim.api("GET", "", key="dev-key").status_code == 401  # no implicit dev-key when keys are given


def test_create_status_200() -> None:
    with SimProcess.start("--create-status", "200") as sim:
        assert sim.api("POST", "", example_pipeline()).status_code == 200


def test_immutable_patch_ignore() -> None:
    with SimProcess.start("--immutable-patch", "ignore") as sim:
        pid = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        response = sim.api("PATCH", f"{pid}/", {"topic": "eth.mainnet.ref.block.logs", "name": "applied"})
        assert response.status_code == 200
        data = response.json()["data"]
        assert data["topic"] == "base.mainnet.ref.block.swap.v3"
        assert data["name"] == "applied"


def test_patch_merge_deep() -> None:
    with SimProcess.start("--patch-merge", "deep") as sim:
        pid = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        response = sim.api(
            "PATCH",
            f"{pid}/",
            {
                "destination_config": {"url": "postgresql://new:5432/db"},
                "transforms": {"extra": "SELECT 1 FROM extra"},
            },
        )
        data = response.json()["data"]
        assert data["destination_config"] == {
            "type": "postgres",
            "url": "postgresql://new:5432/db",
            "user": "pipeline",
            "password": "******",
        }
        assert set(data["transforms"]) == {"swaps", "extra"}


def test_status_without_runtime_404() -> None:
    """`/status/` of a pipeline with no runtime (paused, or a finished bounded one) answers 404, as the
    API may (what it answers there is not documented); the pipeline itself is still there."""
    with SimProcess.start("--status-without-runtime", "404", "--deploy-seconds", "0", "--stop-seconds", "0") as sim:
        pid = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        assert sim.api("GET", f"{pid}/status/").json()["data"]["status"] == "RUNNING"
        sim.api("PUT", f"{pid}/", {"status": "paused"})
        missing = sim.api("GET", f"{pid}/status/")
        assert missing.status_code == 404 and missing.json()["error"] is True
        assert sim.api("GET", f"{pid}/").json()["data"]["status"] == "paused"


def test_echo_defaults() -> None:
    """Reads fill in the documented defaults of the settings a pipeline leaves out; stored values win."""
    with SimProcess.start("--echo-defaults") as sim:
        body = example_pipeline()
        body["destination_config"]["batch_size"] = 500
        created = sim.api("POST", "", body).json()["data"]
        assert created["destination_config"]["batch_size"] == 500
        assert created["destination_config"]["flush_interval_ms"] == 5000
        got = sim.api("GET", f"{created['id']}/").json()["data"]["destination_config"]
        assert (got["batch_size"], got["flush_interval_ms"], got["password"]) == (500, 5000, "******")
    with SimProcess.start() as sim:
        created = sim.api("POST", "", example_pipeline()).json()["data"]
        assert "flush_interval_ms" not in created["destination_config"]


def test_delete_seconds_keeps_pipeline_stopping() -> None:
    with SimProcess.start("--delete-seconds", "0.5", "--deploy-seconds", "0") as sim:
        pid = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        assert sim.api("DELETE", f"{pid}/").status_code == 204
        assert sim.api("GET", f"{pid}/").status_code == 200
        assert sim.api("GET", f"{pid}/status/").json()["data"]["status"] == "STOPPING"
        assert sim.api("GET", "").json()["data"]["pagination"]["total_count"] == 1
        conflict = sim.api("PATCH", f"{pid}/", {"name": "x"})
        assert conflict.status_code == 409
        assert conflict.json()["error_code"] == "409"
        assert sim.api("DELETE", f"{pid}/").status_code == 204
        assert sim.pipelines()[0]["deleting"] is True
        time.sleep(0.6)
        assert sim.api("GET", f"{pid}/").status_code == 404
        assert sim.api("GET", "").json()["data"]["pagination"]["total_count"] == 0
        assert sim.api("DELETE", f"{pid}/").status_code == 404


def test_page_size_options() -> None:
    with SimProcess.start("--default-page-size", "3", "--max-page-size", "5") as sim:
        for _ in range(7):
            sim.api("POST", "", example_pipeline())
        default = sim.api("GET", "").json()["data"]
        assert len(default["items"]) == 3
        assert default["pagination"]["page_size"] == 3
        clamped = sim.api("GET", "?page_size=50").json()["data"]
        assert len(clamped["items"]) == 5
        assert clamped["pagination"]["page_size"] == 5
        assert clamped["pagination"]["has_more"] is True


def test_latency_option_is_the_fault_baseline() -> None:
    with SimProcess.start("--latency-ms", "250") as sim:
        assert sim.faults()["latency_ms"] == 250
        started = time.monotonic()
        sim.api("GET", "")
        assert time.monotonic() - started >= 0.25
        sim.clear_faults()
        assert sim.faults()["latency_ms"] == 250


def test_rate_limit_rps_option() -> None:
    with SimProcess.start("--rate-limit-rps", "3") as sim:
        statuses = [sim.api("GET", "").status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[-1] == 429
        assert sim.faults()["rate_limit_rps"] == 3


def test_journal_size_is_a_ring_buffer() -> None:
    with SimProcess.start("--journal-size", "3") as sim:
        for _ in range(5):
            sim.api("GET", "")
        assert [e["seq"] for e in sim.journal()] == [3, 4, 5]
        assert [e["seq"] for e in sim.journal(since=4)] == [5]
        assert sim.counters()["total"] == 5


def test_bounded_and_stop_timings_options() -> None:
    with SimProcess.start("--deploy-seconds", "0", "--bounded-run-seconds", "0.2", "--stop-seconds", "5") as sim:
        pid = sim.api("POST", "", example_pipeline(execution_mode="bounded")).json()["data"]["id"]
        sim.wait_phase(pid, "STOPPED", timeout=2)
        other = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        assert sim.api("GET", f"{other}/status/").json()["data"]["status"] == "RUNNING"
        sim.api("PUT", f"{other}/", {"status": "paused"})
        time.sleep(0.3)
        assert sim.api("GET", f"{other}/status/").json()["data"]["status"] == "STOPPING"


def test_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "sim.json"
    with SimProcess.start("--state-file", str(state), "--deploy-seconds", "0.2") as sim:
        created = sim.api("POST", "", example_pipeline(name="kept")).json()["data"]
        paused = sim.api("POST", "", example_pipeline(status="paused")).json()["data"]
        foreign = sim.seed(**example_pipeline(name="foreign"))
        sim.wait_phase(created["id"], "RUNNING")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text())["version"] == 1
    with SimProcess.start("--state-file", str(state), "--deploy-seconds", "0.2") as sim:
        again = sim.api("GET", f"{created['id']}/").json()["data"]
        assert again == created
        assert sim.api("GET", f"{created['id']}/status/").json()["data"]["status"] == "RUNNING"
        assert sim.api("GET", f"{paused['id']}/status/").json()["data"]["status"] == "PAUSED"
        admin = {p["id"]: p for p in sim.pipelines()}
        assert admin[foreign["id"]]["group_id"] == "group_foreign"
        assert admin[created["id"]]["destination_config"]["password"] == foreign["destination_config"]["password"]
        sim.api("DELETE", f"{paused['id']}/")
    with SimProcess.start("--state-file", str(state)) as sim:
        assert {p["id"] for p in sim.pipelines()} == {created["id"], foreign["id"]}


def test_state_file_is_written_soon_after_changes(tmp_path: Path) -> None:
    state = tmp_path / "sim.json"
    sim = SimProcess.start("--state-file", str(state))
    try:
        pid = sim.api("POST", "", example_pipeline()).json()["data"]["id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (state.exists() and pid in state.read_text()):
            time.sleep(0.05)
        assert pid in state.read_text()
        assert not list(tmp_path.glob("*.tmp"))
    finally:
        os.kill(sim.pid, signal.SIGKILL)  # crash: no shutdown flush
        sim.stop()
    with SimProcess.start("--state-file", str(state)) as restarted:
        assert [p["id"] for p in restarted.pipelines()] == [pid]


def test_debug_log_level_logs_to_stderr_only() -> None:
    with SimProcess.start("--log-level", "debug") as sim:
        sim.api("GET", "")
        time.sleep(0.1)
        assert "GET /platform/pipeline-api/" in sim.stderr()
