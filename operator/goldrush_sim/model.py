"""Pipeline resource rules: field lists, request validation, secret masking and hashing.

Pure functions without I/O, called by `goldrush_sim.state` (create/patch/put logic) and by
`goldrush_sim.app` / `goldrush_sim.journal` (masking responses, hashing journal bodies).
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

MASK = "******"
DESTINATION_TYPES = ("postgres", "clickhouse", "kafka", "object_storage", "sqs", "webhook")
EXECUTION_MODES = ("bounded", "unbounded")
STATUSES = ("running", "paused")
PHASES = ("DEPLOYING", "RUNNING", "PAUSED", "FAILED", "STOPPING", "STOPPED")

REQUIRED_ON_CREATE = ("name", "project", "topic", "destination_type", "destination_config", "execution_mode")
OPTIONAL_ON_CREATE = (
    "description",
    "transforms",
    "execution_start_from",
    "execution_stop_from",
    "abi_file",
    "abi_contract_addresses",
    "abi_unmatched",
    "status",
)
WRITE_FIELDS = REQUIRED_ON_CREATE + OPTIONAL_ON_CREATE
PATCHABLE = (
    "name",
    "description",
    "destination_config",
    "transforms",
    "abi_file",
    "abi_contract_addresses",
    "abi_unmatched",
    "execution_start_from",
    "execution_stop_from",
    "status",
)
IMMUTABLE = ("project", "topic", "destination_type", "execution_mode")
# Fields whose change does not restart the worker.
COSMETIC = frozenset({"name", "description"})
# Output order of a pipeline object (documentation §4.2 / §5.2).
OBJECT_FIELDS = (
    "id",
    "name",
    "project",
    "description",
    "topic",
    "destination_type",
    "destination_config",
    "transforms",
    "execution_mode",
    "execution_start_from",
    "execution_stop_from",
    "abi_file",
    "abi_contract_addresses",
    "abi_unmatched",
    "status",
    "created_by",
    "group",
    "created_at",
    "updated_at",
)
DEFAULTS: dict[str, Any] = {
    "description": "",
    "transforms": {},
    "execution_start_from": "",
    "execution_stop_from": "",
    "abi_file": {},
    "abi_contract_addresses": [],
    "abi_unmatched": "",
    "status": "running",
}
# Documented defaults of optional destination settings (the API reference's destination pages); echoed in
# reads only with `--echo-defaults` (whether the real API echoes them is not documented).
DESTINATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "postgres": {"batch_size": 1000, "flush_interval_ms": 5000},
    "clickhouse": {"batch_size": 10000, "flush_interval_ms": 5000},
    "object_storage": {"format": "json", "compression": "none", "partition_by": ["hour"], "batch_size": 10000,
                       "batch_interval_ms": 60000},
    "sqs": {"batch_size": 10},
    "webhook": {"method": "POST", "batch_size": 1, "timeout_ms": 10000,
                "retry": {"max_attempts": 3, "backoff_ms": 1000}},
}


def with_defaults(config: Any, destination_type: Any) -> Any:
    """`config` with the documented defaults of the settings it leaves out (nested ones merged)."""
    if not isinstance(config, dict):
        return config
    return _merge_defaults(config, DESTINATION_DEFAULTS.get(str(destination_type), {}))


def _merge_defaults(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _merge_defaults(out[key], value)
    return out


SECRET_KEYS = frozenset({"password", "secret_access_key"})


class ValidationFailed(Exception):
    """A request body was rejected; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------- secrets


