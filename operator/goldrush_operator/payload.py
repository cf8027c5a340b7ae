"""Desired GoldRush API payload for a `GoldRushPipeline`, and its diff against the remote pipeline.

The controller (`controller/inputs.py`) calls `desired_payload()` once per reconcile (after resolving Secrets with
`credentials`), sends it whole as the POST body on create, and otherwise calls `diff_payload()` to get
the minimal PATCH body (empty = nothing to write), `immutable_mismatches()` to report drift in fields
the API cannot change, and `status_change()` for the PUT that pauses or resumes.

Secrets: the API masks secret values as `******` on every read, so secret fields are compared by the
keyed hashes recorded in `status.secrets` (`credentials.secret_hash`). When anything in
`destination_config` differs, the PATCH carries the complete desired `destination_config` including all
secret values, because the API replaces that field wholesale; a mask is never sent back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from goldrush_operator.credentials import apply_secret_values, delete_dotted
from goldrush_operator.resource import PipelineSpec
from goldrush_operator.secret_values import MASK, find_masks

# Top-level fields PATCH accepts (API reference §5.5); `status` goes through PUT instead.
WRITABLE_FIELDS: Final[tuple[str, ...]] = (
    "name",
    "description",
    "destination_config",
    "transforms",
    "abi_file",
    "abi_contract_addresses",
    "abi_unmatched",
    "execution_start_from",
    "execution_stop_from",
)
# Fields fixed at create time (absent from the PATCH body; CEL keeps them immutable in the CR).
IMMUTABLE_FIELDS: Final[tuple[str, ...]] = ("project", "topic", "destination_type", "execution_mode")

# What the API returns for an unset optional field; a missing/None remote value equals these.
_EMPTY: Final[Mapping[str, Any]] = {
    "description": "",
    "transforms": {},
    "abi_file": {},
    "abi_contract_addresses": [],
    "abi_unmatched": "",
    "execution_start_from": "",
    "execution_stop_from": "",
}

STATUS_RUNNING: Final = "running"
STATUS_PAUSED: Final = "paused"


class MaskedValueError(ValueError):
    """A write body would contain the API's secret mask instead of a real value."""


