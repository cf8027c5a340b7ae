"""Pydantic models of the credentials objects: `GoldRushCredentials` and `ClusterGoldRushCredentials`.

A pipeline names one of them in `spec.credentialsRef: {kind, name}` instead of carrying its own
`spec.serviceKeySecretRef`. `GoldRushCredentials` is namespaced (its key Secret lives in its namespace and
only pipelines of that namespace can use it); `ClusterGoldRushCredentials` is cluster-scoped (its key Secret
lives in the operator's namespace and `spec.namespaceSelector` says which namespaces may use it).

`crdgen` generates both CRDs from these models, like the pipeline's from `resource.py`; `keyring` parses
watched objects with them, and `controller/creds.py` writes their status. Pure Python + pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints

from goldrush_operator.resource import (
    API_VERSION,
    DATA_KEY_PATTERN,
    GROUP,
    MAX_CONDITIONS,
    MAX_NAME_LENGTH,
    OBJECT_NAME_PATTERN,
    Condition,
    CRModel,
    _rule,
)

KIND_CREDENTIALS: Final = "GoldRushCredentials"
PLURAL_CREDENTIALS: Final = "goldrushcredentials"
SINGULAR_CREDENTIALS: Final = "goldrushcredentials"
KIND_CLUSTER_CREDENTIALS: Final = "ClusterGoldRushCredentials"
PLURAL_CLUSTER_CREDENTIALS: Final = "clustergoldrushcredentials"
SINGULAR_CLUSTER_CREDENTIALS: Final = "clustergoldrushcredentials"
CREDENTIALS_CRD_NAME: Final = f"{PLURAL_CREDENTIALS}.{GROUP}"
CLUSTER_CREDENTIALS_CRD_NAME: Final = f"{PLURAL_CLUSTER_CREDENTIALS}.{GROUP}"
CREDENTIALS_KINDS: Final = (KIND_CREDENTIALS, KIND_CLUSTER_CREDENTIALS)

MAX_SELECTOR_TERMS: Final = 16
MAX_SELECTOR_VALUES: Final = 64
MAX_LABEL_KEY_LENGTH: Final = 317  # prefix (253) + "/" + name (63)
MAX_LABEL_VALUE_LENGTH: Final = 63


def _secret_name(where: str) -> Any:
    return Field(
        description=f"Name of the Secret, {where}.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
    )


def _secret_key() -> Any:
    return Field(
        description="Key inside the Secret's data that holds the GoldRush ServiceKey.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=DATA_KEY_PATTERN,
    )


class NamespacedKeyRef(CRModel):
    """The Secret key holding the service key, in the GoldRushCredentials' own namespace."""

    name: str = _secret_name("in the namespace of the GoldRushCredentials")
    key: str = _secret_key()


class OperatorKeyRef(CRModel):
    """The Secret key holding the service key, in the operator's namespace."""

    name: str = _secret_name("in the operator's namespace (the operator's POD_NAMESPACE)")
    key: str = _secret_key()


LabelValue = Annotated[
    str, StringConstraints(max_length=MAX_LABEL_VALUE_LENGTH), Field(description="A label value.")
]


class LabelSelectorRequirement(CRModel):
    """One match expression of a label selector (metav1.LabelSelectorRequirement)."""

    key: str = Field(min_length=1, max_length=MAX_LABEL_KEY_LENGTH, description="Label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=MAX_SELECTOR_VALUES,
        description="Label values: required (non-empty) for In and NotIn, empty for Exists and DoesNotExist.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                    "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist",
                )
            ]
        }
    )


class LabelSelector(CRModel):
    """A Kubernetes label selector; `{}` matches every namespace."""

    match_labels: dict[str, LabelValue] | None = Field(
        default=None,
        alias="matchLabels",
        max_length=MAX_SELECTOR_TERMS,
        description="Labels a namespace must carry with exactly these values.",
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        alias="matchExpressions",
        max_length=MAX_SELECTOR_TERMS,
        description="Requirements a namespace's labels must all meet.",
    )


class CredentialsSpec(CRModel):
    """A GoldRush ServiceKey for the pipelines of this namespace."""

    service_key_secret_ref: NamespacedKeyRef = Field(
        alias="serviceKeySecretRef",
        description="Secret key (in this namespace) holding the GoldRush ServiceKey.",
    )


class ClusterCredentialsSpec(CRModel):
    """A GoldRush ServiceKey shared by the pipelines of the namespaces the selector matches."""

    service_key_secret_ref: OperatorKeyRef = Field(
        alias="serviceKeySecretRef",
        description="Secret key holding the GoldRush ServiceKey, in the operator's namespace.",
    )
    namespace_selector: LabelSelector = Field(
        alias="namespaceSelector",
        description=(
            "Which namespaces may use this key (a label selector over Namespace objects; `{}` allows all, "
            "`kubernetes.io/metadata.name` selects by name). A pipeline in any other namespace is refused "
            "(condition reason CredentialsNotAllowed) and no API call is made with the key."
        ),
    )


class CredentialsStatus(CRModel):
    """Observed state, written only by the operator (status subresource)."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        ge=0,
        description="metadata.generation the conditions were computed for.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=MAX_CONDITIONS,
        description=(
            "Ready (the key was accepted by the GoldRush API; reasons KeyValid, AuthFailed, NotAServiceKey, "
            "SecretNotFound, ApiUnavailable) and Stalled (present only while a human must act)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    used_by: int | None = Field(
        default=None,
        alias="usedBy",
        ge=0,
        description="Number of GoldRushPipeline objects currently using this key.",
    )


class GoldRushCredentials(CRModel):
    """A GoldRush ServiceKey that GoldRushPipeline objects of the same namespace reference by name."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion", description="goldrush.dev/v1alpha1")
    kind: str = Field(default=KIND_CREDENTIALS, description=KIND_CREDENTIALS)
    spec: CredentialsSpec = Field(description="Where the service key is.")
    status: CredentialsStatus | None = Field(default=None, description="Observed state, written by the operator.")


class ClusterGoldRushCredentials(CRModel):
    """A cluster-wide GoldRush ServiceKey that pipelines of selected namespaces reference by name."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion", description="goldrush.dev/v1alpha1")
    kind: str = Field(default=KIND_CLUSTER_CREDENTIALS, description=KIND_CLUSTER_CREDENTIALS)
    spec: ClusterCredentialsSpec = Field(description="Where the service key is and who may use it.")
    status: CredentialsStatus | None = Field(default=None, description="Observed state, written by the operator.")
