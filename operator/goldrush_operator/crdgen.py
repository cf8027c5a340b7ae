"""Generate the CustomResourceDefinitions from the pydantic models in `resource.py` (GoldRushPipeline) and
`resource_credentials.py` (GoldRushCredentials, ClusterGoldRushCredentials; see `KINDS`).

`generate_crd()` returns the CRD as a dict and `render_crd_yaml()` as deterministic YAML text. The CLI
`crd` command prints `render_crd_yaml()` of every kind; the committed `crds/goldrush.dev_<plural>.yaml` files
are that output, and unit tests fail when they differ. `json_schema()` is the same schema as a JSON Schema for
manifest validators (kubeconform, IDEs), published as `schemas/goldrush.dev/goldrushpipeline_v1alpha1.json`
(the CRDs-catalog layout `{group}/{kind}_{version}.json`). `make crd` (`python -m goldrush_operator.crdgen`)
writes both files.

Pydantic's JSON schema is turned into a *structural* OpenAPI v3 schema: `$ref`s are inlined, titles and
`null` defaults dropped, `anyOf [X, null]` (optional fields) collapsed to `X` (optional = not required),
and free-form objects become `x-kubernetes-preserve-unknown-fields`. Anything the cleaner does not
understand raises, so a model change can never silently produce a non-structural CRD.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from goldrush_operator.resource import (
    CATEGORIES,
    CRD_NAME,
    FIELD_PATH_PATTERN,
    GROUP,
    KIND,
    MAX_FIELD_PATH_LENGTH,
    MAX_TABLE_NAME_LENGTH,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    TABLE_NAME_PATTERN,
    VERSION,
    GoldRushPipeline,
)
from goldrush_operator.resource_credentials import (
    CLUSTER_CREDENTIALS_CRD_NAME,
    CREDENTIALS_CRD_NAME,
    KIND_CLUSTER_CREDENTIALS,
    KIND_CREDENTIALS,
    PLURAL_CLUSTER_CREDENTIALS,
    PLURAL_CREDENTIALS,
    SINGULAR_CLUSTER_CREDENTIALS,
    SINGULAR_CREDENTIALS,
    ClusterGoldRushCredentials,
    GoldRushCredentials,
)

CRD_FILE_NAME: Final = f"{GROUP}_{PLURAL}.yaml"
JSON_SCHEMA_PATH: Final = f"{GROUP}/{KIND.lower()}_{VERSION}.json"

_HEADER: Final = (
    "# Generated from goldrush_operator/resource.py by `goldrush-operator crd`; do not edit by hand.\n"
)

# Key order in every emitted schema node, for readable and stable YAML.
_KEY_ORDER: Final[tuple[str, ...]] = (
    "description",
    "type",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "default",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)
_DROPPED_KEYS: Final = frozenset({"title", "$defs"})
_READY = '.status.conditions[?(@.type=="Ready")]'

PRINTER_COLUMNS: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "PHASE",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Remote runtime phase.",
    },
    {
        "name": "READY",
        "type": "string",
        "jsonPath": f"{_READY}.status",
        "description": "Ready condition status.",
    },
    {
        "name": "PIPELINE",
        "type": "string",
        "jsonPath": ".status.pipelineId",
        "description": "Remote pipeline id.",
    },
    {
        "name": "TOPIC",
        "type": "string",
        "jsonPath": ".spec.topic",
        "description": "Source topic.",
    },
    {
        "name": "AGE",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    },
    {
        "name": "PROJECT",
        "type": "string",
        "jsonPath": ".spec.project",
        "description": "GoldRush project.",
        "priority": 1,
    },
    {
        "name": "DESTINATION",
        "type": "string",
        "jsonPath": ".spec.destination.type",
        "description": "Destination type.",
        "priority": 1,
    },
    {
        "name": "REASON",
        "type": "string",
        "jsonPath": f"{_READY}.reason",
        "description": "Ready condition reason.",
        "priority": 1,
    },
    {
        "name": "MESSAGE",
        "type": "string",
        "jsonPath": f"{_READY}.message",
        "description": "Ready condition message.",
        "priority": 1,
    },
)


_CREDENTIALS_COLUMNS: Final[tuple[dict[str, Any], ...]] = (
    {"name": "READY", "type": "string", "jsonPath": f"{_READY}.status", "description": "Ready condition status."},
    {"name": "REASON", "type": "string", "jsonPath": f"{_READY}.reason", "description": "Ready condition reason."},
    {"name": "USED BY", "type": "integer", "jsonPath": ".status.usedBy",
     "description": "Number of pipelines using this key."},
    {"name": "SECRET", "type": "string", "jsonPath": ".spec.serviceKeySecretRef.name",
     "description": "Secret holding the service key."},
    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp",
     "description": "Time since the object was created."},
    {"name": "MESSAGE", "type": "string", "jsonPath": f"{_READY}.message",
     "description": "Ready condition message.", "priority": 1},
)


@dataclass(frozen=True)
class CrdKind:
    """One custom resource the operator defines: its model and names."""

    model: type[BaseModel]
    kind: str
    plural: str
    singular: str
    crd_name: str
    scope: str
    short_names: tuple[str, ...]
    columns: tuple[dict[str, Any], ...]

    @property
    def crd_file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"

    @property
    def json_schema_path(self) -> str:
        return f"{GROUP}/{self.kind.lower()}_{VERSION}.json"


KINDS: Final[dict[str, CrdKind]] = {
    KIND: CrdKind(GoldRushPipeline, KIND, PLURAL, SINGULAR, CRD_NAME, "Namespaced", SHORT_NAMES, PRINTER_COLUMNS),
    KIND_CREDENTIALS: CrdKind(GoldRushCredentials, KIND_CREDENTIALS, PLURAL_CREDENTIALS, SINGULAR_CREDENTIALS,
                              CREDENTIALS_CRD_NAME, "Namespaced", ("grc",), _CREDENTIALS_COLUMNS),
    KIND_CLUSTER_CREDENTIALS: CrdKind(ClusterGoldRushCredentials, KIND_CLUSTER_CREDENTIALS,
                                      PLURAL_CLUSTER_CREDENTIALS, SINGULAR_CLUSTER_CREDENTIALS,
                                      CLUSTER_CREDENTIALS_CRD_NAME, "Cluster", ("cgrc",), _CREDENTIALS_COLUMNS),
}


class SchemaError(ValueError):
    """The pydantic schema contains something that has no structural OpenAPI equivalent."""


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    unknown = set(node) - set(_KEY_ORDER)
    if unknown:
        raise SchemaError(f"unsupported schema keys {sorted(unknown)}")
    return {key: node[key] for key in _KEY_ORDER if key in node}


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Inline `$ref`, collapse optional `anyOf [X, null]` / single `allOf`; outer keys win."""
    node = dict(node)
    if "$ref" in node:
        ref = node.pop("$ref")
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/$defs/") or name not in defs:
            raise SchemaError(f"{path}: unresolvable $ref {ref}")
        node = {**_resolve(defs[name], defs, path), **node}
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in node:
            branches = [b for b in node.pop(combinator) if b != {"type": "null"}]
            if len(branches) != 1:
                raise SchemaError(
                    f"{path}: {combinator} with {len(branches)} non-null branches is not structural"
                )
            node = {**_resolve(branches[0], defs, path), **node}
    return node


