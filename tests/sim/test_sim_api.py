"""Pipeline API surface of the simulator over real HTTP: routes, envelope, objects, auth, pagination."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.sim

OBJECT_KEYS = [
    "id",
    "name",
    "project",
    "description",
    "topic",
    "destination_type",
    "destination_config",
    "transforms",
    "execution_mode",
    "execution_start_from",
    "execution_stop_from",
    "abi_file",
    "abi_contract_addresses",
    "abi_unmatched",
    "status",
    "created_by",
    "group",
    "created_at",
    "updated_at",
]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def create(sim: SimProcess, key: str | None = None, **overrides: Any) -> dict[str, Any]:
    response = sim.api("POST", "", example_pipeline(**overrides), key=key)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def assert_error(response: httpx.Response, status: int, contains: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {
        "data": None,
        "error": True,
        "error_message": body["error_message"],
        "error_code": str(status),
    }
    assert contains in body["error_message"]


def test_create_answers_201_with_full_object_in_envelope(sim: SimProcess) -> None:
    response = sim.api("POST", "", example_pipeline())
    assert response.status_code == 201
    body = response.json()
    assert body["error"] is False
    assert body["error_message"] is None
    assert body["error_code"] is None
    data = body["data"]
    assert list(data) == OBJECT_KEYS
    assert re.fullmatch(r"pipe_[0-9a-f]{27}", data["id"])
    assert data["id"][5 + 12] == "4"  # uuid4 version nibble
    assert data["execution_stop_from"] == ""
    assert data["abi_file"] == {}
    assert data["abi_contract_addresses"] == []
    assert data["abi_unmatched"] == ""
    assert data["status"] == "running"
    assert set(data["created_by"]) == {"id", "email", "display_name", "full_name"}
    assert re.fullmatch(r"user_[0-9a-f]{27}", data["created_by"]["id"])
    assert data["group"] == {
        "id": "group_default",
        "name": "default",
        "slug": "default",
        "is_paid": True,
        "is_over_limit": False,
        "is_free_trial_expired": False,
    }
    assert ISO_Z.match(data["created_at"])
    assert ISO_Z.match(data["updated_at"])


def test_secrets_are_masked_on_every_read(sim: SimProcess) -> None:
    webhook = {
        "type": "webhook",
        "url": "https://hooks.example.com/x",
        "headers": {"Authorization": "Bearer t0k", "X-Other": "v"},
    }
    kafka = {
        "type": "kafka",
        "bootstrap_servers": "b1:9092",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "kpw"},
        "output_topic": "out",
    }
    s3 = {
        "type": "object_storage",
        "provider": "s3",
        "bucket": "b",
        "access_key_id": "AK",
        "secret_access_key": "SK",
    }
    created = [
        create(sim),
        create(sim, destination_type="webhook", destination_config=webhook),
        create(sim, destination_type="kafka", destination_config=kafka, transforms={}),
        create(sim, destination_type="object_storage", destination_config=s3),
    ]
    assert created[0]["destination_config"]["password"] == "******"
    assert created[0]["destination_config"]["user"] == "pipeline"
    assert created[1]["destination_config"]["headers"] == {"Authorization": "******", "X-Other": "******"}
    assert created[2]["destination_config"]["sasl"] == {
        "mechanism": "SCRAM-SHA-512",
        "username": "u",
        "password": "******",
    }
    assert created[3]["destination_config"]["secret_access_key"] == "******"
    assert created[3]["destination_config"]["access_key_id"] == "AK"
    pid = created[0]["id"]
    reads = [
        sim.api("GET", f"{pid}/").json()["data"],
        sim.api("PUT", f"{pid}/", {"status": "paused"}).json()["data"],
        sim.api("PATCH", f"{pid}/", {"description": "d"}).json()["data"],
        next(p for p in sim.api("GET", "").json()["data"]["items"] if p["id"] == pid),
    ]
    for data in reads:
        assert data["destination_config"]["password"] == "******"
    everything = sim.api("GET", "?page_size=100").text
    for secret in ("s3cret", "t0k", "kpw", '"SK"'):
        assert secret not in everything


def test_get_put_patch_delete_roundtrip(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    got = sim.api("GET", f"{pid}/")
    assert got.status_code == 200
    assert got.json()["data"]["id"] == pid
    put = sim.api("PUT", f"{pid}/", {"status": "paused"})
    assert put.status_code == 200
    assert put.json()["data"]["status"] == "paused"
    patched = sim.api("PATCH", f"{pid}/", {"name": "renamed", "description": "new"})
    assert patched.status_code == 200
    assert patched.json()["data"]["name"] == "renamed"
    assert patched.json()["data"]["description"] == "new"
    deleted = sim.api("DELETE", f"{pid}/")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for path in (
        f"{pid}/",
        f"{pid}/status/",
        f"{pid}/logs/",
        f"{pid}/metrics/",
        f"{pid}/destination-health/",
    ):
        assert_error(sim.api("GET", path), 404, pid)
    assert_error(sim.api("DELETE", f"{pid}/"), 404)
    assert_error(sim.api("PATCH", f"{pid}/", {"name": "x"}), 404)


def test_put_honours_only_status(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    data = sim.api("PUT", f"{pid}/", {"status": "paused", "name": "ignored", "topic": "ignored.x"}).json()["data"]
    assert data["status"] == "paused"
    assert data["name"] == "From Base Swap to Postgres"
    assert data["topic"] == "base.mainnet.ref.block.swap.v3"


def test_patch_replaces_top_level_fields_wholesale(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    new_config = {"type": "postgres", "url": "postgresql://other:5432/db", "user": "u2"}
    data = sim.api("PATCH", f"{pid}/", {"destination_config": new_config, "transforms": {}}).json()["data"]
    assert data["destination_config"] == new_config  # password gone: replaced, not merged
    assert data["transforms"] == {}
    stored = sim.admin("GET", f"pipelines/{pid}")
    assert "password" not in stored["destination_config"]


def test_patch_accepts_all_writeable_fields(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    change = {
        "name": "n",
        "description": "d",
        "destination_config": {"type": "postgres", "url": "postgresql://h/db", "user": "u", "password": "p2"},
        "transforms": {"swaps": "SELECT 1 FROM swaps"},
        "abi_file": {"abi": []},
        "abi_contract_addresses": ["0xabc"],
        "abi_unmatched": "raw",
        "execution_start_from": "1",
        "execution_stop_from": "2",
        "status": "paused",
    }
    data = sim.api("PATCH", f"{pid}/", change).json()["data"]
    for name, value in change.items():
        expected = value if name != "destination_config" else {**value, "password": "******"}
        assert data[name] == expected, name


def test_patch_ignores_unknown_and_read_only_fields(sim: SimProcess) -> None:
    created = create(sim)
    pid = created["id"]
    data = sim.api("PATCH", f"{pid}/", {"id": "pipe_other", "created_at": "x", "bogus": 1, "name": "z"}).json()
    assert data["data"]["id"] == pid
    assert data["data"]["created_at"] == created["created_at"]
    assert "bogus" not in data["data"]


def test_create_ignores_unknown_fields_and_names_are_not_unique(sim: SimProcess) -> None:
    first = create(sim, bogus_field="x", id="pipe_chosen")
    second = create(sim)
    assert "bogus_field" not in first
    assert first["id"] != "pipe_chosen"
    assert first["name"] == second["name"]
    assert first["id"] != second["id"]
    assert sim.api("GET", "").json()["data"]["pagination"]["total_count"] == 2


def test_create_paused_and_defaults(sim: SimProcess) -> None:
    body = {
        k: v for k, v in example_pipeline().items() if k not in ("description", "transforms", "execution_start_from")
    }
    data = sim.api("POST", "", {**body, "status": "paused"}).json()["data"]
    assert data["status"] == "paused"
    assert data["description"] == ""
    assert data["transforms"] == {}
    assert data["execution_start_from"] == ""
    assert data["execution_stop_from"] == ""


def test_list_pagination_and_order(sim: SimProcess) -> None:
    ids = [create(sim, name=f"p{i}")["id"] for i in range(25)]
    first = sim.api("GET", "").json()["data"]
    assert first["pagination"] == {"page_number": 1, "page_size": 10, "total_count": 25, "has_more": True}
    assert ISO_Z.match(first["updated_at"])
    collected: list[dict[str, Any]] = []
    page = 1
    while True:
        data = sim.api("GET", f"?page_number={page}&page_size=7").json()["data"]
        collected.extend(data["items"])
        if not data["pagination"]["has_more"]:
            break
        page += 1
    assert page == 4
    assert len(collected) == 25
    assert sorted(p["id"] for p in collected) == sorted(ids)
    assert collected == sorted(collected, key=lambda p: (p["created_at"], p["id"]))
    beyond = sim.api("GET", "?page_number=9").json()["data"]
    assert beyond["items"] == []
    assert beyond["pagination"]["has_more"] is False
    clamped = sim.api("GET", "?page_size=1000").json()["data"]
    assert clamped["pagination"]["page_size"] == 100
    assert len(clamped["items"]) == 25


@pytest.mark.parametrize("query", ["page_number=0", "page_size=0", "page_number=abc", "page_size=-1"])
def test_list_rejects_bad_query(sim: SimProcess, query: str) -> None:
    assert_error(sim.api("GET", f"?{query}"), 400, query.split("=")[0])


def test_auth_missing_unknown_and_api_key(sim: SimProcess) -> None:
    no_header = httpx.get(sim.base_url)
    assert_error(no_header, 401, "not provided")
    assert_error(sim.api("GET", "", key="unknown-key"), 401)
    basic = httpx.get(sim.base_url, headers={"Authorization": "Basic abc"})
    assert_error(basic, 401)
    assert_error(sim.api("GET", "", key="regular-api-key"), 403, "API keys")
    assert sim.api("GET", "", key="other-key").status_code == 200


def test_pipelines_are_visible_only_in_their_group(sim: SimProcess) -> None:
    mine = create(sim)["id"]
    theirs = create(sim, key="other-key")["id"]
    assert [p["id"] for p in sim.api("GET", "").json()["data"]["items"]] == [mine]
    assert [p["id"] for p in sim.api("GET", "", key="other-key").json()["data"]["items"]] == [theirs]
    for method, path, body in [
        ("GET", f"{theirs}/", None),
        ("PUT", f"{theirs}/", {"status": "paused"}),
        ("PATCH", f"{theirs}/", {"name": "x"}),
        ("DELETE", f"{theirs}/", None),
        ("GET", f"{theirs}/status/", None),
        ("GET", f"{theirs}/logs/", None),
        ("GET", f"{theirs}/metrics/", None),
        ("GET", f"{theirs}/destination-health/", None),
    ]:
        assert_error(sim.api(method, path, body), 404)
    assert sim.api("GET", f"{theirs}/", key="other-key").status_code == 200


def test_paths_require_trailing_slash_and_known_methods(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    assert_error(sim.api("GET", pid), 404, "end with '/'")
    assert_error(sim.api("GET", f"{pid}/status"), 404)
    no_slash = httpx.get(sim.base_url.rstrip("/"), headers={"Authorization": f"Bearer {sim.service_key}"})
    assert_error(no_slash, 404)
    assert_error(sim.api("GET", f"{pid}/unknown/"), 404)
    assert_error(sim.api("DELETE", ""), 405)
    assert_error(sim.api("POST", f"{pid}/status/"), 405)
    assert_error(sim.api("POST", f"{pid}/"), 405)


def test_status_logs_metrics_health_shapes(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    uid = "covalent-postgres-" + pid.replace("_", "-")
    status = sim.api("GET", f"{pid}/status/").json()["data"]
    assert list(status) == ["uid", "status", "replicas", "ready", "start_time"]
    assert status["uid"] == uid
    logs = sim.api("GET", f"{pid}/logs/").json()["data"]
    assert logs["uid"] == uid
    assert len(logs["pods"]) == 1
    assert set(logs["pods"][0]) == {"pod", "logs"}
    metrics = sim.api("GET", f"{pid}/metrics/").json()["data"]
    assert list(metrics) == [
        "uid",
        "records_consumed",
        "last_offset",
        "last_block_height",
        "pending_records",
        "processing_delay_ms",
        "records_per_second",
        "normalization_errors",
    ]
    health = sim.api("GET", f"{pid}/destination-health/").json()
    assert health == {
        "data": {"healthy": True, "last_error": None},
        "error": False,
        "error_message": None,
        "error_code": None,
    }


def test_delete_is_immediate_by_default(sim: SimProcess) -> None:
    pid = create(sim)["id"]
    assert sim.api("DELETE", f"{pid}/").status_code == 204
    assert sim.api("GET", "").json()["data"]["pagination"]["total_count"] == 0
    assert sim.pipelines() == []
