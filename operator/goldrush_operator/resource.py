"""Pydantic models of the `GoldRushPipeline` custom resource (spec and status): the one source of truth.

The CRD in `crds/` is generated from these models by `goldrush_operator.crdgen` (called by the CLI `crd`
command and by the drift test), so every field carries a description (it becomes `kubectl explain` text),
and the Kubernetes-only schema details (CEL rules, preserve-unknown-fields, list-map keys) are attached
with `json_schema_extra`.

The controller parses the raw dicts kopf hands it with `PipelineSpec.model_validate(body["spec"])` and
`PipelineStatus.model_validate(body.get("status") or {})`. Models accept camelCase (as stored) and
snake_case names and ignore unknown fields, so an older operator never chokes on a newer object.

Pure Python + pydantic; no Kubernetes client or HTTP imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.config import JsonDict, JsonValue

GROUP: Final = "goldrush.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "GoldRushPipeline"
PLURAL: Final = "goldrushpipelines"
SINGULAR: Final = "goldrushpipeline"
SHORT_NAMES: Final = ("grp",)
CATEGORIES: Final = ("goldrush",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Annotations and finalizer (design §2).
ANNOTATION_PIPELINE_ID: Final = "goldrush.dev/pipeline-id"
ANNOTATION_PAUSE_RECONCILIATION: Final = "goldrush.dev/pause-reconciliation"
ANNOTATION_RECONCILE_REQUESTED_AT: Final = "goldrush.dev/reconcile-requested-at"
ANNOTATION_FLUX_REQUESTED_AT: Final = "reconcile.fluxcd.io/requestedAt"
ANNOTATION_ADOPT: Final = "goldrush.dev/adopt"
ANNOTATION_CREATE_PENDING: Final = "goldrush.dev/create-pending"
FINALIZER: Final = "goldrush.dev/finalizer"
# The finalizer name kopf is configured with; no kopf handler requires one, so kopf never adds it (and never
# removes `FINALIZER`, which the operator manages itself).
KOPF_FINALIZER: Final = "goldrush.dev/kopf"

DestinationType = Literal["postgres", "clickhouse", "kafka", "object_storage", "sqs", "webhook"]
DESTINATION_TYPES: Final[tuple[str, ...]] = (
    "postgres",
    "clickhouse",
    "kafka",
    "object_storage",
    "sqs",
    "webhook",
)
ExecutionMode = Literal["bounded", "unbounded"]
DeletionPolicy = Literal["Delete", "Orphan"]
# Crossplane's management actions. `LateInitialize` is accepted (so Crossplane-style lists validate) and does
# nothing: the operator never writes spec.
ManagementAction = Literal["*", "Observe", "Create", "Update", "Delete", "LateInitialize"]
MANAGEMENT_ACTIONS: Final[tuple[str, ...]] = ("*", "Observe", "Create", "Update", "Delete", "LateInitialize")

# Runtime phases as the API's status endpoint reports them, plus PENDING before the remote exists.
PHASES: Final[tuple[str, ...]] = (
    "PENDING",
    "DEPLOYING",
    "RUNNING",
    "PAUSED",
    "FAILED",
    "STOPPING",
    "STOPPED",
)

# One topic segment: lowercase letters and digits, inner hyphens; entity segments may also hold `_`, and the
# entity may itself be dotted (`swap.v3`). No empty segment and no leading or trailing dot.
_TOPIC_SEGMENT: Final = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_ENTITY_SEGMENT: Final = r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?"
TOPIC_PATTERN: Final = (
    rf"^{_TOPIC_SEGMENT}\.{_TOPIC_SEGMENT}\.{_TOPIC_SEGMENT}\.block\.{_ENTITY_SEGMENT}(\.{_ENTITY_SEGMENT})*$"
)
# A decimal block height without leading zeros, so that CEL can order two of them by (length, text).
BLOCK_HEIGHT_PATTERN: Final = r"^(0|[1-9][0-9]*)$"
# A GoldRush project: it becomes the destination schema name (`-` -> `_`), the consumer group and the
# checkpoint/object path, so it is a lowercase identifier without separators that could climb a path.
PROJECT_PATTERN: Final = r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
# A transform key is an output table name: a plain SQL identifier (no quoting, no schema prefix).
TABLE_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A Kubernetes object name (DNS-1123 subdomain) and a Secret/ConfigMap data key.
OBJECT_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"
CONTRACT_ADDRESS_PATTERN: Final = r"^[0-9A-Za-z]+$"

# The API's read mask for secret values; never a value a user means to send.
SECRET_MASK: Final = "******"  # noqa: S105 - the mask, not a password

# Secret fields of destination_config, per destination type (goldrush-api destinations section). They are
# declared in the schema only to reject them inline (manifests live in Git); each is set from a Secret
# through spec.destination.secretRefs. Any other key that is not a documented field (other spellings such
# as `Password`, literal dotted keys such as "auth.password") is an unknown field: rejected by strict field
# validation (kubectl's default) and otherwise pruned, so it is never stored nor sent.
SECRET_CONFIG_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "password": ("postgres", "clickhouse"),
    "sasl.password": ("kafka",),
    "secret_access_key": ("object_storage", "sqs"),
    "headers": ("webhook",),
}
FORBIDDEN_INLINE_CONFIG_KEYS: Final[tuple[str, ...]] = tuple(SECRET_CONFIG_FIELDS)

# Bounds. They keep the CEL cost estimate of the admission rules small and the largest valid spec well below
# the 256 KiB that client-side `kubectl apply` can record in its last-applied annotation (and so far below
# etcd's 1.5 MiB request limit); tests/unit/test_crd.py computes that largest size from the schema.
MAX_NAME_LENGTH: Final = 253
MAX_PROJECT_LENGTH: Final = 63
MAX_TABLE_NAME_LENGTH: Final = 63
MAX_TEXT_LENGTH: Final = 4096
MAX_TRANSFORMS: Final = 16
MAX_SQL_LENGTH: Final = 4096
MAX_SECRET_REFS: Final = 32
MAX_FIELD_PATH_LENGTH: Final = 256
MAX_CONTRACT_ADDRESSES: Final = 256
MAX_CONTRACT_ADDRESS_LENGTH: Final = 64
MAX_URL_LENGTH: Final = 2048
MAX_SETTING_LENGTH: Final = 256
MAX_HEADERS: Final = 32
MAX_CONDITIONS: Final = 16
MAX_STATUS_SECRETS: Final = 64


ContractAddress = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTRACT_ADDRESS_LENGTH, pattern=CONTRACT_ADDRESS_PATTERN),
    Field(description="A contract address, for example 0x-prefixed hex on EVM chains or base58 on Solana."),
]
TransformSql = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SQL_LENGTH),
    Field(description="One SQL SELECT whose FROM names the same table as the key."),
]


def deletes_remote(management_policies: Sequence[str] | None, deletion_policy: str | None) -> bool:
    """Crossplane's rule: a list other than `["*"]` decides alone (Delete in it or not); `*` follows deletionPolicy."""
    policies = list(management_policies or ["*"])
    if "*" in policies:
        return (deletion_policy or "Delete") == "Delete"
    return "Delete" in policies


