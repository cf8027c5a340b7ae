"""`goldrush-operator import`, the pure part: remote pipelines -> ready-to-apply `GoldRushPipeline` manifests.

Called by `import_command` (the listing, filters, progress and output of the CLI) and by the unit tests.
`import_pipeline()` is the inverse of `payload.desired_payload()`:

- every API field maps back to the spec field it comes from (design.md section 2, "Spec -> API mapping");
  `pipelineName` is set only when the default `<namespace>-<metadata.name>` would differ;
- every secret field (`password`, `secret_access_key`, `sasl.password`, each `headers.<Name>`) and every other
  value the API returns masked (`******`) becomes a `spec.destination.secretRefs` entry naming a key of one
  Secret per pipeline (`<name>-destination`) that the user creates; a value is never exported, not even when
  the API returned one unmasked;
- a non-empty `abi_file` becomes a ConfigMap (`<name>-abi`, key `abi.json`) referenced by `spec.abi`.

Before a manifest is accepted it is checked like the apiserver would (field patterns, unknown destination
fields, the CEL rules) and then mapped forward again with `desired_payload()` and compared with the remote by
`payload.compute_diff()`, the operator's own comparison (secret fields compared as equal): a pipeline whose
manifest would not be in sync is reported as `NotImportable` with the reasons, never written half-right.

Object names (`object_names()`) are DNS-1123 labels derived from the remote names, deterministic, and made
unique with a short hash of the pipeline id when two pipelines would get the same name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import yaml
from pydantic import BaseModel, ValidationError

from goldrush_operator.payload import compute_diff, desired_payload, parse_abi_file
from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_PIPELINE_ID,
    API_VERSION,
    CONFIG_FIELD_TYPES,
    DATA_KEY_PATTERN,
    FIELD_PATH_PATTERN,
    KIND,
    MAX_TABLE_NAME_LENGTH,
    OBJECT_NAME_PATTERN,
    TABLE_NAME_PATTERN,
    DestinationConfigSchema,
    PipelineSpec,
)
from goldrush_operator.secret_values import MASK, SECRET_FIELD_PATHS, find_masks

MAX_OBJECT_NAME: Final = 63  # a DNS-1123 label: also valid as a label value and in generated names
_HASH_LENGTH: Final = 8
SECRET_SUFFIX: Final = "-destination"  # noqa: S105 - a name suffix, not a password
ABI_SUFFIX: Final = "-abi"
ABI_KEY: Final = "abi.json"
OBSERVE: Final = "Observe"

# Secret fields of destination_config as dotted paths; `*` = every key of that mapping (`headers.*`).
SECRET_PATHS: Final[tuple[str, ...]] = tuple(".".join(path[1:]) for path in SECRET_FIELD_PATHS)
_SECRET_MAPS: Final = frozenset(p.removesuffix(".*") for p in SECRET_PATHS if p.endswith(".*"))
_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class NotImportable(ValueError):
    """The remote pipeline cannot be expressed exactly as a GoldRushPipeline; `problems` say why."""

    def __init__(self, pipeline_id: str, problems: Sequence[str]) -> None:
        super().__init__(f"{pipeline_id}: " + "; ".join(problems))
        self.pipeline_id = pipeline_id
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Options:
    """What the user asked for besides the filters (all map to the manifest, none to the API)."""

    namespace: str
    observe: bool = False
    deletion_policy: str | None = None
    service_key_ref: tuple[str, str] | None = None  # (Secret name, key) for spec.serviceKeySecretRef


@dataclass(frozen=True)
class SecretKey:
    """One key of the Secret the user must create: which destination field it fills."""

    field: str
    key: str


@dataclass(frozen=True)
class Imported:
    """The manifests of one pipeline: the GoldRushPipeline, the ABI ConfigMap if any, the Secret to create."""

    pipeline_id: str
    remote_name: str
    name: str
    namespace: str
    pipeline: dict[str, Any]
    configmap: dict[str, Any] | None = None
    secret_name: str | None = None
    secret_keys: tuple[SecretKey, ...] = field(default=())

    def documents(self) -> list[dict[str, Any]]:
        """The objects to apply, ConfigMap first (the pipeline reads it)."""
        return [d for d in (self.configmap, self.pipeline) if d is not None]


# ------------------------------------------------------------------------------------------ names


def _slug(text: str, limit: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def base_name(remote_name: str, namespace: str) -> str:
    """The preferred object name: what `<namespace>-<name>` was built from, else a slug of the remote name."""
    prefix = f"{namespace}-"
    if remote_name.startswith(prefix):
        rest = remote_name[len(prefix):]
        if len(rest) <= MAX_OBJECT_NAME and _LABEL_RE.match(rest):
            return rest
    return _slug(remote_name, MAX_OBJECT_NAME) or "pipeline"


def _suffixed(base: str, pipeline_id: str, length: int = _HASH_LENGTH) -> str:
    digest = hashlib.sha256(pipeline_id.encode()).hexdigest()[:length]
    return f"{base[: MAX_OBJECT_NAME - length - 1].rstrip('-')}-{digest}"


def object_names(pipelines: Iterable[tuple[str, str]], namespace: str) -> dict[str, str]:
    """`{pipeline id: object name}` for `(id, remote name)` pairs: DNS-1123 labels, unique, deterministic.

    A name shared by several pipelines gets a short hash of the pipeline id appended for each of them (so no
    pipeline's name depends on the order of the listing); call it with the whole listing, not a filtered
    part, so that names do not change with the filters.
    """
    pairs = sorted(set(pipelines))
    bases = {pid: base_name(name or "", namespace) for pid, name in pairs}
    counts: dict[str, int] = {}
    for base in bases.values():
        counts[base] = counts.get(base, 0) + 1
    names = {pid: (base if counts[base] == 1 else _suffixed(base, pid)) for pid, base in bases.items()}
    taken: dict[str, str] = {}
    for pid in sorted(names, key=lambda p: (names[p] != bases[p], p)):  # plain names keep theirs
        name, length = names[pid], _HASH_LENGTH
        while name in taken:  # a hashed name met a plain one: a longer hash
            length += 4
            name = _suffixed(bases[pid], pid, length)
        taken[name] = pid
        names[pid] = name
    return names


# ------------------------------------------------------------------------------------------ destination


def _is_secret_path(path: str) -> bool:
    for pattern in SECRET_PATHS:
        head, _, last = pattern.rpartition(".")
        if pattern == path or (last == "*" and path.startswith(f"{head}.") and "." not in path[len(head) + 1:]):
            return True
    return False


def _split(node: Mapping[str, Any], prefix: str, secrets: list[str], problems: list[str]) -> dict[str, Any]:
    """The non-secret part of `node`; secret and masked leaves go to `secrets` (dotted paths)."""
    plain: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if "." in str(key):
            problems.append(f"destination_config key {path!r} contains a dot, which a field path cannot express")
            continue
        if path in _SECRET_MAPS:  # every value of this mapping is a secret (webhook headers)
            if isinstance(value, Mapping):
                _split(value, path, secrets, problems)
            elif value not in (None, ""):
                problems.append(f"destination_config.{path} is masked or set as a whole: its keys are unknown")
            continue
        if _is_secret_path(path) or value == MASK:
            if isinstance(value, Mapping | list):
                problems.append(f"destination_config.{path} is a secret field holding a {type(value).__name__}")
            elif value not in (None, ""):
                secrets.append(path)
            continue
        if isinstance(value, Mapping):
            child = _split(value, path, secrets, problems)
            if child:
                plain[key] = child
            continue
        masks = find_masks(value, f"destination_config.{path}")
        if masks:
            problems.append(f"{', '.join(masks)}: a masked value inside a list cannot come from a Secret")
            continue
        plain[key] = copy.deepcopy(value)
    return plain


def split_destination_config(
    destination_type: str, config: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """`(non-secret config, secret field paths, problems)` of a remote `destination_config`."""
    problems: list[str] = []
    body = dict(config)
    echoed = body.pop("type", None)
    if echoed not in (None, destination_type):
        problems.append(f"destination_config.type {echoed!r} differs from destination_type {destination_type!r}")
    secrets: list[str] = []
    plain = _split(body, "", secrets, problems)
    return plain, sorted(secrets), problems


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for arg in (*get_args(annotation), annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _unknown_fields(node: Mapping[str, Any], model: type[BaseModel], prefix: str) -> list[str]:
    """Paths in `node` that the CRD schema does not declare (the apiserver would prune or reject them)."""
    out: list[str] = []
    known = {(info.alias or name): info for name, info in model.model_fields.items()}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        info = known.get(key)
        if info is None:
            out.append(path)
            continue
        child = _model_of(info.annotation)
        if child is not None and isinstance(value, Mapping):
            out += _unknown_fields(value, child, path)
    return out


def config_problems(destination_type: str, config: Mapping[str, Any]) -> list[str]:
    """What the CRD's schema and CEL rules would reject in a (non-secret) `spec.destination.config`."""
    problems = [
        f"destination_config.{path} is not a documented {destination_type} field of the CRD"
        for path in _unknown_fields(config, DestinationConfigSchema, "")
    ]
    if problems:
        return problems
    try:
        DestinationConfigSchema.model_validate(dict(config), strict=True)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"destination_config.{where}: {error['msg']}")
    for key in config:
        types = CONFIG_FIELD_TYPES.get(key, ())
        if types and destination_type not in types:
            problems.append(f"destination_config.{key} is only valid for destination type {' or '.join(types)}")
    batch = config.get("batch_size")
    if destination_type == "sqs" and isinstance(batch, int) and batch > 10:
        problems.append("destination_config.batch_size must be at most 10 for destination type sqs")
    return problems


