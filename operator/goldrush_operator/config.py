"""Operator settings from the environment (names are a public contract, see README "Operator settings").

Called once by `cli.run` at start-up; the resulting `Settings` is handed to the handlers and the controller.
The service key is not stored here: `ServiceKeySource` reads `GOLDRUSH_SERVICE_KEY_FILE` (re-read when the
file changes, so a rotated mounted Secret takes effect without a restart) or `GOLDRUSH_SERVICE_KEY`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from goldrush_operator.lease import LeaseTiming

DEFAULT_API_URL = "https://api.covalenthq.com/platform/pipeline-api/"
DEFAULT_OPERATOR_NAMESPACE = "goldrush-system"
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _operator_namespace(env: Mapping[str, str]) -> str:
    """The operator's own namespace: `POD_NAMESPACE` (downward API), else the service account's, else the default."""
    value = env.get("POD_NAMESPACE", "").strip()
    if value:
        return value
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE_FILE).read_text().strip() or DEFAULT_OPERATOR_NAMESPACE
    except OSError:
        return DEFAULT_OPERATOR_NAMESPACE


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value > 1:
        raise ValueError(f"{name} is a share of GOLDRUSH_RATE_LIMIT between 0 and 1, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_float(env, name, float(default)))


@dataclass(frozen=True)
class Settings:
    """Everything the operator reads from its environment."""

    api_url: str = DEFAULT_API_URL
    service_key_file: str | None = None
    service_key: str | None = field(default=None, repr=False)
    namespaces: tuple[str, ...] = ()
    poll_fast_seconds: float = 2.0
    poll_slow_seconds: float = 900.0
    poll_status_max_seconds: float = 60.0
    poll_budget_share: float = 0.1
    workers: int = 128
    max_concurrency: int = 10
    rate_limit: float = 20.0
    metrics_port: int = 9090
    health_port: int = 8080
    log_format: str = "text"
    log_level: str = "INFO"
    hash_key: str = field(default="", repr=False)
    request_timeout: float = 30.0
    error_backoff_max_seconds: float = 300.0
    dry_run: bool = False  # GOLDRUSH_DRY_RUN: the API client refuses every write; Would* Events instead
    pipeline_metrics_seconds: float = 60.0  # per-pipeline metrics refresh; 0 turns the metrics reads off
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE  # where ClusterGoldRushCredentials' key Secrets live

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the `GOLDRUSH_*` variables; raises ValueError with the variable name on a bad value."""
        e = os.environ if env is None else env
        log_format = e.get("GOLDRUSH_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ValueError(f"GOLDRUSH_LOG_FORMAT must be 'json' or 'text', got {log_format!r}")
        namespaces = tuple(n.strip() for n in e.get("GOLDRUSH_NAMESPACES", "").split(",") if n.strip())
        return cls(
            api_url=e.get("GOLDRUSH_API_URL", "").strip() or DEFAULT_API_URL,
            service_key_file=e.get("GOLDRUSH_SERVICE_KEY_FILE", "").strip() or None,
            service_key=e.get("GOLDRUSH_SERVICE_KEY", "").strip() or None,
            namespaces=namespaces,
            poll_fast_seconds=_float(e, "GOLDRUSH_POLL_FAST_SECONDS", 2.0) or 2.0,
            poll_slow_seconds=_float(e, "GOLDRUSH_POLL_SLOW_SECONDS", 900.0) or 900.0,
            poll_status_max_seconds=_float(e, "GOLDRUSH_POLL_STATUS_MAX_SECONDS", 60.0) or 60.0,
            poll_budget_share=_share(e, "GOLDRUSH_POLL_BUDGET_SHARE", 0.1),
            workers=max(1, _int(e, "GOLDRUSH_WORKERS", 128)),
            max_concurrency=max(1, _int(e, "GOLDRUSH_MAX_CONCURRENCY", 10)),
            rate_limit=_float(e, "GOLDRUSH_RATE_LIMIT", 20.0),
            metrics_port=_int(e, "GOLDRUSH_METRICS_PORT", 9090),
            health_port=_int(e, "GOLDRUSH_HEALTH_PORT", 8080),
            log_format=log_format,
            log_level=e.get("GOLDRUSH_LOG_LEVEL", "INFO").strip().upper() or "INFO",
            hash_key=e.get("GOLDRUSH_HASH_KEY", ""),
            request_timeout=_float(e, "GOLDRUSH_REQUEST_TIMEOUT_SECONDS", 30.0) or 30.0,
            dry_run=_bool(e, "GOLDRUSH_DRY_RUN"),
            pipeline_metrics_seconds=_float(e, "GOLDRUSH_PIPELINE_METRICS_SECONDS", 60.0),
            operator_namespace=_operator_namespace(e),
        )


@dataclass(frozen=True)
class LeaseSettings:
    """High availability: leader election and sharding on Leases (README "High availability").

    `GOLDRUSH_LEADER_ELECTION`: `true`, `false` or `auto` (default): on when the operator runs in a pod
    (`KUBERNETES_SERVICE_HOST` set), off for a process started outside the cluster (development, tests). More
    than one shard (`GOLDRUSH_SHARDS`) needs it on. The Leases live in `GOLDRUSH_LEASE_NAMESPACE`, else
    `POD_NAMESPACE`, else the namespace of the service account or kubeconfig context (`namespace` None here).
    """

    enabled: bool = False
    timing: LeaseTiming = field(default_factory=LeaseTiming)
    shards: int = 1
    namespace: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LeaseSettings:
        e = os.environ if env is None else env
        mode = e.get("GOLDRUSH_LEADER_ELECTION", "auto").strip().lower() or "auto"
        if mode not in ("true", "false", "auto"):
            raise ValueError(f"GOLDRUSH_LEADER_ELECTION must be 'true', 'false' or 'auto', got {mode!r}")
        shards = max(1, _int(e, "GOLDRUSH_SHARDS", 1))
        if shards > 1 and mode == "false":
            raise ValueError("GOLDRUSH_SHARDS above 1 needs GOLDRUSH_LEADER_ELECTION on")
        enabled = mode == "true" or shards > 1 or (mode == "auto" and bool(e.get("KUBERNETES_SERVICE_HOST")))
        timing = LeaseTiming(
            duration=_float(e, "GOLDRUSH_LEASE_DURATION_SECONDS", 15.0),
            renew_deadline=_float(e, "GOLDRUSH_LEASE_RENEW_DEADLINE_SECONDS", 10.0),
            retry_period=_float(e, "GOLDRUSH_LEASE_RETRY_PERIOD_SECONDS", 2.0),
        )
        namespace = (e.get("GOLDRUSH_LEASE_NAMESPACE", "").strip() or e.get("POD_NAMESPACE", "").strip()) or None
        return cls(enabled=enabled, timing=timing, shards=shards, namespace=namespace)


class ServiceKeySource:
    """The operator's own service key: the file (re-read when its mtime/size changes) wins over the variable."""

    def __init__(self, settings: Settings) -> None:
        self._file = Path(settings.service_key_file) if settings.service_key_file else None
        self._env_key = settings.service_key
        self._cached: str | None = None
        self._stamp: tuple[float, int] | None = None

    def get(self) -> str | None:
        """The current key, or None when neither source provides one."""
        if self._file is not None:
            try:
                st = self._file.stat()
            except OSError:
                return self._env_key
            stamp = (st.st_mtime, st.st_size)
            if stamp != self._stamp:
                self._cached = self._file.read_text().strip() or None
                self._stamp = stamp
            return self._cached or self._env_key
        return self._env_key

    def __repr__(self) -> str:
        return f"ServiceKeySource(file={self._file!s}, env={'set' if self._env_key else 'unset'})"