def _rule(rule: str, message: str, **extra: str) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}


class CRModel(BaseModel):
    """Base of every CR model: camelCase aliases, snake_case accepted too, unknown fields ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def to_k8s(self) -> dict[str, Any]:
        """The camelCase dict as stored in Kubernetes, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------------------------- spec


class SecretKeyRef(CRModel):
    """A key in a Secret in the same namespace as the GoldRushPipeline."""

    name: str = Field(
        description="Name of the Secret, in the same namespace as the GoldRushPipeline.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
    )
    key: str = Field(
        description="Key inside the Secret's data whose value is used.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=DATA_KEY_PATTERN,
    )


class CredentialsRef(CRModel):
    """A GoldRushCredentials (same namespace) or ClusterGoldRushCredentials whose service key a pipeline uses."""

    kind: Literal["GoldRushCredentials", "ClusterGoldRushCredentials"] = Field(
        description=(
            "GoldRushCredentials (in the pipeline's namespace) or ClusterGoldRushCredentials (cluster-scoped; "
            "usable only from namespaces its spec.namespaceSelector matches)."
        )
    )
    name: str = Field(
        description="Name of the credentials object.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
    )


class ConfigMapKeyRef(CRModel):
    """A key in a ConfigMap in the same namespace as the GoldRushPipeline."""

    name: str = Field(
        description="Name of the ConfigMap, in the same namespace as the GoldRushPipeline.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
    )
    key: str = Field(
        description="Key inside the ConfigMap's data that holds the ABI JSON.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=DATA_KEY_PATTERN,
    )