# ------------------------------------------------------------------------------------------ spec


def _secret_key(field_path: str, used: set[str]) -> str:
    key = re.sub(r"[^-._a-zA-Z0-9]", "_", field_path)
    candidate, n = key, 2
    while candidate in used:
        candidate, n = f"{key}-{n}", n + 1
    used.add(candidate)
    return candidate


def _block(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def spec_problems(spec: Mapping[str, Any]) -> list[str]:
    """What the CRD (OpenAPI schema and CEL rules) would reject in the spec besides the destination config."""
    problems: list[str] = []
    try:
        PipelineSpec.model_validate(spec)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"spec.{where}: {error['msg']}")
    for table in spec.get("transforms") or {}:
        if len(table) > MAX_TABLE_NAME_LENGTH or not re.match(TABLE_NAME_PATTERN, table):
            problems.append(f"transforms key {table!r} is not a plain SQL table name")
    for path in (spec.get("destination") or {}).get("secretRefs") or {}:
        if not re.match(FIELD_PATH_PATTERN, path):
            problems.append(f"destination_config.{path} cannot be named in spec.destination.secretRefs")
    execution = spec.get("execution") or {}
    mode, start, stop = execution.get("mode"), execution.get("startFrom"), execution.get("stopAt")
    if mode == "bounded" and stop is None:
        problems.append("execution_mode is bounded but execution_stop_from is empty")
    if mode == "unbounded" and stop is not None:
        problems.append("execution_mode is unbounded but execution_stop_from is set")
    if start is not None and stop is not None and str(start).isdigit() and str(stop).isdigit() and int(stop) < int(
        start
    ):
        problems.append("execution_stop_from is below execution_start_from")
    if spec["destination"]["type"] == "kafka" and (spec.get("transforms") or spec.get("abi")):
        problems.append("a kafka pipeline with transforms or ABI settings cannot be expressed (raw passthrough)")
    return problems


