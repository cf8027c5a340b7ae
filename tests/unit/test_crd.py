"""The generated GoldRushPipeline CRD: drift against the committed file, structure, rules, columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from goldrush_operator import crdgen, resource, secret_values
from goldrush_operator.resource import BLOCK_HEIGHT_PATTERN, TOPIC_PATTERN

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_CRD = REPO_ROOT / "crds" / crdgen.CRD_FILE_NAME


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.generate_crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    version = crd["spec"]["versions"][0]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def rules_at(schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    for node_path, node in walk(schema):
        if node_path == path:
            rules: list[dict[str, str]] = node.get("x-kubernetes-validations", [])
            return rules
    raise KeyError(path)


def test_committed_crd_matches_generated() -> None:
    assert COMMITTED_CRD.exists(), f"missing {COMMITTED_CRD}; generate it with `goldrush-operator crd`"
    assert COMMITTED_CRD.read_text() == crdgen.render_crd_yaml(), (
        "crds/ is stale: regenerate with `goldrush-operator crd > crds/goldrush.dev_goldrushpipelines.yaml`"
    )


def test_render_is_deterministic_and_parses_back() -> None:
    text = crdgen.render_crd_yaml()
    assert text == crdgen.render_crd_yaml()
    assert "&id" not in text
    assert "*id" not in text
    assert yaml.safe_load(text) == crdgen.generate_crd()


def test_names_scope_and_version(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "goldrushpipelines.goldrush.dev"
    spec = crd["spec"]
    assert spec["group"] == "goldrush.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "GoldRushPipeline",
        "listKind": "GoldRushPipelineList",
        "plural": "goldrushpipelines",
        "singular": "goldrushpipeline",
        "shortNames": ["grp"],
        "categories": ["goldrush"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "definitions"}
    for path, node in walk(schema):
        assert not forbidden & set(node), f"{path or '<root>'} has {forbidden & set(node)}"
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert node.get("default", "x") is not None, f"{path} has a null default"
        assert node.get("additionalProperties") not in (True, False), path
        if "additionalProperties" in node:
            assert "properties" not in node, f"{path}: properties and additionalProperties are exclusive"


def test_every_field_has_a_description(schema: dict[str, Any]) -> None:
    missing = [
        path or "<root>"
        for path, node in walk(schema)
        if path != ".metadata" and not str(node.get("description", "")).strip()
    ]
    assert missing == []


def test_required_fields(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert schema["required"] == ["spec"]
    assert set(spec["required"]) == {"project", "topic", "destination", "execution"}
    assert spec["properties"]["destination"]["required"] == ["type"]
    assert spec["properties"]["execution"]["required"] == ["mode"]
    assert "pipelineName" not in spec["required"]
    assert "paused" not in spec["required"]


def test_spec_fields_enums_patterns(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    assert set(spec) == {
        "pipelineName",
        "project",
        "description",
        "topic",
        "destination",
        "transforms",
        "abi",
        "execution",
        "paused",
        "deletionPolicy",
        "managementPolicies",
        "serviceKeySecretRef",
        "credentialsRef",
    }
    assert spec["topic"]["pattern"] == TOPIC_PATTERN
    assert spec["destination"]["properties"]["type"]["enum"] == [
        "postgres",
        "clickhouse",
        "kafka",
        "object_storage",
        "sqs",
        "webhook",
    ]
    execution = spec["execution"]["properties"]
    assert execution["mode"]["enum"] == ["bounded", "unbounded"]
    assert execution["startFrom"]["pattern"] == BLOCK_HEIGHT_PATTERN
    assert execution["stopAt"]["pattern"] == BLOCK_HEIGHT_PATTERN
    assert spec["project"]["pattern"] == resource.PROJECT_PATTERN
    assert spec["project"]["maxLength"] == 63
    assert spec["deletionPolicy"]["enum"] == ["Delete", "Orphan"]
    assert spec["managementPolicies"]["items"]["enum"] == ["*", "Observe", "Create", "Update", "Delete",
                                                           "LateInitialize"]
    assert spec["managementPolicies"]["x-kubernetes-list-type"] == "set"
    assert spec["transforms"]["additionalProperties"]["type"] == "string"
    refs = spec["destination"]["properties"]["secretRefs"]["additionalProperties"]
    assert set(refs["properties"]) == {"name", "key"}
    assert refs["required"] == ["name", "key"]
    assert set(spec["serviceKeySecretRef"]["properties"]) == {"name", "key"}
    assert set(spec["abi"]["properties"]) == {"contractAddresses", "unmatched", "configMapRef"}


def test_only_schema_defaults_are_paused_deletion_and_management_policies(schema: dict[str, Any]) -> None:
    defaults = {path: node["default"] for path, node in walk(schema) if "default" in node}
    assert defaults == {".spec.paused": False, ".spec.deletionPolicy": "Delete", ".spec.managementPolicies": ["*"]}


def config_schema(schema: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = schema["properties"]["spec"]["properties"]["destination"]["properties"]["config"]
    return node


def test_destination_config_declares_every_documented_field(schema: dict[str, Any]) -> None:
    """Typed, closed schema: CEL sees every key and value; unknown keys are unknown fields (strict: rejected)."""
    config = config_schema(schema)
    assert config["type"] == "object"
    assert "x-kubernetes-preserve-unknown-fields" not in config
    assert {
        "url", "user", "batch_size", "flush_interval_ms", "bootstrap_servers", "output_topic", "sasl",
        "provider", "bucket", "base_path", "format", "compression", "partition_by", "batch_interval_ms",
        "region", "endpoint", "access_key_id", "queue_url", "message_group_id", "method", "timeout_ms", "retry",
    } <= set(config["properties"])
    for path, node in walk(config):
        assert "x-kubernetes-preserve-unknown-fields" not in node, path


def test_no_preserve_unknown_fields_next_to_properties(schema: dict[str, Any]) -> None:
    """kubeconform (strict) reads `properties` as closed; both together gave false failures."""
    for path, node in walk(schema):
        assert not (node.get("x-kubernetes-preserve-unknown-fields") and node.get("properties")), path


def test_every_config_field_names_its_destination_types(schema: dict[str, Any]) -> None:
    for name, node in config_schema(schema)["properties"].items():
        types = node["description"].split(")", 1)[0].lstrip("(").split(", ")
        assert set(types) <= set(resource.DESTINATION_TYPES), name
        assert resource.CONFIG_FIELD_TYPES[name] == tuple(types)


def test_config_description_says_what_to_set_per_type(schema: dict[str, Any]) -> None:
    text = config_schema(schema)["description"]
    for dtype in resource.DESTINATION_TYPES:
        assert f"{dtype}" in text
    assert text.startswith("Non-secret destination settings")
    assert text.index("url") < text.index("password")


def test_every_string_config_value_rejects_the_mask(schema: dict[str, Any]) -> None:
    mask_rule = {"rule": "self != '******'"}
    for path, node in walk(config_schema(schema), ".spec.destination.config"):
        if node.get("type") != "string" or "enum" in node:
            continue
        field = path.removeprefix(".spec.destination.config.")
        if field in resource.SECRET_CONFIG_FIELDS or field == "headers.*":
            continue
        rules = node.get("x-kubernetes-validations", [])
        assert any(r["rule"] == mask_rule["rule"] and f"spec.destination.config.{field} " in r["message"]
                   for r in rules), path


def test_every_operator_secret_field_is_denied_inline() -> None:
    """The operator's own list of secret payload fields is the list the CRD rejects inline."""
    denied = set(resource.SECRET_CONFIG_FIELDS)
    for path in secret_values.SECRET_FIELD_PATHS:
        assert path[0] == "destination_config"
        field = ".".join(p for p in path[1:] if p != "*")
        assert field in denied, field