# ------------------------------------------------------------------------- destination_config schema
#
# `spec.destination.config` stays a plain dict for the controller (it is sent as destination_config as is);
# its *schema* is the typed union of the documented fields of all destination types below, so that every key
# and value is visible to the apiserver's CEL rules and to `kubectl explain`.

_MASK_RULE_TEXT = f"self != '{SECRET_MASK}'"


def _setting(
    field: str,
    types: tuple[str, ...],
    text: str,
    *,
    max_length: int = MAX_SETTING_LENGTH,
    pattern: str | None = None,
    alias: str | None = None,
) -> Any:
    """A documented string setting of destination_config: bounded, never the API's mask."""
    return Field(
        default=None,
        alias=alias,
        max_length=max_length,
        pattern=pattern,
        description=f"({', '.join(types)}) {text}",
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    _MASK_RULE_TEXT,
                    f"spec.destination.config.{field} must not be the API's secret mask {SECRET_MASK}; "
                    "set the real value (secret values via spec.destination.secretRefs)",
                )
            ]
        },
    )


def _count(types: tuple[str, ...], text: str, *, ge: int = 0, le: int | None = None) -> Any:
    """A documented integer setting of destination_config."""
    return Field(default=None, ge=ge, le=le, description=f"({', '.join(types)}) {text}")


def _secret_field(field: str, types: tuple[str, ...]) -> str:
    """Description of a declared-only-to-be-rejected secret field."""
    ref = f'secretRefs["{field}"]' if "." in field else f"secretRefs.{field}"
    return (
        f"({', '.join(types)}) Secret: never set inline (the manifest would carry it into Git); set it from a "
        f"Secret with spec.destination.{ref}."
    )


_SQL_DESTINATIONS: Final = ("postgres", "clickhouse")
_AWS_DESTINATIONS: Final = ("object_storage", "sqs")
_BATCHING: Final = ("postgres", "clickhouse", "object_storage", "sqs", "webhook")


class KafkaSasl(CRModel):
    """Kafka SASL settings; the password is set from a Secret (secretRefs["sasl.password"])."""

    mechanism: str | None = _setting(
        "sasl.mechanism", ("kafka",), "SASL mechanism, for example SCRAM-SHA-512.", max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
    )
    username: str | None = _setting("sasl.username", ("kafka",), "SASL user name.")
    password: str | None = Field(
        default=None, max_length=MAX_SETTING_LENGTH, description=_secret_field("sasl.password", ("kafka",))
    )


class WebhookRetry(CRModel):
    """Webhook retry policy: exponential backoff doubling from backoffMs up to maxAttempts."""

    max_attempts: int | None = _count(("webhook",), "Maximum delivery attempts (default 3).", le=100)
    backoff_ms: int | None = _count(("webhook",), "First retry delay in milliseconds (default 1000).")


