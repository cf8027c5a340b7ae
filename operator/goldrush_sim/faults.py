"""Fault injection: the active fault set, the rate limiters and early-retry tracking.

`goldrush_sim.app` asks `Faults.before()` for every Pipeline API request (latency, rate
limits, error rules) and `take_*()` for the write-side faults (echo the body in a 422, drop
the connection or delay the answer after committing). `goldrush_sim.admin` edits the set via
`/_sim/faults`. Probabilities use a `random.Random(--seed)` so test runs are repeatable.
CLI values (`--latency-ms`, `--rate-limit-rps`) are the baseline a clear/reset returns to.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ROUTES = (
    "list",
    "create",
    "get",
    "put",
    "patch",
    "delete",
    "status",
    "logs",
    "metrics",
    "destination-health",
)
WRITE_ROUTES = frozenset({"create", "put", "patch", "delete"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    """Answer matching requests with `status` (probability `rate`, `count` times, null = forever).

    `key_sha256` narrows the rule to requests bearing one key (the sha256 hex of the bearer token,
    as the journal shows it), so one key can meet an outage while every other key is served.
    """

    route: str = "*"
    method: str = "*"
    key_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    status: int = Field(ge=400, le=599)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1)
    retry_after: int | None = Field(default=None, ge=0)
    message: str | None = None


class Burst(_Strict):
    """The next `count` matching requests get 429 with `Retry-After: retry_after`."""

    count: int = Field(ge=1)
    retry_after: int = Field(default=1, ge=0)
    route: str = "*"
    method: str = "*"


class Counted(_Strict):
    """A write-side fault for the next `count` matching requests (null = forever)."""

    route: str = "*"
    method: str = "*"
    count: int | None = Field(default=1, ge=1)
    seconds: float = Field(default=30.0, ge=0)


class FaultPatch(_Strict):
    """Body of `POST /_sim/faults`; every key optional, merged into the active set."""

    latency_ms: int | None = Field(default=None, ge=0)
    rules: list[Rule] = Field(default_factory=list)
    rate_limit: Burst | None = None
    rate_limit_rps: float | None = Field(default=None, gt=0)
    drop_after_commit: Counted | None = None
    delay_after_commit: Counted | None = None
    echo_body_in_422: Counted | None = None


@dataclass
class Rejection:
    """A request answered by a fault instead of the handler."""

    status: int
    message: str
    retry_after: int | None
    fault: str


def _match(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern.lower() == value.lower()


class Faults:
    """The active fault set plus rate-limiter and Retry-After bookkeeping."""

    def __init__(self, *, seed: int, latency_ms: int, rate_limit_rps: float | None) -> None:
        self._seed = seed
        self._base_latency = latency_ms
        self._base_rps = rate_limit_rps
        self.clear()
        self.reset_retry_state()

    def clear(self) -> None:
        """Back to the command line baseline."""
        self.rng = random.Random(self._seed)
        self.latency_ms = self._base_latency
        self.rate_limit_rps = self._base_rps
        self.rules: list[Rule] = []
        self.burst: Burst | None = None
        self.drop: Counted | None = None
        self.delay: Counted | None = None
        self.echo: Counted | None = None
        self._buckets: dict[str | None, tuple[float, float]] = {}

    def reset_retry_state(self) -> None:
        self.not_before: dict[str | None, float] = {}
        self.early_retries: dict[str | None, int] = {}

    def merge(self, patch: FaultPatch, fields_set: set[str]) -> None:
        if patch.latency_ms is not None:
            self.latency_ms = patch.latency_ms
        self.rules.extend(patch.rules)
        if "rate_limit" in fields_set:
            self.burst = patch.rate_limit
        if "rate_limit_rps" in fields_set:
            self.rate_limit_rps = patch.rate_limit_rps
            self._buckets.clear()
        if "drop_after_commit" in fields_set:
            self.drop = patch.drop_after_commit
        if "delay_after_commit" in fields_set:
            self.delay = patch.delay_after_commit
        if "echo_body_in_422" in fields_set:
            self.echo = patch.echo_body_in_422

    def to_json(self) -> dict[str, Any]:
        def dump(model: BaseModel | None) -> Any:
            return model.model_dump() if model is not None else None

        return {
            "latency_ms": self.latency_ms,
            "rules": [rule.model_dump() for rule in self.rules],
            "rate_limit": dump(self.burst),
            "rate_limit_rps": self.rate_limit_rps,
            "drop_after_commit": dump(self.drop),
            "delay_after_commit": dump(self.delay),
            "echo_body_in_422": dump(self.echo),
        }

    # ------------------------------------------------------------ early retries

    def note_request(self, key: str | None, now: float) -> bool:
        """Record an early retry if `key` still has a Retry-After pending; returns True if early."""
        until = self.not_before.get(key)
        if until is None:
            return False
        if now < until:
            self.early_retries[key] = self.early_retries.get(key, 0) + 1
            return True
        del self.not_before[key]
        return False

    def note_retry_after(self, key: str | None, seconds: int, now: float) -> None:
        self.not_before[key] = max(self.not_before.get(key, 0.0), now + seconds)

    # ------------------------------------------------------------ request-time decisions

    def _rps_exceeded(self, key: str | None, now: float) -> int | None:
        """Token bucket per bearer key; returns Retry-After seconds when empty."""
        rps = self.rate_limit_rps
        if rps is None:
            return None
        tokens, last = self._buckets.get(key, (rps, now))
        tokens = min(rps, tokens + (now - last) * rps)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rps))

    def before(self, route: str, method: str, key: str | None, now: float) -> Rejection | None:
        """Decide whether a request is answered by a fault (burst, rps limit, rules)."""
        burst = self.burst
        if burst is not None and _match(burst.route, route) and _match(burst.method, method):
            burst.count -= 1
            if burst.count <= 0:
                self.burst = None
            return Rejection(429, "Too many requests (injected burst)", burst.retry_after, "rate_limit")
        wait = self._rps_exceeded(key, now)
        if wait is not None:
            return Rejection(429, "Too many requests: rate limit exceeded", wait, "rate_limit_rps")
        for rule in self.rules:
            if not (_match(rule.route, route) and _match(rule.method, method)):
                continue
            if rule.key_sha256 is not None and rule.key_sha256 != key:
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            retry_after = rule.retry_after
            if retry_after is None and rule.status == 429:
                retry_after = 1
            message = rule.message or f"Injected fault: HTTP {rule.status}"
            return Rejection(rule.status, message, retry_after, "rule")
        return None

    def _take(self, name: str, route: str, method: str) -> Counted | None:
        fault: Counted | None = getattr(self, name)
        if fault is None or not (_match(fault.route, route) and _match(fault.method, method)):
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                setattr(self, name, None)
        return fault

    def take_echo(self, route: str, method: str) -> bool:
        return self._take("echo", route, method) is not None

    def take_drop(self, route: str, method: str) -> bool:
        return route in WRITE_ROUTES and self._take("drop", route, method) is not None

    def take_delay(self, route: str, method: str) -> float | None:
        if route not in WRITE_ROUTES:
            return None
        fault = self._take("delay", route, method)
        return fault.seconds if fault is not None else None