def test_config_fields_are_rejected_for_other_destination_types(schema: dict[str, Any]) -> None:
    rules = schema["properties"]["spec"]["properties"]["destination"]["x-kubernetes-validations"]
    by_message = {r["message"]: r["rule"] for r in rules}
    assert by_message["spec.destination.config.bootstrap_servers is only valid for destination type kafka"] == (
        "!has(self.config) || !has(self.config.bootstrap_servers) || self.type in ['kafka']"
    )
    assert "spec.destination.config.batch_size must be at most 10 for destination type sqs" in by_message


# Longest key of each free-form map; the schema bounds them with a CEL `size(key) <= N` rule.
MAP_KEY_BOUNDS = {
    ".spec.transforms": resource.MAX_TABLE_NAME_LENGTH,
    ".spec.destination.secretRefs": resource.MAX_FIELD_PATH_LENGTH,
}
# Declared only to be rejected (CEL), so absent from every valid object.
DENIED = {f".spec.destination.config.{field}" for field in resource.SECRET_CONFIG_FIELDS} | {
    ".spec.destination.config.sasl.password"
}


def max_json_size(node: dict[str, Any], path: str, per_char: int = 6) -> int:
    """Upper bound of the JSON size of any valid value of `node`; `per_char` bytes per free-text character
    (6: a `\\u00XX` escape; 1: ASCII). Pattern-checked strings are ASCII."""
    kind = node.get("type")
    if "enum" in node:
        return max(len(str(v)) for v in node["enum"]) + 2
    if kind == "string":
        assert "maxLength" in node, f"{path}: unbounded string"
        return node["maxLength"] * (1 if "pattern" in node or "format" in node else per_char) + 2
    if kind in ("integer", "number"):
        return 20
    if kind == "boolean":
        return 5
    if kind == "array":
        assert "maxItems" in node, f"{path}: unbounded list"
        return node["maxItems"] * (max_json_size(node["items"], f"{path}[]", per_char) + 1) + 2
    if kind == "object" and "additionalProperties" in node:
        assert "maxProperties" in node, f"{path}: unbounded map"
        key = MAP_KEY_BOUNDS[path]
        value = max_json_size(node["additionalProperties"], f"{path}.*", per_char)
        return node["maxProperties"] * (key + 4 + value) + 2
    assert kind == "object", path
    assert not node.get("x-kubernetes-preserve-unknown-fields"), f"{path}: unbounded free-form object"
    props = node.get("properties", {})
    return 2 + sum(
        len(k) + 4 + max_json_size(v, f"{path}.{k}", per_char) for k, v in props.items() if f"{path}.{k}" not in DENIED
    )