class DestinationConfigSchema(CRModel):
    """Schema of spec.destination.config: the documented destination_config fields of every type."""

    url: str | None = _setting(
        "url",
        ("postgres", "clickhouse", "webhook"),
        "Connection URL, for example postgresql://host:5432/db, clickhouse://host:8123/db, or the webhook's "
        "https URL. A URL that embeds credentials belongs in secretRefs.url instead.",
        max_length=MAX_URL_LENGTH,
    )
    user: str | None = _setting("user", _SQL_DESTINATIONS, "Database user.")
    password: str | None = Field(
        default=None, max_length=MAX_SETTING_LENGTH, description=_secret_field("password", _SQL_DESTINATIONS)
    )
    batch_size: int | None = _count(
        _BATCHING,
        "Records per write: rows per INSERT (postgres 1000, clickhouse 10000), records per file "
        "(object_storage 10000), messages per batch (sqs, at most 10), records per request (webhook 1).",
        ge=1,
        le=1_000_000,
    )
    flush_interval_ms: int | None = _count(_SQL_DESTINATIONS, "Maximum milliseconds between flushes (5000).")
    bootstrap_servers: str | None = _setting(
        "bootstrap_servers", ("kafka",), "Comma-separated brokers, for example broker1:9092,broker2:9092.",
        max_length=MAX_URL_LENGTH,
    )
    output_topic: str | None = _setting(
        "output_topic", ("kafka",), "Kafka topic written to.", max_length=249, pattern=r"^[A-Za-z0-9._-]+$"
    )
    sasl: KafkaSasl | None = Field(
        default=None, description="(kafka) SASL settings: mechanism and username; the password from secretRefs."
    )
    sasl_password_literal: str | None = Field(
        default=None,
        alias="sasl.password",
        max_length=MAX_SETTING_LENGTH,
        description=_secret_field("sasl.password", ("kafka",)),
    )
    provider: Literal["s3", "gcs", "r2"] | None = Field(
        default=None, description="(object_storage) Storage provider: s3, gcs or r2."
    )
    bucket: str | None = _setting("bucket", ("object_storage",), "Bucket name.", max_length=222)
    base_path: str | None = _setting(
        "base_path", ("object_storage",), "Key prefix inside the bucket.", max_length=1024
    )
    format: Literal["json", "parquet"] | None = Field(
        default=None, description="(object_storage) File format: json (NDJSON, default) or parquet."
    )
    compression: Literal["none", "gzip", "snappy", "zstd"] | None = Field(
        default=None, description="(object_storage) Compression: none (default), gzip, snappy or zstd."
    )
    partition_by: list[Annotated[Literal["hour", "day"], Field(description="hour or day.")]] | None = Field(
        default=None, max_length=2, description='(object_storage) Partitioning: ["hour"] (default) or ["day"].'
    )
    batch_interval_ms: int | None = _count(
        ("object_storage",), "Maximum milliseconds between file writes (60000)."
    )
    region: str | None = _setting("region", _AWS_DESTINATIONS, "Region; required for s3, r2 and sqs.", max_length=64)
    endpoint: str | None = _setting(
        "endpoint", ("object_storage",), "S3-compatible endpoint URL; required for r2.", max_length=MAX_URL_LENGTH
    )
    access_key_id: str | None = _setting(
        "access_key_id", _AWS_DESTINATIONS, "Access key id (may also come from secretRefs.access_key_id)."
    )
    secret_access_key: str | None = Field(
        default=None,
        max_length=MAX_SETTING_LENGTH,
        description=_secret_field("secret_access_key", _AWS_DESTINATIONS),
    )
    queue_url: str | None = _setting("queue_url", ("sqs",), "Queue URL; a .fifo queue enables FIFO mode.",
                                     max_length=MAX_URL_LENGTH)
    message_group_id: str | None = _setting(
        "message_group_id", ("sqs",), "FIFO message group id (default: derived per record).", max_length=128
    )
    method: Literal["POST", "PUT", "PATCH"] | None = Field(
        default=None, description="(webhook) HTTP method: POST (default), PUT or PATCH."
    )
    headers: dict[
        str, Annotated[str, StringConstraints(max_length=MAX_SETTING_LENGTH), Field(description="Header value.")]
    ] | None = Field(
        default=None,
        max_length=MAX_HEADERS,
        description=(
            "(webhook) Secret: header values are credentials, so never set inline; set each header from a "
            'Secret with spec.destination.secretRefs["headers.<Name>"].'
        ),
    )
    timeout_ms: int | None = _count(("webhook",), "Request timeout in milliseconds (10000).")
    retry: WebhookRetry | None = Field(default=None, description="(webhook) Retry policy.")


_CONFIG_DESCRIPTION = (
    "Non-secret destination settings, sent as the API's destination_config (the operator adds `type`). "
    "By spec.destination.type: postgres and clickhouse: url, user, batch_size, flush_interval_ms. "
    "kafka: bootstrap_servers, output_topic, sasl.mechanism, sasl.username. object_storage: provider, "
    "bucket, base_path, format, compression, partition_by, batch_size, batch_interval_ms, region, endpoint, "
    "access_key_id. sqs: queue_url, region, access_key_id, batch_size, message_group_id. webhook: url, "
    "method, batch_size, timeout_ms, retry. Secret values (password, sasl.password, secret_access_key, "
    "headers.<Name>) come from Secrets through spec.destination.secretRefs."
)


