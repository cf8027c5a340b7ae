"""The simulator's metrics override (`/_sim/pipelines/{id}/metrics`): fields held as given until the next
deploy, merged, cleared, validated, served by `GET /{id}/metrics/`, read back without a journal entry, and kept
in the state file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.sim import SimAdminError, SimProcess, example_pipeline


def create(sim: SimProcess, **overrides: Any) -> str:
    response = sim.api("POST", "", example_pipeline(**overrides))
    assert response.status_code == 201, response.text
    pid: str = response.json()["data"]["id"]
    return pid


def served(sim: SimProcess, pid: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.api("GET", f"{pid}/metrics/").json()["data"]
    return data


def test_held_fields_are_served_until_the_next_deploy(sim: SimProcess) -> None:
    pid = create(sim)
    sim.wait_phase(pid, "RUNNING")
    answer = sim.set_metrics(pid, records_per_second=12.5, processing_delay_ms=900)
    assert answer["records_per_second"] == 12.5 and answer["processing_delay_ms"] == 900
    assert answer["pending_records"] in range(26)  # not held: follows the phase machine
    data = served(sim, pid)
    assert data["records_per_second"] == 12.5 and data["processing_delay_ms"] == 900
    # Merged into the earlier fields; the admin read matches the API and is not journalled.
    sim.set_metrics(pid, pending_records=7, last_block_height=44_745_123, normalization_errors=3)
    journal = len(sim.journal())
    held = sim.metrics(pid)
    assert len(sim.journal()) == journal
    assert {k: held[k] for k in ("records_per_second", "pending_records", "last_block_height",
                                 "normalization_errors")} == {"records_per_second": 12.5, "pending_records": 7,
                                                              "last_block_height": 44_745_123,
                                                              "normalization_errors": 3}
    assert served(sim, pid)["last_block_height"] == 44_745_123
    # A pause keeps them; the redeploy of a resume drops them.
    sim.api("PUT", f"{pid}/", {"status": "paused"})
    sim.wait_phase(pid, "PAUSED")
    assert served(sim, pid)["records_per_second"] == 12.5
    sim.api("PUT", f"{pid}/", {"status": "running"})
    assert served(sim, pid)["records_per_second"] == 0.0  # DEPLOYING again, counters reset
    sim.wait_phase(pid, "RUNNING")
    assert served(sim, pid)["records_per_second"] == 100.0


def test_clear_and_validation(sim: SimProcess) -> None:
    pid = create(sim)
    sim.wait_phase(pid, "RUNNING")
    sim.set_metrics(pid, records_per_second=1.0)
    assert sim.admin("DELETE", f"pipelines/{pid}/metrics")["records_per_second"] == 100.0
    for bad in ({"records_per_second": -1}, {"uid": "x"}, {"rps": 3}):
        with pytest.raises(SimAdminError) as info:
            sim.admin("POST", f"pipelines/{pid}/metrics", bad)
        assert info.value.status == 422
    with pytest.raises(SimAdminError) as info:
        sim.set_metrics("pipe_missing", records_per_second=1.0)
    assert info.value.status == 404


def test_held_fields_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SimProcess.start("--state-file", str(state), "--deploy-seconds", "0.2") as sim:
        pid = create(sim)
        sim.set_metrics(pid, processing_delay_ms=4321)
    with SimProcess.start("--state-file", str(state), "--deploy-seconds", "0.2") as sim:
        assert served(sim, pid)["processing_delay_ms"] == 4321