def transform_secrets(value: Any, fn: Any, *, under_headers: bool = False) -> Any:
    """Return a copy of `value` where every secret string is replaced by `fn(secret)`.

    Secret = the value of any key named `password` or `secret_access_key` at any depth
    (this covers `sasl.password`), and every value inside a `headers` mapping.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if under_headers or (key in SECRET_KEYS and not isinstance(item, (dict, list))):
                out[key] = fn(item) if item is not None else None
            elif key == "headers" and isinstance(item, dict):
                out[key] = transform_secrets(item, fn, under_headers=True)
            else:
                out[key] = transform_secrets(item, fn)
        return out
    if isinstance(value, list):
        return [transform_secrets(item, fn) for item in value]
    return value


def _mask(_: Any) -> str:
    return MASK


def sha256_text(value: Any) -> str:
    """`sha256:<hex>` of a secret value (strings hashed as UTF-8, others via their JSON-ish str)."""
    text = value if isinstance(value, str) else str(value)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def masked(config: Any) -> Any:
    """Secret values replaced by `******` (what every Pipeline API read returns)."""
    return transform_secrets(config, _mask)


def hashed(body: Any) -> Any:
    """Secret values replaced by `sha256:<hex>` (journal and admin views)."""
    return transform_secrets(body, sha256_text)


def find_mask_placeholder(value: Any, path: str = "") -> str | None:
    """Path of the first string value equal to `******` in a request body, else None."""
    if isinstance(value, str):
        return (path or "(body)") if value == MASK else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_mask_placeholder(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_mask_placeholder(item, f"{path}[{index}]")
            if found:
                return found
    return None


# ---------------------------------------------------------------- validation


_ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "destination_type": tuple(DESTINATION_TYPES),
    "execution_mode": tuple(EXECUTION_MODES),
    "status": tuple(STATUSES),
}


def _check_field(name: str, value: Any) -> Any:
    """Validate one writeable field; returns the normalised value or raises ValidationFailed."""
    if name in ("name", "project", "topic"):
        if not isinstance(value, str) or not value.strip():
            raise ValidationFailed(f"Invalid field '{name}': must be a non-empty string")
        return value
    if name in ("description", "abi_unmatched"):
        if not isinstance(value, str):
            raise ValidationFailed(f"Invalid field '{name}': must be a string")
        return value
    allowed = _ENUM_FIELDS.get(name)
    if allowed is not None:
        if value not in allowed:
            raise ValidationFailed(f"Invalid field '{name}': must be one of {', '.join(allowed)}")
        return value
    if name in ("destination_config", "abi_file"):
        if not isinstance(value, dict):
            raise ValidationFailed(f"Invalid field '{name}': must be an object")
        return value
    if name == "transforms":
        if not isinstance(value, dict):
            raise ValidationFailed("Invalid field 'transforms': must be an object mapping table name to SQL")
        for table, sql in value.items():
            if not isinstance(sql, str):
                raise ValidationFailed(f"Invalid field 'transforms.{table}': must be a string")
        return value
    if name == "abi_contract_addresses":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationFailed("Invalid field 'abi_contract_addresses': must be a list of strings")
        return value
    if name in ("execution_start_from", "execution_stop_from"):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationFailed(f"Invalid field '{name}': must be a string (block height)")
        return str(value)
    raise ValidationFailed(f"Unknown field '{name}'")  # pragma: no cover - callers pass known names


def check_no_mask(body: Any) -> None:
    """Reject a body that sends the `******` placeholder back as a value."""
    where = find_mask_placeholder(body)
    if where:
        raise ValidationFailed(
            f"Invalid field '{where}': the masked placeholder '{MASK}' is not a value; send the real secret"
        )


def check_cross_fields(fields: dict[str, Any]) -> None:
    """Rules that involve several fields of the resulting object."""
    config = fields.get("destination_config")
    dtype = fields.get("destination_type")
    if isinstance(config, dict) and "type" in config and config["type"] != dtype:
        raise ValidationFailed(f"Invalid field 'destination_config.type': must equal destination_type '{dtype}'")
    if dtype == "kafka" and fields.get("transforms"):
        raise ValidationFailed(
            "Invalid field 'transforms': SQL transforms are not supported with destination_type kafka"
        )


def validate_create(body: Any) -> dict[str, Any]:
    """Validate a create body; returns the writeable fields with defaults filled in.

    Unknown fields are ignored. Read-only fields (id, created_by, ...) are ignored too.
    """
    if not isinstance(body, dict):
        raise ValidationFailed("Request body must be a JSON object", 400)
    check_no_mask(body)
    missing = [name for name in REQUIRED_ON_CREATE if name not in body or body[name] is None]
    if missing:
        raise ValidationFailed(f"Missing required field(s): {', '.join(repr(m) for m in missing)}")
    out: dict[str, Any] = {}
    for name in WRITE_FIELDS:
        if name in body:
            out[name] = _check_field(name, body[name])
        else:
            value = DEFAULTS[name]
            out[name] = value.copy() if isinstance(value, (dict, list)) else value
    check_cross_fields(out)
    return out


def validate_patch_fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Type-check the fields of `names` present in `body`; returns them (normalised)."""
    return {name: _check_field(name, body[name]) for name in names if name in body}


def deep_merge(base: Any, update: Any) -> Any:
    """Recursive dict merge used by `--patch-merge deep` (lists and scalars replace)."""
    if isinstance(base, dict) and isinstance(update, dict):
        out = dict(base)
        for key, value in update.items():
            out[key] = deep_merge(base.get(key), value)
        return out
    return update


# ---------------------------------------------------------------- runtime failure rules

_SELECT = re.compile(r"^\s*select\b", re.IGNORECASE)


def transform_failure(transforms: dict[str, Any]) -> str | None:
    """Reason a transform makes the worker fail, or None.

    Rule: each value must be exactly one SELECT statement (one optional trailing `;`).
    """
    for table, sql in transforms.items():
        text = str(sql).strip()
        if text.endswith(";"):
            text = text[:-1]
        if not _SELECT.match(text) or ";" in text:
            return f"transform '{table}' failed: only a single SELECT statement is supported"
    return None


def destination_hosts(config: dict[str, Any]) -> list[str]:
    """Host names found in the destination's address fields (url, bootstrap_servers, queue_url, endpoint)."""
    hosts: list[str] = []
    for field in ("url", "queue_url", "endpoint"):
        value = config.get(field)
        if isinstance(value, str) and value:
            try:
                host = urlsplit(value if "://" in value else "//" + value).hostname
            except ValueError:
                host = None
            if host:
                hosts.append(host)
    servers = config.get("bootstrap_servers")
    if isinstance(servers, str):
        for server in servers.split(","):
            server = server.strip()
            if server:
                hosts.append(server.rsplit(":", 1)[0] if server.count(":") == 1 else server)
    return hosts


def unreachable_host(config: Any) -> str | None:
    """First destination host ending in `.invalid` (treated as unreachable), or None."""
    if not isinstance(config, dict):
        return None
    for host in destination_hosts(config):
        if host.lower().rstrip(".").endswith(".invalid"):
            return host
    return None
