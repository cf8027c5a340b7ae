"""Unit tests of goldrush_operator.secret_values: secret field list, scrubbing, mask detection, decoding, hashing."""

from __future__ import annotations

import json

import pytest

from goldrush_operator.secret_values import (
    MASK,
    REDACTED,
    SECRET_FIELD_PATHS,
    Redactor,
    find_masks,
    scrub,
    scrub_fields,
    secret_values,
)

pytestmark = pytest.mark.unit


def payload() -> dict[str, object]:
    return {
        "name": "p",
        "destination_config": {
            "type": "kafka",
            "password": "pg-pass",
            "secret_access_key": "aws-secret",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "sasl-pass"},
            "headers": {"Authorization": "Bearer hdr-token", "X-Api-Key": "hdr-key"},
            "user": "not-secret",
        },
    }


def test_secret_field_paths_cover_the_documented_fields() -> None:
    assert ("destination_config", "password") in SECRET_FIELD_PATHS
    assert ("destination_config", "secret_access_key") in SECRET_FIELD_PATHS
    assert ("destination_config", "sasl", "password") in SECRET_FIELD_PATHS
    assert ("destination_config", "headers", "*") in SECRET_FIELD_PATHS


def test_secret_values_finds_every_secret_field() -> None:
    assert secret_values(payload()) == {"pg-pass", "aws-secret", "sasl-pass", "Bearer hdr-token", "hdr-key"}


def test_secret_values_ignores_missing_empty_masked_and_non_scalar() -> None:
    body = {
        "destination_config": {"password": "", "secret_access_key": MASK, "headers": {"a": None, "b": 42}}
    }
    assert secret_values(body) == {"42"}
    assert secret_values({}) == set()
    assert secret_values({"destination_config": "not a mapping"}) == set()


def test_scrub_replaces_longest_first_and_escaped_forms() -> None:
    secrets = {"ab", "abcd"}
    assert scrub("x abcd y ab", secrets) == f"x {REDACTED} y {REDACTED}"
    quoted = 'p"w\\d\n'
    text = "echo: " + json.dumps({"v": quoted}) + " and " + json.dumps(json.dumps({"v": quoted}))
    out = scrub(text, {quoted})
    assert 'p\\"w' not in out
    assert 'p"w' not in out
    assert out.count(REDACTED) == 2


def test_scrub_percent_encoded_and_unicode() -> None:
    secret = "sé cret/+"
    url = "https://x/?k=s%C3%A9%20cret%2F%2B&q=s%C3%A9+cret%2F%2B"
    text = f"url={url} json={json.dumps(secret)} raw={secret}"
    out = scrub(text, [secret, ""])
    assert "cret" not in out


def test_scrub_by_field_name_without_known_value() -> None:
    text = '{"destination_config": {"password": "zz1", "secret_access_key": "zz2", "headers": {"A": "zz3"}}}'
    out = scrub_fields(text)
    assert "zz" not in out
    assert out.count(REDACTED) == 3
    escaped = json.dumps(text)
    assert "zz" not in scrub(escaped, [])



def test_find_masks_reports_paths_anywhere() -> None:
    body = {"a": [{"b": MASK}], "c": {"d": f"x{MASK}y"}, MASK: 1, "ok": "*****"}
    assert sorted(find_masks(body)) == sorted(["a[0].b", "c.d", MASK])
    assert find_masks(payload()) == []


def test_redactor_extends_and_hides_values_in_repr() -> None:
    r = Redactor(["one"])
    r.add("two", "")
    child = r.with_payload(payload())
    assert len(r) == 2
    assert r.scrub("pg-pass") == "pg-pass"  # the parent does not learn the body's secrets
    assert child.scrub("one two pg-pass") == f"{REDACTED} {REDACTED} {REDACTED}"
    r.add_payload(payload())
    assert "hdr-key" not in r.scrub("hdr-key")
    assert "one" not in repr(r)
    assert "pg-pass" not in repr(child)