def _config_rules() -> list[JsonValue]:
    """CEL rules of spec.destination.config: every secret field is rejected inline, naming its secretRef."""
    rules: list[JsonValue] = []
    for field in SECRET_CONFIG_FIELDS:
        if field == "sasl.password":
            rules.append(
                _rule(
                    "!has(self.sasl) || !has(self.sasl.password)",
                    "spec.destination.config.sasl.password must not be set inline; "
                    'use spec.destination.secretRefs["sasl.password"] to reference a Secret',
                )
            )
            rules.append(
                _rule(
                    "!has(self.sasl__dot__password)",
                    'spec.destination.config["sasl.password"] must not be set inline; '
                    'use spec.destination.secretRefs["sasl.password"] to reference a Secret',
                )
            )
        elif field == "headers":
            rules.append(
                _rule(
                    "!has(self.headers)",
                    "spec.destination.config.headers must not be set inline; "
                    'use spec.destination.secretRefs["headers.<Name>"] to reference a Secret per header',
                )
            )
        else:
            rules.append(
                _rule(
                    f"!has(self.{field})",
                    f"spec.destination.config.{field} must not be set inline; "
                    f"use spec.destination.secretRefs.{field} to reference a Secret",
                )
            )
    return rules


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with every local `#/$defs/<Name>` reference replaced by a copy of its definition."""
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline_refs(defs[ref.rsplit("/", 1)[-1]], defs), **_inline_refs(rest, defs)}
    return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}


def _config_schema() -> dict[str, Any]:
    """The JSON schema of spec.destination.config: pydantic's schema of the documented fields, refs inlined."""
    raw = DestinationConfigSchema.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _inline_refs(raw, raw.get("$defs", {}))
    schema.pop("title", None)
    schema["description"] = _CONFIG_DESCRIPTION
    schema["maxProperties"] = len(schema["properties"])
    schema["x-kubernetes-validations"] = _config_rules()
    return schema


# Which destination types each documented config field belongs to (from the `(types)` description prefix).
CONFIG_FIELD_TYPES: Final[dict[str, tuple[str, ...]]] = {
    (info.alias or name): tuple(
        str(info.description).split(")", 1)[0].lstrip("(").split(", ")
    )
    for name, info in DestinationConfigSchema.model_fields.items()
}


def _applicability_rules() -> list[JsonValue]:
    """CEL rules of spec.destination: a config field set for a destination type it does not belong to."""
    rules: list[JsonValue] = []
    for field, types in CONFIG_FIELD_TYPES.items():
        if set(types) == set(DESTINATION_TYPES) or field in SECRET_CONFIG_FIELDS:
            continue
        cel_field = field.replace(".", "__dot__")
        allowed = ", ".join(f"'{t}'" for t in types)
        rules.append(
            _rule(
                f"!has(self.config) || !has(self.config.{cel_field}) || self.type in [{allowed}]",
                f"spec.destination.config.{field} is only valid for destination type {' or '.join(types)}",
            )
        )
    rules.append(
        _rule(
            "self.type != 'sqs' || !has(self.config) || !has(self.config.batch_size) "
            "|| self.config.batch_size <= 10",
            "spec.destination.config.batch_size must be at most 10 for destination type sqs",
        )
    )
    return rules


# A secretRefs key: a destination_config field, dotted for nested keys. In the CEL string literal `[.]`
# stands for `\.` (a backslash-dot is an invalid escape in a CEL string).
FIELD_PATH_PATTERN: Final = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
_FIELD_PATH_RULE = "^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$"