def import_pipeline(remote: Mapping[str, Any], name: str, options: Options) -> Imported:
    """The manifests that adopt `remote` (an API pipeline object) as `options.namespace`/`name`.

    Raises `NotImportable` when the manifest would be rejected by the CRD or would not be in sync.
    """
    pipeline_id = str(remote.get("id") or "")
    ns = options.namespace
    problems: list[str] = []
    if not re.match(OBJECT_NAME_PATTERN, name) or len(name) > MAX_OBJECT_NAME:
        problems.append(f"object name {name!r} is not a DNS-1123 label")
    dest_type = str(remote.get("destination_type") or "")
    config, secret_fields, config_issues = split_destination_config(dest_type, remote.get("destination_config") or {})
    problems += config_issues + config_problems(dest_type, config)

    destination: dict[str, Any] = {"type": dest_type}
    if config:
        destination["config"] = config
    secret_name = f"{name}{SECRET_SUFFIX}" if secret_fields else None
    used: set[str] = set()
    keys = tuple(SecretKey(f, _secret_key(f, used)) for f in secret_fields)
    if keys:
        destination["secretRefs"] = {k.field: {"name": secret_name, "key": k.key} for k in keys}
        problems += [f"Secret key {k.key!r} is not a valid data key" for k in keys if not re.match(DATA_KEY_PATTERN,
                                                                                                   k.key)]

    spec: dict[str, Any] = {}
    remote_name = str(remote.get("name") or "")
    if remote_name != f"{ns}-{name}":
        spec["pipelineName"] = remote_name
    spec["project"] = remote.get("project")
    if remote.get("description"):
        spec["description"] = remote["description"]
    spec["topic"] = remote.get("topic")
    spec["destination"] = destination
    if remote.get("transforms"):
        spec["transforms"] = dict(remote["transforms"])
    abi: dict[str, Any] = {}
    if remote.get("abi_contract_addresses"):
        abi["contractAddresses"] = list(remote["abi_contract_addresses"])
    if remote.get("abi_unmatched"):
        abi["unmatched"] = remote["abi_unmatched"]
    abi_file = remote.get("abi_file") or {}
    configmap: dict[str, Any] | None = None
    if abi_file:
        if find_masks(abi_file):
            problems.append("abi_file holds a masked value")
        cm_name = f"{name}{ABI_SUFFIX}"
        abi["configMapRef"] = {"name": cm_name, "key": ABI_KEY}
        configmap = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm_name, "namespace": ns},
            "data": {ABI_KEY: json.dumps(abi_file, indent=2, ensure_ascii=False) + "\n"},
        }
    if abi:
        spec["abi"] = abi
    execution: dict[str, Any] = {"mode": remote.get("execution_mode")}
    start, stop = _block(remote.get("execution_start_from")), _block(remote.get("execution_stop_from"))
    if start is not None:
        execution["startFrom"] = start
    if stop is not None:
        execution["stopAt"] = stop
    spec["execution"] = execution
    status = remote.get("status")
    if status == "paused":
        spec["paused"] = True
    elif status not in (None, "running"):
        problems.append(f"status {status!r} is neither running nor paused")
    if options.observe:
        spec["managementPolicies"] = [OBSERVE]
    if options.deletion_policy:
        spec["deletionPolicy"] = options.deletion_policy
    if options.service_key_ref is not None:
        spec["serviceKeySecretRef"] = {"name": options.service_key_ref[0], "key": options.service_key_ref[1]}

    problems += spec_problems(spec)
    if not problems:
        problems += _round_trip_problems(remote, spec, ns, name, secret_fields, abi_file)
    if problems:
        raise NotImportable(pipeline_id, problems)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": {ANNOTATION_ADOPT: "true", ANNOTATION_PIPELINE_ID: pipeline_id},
        },
        "spec": spec,
    }
    return Imported(pipeline_id, remote_name, name, ns, manifest, configmap, secret_name, keys)


