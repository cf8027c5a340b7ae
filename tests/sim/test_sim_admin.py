"""Admin and inspection API of the simulator under `/_sim/` (real HTTP)."""

from __future__ import annotations

import hashlib
import socket
from typing import Any

import httpx
import pytest

from support.sim import SimAdminError, SimProcess, example_pipeline

pytestmark = pytest.mark.sim


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create(sim: SimProcess, **overrides: Any) -> dict[str, Any]:
    response = sim.api("POST", "", example_pipeline(**overrides))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_health_and_config(sim: SimProcess) -> None:
    assert sim.admin("GET", "health") == {"ok": True}
    config = sim.admin("GET", "config")
    assert config["deploy_seconds"] == 0.3
    assert config["service_keys"]["other-key"] == "group_other"


def test_unknown_admin_path_is_json_404(sim: SimProcess) -> None:
    response = sim.admin_response("GET", "nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


def test_journal_records_requests_with_hashed_secrets(sim: SimProcess) -> None:
    webhook = {"type": "webhook", "url": "https://h.example.com", "headers": {"Authorization": "Bearer hdr"}}
    sim.api("POST", "", example_pipeline(destination_type="webhook", destination_config=webhook))
    sim.api("GET", "?page_size=5")
    httpx.get(sim.base_url)
    entries = sim.journal()
    assert [e["seq"] for e in entries] == [1, 2, 3]
    create_entry, list_entry, anonymous = entries
    assert set(create_entry) >= {"seq", "time", "method", "path", "route", "status", "key", "body"}
    assert create_entry["method"] == "POST"
    assert create_entry["path"] == "/platform/pipeline-api/"
    assert create_entry["route"] == "create"
    assert create_entry["status"] == 201
    assert create_entry["key"] == sha("dev-key")
    assert create_entry["body"]["destination_config"]["headers"]["Authorization"] == "sha256:" + sha("Bearer hdr")
    assert create_entry["body"]["name"] == "From Base Swap to Postgres"
    assert isinstance(create_entry["time"], float)
    assert list_entry["body"] is None
    assert list_entry["query"] == "page_size=5"
    assert list_entry["route"] == "list"
    assert anonymous["key"] is None
    assert anonymous["status"] == 401
    assert [e["seq"] for e in sim.journal(since=2)] == [3]
    assert sim.journal(since=3) == []
    assert "hdr" not in sim.admin_response("GET", "journal").text.replace("sha256", "")


def test_journal_hashes_secrets_of_every_write_and_raw_invalid_json(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    patch = {"destination_config": {"type": "postgres", "sasl": {"password": "inner"}, "secret_access_key": "sk"}}
    sim.api("PATCH", f"{pid}/", patch)
    headers = {"Authorization": "Bearer dev-key", "Content-Type": "application/json"}
    httpx.post(sim.base_url, content=b'{"password": "broken', headers=headers)
    patch_entry, broken = sim.journal()[-2:]
    config = patch_entry["body"]["destination_config"]
    assert config["sasl"]["password"] == "sha256:" + sha("inner")
    assert config["secret_access_key"] == "sha256:" + sha("sk")
    assert broken["status"] == 400
    assert broken["body"] == "sha256:" + hashlib.sha256(b'{"password": "broken').hexdigest()


def test_counters(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    for path in (
        "",
        f"{pid}/",
        f"{pid}/status/",
        f"{pid}/logs/",
        f"{pid}/metrics/",
        f"{pid}/destination-health/",
    ):
        sim.api("GET", path)
    sim.api("PUT", f"{pid}/", {"status": "paused"})
    sim.api("PATCH", f"{pid}/", {"topic": "other"})
    sim.api("DELETE", f"{pid}/")
    sim.api("GET", f"{pid}/")
    counters = sim.counters()
    assert counters["requests"] == {
        "create": 1,
        "list": 1,
        "get": 2,
        "status": 1,
        "logs": 1,
        "metrics": 1,
        "destination-health": 1,
        "put": 1,
        "patch": 1,
        "delete": 1,
    }
    assert counters["statuses"] == {"201": 1, "200": 7, "422": 1, "204": 1, "404": 1}
    assert counters["by_route_status"]["create 201"] == 1
    assert counters["by_route_status"]["get 404"] == 1
    assert counters["by_route_status"]["patch 422"] == 1
    assert counters["total"] == 11
    assert counters["early_retries"] == 0


def test_reset_clears_everything_and_restores_keys(sim: SimProcess) -> None:
    create(sim)
    sim.admin("POST", "keys", {"key": "temp-key", "group": "group_x"})
    sim.admin("DELETE", "keys/other-key")
    sim.faults(rules=[{"route": "get", "status": 500}], rate_limit={"count": 1, "retry_after": 9})
    sim.api("GET", "")
    sim.api("GET", "")  # early retry
    sim.reset()
    assert sim.pipelines() == []
    assert sim.journal() == []
    assert sim.counters() == {
        "requests": {},
        "statuses": {},
        "by_route_status": {},
        "early_retries": 0,
        "early_retries_by_key": {},
        "total": 0,
    }
    assert sim.api("GET", "", key="temp-key").status_code == 401
    assert sim.api("GET", "", key="other-key").status_code == 200


def test_admin_pipeline_views_hash_secrets_and_show_phase(sim: SimProcess) -> None:
    created = create(sim)
    items = sim.pipelines()
    assert len(items) == 1
    item = items[0]
    assert item["destination_config"]["password"] == "sha256:" + sha("s3cret")
    assert item["group_id"] == "group_default"
    assert item["phase"] == "DEPLOYING"
    assert {k: v for k, v in item.items() if k not in ("destination_config", "group_id", "phase", "deleting")} == {
        k: v for k, v in created.items() if k != "destination_config"
    }
    one = sim.admin("GET", f"pipelines/{created['id']}")
    assert one["id"] == created["id"]
    with pytest.raises(SimAdminError) as info:
        sim.admin("GET", "pipelines/pipe_missing")
    assert info.value.status == 404


def test_seed_pipeline_owned_by_someone_else(sim: SimProcess) -> None:
    foreign = sim.seed(**example_pipeline(name="theirs"))
    assert foreign["group_id"] == "group_foreign"
    assert foreign["group"]["id"] == "group_foreign"
    assert sim.api("GET", f"{foreign['id']}/").status_code == 404
    assert sim.api("GET", "").json()["data"]["items"] == []
    other = sim.seed(group="group_other", **example_pipeline(name="for other"))
    assert sim.api("GET", f"{other['id']}/", key="other-key").json()["data"]["name"] == "for other"
    mine = sim.seed(group="group_default", phase="RUNNING", **example_pipeline())
    assert sim.api("GET", f"{mine['id']}/status/").json()["data"]["status"] == "RUNNING"
    with pytest.raises(SimAdminError) as info:
        sim.seed(**example_pipeline(destination_type="nope"))
    assert info.value.status == 422
    assert "destination_type" in info.value.body


def test_out_of_band_patch_and_delete(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    sim.wait_phase(pid, "RUNNING")
    changed = sim.admin("PATCH", f"pipelines/{pid}", {"topic": "eth.mainnet.ref.block.logs", "name": "oob"})
    assert changed["topic"] == "eth.mainnet.ref.block.logs"
    assert changed["phase"] == "RUNNING"
    data = sim.api("GET", f"{pid}/").json()["data"]
    assert data["topic"] == "eth.mainnet.ref.block.logs"
    assert data["name"] == "oob"
    assert sim.admin("PATCH", f"pipelines/{pid}", {"phase": "FAILED"})["phase"] == "FAILED"
    with pytest.raises(SimAdminError):
        sim.admin("PATCH", f"pipelines/{pid}", {"id": "pipe_x"})
    assert sim.admin("DELETE", f"pipelines/{pid}") == {"deleted": pid}
    assert sim.api("GET", f"{pid}/").status_code == 404
    with pytest.raises(SimAdminError):
        sim.admin("DELETE", f"pipelines/{pid}")


def test_force_phase_holds_until_redeploy(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    sim.wait_phase(pid, "RUNNING")
    sim.force_phase(pid, "FAILED", "panic: out of memory")
    status = sim.api("GET", f"{pid}/status/").json()["data"]
    assert (status["status"], status["replicas"], status["ready"]) == ("FAILED", 1, 0)
    log = sim.api("GET", f"{pid}/logs/").json()["data"]["pods"][0]["logs"]
    assert log.splitlines()[-1] == "panic: out of memory"
    sim.api("PATCH", f"{pid}/", {"description": "cosmetic"})
    assert sim.api("GET", f"{pid}/status/").json()["data"]["status"] == "FAILED"
    sim.api("PATCH", f"{pid}/", {"execution_stop_from": "1"})  # redeploy clears it
    sim.wait_phase(pid, "RUNNING")
    sim.force_phase(pid, "STOPPING")
    assert sim.api("GET", f"{pid}/status/").json()["data"]["status"] == "STOPPING"
    with pytest.raises(SimAdminError) as info:
        sim.force_phase(pid, "EXPLODED")
    assert info.value.status == 422


def test_forced_failed_without_log_has_a_reason(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    sim.force_phase(pid, "FAILED")
    assert sim.api("GET", f"{pid}/logs/").json()["data"]["pods"][0]["logs"].endswith("worker exited with code 1")


def test_set_destination_health(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    answer = sim.admin("POST", f"pipelines/{pid}/destination-health", {"healthy": False, "last_error": "timeout"})
    assert answer == {"healthy": False, "last_error": "timeout"}
    assert sim.api("GET", f"{pid}/destination-health/").json()["data"] == answer
    sim.api("PATCH", f"{pid}/", {"transforms": {}})  # redeploy resets the probe
    assert sim.api("GET", f"{pid}/destination-health/").json()["data"] == {
        "healthy": True,
        "last_error": None,
    }


def test_keys_can_be_added_and_revoked(sim: SimProcess) -> None:
    sim.admin("POST", "keys", {"key": "ci-key", "group": "group_default", "kind": "service"})
    sim.admin("POST", "keys", {"key": "read-key", "kind": "api"})
    assert sim.api("GET", "", key="ci-key").status_code == 200
    assert sim.api("GET", "", key="read-key").status_code == 403
    listed = {k["key"]: k for k in sim.admin("GET", "keys")["keys"]}
    assert listed["ci-key"]["group"] == "group_default"
    assert listed["read-key"]["kind"] == "api"
    sim.admin("DELETE", "keys/ci-key")
    assert sim.api("GET", "", key="ci-key").status_code == 401
    with pytest.raises(SimAdminError):
        sim.admin("DELETE", "keys/ci-key")
    with pytest.raises(SimAdminError):
        sim.admin("POST", "keys", {"key": "k", "kind": "root"})


def test_new_group_keys_see_only_their_group(sim: SimProcess) -> None:
    sim.admin("POST", "keys", {"key": "team-b", "group": "group_b"})
    mine = create(sim)["id"]
    theirs = sim.api("POST", "", example_pipeline(), key="team-b").json()["data"]
    assert theirs["group"]["id"] == "group_b"
    assert theirs["group"]["slug"] == "b"
    assert sim.api("GET", f"{mine}/", key="team-b").status_code == 404


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
        address: str = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_admin_api_refuses_non_loopback_peers() -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with SimProcess.start("--host", "0.0.0.0") as process:
        remote = f"http://{address}:{process.port}"
        refused = httpx.get(f"{remote}/_sim/health")
        assert refused.status_code == 403
        assert "loopback" in refused.json()["error"]
        assert httpx.post(f"{remote}/_sim/reset").status_code == 403
        api = httpx.get(f"{remote}/platform/pipeline-api/", headers={"Authorization": "Bearer dev-key"})
        assert api.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{process.port}/_sim/health").json() == {"ok": True}