class Destination(CRModel):
    """Where the pipeline writes: the destination kind, its settings and Secret references."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _applicability_rules()})

    type: DestinationType = Field(
        description=(
            "Destination kind; sent as destination_type and destination_config.type. Immutable. One of "
            "postgres, clickhouse, kafka, object_storage, sqs, webhook."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [_rule("self == oldSelf", "spec.destination.type is immutable")]
        },
    )
    config: Annotated[dict[str, Any] | None, WithJsonSchema(_config_schema())] = Field(
        default=None, description=_CONFIG_DESCRIPTION
    )
    secret_refs: dict[str, SecretKeyRef] | None = Field(
        default=None,
        alias="secretRefs",
        max_length=MAX_SECRET_REFS,
        description=(
            "Secret-valued destination settings: map of destination_config field to a Secret key in this "
            "namespace. A dotted field sets a nested key, for example `sasl.password` or "
            "`headers.Authorization`. Values are read at every reconcile and on Secret changes; only keyed "
            "hashes are recorded in status."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    f"self.all(f, size(f) <= {MAX_FIELD_PATH_LENGTH} && f.matches('{_FIELD_PATH_RULE}'))",
                    "spec.destination.secretRefs keys must be destination_config field names, "
                    "dot-separated for nested fields (for example sasl.password)",
                ),
                _rule(
                    "!('type' in self)",
                    "spec.destination.secretRefs must not set `type`; it comes from spec.destination.type",
                ),
            ]
        },
    )


class Abi(CRModel):
    """ABI decoding settings (only for `logs` and `transactions` topics; not for kafka destinations)."""

    contract_addresses: list[ContractAddress] | None = Field(
        default=None,
        alias="contractAddresses",
        max_length=MAX_CONTRACT_ADDRESSES,
        description="Only decode events/calls of these contract addresses; empty means no filtering.",
    )
    unmatched: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[a-z_]*$",
        description=(
            "What to do with records that match no ABI entry, sent as abi_unmatched: `raw` writes them to "
            "raw_* tables; empty drops them."
        ),
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        alias="configMapRef",
        description="ConfigMap key holding the ABI JSON (standard Solidity ABI), sent as abi_file.",
    )


class Execution(CRModel):
    """Execution mode and block range."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "self.mode != 'bounded' || has(self.stopAt)",
                    "spec.execution.stopAt is required when spec.execution.mode is bounded",
                ),
                _rule(
                    "self.mode == 'bounded' || !has(self.stopAt)",
                    "spec.execution.stopAt is only allowed when spec.execution.mode is bounded",
                ),
                # Decimal strings without leading zeros (the pattern): longer is larger, equal length
                # compares as text. No int() conversion, so no overflow on 20-digit heights.
                _rule(
                    "!has(self.startFrom) || !has(self.stopAt) || (size(self.stopAt) == size(self.startFrom) "
                    "? self.stopAt >= self.startFrom : size(self.stopAt) > size(self.startFrom))",
                    "spec.execution.stopAt must be greater than or equal to spec.execution.startFrom",
                    fieldPath=".stopAt",
                ),
            ]
        }
    )

    mode: ExecutionMode = Field(
        description=(
            "bounded (from startFrom to stopAt) or unbounded (continuous from startFrom); sent as "
            "execution_mode. Immutable."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [_rule("self == oldSelf", "spec.execution.mode is immutable")]
        },
    )
    start_from: str | None = Field(
        default=None,
        alias="startFrom",
        max_length=20,
        pattern=BLOCK_HEIGHT_PATTERN,
        description="First block height, as a decimal string; sent as execution_start_from.",
    )
    stop_at: str | None = Field(
        default=None,
        alias="stopAt",
        max_length=20,
        pattern=BLOCK_HEIGHT_PATTERN,
        description=(
            "Last block height, as a decimal string; required when mode is bounded. Sent as "
            "execution_stop_from."
        ),
    )