def desired_payload(
    namespace: str,
    name: str,
    spec: PipelineSpec,
    secret_values: Mapping[str, str],
    abi_file: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full API representation of the spec (the POST body), secret values included.

    `secret_values` maps destination field (dotted for nested) -> value, from
    `credentials.resolve_destination_secrets(...).values`; `abi_file` is the parsed ABI object from the
    ConfigMap named by `spec.abi.configMapRef` (see `parse_abi_file`).
    """
    dest_type = spec.destination.type
    config = apply_secret_values(spec.destination.config, secret_values)
    config.pop("type", None)
    destination_config = {"type": dest_type, **config}
    abi = spec.abi
    payload: dict[str, Any] = {
        "name": spec.pipeline_display_name(namespace, name),
        "project": spec.project,
        "description": spec.description or "",
        "topic": spec.topic,
        "destination_type": dest_type,
        "destination_config": destination_config,
        "transforms": dict(spec.transforms or {}),
        "execution_mode": spec.execution.mode,
        "execution_start_from": spec.execution.start_from or "",
        "execution_stop_from": spec.execution.stop_at or "",
        "abi_file": copy.deepcopy(dict(abi_file or {})),
        "abi_contract_addresses": list((abi.contract_addresses if abi else None) or []),
        "abi_unmatched": (abi.unmatched if abi else None) or "",
        "status": STATUS_PAUSED if spec.paused else STATUS_RUNNING,
    }
    _reject_masks(payload["destination_config"], "destination_config")
    return payload


def parse_abi_file(text: str) -> dict[str, Any]:
    """Parse ABI JSON from a ConfigMap into the API's `abi_file` object.

    An object (for example a build artifact with an `abi` key) is sent as is; a bare Solidity ABI array
    is wrapped as `{"abi": [...]}` because the API field is an object. Raises ValueError on bad JSON.
    """
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"ABI is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if isinstance(parsed, dict):
        return parsed
    if isinstance(parsed, list):
        return {"abi": parsed}
    raise ValueError("ABI JSON must be an array of ABI entries or an object")


def _normalise(name: str, value: Any) -> Any:
    if value is None:
        return copy.deepcopy(_EMPTY.get(name))
    return value


def _reject_masks(value: Any, path: str) -> None:
    masks = find_masks(value, path)
    if masks:
        raise MaskedValueError(
            f"{', '.join(masks)}: holds the API's secret mask {MASK!r}, which is not a value; refusing to send it"
        )


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


# The API's documented defaults of optional destination settings (goldrush-api.md section 9). A remote
# setting the spec leaves out is no drift when it holds this value: an API that echoes its defaults would
# otherwise get a PATCH (and a redeploy) at every configuration check.
DOCUMENTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "postgres": {"batch_size": 1000, "flush_interval_ms": 5000},
    "clickhouse": {"batch_size": 10000, "flush_interval_ms": 5000},
    "object_storage": {"format": "json", "compression": "none", "partition_by": ["hour"], "batch_size": 10000,
                       "batch_interval_ms": 60000},
    "sqs": {"batch_size": 10},
    "webhook": {"method": "POST", "batch_size": 1, "timeout_ms": 10000,
                "retry": {"max_attempts": 3, "backoff_ms": 1000}},
}


def _is_default(value: Any, default: Any) -> bool:
    """Whether a remote value the spec does not set is the API's default (or empty, in a nested mapping)."""
    if isinstance(value, Mapping) and isinstance(default, Mapping):
        return all(_is_empty(v) or (k in default and _is_default(v, default[k])) for k, v in value.items())
    return default is not None and bool(value == default)


def _config_equal(desired: Any, remote: Any, defaults: Any = None) -> bool:
    """Value equality where a masked remote value matches anything (secrets are compared by hash) and a
    remote-only setting matches when it is empty or holds its documented default (`defaults`)."""
    if remote == MASK:
        return True
    if isinstance(desired, Mapping) and isinstance(remote, Mapping):
        for key in set(desired) | set(remote):
            default = defaults.get(key) if isinstance(defaults, Mapping) else None
            if key not in remote:
                if not _is_empty(desired[key]):
                    return False
            elif key not in desired:
                if not (_is_empty(remote[key]) or remote[key] == MASK or _is_default(remote[key], default)):
                    return False
            elif not _config_equal(desired[key], remote[key], default):
                return False
        return True
    return bool(desired == remote)


def destination_config_changed(
    desired_config: Mapping[str, Any],
    remote_config: Mapping[str, Any] | None,
    desired_secret_hashes: Mapping[str, str],
    applied_secret_hashes: Mapping[str, str],
) -> bool:
    """Whether the remote `destination_config` differs from the desired one.

    Non-secret values are compared by value (masked remote values match anything); secret fields (the
    keys of the hash maps) by keyed hash: a rotated, added or removed secret counts as a change.
    """
    if dict(desired_secret_hashes) != dict(applied_secret_hashes):
        return True
    desired_view: dict[str, Any] = copy.deepcopy(dict(desired_config))
    remote_view: dict[str, Any] = copy.deepcopy(dict(remote_config or {}))
    for secret_field in set(desired_secret_hashes) | set(applied_secret_hashes):
        delete_dotted(desired_view, secret_field)
        delete_dotted(remote_view, secret_field)
    if "type" not in remote_view and "type" in desired_view:
        remote_view["type"] = desired_view["type"]  # tolerate an API that does not echo the type
    return not _config_equal(desired_view, remote_view, DOCUMENTED_DEFAULTS.get(str(desired_view.get("type"))))


def diff_payload(
    desired: Mapping[str, Any],
    remote: Mapping[str, Any],
    desired_secret_hashes: Mapping[str, str],
    applied_secret_hashes: Mapping[str, str],
) -> dict[str, Any]:
    """The PATCH body that makes `remote` match `desired`: only changed writeable fields; {} when in sync.

    `desired_secret_hashes` are the hashes of the values in `desired` (`ResolvedSecrets.hashes`);
    `applied_secret_hashes` those recorded in status when the remote was last written
    (`credentials.applied_hashes_from_status`). `status` and immutable fields are never included.
    """
    patch: dict[str, Any] = {}
    for name in WRITABLE_FIELDS:
        if name not in desired:
            continue
        want = desired[name]
        if name == "destination_config":
            if destination_config_changed(
                want, remote.get(name), desired_secret_hashes, applied_secret_hashes
            ):
                _reject_masks(want, name)
                patch[name] = copy.deepcopy(want)
            continue
        if _normalise(name, want) != _normalise(name, remote.get(name)):
            patch[name] = copy.deepcopy(want)
    return patch


def immutable_mismatches(desired: Mapping[str, Any], remote: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`{field: (desired, remote)}` for create-only fields that differ (the API cannot PATCH them)."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in IMMUTABLE_FIELDS:
        if name in remote and name in desired and desired[name] != remote[name]:
            out[name] = (desired[name], remote[name])
    return out


def status_change(desired: Mapping[str, Any], remote: Mapping[str, Any]) -> str | None:
    """The `status` to PUT (`running`/`paused`) when the remote intent differs, else None."""
    want = desired.get("status")
    if want is not None and remote.get("status") != want:
        return str(want)
    return None


@dataclass(frozen=True)
class PayloadDiff:
    """Everything the controller needs to decide between PATCH, PUT, report, or nothing."""

    patch: dict[str, Any] = field(repr=False)
    immutable: dict[str, tuple[Any, Any]]
    status: str | None

    @property
    def changed_fields(self) -> list[str]:
        """Names of the fields the PATCH would write (safe to log)."""
        return sorted(self.patch)

    @property
    def in_sync(self) -> bool:
        """No PATCH, no PUT and no immutable drift."""
        return not self.patch and not self.immutable and self.status is None


def compute_diff(
    desired: Mapping[str, Any],
    remote: Mapping[str, Any],
    desired_secret_hashes: Mapping[str, str],
    applied_secret_hashes: Mapping[str, str],
) -> PayloadDiff:
    """`diff_payload`, `immutable_mismatches` and `status_change` in one result."""
    return PayloadDiff(
        patch=diff_payload(desired, remote, desired_secret_hashes, applied_secret_hashes),
        immutable=immutable_mismatches(desired, remote),
        status=status_change(desired, remote),
    )

