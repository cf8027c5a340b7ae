"""Parsing GoldRushPipeline objects into the pydantic models (as kopf hands them over)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from goldrush_operator import resource
from goldrush_operator.resource import GoldRushPipeline, PipelineSpec, PipelineStatus

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def minimal_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "analytics",
        "topic": "base.mainnet.ref.block.transfers",
        "destination": {"type": "postgres", "config": {"url": "postgresql://db:5432/a", "user": "u"}},
        "execution": {"mode": "unbounded"},
    }
    spec.update(overrides)
    return spec


def test_constants() -> None:
    assert resource.API_VERSION == "goldrush.dev/v1alpha1"
    assert resource.CRD_NAME == "goldrushpipelines.goldrush.dev"
    assert resource.FINALIZER == "goldrush.dev/finalizer"
    assert resource.ANNOTATION_PIPELINE_ID == "goldrush.dev/pipeline-id"


def test_parse_camel_case_body_with_defaults() -> None:
    spec = PipelineSpec.model_validate(
        minimal_spec(
            destination={
                "type": "kafka",
                "config": {"bootstrap_servers": "b:9092", "sasl": {"mechanism": "SCRAM-SHA-512"}},
                "secretRefs": {"sasl.password": {"name": "kafka", "key": "password"}},
            },
            execution={"mode": "bounded", "startFrom": "10", "stopAt": "20"},
            serviceKeySecretRef={"name": "goldrush-key", "key": "token"},
            abi={
                "contractAddresses": ["0xabc"],
                "unmatched": "raw",
                "configMapRef": {"name": "abi", "key": "a"},
            },
        )
    )
    assert spec.paused is False
    assert spec.deletion_policy == "Delete"
    assert spec.destination.secret_refs is not None
    assert spec.destination.secret_refs["sasl.password"].name == "kafka"
    assert spec.execution.start_from == "10"
    assert spec.execution.stop_at == "20"
    assert spec.service_key_secret_ref is not None
    assert spec.service_key_secret_ref.key == "token"
    assert spec.abi is not None
    assert spec.abi.config_map_ref is not None
    assert spec.abi.contract_addresses == ["0xabc"]


def test_parse_snake_case_names_too() -> None:
    spec = PipelineSpec.model_validate(minimal_spec(pipeline_name="custom", deletion_policy="Orphan"))
    assert spec.pipeline_name == "custom"
    assert spec.deletion_policy == "Orphan"


def test_unknown_fields_are_tolerated() -> None:
    spec = PipelineSpec.model_validate(minimal_spec(futureField={"x": 1}))
    assert spec.project == "analytics"
    status = PipelineStatus.model_validate({"phase": "RUNNING", "somethingNew": 1})
    assert status.phase == "RUNNING"


def test_destination_config_is_free_form() -> None:
    config = {"url": "u", "retry": {"max_attempts": 3}, "partition_by": ["hour"], "batch_size": 10}
    spec = PipelineSpec.model_validate(minimal_spec(destination={"type": "webhook", "config": config}))
    assert spec.destination.config == config


@pytest.mark.parametrize(
    "topic",
    ["base.mainnet.ref.block.swap.v3", "eth.mainnet.ref.block.logs", "hypercore.mainnet.ref.block.fills"],
)
def test_valid_topics(topic: str) -> None:
    assert PipelineSpec.model_validate(minimal_spec(topic=topic)).topic == topic


@pytest.mark.parametrize(
    "topic",
    [
        "base.mainnet.logs",
        "Base.mainnet.ref.block.logs",
        "base.mainnet.ref.blocks.logs",
        "",
        "base.mainnet.ref.block.logs.",
        "base.mainnet.ref.block.swap..v3",
        "base.mainnet.ref.block..logs",
        "-base.mainnet.ref.block.logs",
        "base.mainnet.ref.block.logs\n",
    ],
)
def test_invalid_topics(topic: str) -> None:
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate(minimal_spec(topic=topic))


@pytest.mark.parametrize("project", ["analytics", "analytics-prod", "pipeline-api-hr-1wk-unbounded", "a_b", "x"])
def test_valid_projects(project: str) -> None:
    assert PipelineSpec.model_validate(minimal_spec(project=project)).project == project


@pytest.mark.parametrize(
    "project", ["../../../etc", "my project", "pröject", "Analytics", "-a", "a-", "a/b", "a.b", "a" * 64]
)
def test_invalid_projects(project: str) -> None:
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate(minimal_spec(project=project))


@pytest.mark.parametrize(
    ("table", "valid"),
    [("transfers", True), ("base_evt_swap", True), ("_raw", True), ("tä ble; DROP", False), ("1x", False),
     ("a.b", False), ("", False)],
)
def test_table_name_pattern(table: str, valid: bool) -> None:
    assert bool(re.fullmatch(resource.TABLE_NAME_PATTERN.strip("^$"), table)) is valid


@pytest.mark.parametrize(
    "override",
    [
        {"execution": {"mode": "bounded", "startFrom": "010", "stopAt": "20"}},
        {"destination": {"type": "mysql"}},
        {"execution": {"mode": "sometimes"}},
        {"execution": {"mode": "bounded", "stopAt": "12a"}},
        {"deletionPolicy": "Keep"},
        {"project": ""},
    ],
)
def test_invalid_values(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate(minimal_spec(**override))


@pytest.mark.parametrize("missing", ["project", "topic", "destination", "execution"])
def test_required_fields(missing: str) -> None:
    spec = minimal_spec()
    del spec[missing]
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate(spec)


def test_pipeline_display_name() -> None:
    spec = PipelineSpec.model_validate(minimal_spec())
    assert spec.pipeline_display_name("team-a", "swaps") == "team-a-swaps"
    named = PipelineSpec.model_validate(minimal_spec(pipelineName="Swaps to PG"))
    assert named.pipeline_display_name("team-a", "swaps") == "Swaps to PG"


def test_status_round_trip_uses_camel_case() -> None:
    raw = {
        "pipelineId": "pipe_3e8678c5fc9e48a7bf9879ca729",
        "phase": "RUNNING",
        "replicas": 1,
        "readyReplicas": 1,
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Running",
                "message": "",
                "lastTransitionTime": "2026-05-01T10:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "destinationHealth": {"healthy": True, "lastError": "", "checkedAt": "2026-05-01T10:00:00Z"},
        "secrets": [{"field": "password", "name": "pg", "key": "password", "hash": "hmac-sha256:00"}],
        "lastHandledReconcileAt": "t1",
        "createdAt": "2026-05-01T10:00:00Z",
    }
    status = PipelineStatus.model_validate(raw)
    assert status.to_k8s() == raw


def test_whole_object_and_empty_status() -> None:
    obj = GoldRushPipeline.model_validate(
        {
            "apiVersion": "goldrush.dev/v1alpha1",
            "kind": "GoldRushPipeline",
            "metadata": {"name": "a"},
            "spec": minimal_spec(),
        }
    )
    assert obj.status is None
    assert PipelineStatus.model_validate({}).conditions is None


def test_to_k8s_omits_unset_optionals_but_keeps_defaults() -> None:
    out = PipelineSpec.model_validate(minimal_spec()).to_k8s()
    assert out["paused"] is False
    assert out["deletionPolicy"] == "Delete"
    assert "pipelineName" not in out
    assert "transforms" not in out


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("pipeline-*.yaml")), ids=lambda p: p.name)
def test_samples_parse(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == resource.API_VERSION
    assert doc["kind"] == resource.KIND
    assert "namespace" not in doc["metadata"]
    spec = PipelineSpec.model_validate(doc["spec"])
    config = spec.destination.config or {}
    assert "password" not in config
    assert "headers" not in config
    assert "password" not in config.get("sasl", {})
    assert re.match(resource.TOPIC_PATTERN, spec.topic)


def test_samples_cover_postgres_kafka_webhook() -> None:
    kinds = {
        yaml.safe_load(p.read_text())["spec"]["destination"]["type"] for p in SAMPLES.glob("pipeline-*.yaml")
    }
    assert {"postgres", "kafka", "webhook"} <= kinds
    secret = yaml.safe_load((SAMPLES / "secret-destinations.yaml").read_text())
    assert secret["kind"] == "Secret"
    assert "namespace" not in secret["metadata"]