def test_largest_valid_spec_fits_the_last_applied_annotation(schema: dict[str, Any]) -> None:
    """Every string, list and map of spec is bounded: the largest valid spec stays far below etcd's 1.5 MiB
    request limit even when every character is escaped, and an ASCII one fits the 256 KiB that client-side
    `kubectl apply` records in its last-applied annotation."""
    spec = schema["properties"]["spec"]
    assert max_json_size(spec, ".spec") < 600 * 1024  # 40 % of the limit, status and metadata aside
    assert max_json_size(spec, ".spec", per_char=1) < 160 * 1024


def test_nesting_depth_is_bounded(schema: dict[str, Any]) -> None:
    depth = max(path.count(".") + path.count("[]") for path, _ in walk(schema["properties"]["spec"]))
    assert depth <= 4


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (".spec.project", "spec.project is immutable"),
        (".spec.topic", "spec.topic is immutable"),
        (".spec.destination.type", "spec.destination.type is immutable"),
        (".spec.execution.mode", "spec.execution.mode is immutable"),
    ],
)
def test_immutable_fields(schema: dict[str, Any], path: str, message: str) -> None:
    assert {"rule": "self == oldSelf", "message": message} in rules_at(schema, path)


def test_bounded_requires_stop_at(schema: dict[str, Any]) -> None:
    rules = rules_at(schema, ".spec.execution")
    assert {
        "rule": "self.mode != 'bounded' || has(self.stopAt)",
        "message": "spec.execution.stopAt is required when spec.execution.mode is bounded",
    } in rules


def test_no_transforms_for_kafka(schema: dict[str, Any]) -> None:
    rules = rules_at(schema, ".spec")
    kafka = [r for r in rules if "transforms" in r["rule"]]
    assert len(kafka) == 1
    assert "'kafka'" in kafka[0]["rule"]
    assert "spec.transforms" in kafka[0]["message"]


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("password", "!has(self.password)"),
        ("secret_access_key", "!has(self.secret_access_key)"),
        ("sasl.password", "!has(self.sasl) || !has(self.sasl.password)"),
        ('["sasl.password"]', "!has(self.sasl__dot__password)"),
        ("headers", "!has(self.headers)"),
    ],
)
def test_secret_looking_keys_rejected_inline(schema: dict[str, Any], key: str, rule: str) -> None:
    rules = rules_at(schema, ".spec.destination.config")
    (match,) = [r for r in rules if r["rule"] == rule]
    assert match["message"].startswith(f"spec.destination.config{'' if key.startswith('[') else '.'}{key} ")
    assert "secretRefs" in match["message"]


