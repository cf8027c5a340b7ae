"""Fault injection of the simulator through `/_sim/faults` (real HTTP)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pytest

from support.sim import SimAdminError, SimProcess, example_pipeline

pytestmark = pytest.mark.sim


def create_id(sim: SimProcess) -> str:
    response = sim.api("POST", "", example_pipeline())
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def test_faults_are_shown_merged_and_cleared(sim: SimProcess) -> None:
    baseline = sim.faults()
    assert baseline["rules"] == []
    assert baseline["latency_ms"] == 0
    assert baseline["rate_limit_rps"] is None
    sim.faults(rules=[{"route": "get", "status": 500}])
    merged = sim.faults(rules=[{"route": "list", "status": 503, "count": 2}], latency_ms=5)
    assert [r["route"] for r in merged["rules"]] == ["get", "list"]
    assert merged["latency_ms"] == 5
    assert sim.faults() == merged
    sim.clear_faults()
    assert sim.faults() == baseline


def test_invalid_fault_bodies_are_rejected(sim: SimProcess) -> None:
    for bad in (
        {"rules": [{"route": "get"}]},
        {"rules": [{"status": 200}]},
        {"unknown": 1},
        {"latency_ms": -1},
    ):
        with pytest.raises(SimAdminError) as info:
            sim.admin("POST", "faults", bad)
        assert info.value.status == 422


def test_rule_with_count_applies_that_many_times(sim: SimProcess) -> None:
    sim.faults(rules=[{"route": "list", "method": "GET", "status": 503, "count": 2}])
    first, second, third = (sim.api("GET", "") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json() == {
        "data": None,
        "error": True,
        "error_message": "Injected fault: HTTP 503",
        "error_code": "503",
    }
    assert sim.faults()["rules"] == []


def test_rule_matches_route_and_method(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.faults(rules=[{"route": "*", "method": "PATCH", "status": 500, "message": "boom"}])
    assert sim.api("GET", f"{pid}/").status_code == 200
    response = sim.api("PATCH", f"{pid}/", {"name": "x"})
    assert response.status_code == 500
    assert response.json()["error_message"] == "boom"
    assert sim.api("GET", f"{pid}/").json()["data"]["name"] != "x"  # nothing committed
    sim.clear_faults()
    sim.faults(rules=[{"route": "status", "status": 502}])
    assert sim.api("GET", f"{pid}/status/").status_code == 502
    assert sim.api("GET", f"{pid}/metrics/").status_code == 200


def test_rule_with_a_key_answers_only_that_keys_requests(sim: SimProcess) -> None:
    other = hashlib.sha256(b"other-key").hexdigest()
    shown = sim.faults(rules=[{"route": "list", "status": 503, "key_sha256": other}])
    assert shown["rules"][0]["key_sha256"] == other
    assert "other-key" not in json.dumps(shown)  # the fault set never holds a raw key
    assert sim.api("GET", "", key="other-key").status_code == 503
    assert sim.api("GET", "", key="dev-key").status_code == 200
    assert sim.api("GET", "", key="other-key").status_code == 503  # count null: until cleared
    with pytest.raises(SimAdminError) as info:
        sim.admin("POST", "faults", {"rules": [{"status": 503, "key_sha256": "other-key"}]})
    assert info.value.status == 422


def test_rule_rate_is_a_seeded_probability(sim: SimProcess) -> None:
    def run() -> list[int]:
        sim.reset()
        sim.faults(rules=[{"route": "list", "status": 500, "rate": 0.5}])
        return [sim.api("GET", "").status_code for _ in range(40)]

    first = run()
    assert 5 < first.count(500) < 35
    assert first.count(200) > 5
    assert run() == first  # same seed -> same sequence after reset


def test_injected_faults_come_before_auth(sim: SimProcess) -> None:
    sim.faults(rules=[{"route": "list", "status": 503, "count": 1}])
    assert httpx.get(sim.base_url).status_code == 503


def test_burst_of_429_with_retry_after_and_early_retries(sim: SimProcess) -> None:
    sim.faults(rate_limit={"count": 2, "retry_after": 1, "route": "list"})
    first = sim.api("GET", "")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error_code"] == "429"
    second = sim.api("GET", "")  # immediately: an early retry
    assert second.status_code == 429
    assert sim.api("GET", "").status_code == 200  # burst used up, but still early
    counters = sim.counters()
    assert counters["early_retries"] == 2
    time.sleep(1.05)
    assert sim.api("GET", "").status_code == 200
    assert sim.counters()["early_retries"] == 2
    assert sim.faults()["rate_limit"] is None


def test_early_retries_are_tracked_per_key(sim: SimProcess) -> None:
    sim.faults(rate_limit={"count": 1, "retry_after": 5})
    assert sim.api("GET", "").status_code == 429
    assert sim.api("GET", "", key="other-key").status_code == 200  # another key is not early
    assert sim.counters()["early_retries"] == 0
    sim.api("GET", "")
    by_key = sim.counters()["early_retries_by_key"]
    assert list(by_key.values()) == [1]


def test_retry_after_on_a_5xx_rule(sim: SimProcess) -> None:
    sim.faults(rules=[{"route": "get", "status": 503, "retry_after": 3, "count": 1}])
    response = sim.api("GET", "pipe_none/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    no_header = sim.api("GET", "pipe_none/")
    assert "Retry-After" not in no_header.headers


def test_requests_per_second_limit(sim: SimProcess) -> None:
    sim.faults(rate_limit_rps=5)
    statuses = [sim.api("GET", "").status_code for _ in range(12)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = sim.api("GET", "")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert sim.api("GET", "", key="other-key").status_code == 200  # separate bucket per key
    time.sleep(1.1)
    assert sim.api("GET", "").status_code == 200
    sim.faults(rate_limit_rps=None)
    assert all(sim.api("GET", "").status_code == 200 for _ in range(10))


def test_latency_is_added(sim: SimProcess) -> None:
    started = time.monotonic()
    sim.api("GET", "")
    fast = time.monotonic() - started
    sim.faults(latency_ms=300)
    started = time.monotonic()
    assert sim.api("GET", "").status_code == 200
    assert time.monotonic() - started >= 0.3 > fast


def test_drop_after_commit_commits_then_closes_the_connection(sim: SimProcess) -> None:
    sim.faults(drop_after_commit={"route": "create", "count": 1})
    with pytest.raises(httpx.TransportError):
        sim.api("POST", "", example_pipeline(name="dropped"))
    items = sim.api("GET", "").json()["data"]["items"]
    assert [p["name"] for p in items] == ["dropped"]  # committed although the client saw no answer
    assert sim.api("POST", "", example_pipeline()).status_code == 201  # count used up
    entry = next(e for e in sim.journal() if e["route"] == "create")
    assert entry["status"] == 201
    assert entry["fault"] == "drop_after_commit"


def test_drop_after_commit_on_delete_and_not_on_failed_writes(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.faults(drop_after_commit={"route": "*", "count": 1})
    assert sim.api("PATCH", f"{pid}/", {"status": "bad"}).status_code == 422  # not committed: not dropped
    with pytest.raises(httpx.TransportError):
        sim.api("DELETE", f"{pid}/")
    assert sim.api("GET", f"{pid}/").status_code == 404


def test_delay_after_commit(sim: SimProcess) -> None:
    sim.faults(delay_after_commit={"route": "create", "seconds": 2, "count": 1})
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as client:
        client.post(sim.base_url, json=example_pipeline(), headers={"Authorization": "Bearer dev-key"})
    assert sim.api("GET", "").json()["data"]["pagination"]["total_count"] == 1
    # Journalled when it committed, while its answer is still held back.
    assert [(e["route"], e["fault"]) for e in sim.journal() if e["route"] == "create"] == [
        ("create", "delay_after_commit")
    ]
    started = time.monotonic()
    assert sim.api("POST", "", example_pipeline()).status_code == 201
    assert time.monotonic() - started < 1


def test_delay_after_commit_answers_late(sim: SimProcess) -> None:
    pid = create_id(sim)
    sim.faults(delay_after_commit={"route": "put", "seconds": 0.4})
    started = time.monotonic()
    response = sim.api("PUT", f"{pid}/", {"status": "paused"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4
    assert sim.faults()["delay_after_commit"] is None


def test_echo_body_in_422(sim: SimProcess) -> None:
    sim.faults(echo_body_in_422={"route": "create", "count": 1})
    response = sim.api("POST", "", example_pipeline())
    assert response.status_code == 422
    assert "s3cret" in response.json()["error_message"]  # raw body echoed, secrets included
    assert sim.pipelines() == []
    entry = sim.journal()[-1]
    assert entry["fault"] == "echo_body_in_422"
    assert entry["body"]["destination_config"]["password"].startswith("sha256:")
    assert sim.api("POST", "", example_pipeline()).status_code == 201


def test_faults_do_not_touch_the_admin_api(sim: SimProcess) -> None:
    sim.faults(rules=[{"status": 500}], latency_ms=0)
    assert sim.admin("GET", "health") == {"ok": True}
    assert sim.api("GET", "").status_code == 500


def test_reset_clears_faults(sim: SimProcess) -> None:
    body: dict[str, Any] = {"rules": [{"status": 500}], "rate_limit_rps": 1}
    sim.faults(**body)
    sim.reset()
    assert sim.api("GET", "").status_code == 200
    assert sim.faults()["rules"] == []


def test_requests_in_flight_when_the_429_is_sent_are_not_early(sim: SimProcess) -> None:
    """The early-retry window opens when the 429 leaves the simulator, not when its request arrived."""
    import threading

    sim.faults(latency_ms=400, rate_limit={"count": 1, "retry_after": 2, "route": "list"})
    answers: dict[str, int] = {}

    def call(name: str) -> None:
        answers[name] = sim.api("GET", "").status_code

    first = threading.Thread(target=call, args=("first",))
    first.start()
    time.sleep(0.15)  # the second request arrives while the first one's 429 is still held back by latency
    call("in_flight")
    first.join()
    assert answers == {"first": 429, "in_flight": 200}
    assert sim.counters()["early_retries"] == 0
    call("after")  # sent after the 429 was received, inside its Retry-After: early
    assert sim.counters()["early_retries"] == 1
