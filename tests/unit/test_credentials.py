"""Secret reference resolution, keyed hashes, dotted fields and scrubbing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from goldrush_operator import credentials as cr
from goldrush_operator import secret_values as sv
from goldrush_operator.resource import PipelineSpec, SecretKeyRef

pytestmark = pytest.mark.unit

KEY = b"hmac-test-key"
PG_PASSWORD = "pg-s3cret-value"
KAFKA_PASSWORD = "kafka-s3cret-value"
TOKEN = "Bearer tok-123456"


def spec_with_refs(
    refs: dict[str, dict[str, str]], service_key: dict[str, str] | None = None
) -> PipelineSpec:
    body: dict[str, Any] = {
        "project": "p",
        "topic": "eth.mainnet.ref.block.logs",
        "destination": {"type": "kafka", "config": {"sasl": {"mechanism": "PLAIN"}}, "secretRefs": refs},
        "execution": {"mode": "unbounded"},
    }
    if service_key:
        body["serviceKeySecretRef"] = service_key
    return PipelineSpec.model_validate(body)


SECRETS = {"pg": {"password": PG_PASSWORD}, "kafka": {"password": KAFKA_PASSWORD}, "hook": {"auth": TOKEN}}


def test_secret_hash_is_keyed_hmac_sha256() -> None:
    expected = hmac.new(KEY, b"value", hashlib.sha256).hexdigest()
    assert cr.secret_hash(KEY, "value") == "hmac-sha256:" + expected
    assert cr.secret_hash(KEY, "value") != cr.secret_hash(b"other-key", "value")
    assert cr.secret_hash(KEY, "value") != cr.secret_hash(KEY, "value2")
    assert "value" not in cr.secret_hash(KEY, "value").removeprefix("hmac-sha256:")


@pytest.mark.parametrize(
    "source",
    [
        SECRETS,
        {(name, key): value for name, data in SECRETS.items() for key, value in data.items()},
        SECRETS.get,
    ],
    ids=["nested", "flat", "callable"],
)
def test_resolve_all_sources(source: cr.SecretSource) -> None:
    spec = spec_with_refs(
        {
            "sasl.password": {"name": "kafka", "key": "password"},
            "headers.Authorization": {"name": "hook", "key": "auth"},
        }
    )
    resolved = cr.resolve_destination_secrets(spec, source, KEY)
    assert resolved.ok
    assert resolved.values == {"headers.Authorization": TOKEN, "sasl.password": KAFKA_PASSWORD}
    assert resolved.hashes == {
        "headers.Authorization": cr.secret_hash(KEY, TOKEN),
        "sasl.password": cr.secret_hash(KEY, KAFKA_PASSWORD),
    }
    assert resolved.status_entries() == [
        {"field": "headers.Authorization", "name": "hook", "key": "auth", "hash": cr.secret_hash(KEY, TOKEN)},
        {
            "field": "sasl.password",
            "name": "kafka",
            "key": "password",
            "hash": cr.secret_hash(KEY, KAFKA_PASSWORD),
        },
    ]


def test_missing_secret_and_missing_key_reported_precisely() -> None:
    spec = spec_with_refs(
        {
            "sasl.password": {"name": "kafka", "key": "pw"},
            "headers.Authorization": {"name": "absent", "key": "auth"},
            "password": {"name": "pg", "key": "password"},
        }
    )
    resolved = cr.resolve_destination_secrets(spec, SECRETS, KEY)
    assert not resolved.ok
    assert resolved.values == {"password": PG_PASSWORD}
    missing = {m.field: m for m in resolved.missing}
    assert missing["headers.Authorization"] == cr.MissingSecretRef(
        "headers.Authorization", "absent", "auth", "secret"
    )
    assert missing["sasl.password"] == cr.MissingSecretRef("sasl.password", "kafka", "pw", "key")
    assert missing["headers.Authorization"].message == (
        "Secret 'absent' not found (referenced by spec.destination.secretRefs['headers.Authorization'])"
    )
    assert missing["sasl.password"].message == (
        "key 'pw' not found in Secret 'kafka' (referenced by spec.destination.secretRefs['sasl.password'])"
    )
    text = resolved.missing_message()
    assert "absent" in text
    assert "'pw'" in text


def test_flat_source_distinguishes_missing_secret_from_missing_key() -> None:
    flat = {("kafka", "password"): KAFKA_PASSWORD}
    resolved = cr.resolve_refs(
        {"a": SecretKeyRef(name="kafka", key="other"), "b": SecretKeyRef(name="nope", key="x")}, flat, KEY
    )
    assert [(m.field, m.missing) for m in resolved.missing] == [("a", "key"), ("b", "secret")]


def test_none_in_nested_source_means_secret_absent() -> None:
    resolved = cr.resolve_refs({"password": SecretKeyRef(name="pg", key="password")}, {"pg": None}, KEY)
    assert [(m.secret_name, m.missing) for m in resolved.missing] == [("pg", "secret")]


def test_callable_source_called_once_per_secret() -> None:
    calls: list[str] = []

    def lookup(name: str) -> dict[str, str] | None:
        calls.append(name)
        return {"a": "1", "b": "2"} if name == "s" else None

    refs = {"x": SecretKeyRef(name="s", key="a"), "y": SecretKeyRef(name="s", key="b")}
    resolved = cr.resolve_refs(refs, lookup, KEY)
    assert resolved.values == {"x": "1", "y": "2"}
    assert calls == ["s"]


def test_no_secret_value_in_anything_reported() -> None:
    spec = spec_with_refs(
        {
            "sasl.password": {"name": "kafka", "key": "password"},
            "headers.Authorization": {"name": "x", "key": "y"},
        }
    )
    resolved = cr.resolve_destination_secrets(spec, SECRETS, KEY)
    reported = [
        repr(resolved),
        str(resolved.status_entries()),
        resolved.missing_message(),
        repr(resolved.uses),
        repr(resolved.missing),
        str(resolved.hashes),
    ]
    for text in reported:
        assert KAFKA_PASSWORD not in text


def test_service_key() -> None:
    assert cr.resolve_service_key(spec_with_refs({}), SECRETS, KEY) is None
    spec = spec_with_refs({}, service_key={"name": "gr", "key": "token"})
    resolved = cr.resolve_service_key(spec, {"gr": {"token": "sk-value"}}, KEY)
    assert resolved is not None
    assert resolved.values == {cr.SERVICE_KEY_FIELD: "sk-value"}
    missing = cr.resolve_service_key(spec, {}, KEY)
    assert missing is not None
    assert missing.missing_message() == "Secret 'gr' not found (referenced by spec.serviceKeySecretRef)"


def test_referenced_secret_names() -> None:
    spec = spec_with_refs(
        {"sasl.password": {"name": "kafka", "key": "password"}, "headers.A": {"name": "hook", "key": "a"}},
        service_key={"name": "gr", "key": "token"},
    )
    assert cr.referenced_secret_names(spec) == {"kafka", "hook", "gr"}


def test_set_dotted_nested_and_top_level() -> None:
    target: dict[str, Any] = {"sasl": {"mechanism": "PLAIN"}}
    cr.set_dotted(target, "sasl.password", "x")
    cr.set_dotted(target, "headers.Authorization", "y")
    cr.set_dotted(target, "password", "z")
    assert target == {
        "sasl": {"mechanism": "PLAIN", "password": "x"},
        "headers": {"Authorization": "y"},
        "password": "z",
    }


def test_set_dotted_errors_name_the_path_not_the_value() -> None:
    with pytest.raises(ValueError, match="'sasl' is not an object") as info:
        cr.set_dotted({"sasl": "plain"}, "sasl.password", "topsecret")
    assert "topsecret" not in str(info.value)
    with pytest.raises(ValueError, match="invalid field path"):
        cr.set_dotted({}, "a..b", "v")


def test_get_and_delete_dotted() -> None:
    data: dict[str, Any] = {"a": {"b": 1}, "c": 2}
    assert cr.get_dotted(data, "a.b") == (True, 1)
    assert cr.get_dotted(data, "a.x") == (False, None)
    assert cr.get_dotted(data, "c.d") == (False, None)
    cr.delete_dotted(data, "a.b")
    cr.delete_dotted(data, "missing.path")
    assert data == {"a": {}, "c": 2}


def test_apply_secret_values_copies() -> None:
    config = {"sasl": {"mechanism": "PLAIN"}}
    out = cr.apply_secret_values(config, {"sasl.password": "pw"})
    assert out == {"sasl": {"mechanism": "PLAIN", "password": "pw"}}
    assert config == {"sasl": {"mechanism": "PLAIN"}}
    assert cr.apply_secret_values(None, {}) == {}


def test_applied_hashes_from_status() -> None:
    entries = [
        {"field": "password", "name": "pg", "key": "password", "hash": "hmac-sha256:aa"},
        {"name": "legacy", "key": "k", "hash": "hmac-sha256:bb"},
        {"field": "broken", "name": "x", "key": "y"},
    ]
    assert cr.applied_hashes_from_status(entries) == {
        "password": "hmac-sha256:aa",
        "legacy/k": "hmac-sha256:bb",
    }
    assert cr.applied_hashes_from_status(None) == {}


def test_decode_secret_data() -> None:
    data = {
        "password": base64.b64encode(b"pw").decode(),
        "binary": base64.b64encode(b"\xff\xfe").decode(),
        "junk": "not base64!",
    }
    assert sv.decode_secret_data(data, {"extra": "plain"}) == {"password": "pw", "extra": "plain"}
    assert sv.decode_secret_data(None) == {}


def test_resolved_secrets_scrub_their_own_values() -> None:
    resolved = cr.resolve_refs({"password": SecretKeyRef(name="pg", key="password")}, SECRETS, KEY)
    assert resolved.scrub(f"bad {PG_PASSWORD}") == "bad [REDACTED]"
    assert PG_PASSWORD not in resolved.scrub(f'{{"password": "{PG_PASSWORD}"}}')
    assert PG_PASSWORD not in repr(resolved)