def _clean(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    for key in _DROPPED_KEYS:
        node.pop(key, None)
    if "default" in node and node["default"] is None:
        del node["default"]
    if node.get("type") == "null" or isinstance(node.get("type"), list):
        raise SchemaError(f"{path}: type {node.get('type')!r} is not structural")
    if "properties" in node:
        node["properties"] = {
            name: _clean(sub, defs, f"{path}.{name}") for name, sub in node["properties"].items()
        }
    if "items" in node:
        node["items"] = _clean(node["items"], defs, f"{path}[]")
    additional = node.get("additionalProperties")
    if additional is True:
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            raise SchemaError(f"{path}: free-form object needs x-kubernetes-preserve-unknown-fields")
        del node["additionalProperties"]
    elif additional is False:
        del node["additionalProperties"]  # unknown fields are pruned by the apiserver anyway
    elif isinstance(additional, dict):
        node["additionalProperties"] = _clean(additional, defs, f"{path}.*")
    if "x-kubernetes-validations" in node:
        node["x-kubernetes-validations"] = [
            {k: rule[k] for k in ("rule", "message", "messageExpression", "reason", "fieldPath") if k in rule}
            for rule in node["x-kubernetes-validations"]
        ]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{path}: node without type")
    return _ordered(node)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The cleaned structural OpenAPI schema of one of the CR models."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _clean(raw, raw.get("$defs", {}), model.__name__)


def openapi_schema(kind: str = KIND) -> dict[str, Any]:
    """The `openAPIV3Schema` of the served version of `kind`."""
    root = model_schema(KINDS[kind].model)
    props = root["properties"]
    props["apiVersion"] = {
        "description": "APIVersion defines the versioned schema of this representation of an object.",
        "type": "string",
    }
    props["kind"] = {
        "description": "Kind is a string value representing the REST resource this object represents.",
        "type": "string",
    }
    props["metadata"] = {"type": "object"}
    root["required"] = ["spec"]
    return root


def generate_crd(kind: str = KIND) -> dict[str, Any]:
    """The complete `apiextensions.k8s.io/v1` CustomResourceDefinition for `kind` (GoldRushPipeline)."""
    k = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": k.crd_name,
            "labels": {
                "app.kubernetes.io/name": "goldrush-operator",
                "app.kubernetes.io/part-of": "goldrush",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": k.kind,
                "listKind": f"{k.kind}List",
                "plural": k.plural,
                "singular": k.singular,
                "shortNames": list(k.short_names),
                "categories": list(CATEGORIES),
            },
            "scope": k.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in k.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Safe dumper that keeps long strings on one line and indents lists under their keys."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render_crd_yaml(kind: str = KIND) -> str:
    """`generate_crd(kind)` as YAML text: stable key order, so equal models give byte-equal output."""
    body = yaml.dump(
        generate_crd(kind),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return _HEADER + body


def _closed(node: Any) -> Any:
    """JSON Schema view of a structural schema node: objects with declared properties are closed (as the
    apiserver's strict field validation treats them), free-form ones stay open; Kubernetes-only keys go."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _closed(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def json_schema(kind: str = KIND) -> dict[str, Any]:
    """The served version's schema of `kind` as a standalone JSON Schema (draft 2020-12) of a whole manifest."""
    root = copy.deepcopy(openapi_schema(kind))
    props = root["properties"]
    props["apiVersion"] = {**props["apiVersion"], "enum": [f"{GROUP}/{VERSION}"]}
    props["kind"] = {**props["kind"], "enum": [kind]}
    props["metadata"] = {"description": "Standard object metadata.", "type": "object"}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{kind} {GROUP}/{VERSION}",
        **_closed(root),
    }
    schema["required"] = ["apiVersion", "kind", "spec"]
    if kind != KIND:
        return schema
    # Map keys are checked by CEL in the CRD; JSON Schema says the same with propertyNames.
    spec = schema["properties"]["spec"]["properties"]
    spec["transforms"]["propertyNames"] = {"pattern": TABLE_NAME_PATTERN, "maxLength": MAX_TABLE_NAME_LENGTH}
    spec["destination"]["properties"]["secretRefs"]["propertyNames"] = {
        "pattern": FIELD_PATH_PATTERN,
        "maxLength": MAX_FIELD_PATH_LENGTH,
    }
    return schema


def render_json_schema(kind: str = KIND) -> str:
    """`json_schema(kind)` as stable, indented JSON text."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def write_files(crd_dir: Path, schema_dir: Path) -> list[Path]:
    """Write every CRD and its published JSON Schema (the pipeline's first); returns the paths written."""
    written: list[Path] = []
    for kind, k in KINDS.items():
        crd_path = crd_dir / k.crd_file_name
        schema_path = schema_dir / k.json_schema_path
        crd_path.parent.mkdir(parents=True, exist_ok=True)
        schema_path.parent.mkdir(parents=True, exist_ok=True)
        crd_path.write_text(render_crd_yaml(kind))
        schema_path.write_text(render_json_schema(kind))
        written += [crd_path, schema_path]
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m goldrush_operator.crdgen`: regenerate crds/ and schemas/ (called by `make crd`)."""
    parser = argparse.ArgumentParser(description="write the CRDs and their JSON Schemas")
    parser.add_argument("--crd-dir", type=Path, default=Path("crds"))
    parser.add_argument("--schema-dir", type=Path, default=Path("schemas"))
    args = parser.parse_args(argv)
    for path in write_files(args.crd_dir, args.schema_dir):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
