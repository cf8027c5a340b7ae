"""Request journal (bounded ring buffer) and request counters for `/_sim/journal` and `/_sim/counters`.

`goldrush_sim.app` calls `Journal.record()` once per Pipeline API request after it has been
answered (or dropped); `goldrush_sim.admin` reads and resets it. Request bodies are stored
with every secret value replaced by `sha256:<hex>` (see `goldrush_sim.model.hashed`); only
secret values are hashed, so recording stays cheap.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from typing import Any

from goldrush_sim import model


def key_hash(token: str | None) -> str | None:
    """sha256 hex of a bearer token (the journal never stores tokens)."""
    return hashlib.sha256(token.encode()).hexdigest() if token is not None else None


def journal_body(raw: bytes | None, parsed: Any, parsed_ok: bool) -> Any:
    """What the journal stores for a request body.

    null when there is no body; the parsed JSON with secrets hashed when it parsed; a single
    `sha256:<hex>` string of the raw bytes when the body was not valid JSON.
    """
    if not raw:
        return None
    if parsed_ok:
        return model.hashed(parsed)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class Journal:
    """Ring buffer of request entries plus per route/status counters."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reset()

    def reset(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=self.size)
        self.seq = 0
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.by_route_status: Counter[str] = Counter()
        self.total = 0

    def record(
        self,
        *,
        time: float,
        method: str,
        path: str,
        query: str,
        route: str,
        status: int,
        key: str | None,
        body: Any,
        fault: str | None,
    ) -> None:
        self.seq += 1
        self.total += 1
        self.requests[route] += 1
        self.statuses[str(status)] += 1
        self.by_route_status[f"{route} {status}"] += 1
        if self.size:
            self.entries.append(
                {
                    "seq": self.seq,
                    "time": time,
                    "method": method,
                    "path": path,
                    "query": query,
                    "route": route,
                    "status": status,
                    "key": key,
                    "body": body,
                    "fault": fault,
                }
            )

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Entries with a sequence number greater than `seq` (oldest first)."""
        if not self.entries or self.entries[-1]["seq"] <= seq:
            return []
        first = self.entries[0]["seq"]
        start = max(0, seq - first + 1)
        return [self.entries[i] for i in range(start, len(self.entries))]

    def counters(self, early_retries: dict[str | None, int]) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "by_route_status": dict(self.by_route_status),
            "early_retries": sum(early_retries.values()),
            "early_retries_by_key": {str(k): v for k, v in early_retries.items()},
            "total": self.total,
        }
