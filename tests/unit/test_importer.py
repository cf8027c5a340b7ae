"""Unit tests of `importer`: the reverse mapping API pipeline -> GoldRushPipeline spec (round trip through
`payload.desired_payload` for every destination type), masked fields -> secretRefs, the checks that refuse what
cannot be expressed exactly, object-name derivation and the rendered YAML."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from goldrush_operator.importer import (
    MAX_OBJECT_NAME,
    Imported,
    NotImportable,
    Options,
    base_name,
    import_pipeline,
    object_names,
    render,
    render_all,
)
from goldrush_operator.payload import desired_payload, parse_abi_file
from goldrush_operator.resource import OBJECT_NAME_PATTERN, PipelineSpec
from goldrush_sim.model import masked

NS = "team-a"
VALUES = {"password": "pg-S3cret", "secret_access_key": "aws-S3cret", "sasl.password": "kafka-S3cret",
          "headers.Authorization": "Bearer tok-S3cret", "headers.X-Api-Key": "key-S3cret"}


def _refs(name: str, *fields: str) -> dict[str, Any]:
    return {f: {"name": f"{name}-destination", "key": f} for f in fields}


SPECS: dict[str, dict[str, Any]] = {
    "postgres": {
        "project": "analytics-prod", "description": "Base swaps", "topic": "base.mainnet.ref.block.swap.v3",
        "destination": {"type": "postgres",
                        "config": {"url": "postgresql://db:5432/a", "user": "pipeline", "batch_size": 500,
                                   "flush_interval_ms": 2000},
                        "secretRefs": _refs("postgres", "password")},
        "transforms": {"swaps": "SELECT chain_name, tx_hash FROM swaps"},
        "execution": {"mode": "unbounded", "startFrom": "44745000"},
    },
    "clickhouse": {
        "project": "ch", "topic": "eth.mainnet.ref.block.logs",
        "destination": {"type": "clickhouse", "config": {"url": "clickhouse://ch:8123/db", "user": "u"},
                        "secretRefs": _refs("clickhouse", "password")},
        "abi": {"contractAddresses": ["0xabc", "0xdef"], "unmatched": "raw",
                "configMapRef": {"name": "clickhouse-abi", "key": "abi.json"}},
        "execution": {"mode": "bounded", "startFrom": "100", "stopAt": "200"},
        "paused": True,
    },
    "kafka": {
        "project": "raw", "topic": "base.mainnet.ref.block.transfers",
        "destination": {"type": "kafka",
                        "config": {"bootstrap_servers": "b1:9092,b2:9092", "output_topic": "out",
                                   "sasl": {"mechanism": "SCRAM-SHA-512", "username": "k"}},
                        "secretRefs": _refs("kafka", "sasl.password")},
        "execution": {"mode": "unbounded"},
    },
    "object_storage": {
        "project": "lake", "topic": "base.mainnet.ref.block.transactions",
        "destination": {"type": "object_storage",
                        "config": {"provider": "r2", "bucket": "b", "base_path": "x/y", "format": "parquet",
                                   "compression": "zstd", "partition_by": ["day"], "batch_size": 100,
                                   "batch_interval_ms": 1000, "region": "auto", "endpoint": "https://r2.example",
                                   "access_key_id": "AKIA1"},
                        "secretRefs": _refs("object-storage", "secret_access_key")},
        "execution": {"mode": "unbounded", "startFrom": "0"},
    },
    "sqs": {
        "project": "queue", "topic": "base.mainnet.ref.block.transfers",
        "destination": {"type": "sqs",
                        "config": {"queue_url": "https://sqs.example/q.fifo", "region": "us-east-1",
                                   "access_key_id": "AKIA2", "batch_size": 10, "message_group_id": "g"},
                        "secretRefs": _refs("sqs", "secret_access_key")},
        "execution": {"mode": "unbounded"},
    },
    "webhook": {
        "pipelineName": "Swaps to the receiver",
        "project": "hooks", "description": "d", "topic": "base.mainnet.ref.block.swap.v3",
        "destination": {"type": "webhook",
                        "config": {"url": "https://hook.example/in", "method": "PUT", "batch_size": 5,
                                   "timeout_ms": 3000, "retry": {"max_attempts": 5, "backoff_ms": 100}},
                        "secretRefs": _refs("webhook", "headers.Authorization", "headers.X-Api-Key")},
        "execution": {"mode": "bounded", "startFrom": "1", "stopAt": "1"},
    },
}
ABI = {"abi": [{"type": "event", "name": "Swap", "inputs": []}]}


def remote_of(name: str, spec: dict[str, Any], pipeline_id: str = "pipe_0123456789abcdef0123456789a") -> dict[str, Any]:
    """What the API returns for the pipeline the operator creates from `spec` (secrets masked)."""
    model = PipelineSpec.model_validate(spec)
    values = {f: VALUES[f] for f in (model.destination.secret_refs or {})}
    abi = parse_abi_file(json.dumps(ABI)) if model.abi and model.abi.config_map_ref else None
    body = desired_payload(NS, name, model, values, abi)
    return {"id": pipeline_id, **masked(body), "created_at": "2026-05-01T10:00:00Z",
            "group": {"id": "group_x"}, "created_by": {"id": "user_x"}}


@pytest.mark.parametrize("dest", sorted(SPECS))
def test_import_of_the_payload_is_the_spec(dest: str) -> None:
    spec, name = SPECS[dest], dest.replace("_", "-")
    item = import_pipeline(remote_of(name, spec), name, Options(NS))
    assert item.pipeline["spec"] == spec
    assert item.pipeline["metadata"] == {
        "name": name, "namespace": NS,
        "annotations": {"goldrush.dev/adopt": "true", "goldrush.dev/pipeline-id": "pipe_0123456789abcdef0123456789a"},
    }
    assert (item.pipeline["apiVersion"], item.pipeline["kind"]) == ("goldrush.dev/v1alpha1", "GoldRushPipeline")
    # ... and forward again: the operator's payload from the imported objects is the original one.
    refs = spec["destination"]["secretRefs"]
    abi = parse_abi_file(item.configmap["data"]["abi.json"]) if item.configmap else None
    again = desired_payload(NS, name, PipelineSpec.model_validate(item.pipeline["spec"]),
                            {f: VALUES[f] for f in refs}, abi)
    original = PipelineSpec.model_validate(spec)
    assert again == desired_payload(NS, name, original, {f: VALUES[f] for f in refs},
                                    ABI if original.abi and original.abi.config_map_ref else None)
    assert {k.field for k in item.secret_keys} == set(refs)
    assert item.secret_name == f"{name}-destination"
    if item.configmap is not None:
        assert item.configmap["metadata"] == {"name": f"{name}-abi", "namespace": NS}
        assert parse_abi_file(item.configmap["data"]["abi.json"]) == ABI
    else:
        assert "abi" not in spec or "configMapRef" not in spec["abi"]


def test_no_secret_value_is_ever_exported_even_unmasked() -> None:
    remote = remote_of("postgres", SPECS["postgres"])
    remote["destination_config"]["password"] = VALUES["password"]  # an API that forgot to mask
    item = import_pipeline(remote, "postgres", Options(NS))
    assert item.pipeline["spec"]["destination"]["secretRefs"] == _refs("postgres", "password")
    text = render(item)
    assert VALUES["password"] not in text and "******" not in text


def test_every_masked_field_becomes_a_secret_ref() -> None:
    spec = copy.deepcopy(SPECS["sqs"])
    remote = remote_of("sqs", spec)
    remote["destination_config"]["access_key_id"] = "******"  # an API that masks more than documented
    item = import_pipeline(remote, "sqs", Options(NS))
    refs = item.pipeline["spec"]["destination"]["secretRefs"]
    assert refs == _refs("sqs", "access_key_id", "secret_access_key")
    assert "access_key_id" not in item.pipeline["spec"]["destination"]["config"]
    assert [(k.field, k.key) for k in item.secret_keys] == [("access_key_id", "access_key_id"),
                                                            ("secret_access_key", "secret_access_key")]


def test_pipeline_name_only_when_the_default_differs() -> None:
    spec = SPECS["postgres"]
    remote = remote_of("postgres", spec)
    assert remote["name"] == f"{NS}-postgres"
    assert "pipelineName" not in import_pipeline(remote, "postgres", Options(NS)).pipeline["spec"]
    other = import_pipeline(remote, "postgres", Options("team-b"))
    assert other.pipeline["spec"]["pipelineName"] == f"{NS}-postgres"
    assert other.pipeline["metadata"]["namespace"] == "team-b"


def test_options_observe_deletion_policy_and_service_key() -> None:
    remote = remote_of("kafka", SPECS["kafka"])
    item = import_pipeline(remote, "kafka", Options(NS, observe=True, deletion_policy="Orphan",
                                                    service_key_ref=("goldrush-key", "token")))
    spec = item.pipeline["spec"]
    assert spec["managementPolicies"] == ["Observe"]
    assert spec["deletionPolicy"] == "Orphan"
    assert spec["serviceKeySecretRef"] == {"name": "goldrush-key", "key": "token"}
    assert "managementPolicies" not in import_pipeline(remote, "kafka", Options(NS)).pipeline["spec"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r["destination_config"].update({"host": "db"}), "destination_config.host is not a documented"),
        (lambda r: r["destination_config"].update({"auth.token": "x"}), "contains a dot"),
        (lambda r: r["destination_config"].update({"region": "eu"}), "only valid for destination type"),
        (lambda r: r["destination_config"].update({"batch_size": "many"}), "destination_config.batch_size"),
        (lambda r: r.update({"execution_mode": "bounded"}), "bounded but execution_stop_from is empty"),
        (lambda r: r.update({"execution_stop_from": "5"}), "unbounded but execution_stop_from is set"),
        (lambda r: r.update({"project": "Has Spaces"}), "spec.project"),
        (lambda r: r.update({"topic": "not-a-topic"}), "spec.topic"),
        (lambda r: r.update({"transforms": {"bad name": "SELECT 1"}}), "not a plain SQL table name"),
        (lambda r: r.update({"status": "archived"}), "neither running nor paused"),
        (lambda r: r["destination_config"].update({"type": "clickhouse"}), "differs from destination_type"),
    ],
)
def test_what_cannot_be_expressed_exactly_is_refused_with_reasons(change: Any, problem: str) -> None:
    remote = remote_of("postgres", SPECS["postgres"])
    change(remote)
    with pytest.raises(NotImportable) as info:
        import_pipeline(remote, "postgres", Options(NS))
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert info.value.pipeline_id == remote["id"]


def test_webhook_headers_masked_as_a_whole_are_refused() -> None:
    remote = remote_of("webhook", SPECS["webhook"])
    remote["destination_config"]["headers"] = "******"
    with pytest.raises(NotImportable, match="masked or set as a whole"):
        import_pipeline(remote, "webhook", Options(NS))


def test_kafka_with_transforms_is_refused() -> None:
    remote = remote_of("kafka", SPECS["kafka"])
    remote["transforms"] = {"t": "SELECT 1 FROM t"}
    with pytest.raises(NotImportable, match="raw passthrough"):
        import_pipeline(remote, "kafka", Options(NS))


def test_empty_and_missing_optional_fields_are_left_out() -> None:
    remote = {"id": "pipe_1", "name": "n", "project": "p", "topic": "base.mainnet.ref.block.transfers",
              "destination_type": "webhook", "destination_config": {"type": "webhook", "url": "https://h/x",
                                                                    "headers": {}},
              "execution_mode": "unbounded", "description": None, "transforms": None, "abi_file": None,
              "abi_contract_addresses": None, "abi_unmatched": None, "execution_start_from": None,
              "execution_stop_from": "", "status": "running"}
    spec = import_pipeline(remote, "n", Options(NS)).pipeline["spec"]
    assert spec == {"pipelineName": "n", "project": "p", "topic": "base.mainnet.ref.block.transfers",
                    "destination": {"type": "webhook", "config": {"url": "https://h/x"}},
                    "execution": {"mode": "unbounded"}}


# ------------------------------------------------------------------------------------------ names


def test_object_names_are_dns_labels_unique_and_deterministic() -> None:
    pairs = [("pipe_a", "From Base Swap to Postgres"), ("pipe_b", "from-base-swap-to-postgres"),
             ("pipe_c", f"{NS}-orders"), ("pipe_d", "Übersicht"), ("pipe_e", "!!!"), ("pipe_f", "x" * 300),
             ("pipe_g", "orders")]
    names = object_names(pairs, NS)
    assert object_names(list(reversed(pairs)), NS) == names
    assert len(set(names.values())) == len(pairs)
    for name in names.values():
        assert re.match(OBJECT_NAME_PATTERN, name) and len(name) <= MAX_OBJECT_NAME, name
    assert names["pipe_a"] != names["pipe_b"] and names["pipe_a"].startswith("from-base-swap-to-postgres-")
    assert names["pipe_c"].startswith("orders-") and names["pipe_g"].startswith("orders-")  # both wanted "orders"
    assert names["pipe_d"] == "ubersicht" and names["pipe_e"] == "pipeline"
    assert names["pipe_f"] == "x" * MAX_OBJECT_NAME


def test_a_unique_name_does_not_depend_on_the_others() -> None:
    alone = object_names([("pipe_1", f"{NS}-p1")], NS)
    assert alone == {"pipe_1": "p1"} and base_name(f"{NS}-p1", NS) == "p1"
    assert object_names([("pipe_1", f"{NS}-p1"), ("pipe_2", "other")], NS)["pipe_1"] == "p1"


def test_a_hashed_name_never_takes_a_plain_one() -> None:
    first = object_names([("pipe_1", "dup"), ("pipe_2", "dup")], NS)
    taken = first["pipe_1"]
    names = object_names([("pipe_1", "dup"), ("pipe_2", "dup"), ("pipe_3", taken)], NS)
    assert names["pipe_3"] == taken and len(set(names.values())) == 3


# ------------------------------------------------------------------------------------------ output


def test_render_is_applyable_yaml_with_the_secret_to_create() -> None:
    items = [import_pipeline(remote_of(d, SPECS[d], f"pipe_{i}"), d, Options(NS)) for i, d in
             enumerate(["clickhouse", "webhook"])]
    text = render_all(items)
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["ConfigMap", "GoldRushPipeline", "GoldRushPipeline"]
    assert docs[1] == items[0].pipeline and docs[0] == items[0].configmap and docs[2] == items[1].pipeline
    assert "create secret generic webhook-destination" in text
    assert "--from-literal=headers.Authorization='<destination_config.headers.Authorization>'" in text
    for value in VALUES.values():
        assert value not in text


def test_imported_documents_order() -> None:
    item = Imported("pipe_1", "n", "n", NS, {"kind": "GoldRushPipeline"}, {"kind": "ConfigMap"})
    assert [d["kind"] for d in item.documents()] == ["ConfigMap", "GoldRushPipeline"]
