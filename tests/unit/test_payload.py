"""Desired API payload from a spec, and the minimal PATCH against a (masked) remote pipeline."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from goldrush_operator import credentials as cr
from goldrush_operator import payload as pl
from goldrush_operator.resource import PipelineSpec

pytestmark = pytest.mark.unit

KEY = b"hmac-test-key"
PASSWORD = "pg-password-1"
ROTATED = "pg-password-2"


def pg_spec(**overrides: Any) -> PipelineSpec:
    body: dict[str, Any] = {
        "project": "analytics",
        "topic": "base.mainnet.ref.block.swap.v3",
        "description": "Base swaps",
        "destination": {
            "type": "postgres",
            "config": {"url": "postgresql://db:5432/a", "user": "pipeline", "batch_size": 500},
            "secretRefs": {"password": {"name": "pg", "key": "password"}},
        },
        "transforms": {"swaps": "SELECT * FROM swaps"},
        "execution": {"mode": "unbounded", "startFrom": "44745000"},
    }
    body.update(overrides)
    return PipelineSpec.model_validate(body)


def resolve(spec: PipelineSpec, password: str = PASSWORD) -> cr.ResolvedSecrets:
    return cr.resolve_destination_secrets(spec, {"pg": {"password": password}}, KEY)


def desired_for(spec: PipelineSpec, password: str = PASSWORD) -> tuple[dict[str, Any], dict[str, str]]:
    resolved = resolve(spec, password)
    return pl.desired_payload("team-a", "swaps", spec, resolved.values, None), resolved.hashes


def remote_from(desired: dict[str, Any], secret_fields: list[str]) -> dict[str, Any]:
    """What GET returns after creating `desired`: masked secrets plus read-only fields."""
    remote = copy.deepcopy(desired)
    for field in secret_fields:
        cr.set_dotted(remote["destination_config"], field, "******")
    remote.update(
        {
            "id": "pipe_3e8678c5fc9e48a7bf9879ca729",
            "created_at": "2026-05-01T10:00:00Z",
            "updated_at": "2026-05-01T10:00:00Z",
            "created_by": {"id": "user_1"},
            "group": {"id": "group_1"},
        }
    )
    return remote


def test_desired_payload_mapping() -> None:
    desired, _ = desired_for(pg_spec())
    assert desired == {
        "name": "team-a-swaps",
        "project": "analytics",
        "description": "Base swaps",
        "topic": "base.mainnet.ref.block.swap.v3",
        "destination_type": "postgres",
        "destination_config": {
            "type": "postgres",
            "url": "postgresql://db:5432/a",
            "user": "pipeline",
            "batch_size": 500,
            "password": PASSWORD,
        },
        "transforms": {"swaps": "SELECT * FROM swaps"},
        "execution_mode": "unbounded",
        "execution_start_from": "44745000",
        "execution_stop_from": "",
        "abi_file": {},
        "abi_contract_addresses": [],
        "abi_unmatched": "",
        "status": "running",
    }


def test_desired_payload_optional_fields_and_pause() -> None:
    spec = PipelineSpec.model_validate(
        {
            "pipelineName": "Custom Name",
            "project": "p",
            "topic": "eth.mainnet.ref.block.logs",
            "destination": {"type": "webhook", "config": {"url": "http://hook", "type": "ignored"}},
            "abi": {"contractAddresses": ["0xabc"], "unmatched": "raw"},
            "execution": {"mode": "bounded", "startFrom": "1", "stopAt": "2"},
            "paused": True,
        }
    )
    desired = pl.desired_payload("ns", "obj", spec, {"headers.Authorization": "Bearer t"}, {"abi": []})
    assert desired["name"] == "Custom Name"
    assert desired["description"] == ""
    assert desired["transforms"] == {}
    assert desired["destination_type"] == "webhook"
    assert desired["destination_config"] == {
        "type": "webhook",
        "url": "http://hook",
        "headers": {"Authorization": "Bearer t"},
    }
    assert desired["execution_mode"] == "bounded"
    assert (desired["execution_start_from"], desired["execution_stop_from"]) == ("1", "2")
    assert desired["abi_file"] == {"abi": []}
    assert desired["abi_contract_addresses"] == ["0xabc"]
    assert desired["abi_unmatched"] == "raw"
    assert desired["status"] == "paused"


def test_desired_payload_does_not_mutate_spec() -> None:
    spec = pg_spec()
    before = spec.model_dump()
    pl.desired_payload("ns", "n", spec, {"password": "x", "sasl.password": "y"}, None)
    assert spec.model_dump() == before


def test_desired_payload_refuses_mask_values() -> None:
    spec = pg_spec()
    with pytest.raises(pl.MaskedValueError):
        pl.desired_payload("ns", "n", spec, {"password": "******"}, None)


def test_in_sync_with_masked_secret_means_no_diff() -> None:
    spec = pg_spec()
    desired, hashes = desired_for(spec)
    remote = remote_from(desired, ["password"])
    assert pl.diff_payload(desired, remote, hashes, hashes) == {}
    result = pl.compute_diff(desired, remote, hashes, hashes)
    assert result.in_sync
    assert result.changed_fields == []


def test_rotated_secret_sends_full_destination_config_with_new_value() -> None:
    spec = pg_spec()
    applied_desired, applied_hashes = desired_for(spec, PASSWORD)
    remote = remote_from(applied_desired, ["password"])
    desired, hashes = desired_for(spec, ROTATED)
    patch = pl.diff_payload(desired, remote, hashes, applied_hashes)
    assert patch == {
        "destination_config": {
            "type": "postgres",
            "url": "postgresql://db:5432/a",
            "user": "pipeline",
            "batch_size": 500,
            "password": ROTATED,
        }
    }
    assert "******" not in str(patch)


def test_description_change_patches_only_description() -> None:
    applied_desired, hashes = desired_for(pg_spec())
    remote = remote_from(applied_desired, ["password"])
    desired, _ = desired_for(pg_spec(description="Base swaps v2"))
    assert pl.diff_payload(desired, remote, hashes, hashes) == {"description": "Base swaps v2"}


def test_non_secret_config_change_carries_secrets_too() -> None:
    applied_desired, hashes = desired_for(pg_spec())
    remote = remote_from(applied_desired, ["password"])
    spec = pg_spec(
        destination={
            "type": "postgres",
            "config": {"url": "postgresql://db:5432/a", "user": "pipeline", "batch_size": 1000},
            "secretRefs": {"password": {"name": "pg", "key": "password"}},
        }
    )
    desired, _ = desired_for(spec)
    patch = pl.diff_payload(desired, remote, hashes, hashes)
    assert list(patch) == ["destination_config"]
    assert patch["destination_config"]["batch_size"] == 1000
    assert patch["destination_config"]["password"] == PASSWORD


def test_remote_drift_in_config_is_detected() -> None:
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password"])
    remote["destination_config"]["url"] = "postgresql://elsewhere:5432/a"
    assert list(pl.diff_payload(desired, remote, hashes, hashes)) == ["destination_config"]


def test_removed_config_key_is_detected() -> None:
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password"])
    del desired["destination_config"]["batch_size"]
    assert list(pl.diff_payload(desired, remote, hashes, hashes)) == ["destination_config"]


def test_documented_defaults_the_api_echoes_are_not_drift() -> None:
    """An API that fills in its documented defaults (postgres: batch_size 1000, flush_interval_ms 5000) is in
    sync with a spec that leaves them out; a remote-only value that is not the default is still drift, so
    removing a setting from the spec brings the default back."""
    desired, hashes = desired_for(pg_spec())
    del desired["destination_config"]["batch_size"]
    remote = remote_from(desired, ["password"])
    remote["destination_config"].update(batch_size=1000, flush_interval_ms=5000)
    assert pl.diff_payload(desired, remote, hashes, hashes) == {}
    remote["destination_config"]["batch_size"] = 500
    assert list(pl.diff_payload(desired, remote, hashes, hashes)) == ["destination_config"]


def test_nested_documented_defaults_are_not_drift() -> None:
    """Webhook `retry.max_attempts` / `retry.backoff_ms` echoed as a nested object."""
    spec = PipelineSpec.model_validate({
        "project": "p", "topic": "eth.mainnet.ref.block.logs",
        "destination": {"type": "webhook", "config": {"url": "https://hooks.example/x"}},
        "execution": {"mode": "unbounded"},
    })
    desired = pl.desired_payload("ns", "n", spec, {}, None)
    remote = remote_from(desired, [])
    remote["destination_config"].update(method="POST", batch_size=1, timeout_ms=10000,
                                        retry={"max_attempts": 3, "backoff_ms": 1000})
    assert pl.diff_payload(desired, remote, {}, {}) == {}
    remote["destination_config"]["retry"]["max_attempts"] = 7
    assert list(pl.diff_payload(desired, remote, {}, {})) == ["destination_config"]


def test_added_or_removed_secret_ref_is_detected() -> None:
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password"])
    assert list(pl.diff_payload(desired, remote, hashes, {})) == ["destination_config"]
    more = {**hashes, "user": "hmac-sha256:00"}
    assert list(pl.diff_payload(desired, remote, hashes, more)) == ["destination_config"]


def test_nested_secret_field_masked_remote() -> None:
    spec = PipelineSpec.model_validate(
        {
            "project": "p",
            "topic": "eth.mainnet.ref.block.logs",
            "destination": {
                "type": "kafka",
                "config": {"bootstrap_servers": "b:9092", "sasl": {"mechanism": "PLAIN", "username": "u"}},
                "secretRefs": {"sasl.password": {"name": "k", "key": "pw"}},
            },
            "execution": {"mode": "unbounded"},
        }
    )
    resolved = cr.resolve_destination_secrets(spec, {"k": {"pw": "v1"}}, KEY)
    desired = pl.desired_payload("ns", "n", spec, resolved.values, None)
    remote = remote_from(desired, ["sasl.password"])
    assert remote["destination_config"]["sasl"]["password"] == "******"
    assert pl.diff_payload(desired, remote, resolved.hashes, resolved.hashes) == {}
    rotated = cr.resolve_destination_secrets(spec, {"k": {"pw": "v2"}}, KEY)
    desired2 = pl.desired_payload("ns", "n", spec, rotated.values, None)
    patch = pl.diff_payload(desired2, remote, rotated.hashes, resolved.hashes)
    assert patch["destination_config"]["sasl"] == {"mechanism": "PLAIN", "username": "u", "password": "v2"}


def test_masked_values_the_operator_did_not_set_are_not_drift() -> None:
    """The API may mask more fields than the CR marks secret (e.g. `user`); that is not a change."""
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password", "user"])
    assert pl.diff_payload(desired, remote, hashes, hashes) == {}


def test_api_defaults_for_empty_fields_are_equal() -> None:
    spec = pg_spec(description=None, transforms=None)
    desired, hashes = desired_for(spec)
    remote = remote_from(desired, ["password"])
    for name in ["description", "transforms", "abi_file", "abi_contract_addresses", "abi_unmatched"]:
        remote.pop(name)
    remote["execution_stop_from"] = None
    remote["destination_config"].pop("type")
    assert pl.diff_payload(desired, remote, hashes, hashes) == {}


def test_each_writeable_field_detected() -> None:
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password"])
    changes: dict[str, Any] = {
        "name": "other",
        "transforms": {"swaps": "SELECT 1 FROM swaps"},
        "abi_file": {"abi": []},
        "abi_contract_addresses": ["0x1"],
        "abi_unmatched": "raw",
        "execution_start_from": "1",
        "execution_stop_from": "2",
    }
    for name, value in changes.items():
        changed = {**desired, name: value}
        assert pl.diff_payload(changed, remote, hashes, hashes) == {name: value}


def test_status_and_immutables_never_in_patch() -> None:
    desired, hashes = desired_for(pg_spec(paused=True))
    remote = remote_from(desired, ["password"])
    remote.update(
        {
            "status": "running",
            "project": "other",
            "topic": "eth.mainnet.ref.block.logs",
            "destination_type": "clickhouse",
            "execution_mode": "bounded",
        }
    )
    remote["destination_config"]["type"] = "postgres"
    assert pl.diff_payload(desired, remote, hashes, hashes) == {}
    assert pl.immutable_mismatches(desired, remote) == {
        "project": ("analytics", "other"),
        "topic": ("base.mainnet.ref.block.swap.v3", "eth.mainnet.ref.block.logs"),
        "destination_type": ("postgres", "clickhouse"),
        "execution_mode": ("unbounded", "bounded"),
    }
    assert pl.status_change(desired, remote) == "paused"
    result = pl.compute_diff(desired, remote, hashes, hashes)
    assert result.status == "paused"
    assert not result.patch
    assert set(result.immutable) == set(pl.IMMUTABLE_FIELDS)
    assert not result.in_sync


def test_status_change_none_when_equal() -> None:
    desired, _ = desired_for(pg_spec())
    assert pl.status_change(desired, {"status": "running"}) is None
    assert pl.status_change(desired, {"status": "paused"}) == "running"


def test_patch_never_contains_a_mask() -> None:
    desired, hashes = desired_for(pg_spec())
    remote = remote_from(desired, ["password"])
    broken = copy.deepcopy(desired)
    broken["destination_config"]["password"] = "******"
    with pytest.raises(pl.MaskedValueError):
        pl.diff_payload(broken, remote, hashes, {})



def test_parse_abi_file() -> None:
    assert pl.parse_abi_file('[{"type": "event", "name": "Swap"}]') == {
        "abi": [{"type": "event", "name": "Swap"}]
    }
    assert pl.parse_abi_file('{"abi": []}') == {"abi": []}
    with pytest.raises(ValueError, match="not valid JSON"):
        pl.parse_abi_file("{")
    with pytest.raises(ValueError, match="array"):
        pl.parse_abi_file('"x"')