class PipelineSpec(CRModel):
    """Desired state of a GoldRush pipeline."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "self.destination.type != 'kafka' || !has(self.transforms) || size(self.transforms) == 0",
                    "spec.transforms is not supported for destination type kafka (raw passthrough)",
                ),
                _rule(
                    "self.destination.type != 'kafka' || !has(self.abi)",
                    "spec.abi is not supported for destination type kafka (raw passthrough)",
                ),
                # Crossplane resolves Orphan + a list naming Delete to Delete; an explicit contradiction is
                # refused instead, so that no accepted object deletes by surprise.
                _rule(
                    "!has(self.managementPolicies) || !has(self.deletionPolicy) || self.deletionPolicy != "
                    "'Orphan' || !('Delete' in self.managementPolicies)",
                    "spec.deletionPolicy Orphan contradicts spec.managementPolicies naming Delete; drop Delete "
                    "from the list (then the remote pipeline is left in place) or set deletionPolicy Delete",
                    fieldPath=".deletionPolicy",
                ),
                # A pause or resume is an update of the remote pipeline.
                _rule(
                    "!has(self.managementPolicies) || !has(oldSelf.paused) || !has(self.paused) || "
                    "self.paused == oldSelf.paused || '*' in self.managementPolicies || "
                    "'Update' in self.managementPolicies",
                    "spec.paused can only change when spec.managementPolicies include Update (or *): "
                    "without Update the operator never pauses or resumes the remote pipeline",
                    fieldPath=".paused",
                ),
                _rule(
                    "!(has(self.credentialsRef) && has(self.serviceKeySecretRef))",
                    "spec.credentialsRef and spec.serviceKeySecretRef are mutually exclusive: set at most one",
                ),
            ]
        }
    )

    pipeline_name: str | None = Field(
        default=None,
        alias="pipelineName",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Display name of the remote pipeline; defaults to `<namespace>-<metadata.name>`.",
    )
    project: str = Field(
        min_length=1,
        max_length=MAX_PROJECT_LENGTH,
        pattern=PROJECT_PATTERN,
        description=(
            "GoldRush project: lowercase letters, digits, `-` and `_`, at most 63 characters, for example "
            "analytics-prod. Drives the destination schema name (analytics_prod), consumer group and "
            "checkpoint path. Immutable."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [_rule("self == oldSelf", "spec.project is immutable")]
        },
    )
    description: str | None = Field(
        default=None, max_length=MAX_TEXT_LENGTH, description="Free-text description of the remote pipeline."
    )
    topic: str = Field(
        max_length=MAX_NAME_LENGTH,
        pattern=TOPIC_PATTERN,
        description=(
            "Source topic `{chain}.{network}.{qualifier}.block.{entity}`, for example "
            "base.mainnet.ref.block.transfers. Immutable."
        ),
        json_schema_extra={"x-kubernetes-validations": [_rule("self == oldSelf", "spec.topic is immutable")]},
    )
    destination: Destination = Field(description="Where the pipeline writes.")
    transforms: dict[str, TransformSql] | None = Field(
        default=None,
        max_length=MAX_TRANSFORMS,
        description=(
            "SQL transforms: map of output table name (a plain SQL identifier such as transfers or "
            "base_evt_swap) to one SQL SELECT over that table. Not supported for kafka."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    f"self.all(t, size(t) <= {MAX_TABLE_NAME_LENGTH} && t.matches('{TABLE_NAME_PATTERN}'))",
                    "spec.transforms keys must be table names: a letter or _, then letters, digits or _, "
                    f"at most {MAX_TABLE_NAME_LENGTH} characters",
                )
            ]
        },
    )
    abi: Abi | None = Field(default=None, description="ABI decoding settings.")
    execution: Execution = Field(description="Execution mode and block range.")
    paused: bool = Field(
        default=False,
        description="Pause the remote pipeline (API status `paused`); false runs it (`running`).",
    )
    deletion_policy: DeletionPolicy = Field(
        default="Delete",
        alias="deletionPolicy",
        description=(
            "What happens to the remote pipeline when this object is deleted: Delete removes it, Orphan "
            "leaves it running."
        ),
    )
    management_policies: list[
        Annotated[ManagementAction, Field(description="*, Observe, Create, Update, Delete or LateInitialize.")]
    ] = Field(
        default=["*"],
        alias="managementPolicies",
        min_length=1,
        max_length=len(MANAGEMENT_ACTIONS),
        description=(
            "What the operator may do to the remote pipeline (Crossplane names): `*` (everything, the "
            "default), or a list that includes Observe plus any of Create, Update (PATCH, pause/resume) and "
            "Delete. [\"Observe\"] only mirrors an existing pipeline (found by the goldrush.dev/pipeline-id "
            "annotation, or by name and project) into status and never writes to it, also not on deletion. "
            "Without Delete the remote pipeline is left in place when this object is deleted, whatever "
            "deletionPolicy says. LateInitialize is accepted and has no effect (the operator never writes "
            "spec)."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                _rule(
                    "!('*' in self) || size(self) == 1",
                    "spec.managementPolicies: `*` means every action and cannot be combined with others",
                ),
                _rule(
                    "'*' in self || 'Observe' in self",
                    "spec.managementPolicies must include Observe (or be [\"*\"]): the operator always reads "
                    "the remote pipeline; pause reconciliation with the goldrush.dev/pause-reconciliation "
                    "annotation instead",
                ),
            ],
        },
    )
    service_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        alias="serviceKeySecretRef",
        description=(
            "GoldRush ServiceKey to use for this pipeline; defaults to the operator's key. Not together with "
            "credentialsRef."
        ),
    )
    credentials_ref: CredentialsRef | None = Field(
        default=None,
        alias="credentialsRef",
        description=(
            "Credentials object whose service key this pipeline uses (kind and name); defaults to the "
            "operator's key. Not together with serviceKeySecretRef. The key must belong to the GoldRush group "
            "that owns the remote pipeline."
        ),
    )

    def allows(self, action: str) -> bool:
        """Whether `spec.managementPolicies` lets the operator perform `action` (Create, Update, Delete)."""
        return "*" in self.management_policies or action in self.management_policies

    def deletes_remote(self) -> bool:
        """Whether deleting this object deletes the remote pipeline (see `deletes_remote`)."""
        return deletes_remote(self.management_policies, self.deletion_policy)

    def pipeline_display_name(self, namespace: str, name: str) -> str:
        """The remote pipeline name: `spec.pipelineName` or `<namespace>-<metadata.name>`."""
        return self.pipeline_name or f"{namespace}-{name}"


# ------------------------------------------------------------------------------------------- status

_TIME: JsonDict = {"format": "date-time"}


class Condition(CRModel):
    """A Kubernetes condition (metav1.Condition shape)."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Condition type: Ready, Synced, Reconciling, Stalled or DestinationHealthy.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        default=None, max_length=1024, description="One-word CamelCase reason for the last transition."
    )
    message: str | None = Field(
        default=None, max_length=32768, description="Human-readable details of the last transition."
    )
    last_transition_time: str | None = Field(
        default=None,
        alias="lastTransitionTime",
        description="When status last changed.",
        json_schema_extra=_TIME,
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        ge=0,
        description="metadata.generation the condition was computed for.",
    )


