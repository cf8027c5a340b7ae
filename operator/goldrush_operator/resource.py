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

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

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

TOPIC_PATTERN: Final = r"^[a-z0-9-]+\.[a-z0-9-]+\.[a-z0-9-]+\.block\.[a-z0-9._-]+$"
BLOCK_HEIGHT_PATTERN: Final = r"^[0-9]+$"
# A Kubernetes object name (DNS-1123 subdomain) and a Secret/ConfigMap data key.
OBJECT_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"

# Keys that must never be written inline in spec.destination.config (manifests live in Git).
FORBIDDEN_INLINE_CONFIG_KEYS: Final[tuple[str, ...]] = (
    "password",
    "secret_access_key",
    "sasl.password",
    "headers",
)

# Bounds: they keep the CEL cost estimate of the admission rules small and objects a sane size.
MAX_NAME_LENGTH: Final = 253
MAX_TEXT_LENGTH: Final = 4096
MAX_TRANSFORMS: Final = 64
MAX_SQL_LENGTH: Final = 16384
MAX_SECRET_REFS: Final = 32
MAX_FIELD_PATH_LENGTH: Final = 256
MAX_CONTRACT_ADDRESSES: Final = 1024
MAX_CONDITIONS: Final = 16
MAX_STATUS_SECRETS: Final = 64


ContractAddress = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    Field(description="A contract address, for example 0x-prefixed hex on EVM chains."),
]
TransformSql = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SQL_LENGTH),
    Field(description="One SQL SELECT whose FROM names the same table as the key."),
]


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


_CONFIG_DESCRIPTION = (
    "Non-secret destination settings, sent as the API's destination_config (for example url and user for "
    "postgres/clickhouse; bootstrap_servers, output_topic and sasl.mechanism/sasl.username for kafka; "
    "provider, bucket, region for object_storage; queue_url, region for sqs; url, method, retry for "
    "webhook). The operator adds `type`. Secret values (password, secret_access_key, sasl.password, "
    "headers) are rejected here: put them in a Secret and reference them from secretRefs."
)


_CONFIG_SCHEMA_EXTRA: JsonDict = {
    "x-kubernetes-preserve-unknown-fields": True,
    # The secret-looking keys are declared (only) so that CEL can see them and reject them with a clear
    # message; every other key is preserved as free-form configuration.
    "properties": {
        "password": {
            "type": "string",
            "description": "Not allowed inline: reference a Secret via spec.destination.secretRefs.password.",
        },
        "secret_access_key": {
            "type": "string",
            "description": (
                "Not allowed inline: reference a Secret via spec.destination.secretRefs.secret_access_key."
            ),
        },
        "headers": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": (
                "Not allowed inline (header values are usually credentials): reference a Secret per header "
                "via spec.destination.secretRefs, for example `headers.Authorization`."
            ),
        },
        "sasl": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "Kafka SASL settings (mechanism, username); the password comes from secretRefs.",
            "properties": {
                "password": {
                    "type": "string",
                    "description": (
                        "Not allowed inline: reference a Secret via spec.destination.secretRefs"
                        '["sasl.password"].'
                    ),
                }
            },
        },
    },
    "x-kubernetes-validations": [
        _rule(
            "!has(self.password)",
            "spec.destination.config.password must not be set inline; "
            "use spec.destination.secretRefs.password to reference a Secret",
        ),
        _rule(
            "!has(self.secret_access_key)",
            "spec.destination.config.secret_access_key must not be set inline; "
            "use spec.destination.secretRefs.secret_access_key to reference a Secret",
        ),
        _rule(
            "!has(self.sasl) || !has(self.sasl.password)",
            "spec.destination.config.sasl.password must not be set inline; "
            'use spec.destination.secretRefs["sasl.password"] to reference a Secret',
        ),
        _rule(
            "!has(self.headers)",
            "spec.destination.config.headers must not be set inline; "
            'use spec.destination.secretRefs["headers.<Name>"] to reference a Secret per header',
        ),
    ],
}

# CEL string literal: `[.]` instead of `\.` (a backslash-dot is an invalid escape in a CEL string).
_FIELD_PATH_RULE = "^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$"


class Destination(CRModel):
    """Where the pipeline writes: the destination kind, its settings and Secret references."""

    type: DestinationType = Field(
        description=(
            "Destination kind; sent as destination_type and destination_config.type. Immutable. One of "
            "postgres, clickhouse, kafka, object_storage, sqs, webhook."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [_rule("self == oldSelf", "spec.destination.type is immutable")]
        },
    )
    config: dict[str, Any] | None = Field(
        default=None,
        description=_CONFIG_DESCRIPTION,
        json_schema_extra=_CONFIG_SCHEMA_EXTRA,
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
        max_length=64,
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
        max_length=MAX_NAME_LENGTH,
        description=(
            "GoldRush project; drives the destination schema name, consumer group and checkpoint path. "
            "Immutable."
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
            "SQL transforms: map of output table name to one SQL SELECT over that table. Not supported "
            "for kafka."
        ),
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
    service_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        alias="serviceKeySecretRef",
        description="GoldRush ServiceKey to use for this pipeline; defaults to the operator's key.",
    )

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
        description="When the health was last fetched.",
        json_schema_extra=_TIME,
    )


class SecretStatus(CRModel):
    """A Secret value applied to the remote pipeline, identified by a keyed hash (never the value)."""

    field: str | None = Field(
        default=None, description="destination_config field the value was applied to (dotted for nested)."
    )
    name: str = Field(description="Name of the Secret.")
    key: str = Field(description="Key inside the Secret.")
    hash: str = Field(description="Keyed HMAC of the applied value (`hmac-sha256:<hex>`); never the value.")


class PipelineStatus(CRModel):
    """Observed state, written only by the operator (status subresource)."""

    pipeline_id: str | None = Field(
        default=None,
        alias="pipelineId",
        description="Remote pipeline id (pipe_...), also in annotation goldrush.dev/pipeline-id.",
    )
    pipeline_name: str | None = Field(
        default=None, alias="pipelineName", description="Remote pipeline name as last applied."
    )
    phase: str | None = Field(
        default=None,
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
    last_synced_at: str | None = Field(
        default=None,
        alias="lastSyncedAt",
        description="When the remote configuration was last written (create or update) by the operator.",
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
