"""Secret references -> secret values, keyed hashes and scrubbing: the pure part of credential handling.

The controller reads the referenced Secrets through the Kubernetes adapter (`kube.py`) and hands the data
here. This module resolves `spec.destination.secretRefs` (and `spec.serviceKeySecretRef`) against it,
reports precisely which Secret or key is missing, computes the keyed hashes recorded in
`status.secrets`, sets dotted fields (`sasl.password`, `headers.Authorization`) in the destination
config. Hashing, decoding and scrubbing themselves live in `secret_values`.

Nothing returned for status, conditions, events or errors ever contains a secret value: `MissingSecretRef`
and `SecretUse` carry names, keys and hashes only, and `ResolvedSecrets.__repr__` hides the values.
(Named `credentials` rather than `secrets` to avoid shadowing the standard library module.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from goldrush_operator.resource import PipelineSpec, SecretKeyRef
from goldrush_operator.secret_values import scrub, secret_hash

SERVICE_KEY_FIELD: Final = "serviceKey"  # pseudo-field under which the service key's use is reported

# Secret data as the adapter gives it: Secret name -> {key: decoded text}, or None if the Secret is absent.
SecretData = Mapping[str, str]
SecretGetter = Callable[[str], SecretData | None]
SecretSource = Mapping[str, SecretData | None] | Mapping[tuple[str, str], str] | SecretGetter



@dataclass(frozen=True)
class MissingSecretRef:
    """A reference that could not be resolved; names only, never values."""

    field: str
    secret_name: str
    key: str
    missing: Literal["secret", "key"]

    @property
    def message(self) -> str:
        """Human-readable text for conditions and events."""
        where = f"referenced by {_ref_origin(self.field)}"
        if self.missing == "secret":
            return f"Secret {self.secret_name!r} not found ({where})"
        return f"key {self.key!r} not found in Secret {self.secret_name!r} ({where})"


@dataclass(frozen=True)
class SecretUse:
    """One applied secret value, as recorded in `status.secrets` (hash only)."""

    field: str
    name: str
    key: str
    hash: str

    def to_status(self) -> dict[str, str]:
        """The `status.secrets[]` entry."""
        return {"field": self.field, "name": self.name, "key": self.key, "hash": self.hash}


@dataclass(frozen=True)
class ResolvedSecrets:
    """Result of resolving secret refs. `values` maps destination field -> secret value."""

    values: dict[str, str] = field(repr=False)
    uses: tuple[SecretUse, ...]
    missing: tuple[MissingSecretRef, ...]

    @property
    def ok(self) -> bool:
        """Whether every reference resolved."""
        return not self.missing

    @property
    def hashes(self) -> dict[str, str]:
        """destination field -> keyed hash, the form `payload.diff_payload` compares."""
        return {use.field: use.hash for use in self.uses}

    def status_entries(self) -> list[dict[str, str]]:
        """`status.secrets` entries, sorted by field."""
        return [use.to_status() for use in self.uses]

    def missing_message(self) -> str:
        """All missing references in one line (empty when none)."""
        return "; ".join(m.message for m in self.missing)

    def scrub(self, text: str) -> str:
        """`text` with every resolved secret value replaced by the mask."""
        return scrub(text, self.values.values())


def _ref_origin(field_name: str) -> str:
    if field_name == SERVICE_KEY_FIELD:
        return "spec.serviceKeySecretRef"
    return f"spec.destination.secretRefs[{field_name!r}]"


def _getter(source: SecretSource) -> SecretGetter:
    """Normalise the accepted secret sources into `name -> data | None`."""
    if callable(source):
        return source
    mapping: Mapping[Any, Any] = source
    if any(isinstance(k, tuple) for k in mapping):
        by_name: dict[str, dict[str, str]] = {}
        for (name, key), value in mapping.items():
            by_name.setdefault(name, {})[key] = value
        return by_name.get
    return mapping.get


def resolve_refs(refs: Mapping[str, SecretKeyRef], source: SecretSource, hmac_key: bytes) -> ResolvedSecrets:
    """Resolve `field -> SecretKeyRef` against the secret source.

    `source` is one of: `{secret_name: {key: value} | None}`, `{(secret_name, key): value}`, or a callable
    `secret_name -> {key: value} | None`. An absent name or None means the Secret does not exist.
    """
    get = _getter(source)
    values: dict[str, str] = {}
    uses: list[SecretUse] = []
    missing: list[MissingSecretRef] = []
    cache: dict[str, SecretData | None] = {}
    for field_name in sorted(refs):
        ref = refs[field_name]
        if ref.name not in cache:
            cache[ref.name] = get(ref.name)
        data = cache[ref.name]
        if data is None:
            missing.append(MissingSecretRef(field_name, ref.name, ref.key, "secret"))
        elif ref.key not in data:
            missing.append(MissingSecretRef(field_name, ref.name, ref.key, "key"))
        else:
            value = data[ref.key]
            values[field_name] = value
            uses.append(SecretUse(field_name, ref.name, ref.key, secret_hash(hmac_key, value)))
    return ResolvedSecrets(values=values, uses=tuple(uses), missing=tuple(missing))


def resolve_destination_secrets(spec: PipelineSpec, source: SecretSource, hmac_key: bytes) -> ResolvedSecrets:
    """Resolve `spec.destination.secretRefs`."""
    return resolve_refs(spec.destination.secret_refs or {}, source, hmac_key)


def resolve_service_key(spec: PipelineSpec, source: SecretSource, hmac_key: bytes) -> ResolvedSecrets | None:
    """Resolve `spec.serviceKeySecretRef`; None when the object uses the operator's own key."""
    ref = spec.service_key_secret_ref
    if ref is None:
        return None
    return resolve_refs({SERVICE_KEY_FIELD: ref}, source, hmac_key)


def referenced_secret_names(spec: PipelineSpec) -> set[str]:
    """Names of all Secrets the object references (for the Secret watch index)."""
    names = {ref.name for ref in (spec.destination.secret_refs or {}).values()}
    if spec.service_key_secret_ref is not None:
        names.add(spec.service_key_secret_ref.name)
    return names


def set_dotted(target: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict in place, creating intermediate dicts.

    Raises ValueError (naming the path, never the value) when an intermediate key holds a non-object.
    """
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"invalid field path {path!r}")
    node = target
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ValueError(f"cannot set {path!r}: {prefix!r} is not an object in spec.destination.config")
        node = child
    node[parts[-1]] = value


def get_dotted(source: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """`(found, value)` for a dotted path in a nested mapping."""
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def delete_dotted(target: dict[str, Any], path: str) -> None:
    """Remove a dotted path in place if present; empty parent objects are kept."""
    parts = path.split(".")
    node: Any = target
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def apply_secret_values(config: Mapping[str, Any] | None, values: Mapping[str, str]) -> dict[str, Any]:
    """A deep copy of `config` with each `field -> value` set at its dotted path."""
    out: dict[str, Any] = copy.deepcopy(dict(config or {}))
    for field_name in sorted(values):
        set_dotted(out, field_name, values[field_name])
    return out


def applied_hashes_from_status(status_secrets: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """`status.secrets` -> `{field: hash}` (entries without a field are keyed `name/key`)."""
    out: dict[str, str] = {}
    for entry in status_secrets or ():
        name, key, hash_ = entry.get("name"), entry.get("key"), entry.get("hash")
        if not isinstance(hash_, str):
            continue
        field_name = entry.get("field") or f"{name}/{key}"
        out[str(field_name)] = hash_
    return out