class DestinationHealth(CRModel):
    """Result of the API's destination-health check."""

    healthy: bool | None = Field(
        default=None, description="Whether the destination is reachable and accepting."
    )
    last_error: str | None = Field(
        default=None, alias="lastError", description="Last destination error reported by the API (scrubbed)."
    )
    checked_at: str | None = Field(
        default=None,
        alias="checkedAt",
        description="When this verdict (healthy, lastError) was first seen; not moved by later checks that confirm it.",
        json_schema_extra=_TIME,
    )


class SecretStatus(CRModel):
    """A Secret value applied to the remote pipeline, identified by a keyed hash (never the value)."""

    field: str | None = Field(
        default=None,
        max_length=MAX_FIELD_PATH_LENGTH,
        description="destination_config field the value was applied to (dotted for nested)."
    )
    name: str = Field(max_length=MAX_NAME_LENGTH, description="Name of the Secret.")
    key: str = Field(max_length=MAX_NAME_LENGTH, description="Key inside the Secret.")
    hash: str = Field(
        max_length=MAX_SETTING_LENGTH,
        description="Keyed HMAC of the applied value (`hmac-sha256:<hex>`); never the value.",
    )


class PipelineStatus(CRModel):
    """Observed state, written only by the operator (status subresource)."""

    pipeline_id: str | None = Field(
        default=None,
        alias="pipelineId",
        max_length=MAX_NAME_LENGTH,
        description="Remote pipeline id (pipe_...), also in annotation goldrush.dev/pipeline-id.",
    )
    pipeline_name: str | None = Field(
        default=None,
        alias="pipelineName",
        max_length=2 * MAX_NAME_LENGTH,
        description="Remote pipeline name as last applied.",
    )
    phase: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Remote runtime phase exactly as the API reports it (DEPLOYING, RUNNING, PAUSED, FAILED, "
            "STOPPING, STOPPED), or PENDING before the remote pipeline exists."
        ),
    )
    replicas: int | None = Field(
        default=None, ge=0, description="Desired worker replicas reported by the API."
    )
    ready_replicas: int | None = Field(
        default=None, alias="readyReplicas", ge=0, description="Ready worker replicas reported by the API."
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        ge=0,
        description="metadata.generation last reconciled (advanced while paused too).",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=MAX_CONDITIONS,
        description="Ready, Synced, Reconciling, Stalled and DestinationHealthy conditions (kstatus rules).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    destination_health: DestinationHealth | None = Field(
        default=None, alias="destinationHealth", description="Result of the last destination-health check."
    )
    secrets: list[SecretStatus] | None = Field(
        default=None,
        max_length=MAX_STATUS_SECRETS,
        description="Secret values applied to the remote pipeline, as keyed hashes.",
    )
    last_handled_reconcile_at: str | None = Field(
        default=None,
        alias="lastHandledReconcileAt",
        description="Last handled value of the reconcile-requested-at annotation (Flux convention).",
    )
    created_at: str | None = Field(
        default=None,
        alias="createdAt",
        description="When the remote pipeline was created.",
        json_schema_extra=_TIME,
    )
    kopf: dict[str, Any] | None = Field(
        default=None,
        description="Reserved for the operator framework's own bookkeeping.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class GoldRushPipeline(CRModel):
    """A GoldRush data pipeline managed through the GoldRush Pipeline API."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion", description="goldrush.dev/v1alpha1")
    kind: str = Field(default=KIND, description="GoldRushPipeline")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Standard object metadata.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    spec: PipelineSpec = Field(description="Desired state of the pipeline.")
    status: PipelineStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
