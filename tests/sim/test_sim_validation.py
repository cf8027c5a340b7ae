"""Request validation of the simulator: required fields, enums, masks, immutables (real HTTP)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.sim

REQUIRED = ["name", "project", "topic", "destination_type", "destination_config", "execution_mode"]


def error_message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert body["error"] is True
    assert body["error_code"] == str(status)
    message: str = body["error_message"]
    return message


def create_id(sim: SimProcess, **overrides: Any) -> str:
    response = sim.api("POST", "", example_pipeline(**overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field_is_named(sim: SimProcess, field: str) -> None:
    body = example_pipeline()
    del body[field]
    assert f"'{field}'" in error_message(sim.api("POST", "", body), 422)


def test_all_missing_fields_are_listed(sim: SimProcess) -> None:
    message = error_message(sim.api("POST", "", {}), 422)
    for field in REQUIRED:
        assert f"'{field}'" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination_type", "bigquery"),
        ("execution_mode", "forever"),
        ("status", "stopped"),
        ("name", ""),
        ("name", 3),
        ("project", None),
        ("topic", ["x"]),
        ("destination_config", "postgres://"),
        ("transforms", ["SELECT 1"]),
        ("transforms", {"swaps": 1}),
        ("abi_file", []),
        ("abi_contract_addresses", "0xabc"),
        ("abi_unmatched", 1),
        ("description", None),
        ("execution_start_from", True),
        ("execution_stop_from", {"block": 1}),
    ],
)
def test_invalid_field_values_are_named(sim: SimProcess, field: str, value: Any) -> None:
    message = error_message(sim.api("POST", "", example_pipeline(**{field: value})), 422)
    assert field in message


def test_enum_message_lists_allowed_values(sim: SimProcess) -> None:
    message = error_message(sim.api("POST", "", example_pipeline(destination_type="mysql")), 422)
    assert "postgres, clickhouse, kafka, object_storage, sqs, webhook" in message


def test_every_documented_destination_type_and_mode_is_accepted(sim: SimProcess) -> None:
    for dtype in ("postgres", "clickhouse", "kafka", "object_storage", "sqs", "webhook"):
        for mode in ("bounded", "unbounded"):
            body = example_pipeline(destination_type=dtype, destination_config={"type": dtype}, execution_mode=mode)
            if dtype == "kafka":
                body["transforms"] = {}
            assert sim.api("POST", "", body).status_code == 201, (dtype, mode)


def test_numeric_block_heights_are_stored_as_strings(sim: SimProcess) -> None:
    response = sim.api("POST", "", example_pipeline(execution_start_from=44745000, execution_stop_from=44746000))
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["execution_start_from"] == "44745000"
    assert data["execution_stop_from"] == "44746000"


def test_kafka_rejects_non_empty_transforms_on_create_and_patch(sim: SimProcess) -> None:
    kafka = {"type": "kafka", "bootstrap_servers": "b:9092", "output_topic": "t"}
    body = example_pipeline(destination_type="kafka", destination_config=kafka)
    assert "transforms" in error_message(sim.api("POST", "", body), 422)
    pid = create_id(sim, destination_type="kafka", destination_config=kafka, transforms={})
    assert "transforms" in error_message(sim.api("PATCH", f"{pid}/", {"transforms": {"t": "SELECT 1"}}), 422)


def test_destination_config_type_must_match(sim: SimProcess) -> None:
    body = example_pipeline(destination_config={"type": "clickhouse", "url": "clickhouse://h:8123/db"})
    assert "destination_config.type" in error_message(sim.api("POST", "", body), 422)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "postgres", "url": "u", "user": "x", "password": "******"},
        {"type": "postgres", "url": "******"},
        {"type": "postgres", "headers": {"a": "******"}},
    ],
)
def test_mask_placeholder_is_rejected_on_create(sim: SimProcess, config: dict[str, Any]) -> None:
    message = error_message(sim.api("POST", "", example_pipeline(destination_config=config)), 422)
    assert "destination_config." in message
    assert "******" in message


def test_mask_placeholder_is_rejected_on_patch_and_put(sim: SimProcess) -> None:
    pid = create_id(sim)
    echoed = sim.api("GET", f"{pid}/").json()["data"]
    patch = {"destination_config": echoed["destination_config"]}
    assert "destination_config.password" in error_message(sim.api("PATCH", f"{pid}/", patch), 422)
    assert "name" in error_message(sim.api("PUT", f"{pid}/", {"status": "paused", "name": "******"}), 422)
    stored = sim.admin("GET", f"pipelines/{pid}")
    assert stored["destination_config"]["password"].startswith("sha256:")
    assert stored["status"] == "running"


@pytest.mark.parametrize("field", ["project", "topic", "destination_type", "execution_mode"])
def test_patch_rejects_changes_to_immutable_fields(sim: SimProcess, field: str) -> None:
    pid = create_id(sim)
    new_value = {
        "project": "p2",
        "topic": "eth.mainnet.ref.block.logs",
        "destination_type": "clickhouse",
    }.get(field, "bounded")
    message = error_message(sim.api("PATCH", f"{pid}/", {field: new_value, "name": "not applied"}), 422)
    assert f"'{field}'" in message
    assert "cannot be changed" in message
    assert sim.api("GET", f"{pid}/").json()["data"]["name"] == "From Base Swap to Postgres"


def test_patch_accepts_immutable_fields_with_the_same_value(sim: SimProcess) -> None:
    body = example_pipeline()
    pid = create_id(sim)
    same = {name: body[name] for name in ("project", "topic", "destination_type", "execution_mode")}
    response = sim.api("PATCH", f"{pid}/", {**same, "name": "renamed"})
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "renamed"


def test_patch_validates_field_types(sim: SimProcess) -> None:
    pid = create_id(sim)
    assert "status" in error_message(sim.api("PATCH", f"{pid}/", {"status": "RUNNING"}), 422)
    assert "name" in error_message(sim.api("PATCH", f"{pid}/", {"name": ""}), 422)
    assert "destination_config" in error_message(sim.api("PATCH", f"{pid}/", {"destination_config": []}), 422)


def test_put_requires_a_valid_status(sim: SimProcess) -> None:
    pid = create_id(sim)
    assert "'status'" in error_message(sim.api("PUT", f"{pid}/", {"name": "x"}), 422)
    assert "status" in error_message(sim.api("PUT", f"{pid}/", {"status": "stopped"}), 422)


def test_malformed_bodies_are_400(sim: SimProcess) -> None:
    headers = {"Authorization": f"Bearer {sim.service_key}", "Content-Type": "application/json"}
    assert "JSON" in error_message(httpx.post(sim.base_url, content=b"{not json", headers=headers), 400)
    assert "object" in error_message(httpx.post(sim.base_url, content=b"[1, 2]", headers=headers), 400)
    pid = create_id(sim)
    assert "object" in error_message(httpx.patch(sim.base_url + f"{pid}/", content=b'"x"', headers=headers), 400)
    assert "object" in error_message(httpx.put(sim.base_url + f"{pid}/", content=b"3", headers=headers), 400)
    assert "object" in error_message(httpx.post(sim.base_url, headers=headers), 400)


def test_rejected_requests_store_nothing(sim: SimProcess) -> None:
    sim.api("POST", "", example_pipeline(destination_type="nope"))
    sim.api("POST", "", example_pipeline(destination_config={"password": "******"}))
    assert sim.pipelines() == []