def test_cel_reachable_fields_are_declared(schema: dict[str, Any]) -> None:
    """CEL only sees declared fields; every key a config rule tests must be in the schema."""
    config = config_schema(schema)
    assert {"password", "secret_access_key", "headers", "sasl", "sasl.password"} <= set(config["properties"])
    assert "password" in config["properties"]["sasl"]["properties"]


def test_block_range_and_names_rules(schema: dict[str, Any]) -> None:
    (order,) = [r for r in rules_at(schema, ".spec.execution") if "startFrom" in r["message"]]
    assert order["message"] == "spec.execution.stopAt must be greater than or equal to spec.execution.startFrom"
    assert order.get("fieldPath") == ".stopAt"
    (tables,) = rules_at(schema, ".spec.transforms")
    assert tables["message"].startswith("spec.transforms keys")


def test_cel_rules_have_messages_and_bounded_inputs(schema: dict[str, Any]) -> None:
    """Maps/arrays/strings a rule iterates or compares carry size bounds (CEL cost estimation)."""
    for path, node in walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].startswith("spec."), f"{path}: {rule}"
            if "self == oldSelf" in rule["rule"] and node["type"] == "string" and "enum" not in node:
                assert "maxLength" in node, f"{path}: unbounded string compared in CEL"
            if ".all(" in rule["rule"]:
                assert "maxProperties" in node or "maxItems" in node, f"{path}: unbounded iteration"
    spec = schema["properties"]["spec"]["properties"]
    assert "maxProperties" in spec["transforms"]
    assert "maxItems" in spec["abi"]["properties"]["contractAddresses"]


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert list(columns) == [
        "PHASE",
        "READY",
        "PIPELINE",
        "TOPIC",
        "AGE",
        "PROJECT",
        "DESTINATION",
        "REASON",
        "MESSAGE",
    ]
    assert columns["PHASE"]["jsonPath"] == ".status.phase"
    assert columns["READY"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["PIPELINE"]["jsonPath"] == ".status.pipelineId"
    assert columns["TOPIC"]["jsonPath"] == ".spec.topic"
    assert columns["AGE"] == {
        "name": "AGE",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    }
    assert columns["PROJECT"]["jsonPath"] == ".spec.project"
    assert columns["DESTINATION"]["jsonPath"] == ".spec.destination.type"
    assert columns["REASON"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["MESSAGE"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].message'
    wide = {name for name, c in columns.items() if c.get("priority") == 1}
    assert wide == {"PROJECT", "DESTINATION", "REASON", "MESSAGE"}


def test_status_fields_declared(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]["properties"]
    assert {
        "pipelineId",
        "phase",
        "replicas",
        "readyReplicas",
        "observedGeneration",
        "conditions",
        "destinationHealth",
        "secrets",
        "lastHandledReconcileAt",
        "createdAt",
    } <= set(status)
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert "type" in conditions["items"]["required"]
    assert set(status["destinationHealth"]["properties"]) == {"healthy", "lastError", "checkedAt"}
    assert {"name", "key", "hash"} <= set(status["secrets"]["items"]["properties"])
    assert "phase" in status
    assert "enum" not in status["phase"]


def test_cleaner_rejects_non_structural_unions() -> None:
    with pytest.raises(crdgen.SchemaError, match="anyOf"):
        crdgen._clean({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {}, "x")
    with pytest.raises(crdgen.SchemaError, match="preserve-unknown-fields"):
        crdgen._clean({"type": "object", "additionalProperties": True}, {}, "x")
    with pytest.raises(crdgen.SchemaError, match="unsupported"):
        crdgen._clean({"type": "string", "const": "a"}, {}, "x")


def test_cleaner_inlines_refs_and_optional_unions() -> None:
    defs = {"Ref": {"title": "Ref", "type": "object", "description": "inner", "properties": {}}}
    node = {"anyOf": [{"$ref": "#/$defs/Ref"}, {"type": "null"}], "default": None, "description": "outer"}
    assert crdgen._clean(node, defs, "x") == {"description": "outer", "type": "object", "properties": {}}