def _round_trip_problems(
    remote: Mapping[str, Any], spec: Mapping[str, Any], namespace: str, name: str, secret_fields: Sequence[str],
    abi_file: Mapping[str, Any],
) -> list[str]:
    """Map the spec forward as the operator does and compare with the remote as the operator does."""
    model = PipelineSpec.model_validate(spec)
    placeholders = dict.fromkeys(secret_fields, "imported")  # compared by hash, never by value
    abi = parse_abi_file(json.dumps(abi_file)) if abi_file else None
    desired = desired_payload(namespace, name, model, placeholders, abi)
    hashes = dict.fromkeys(secret_fields, "trusted")
    diff = compute_diff(desired, remote, hashes, hashes)
    out = [f"{f} would be written on apply" for f in diff.changed_fields]
    out += [f"{f} would differ (immutable)" for f in sorted(diff.immutable)]
    if diff.status is not None:
        out.append(f"status would be set to {diff.status}")
    return out


# ------------------------------------------------------------------------------------------ output


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def secret_commands(item: Imported) -> list[str]:
    """The `kubectl create secret` command (with placeholders, never values) for the Secret of `item`."""
    if not item.secret_name:
        return []
    lines = [f"kubectl -n {item.namespace} create secret generic {item.secret_name} \\"]
    for i, key in enumerate(item.secret_keys):
        end = " \\" if i < len(item.secret_keys) - 1 else ""
        lines.append(f"  --from-literal={key.key}='<destination_config.{key.field}>'{end}")
    return lines


def render(item: Imported) -> str:
    """The YAML documents of one pipeline, with a comment naming the Secret keys to create."""
    head = [f"# GoldRush pipeline {item.pipeline_id} {json.dumps(item.remote_name, ensure_ascii=False)}"]
    if item.secret_name:
        head.append(f"# Secret values are never exported: create Secret {item.secret_name} before applying:")
        head += [f"#   {line}" for line in secret_commands(item)]
    return "\n".join(head) + "\n" + "---\n".join(_dump(doc) for doc in item.documents())


def render_all(items: Sequence[Imported]) -> str:
    """All pipelines as one multi-document YAML stream."""
    return "---\n".join(render(item) for item in items)
