"""In-memory pipeline store and the lazy runtime phase machine.

Called by `goldrush_sim.app` (Pipeline API handlers) and `goldrush_sim.admin` (out-of-band
changes). No background tasks: every pipeline keeps a small `Runtime` record (what happened
last and when) and its phase, metrics, logs and destination health are computed from that
record and the wall clock when somebody asks, so 10,000 idle pipelines cost nothing.

Phase rules (timings from `SimConfig`):
  deploy at t0 -> DEPLOYING until t0+deploy_seconds, then FAILED (if the configuration has a
  failure reason) or RUNNING; bounded pipelines become STOPPED after bounded_run_seconds of
  RUNNING. Pause at t0 -> STOPPING until t0+stop_seconds, then PAUSED. Created paused ->
  PAUSED. A forced phase (admin API) holds until the next deploy. A deleted pipeline shows
  STOPPING for delete_seconds and then disappears.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import random
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from goldrush_sim import model
from goldrush_sim.config import SimConfig

RECORDS_PER_SECOND = 100.0
BLOCKS_PER_SECOND = 0.5
DEFAULT_START_BLOCK = 30_000_000
NOT_RUNNING_LOG = "unable to upgrade connection: container not found"
FORCED_FAILURE = "worker exited with code 1"
UNREACHABLE_ERROR = "connection refused"
_POD_CHARS = string.ascii_lowercase + string.digits


def iso(ts: float) -> str:
    """ISO-8601 UTC with second precision and a `Z` suffix, as in the API examples."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def new_pipeline_id() -> str:
    """`pipe_` + the first 27 hex characters of a UUID4."""
    return "pipe_" + uuid.uuid4().hex[:27]


def group_object(group_id: str) -> dict[str, Any]:
    """The read-only `group` object; name and slug are derived from the id."""
    slug = group_id.removeprefix("group_").replace("_", "-") or "group"
    return {
        "id": group_id,
        "name": slug,
        "slug": slug,
        "is_paid": True,
        "is_over_limit": False,
        "is_free_trial_expired": False,
    }


def user_object(key: str | None) -> dict[str, Any]:
    """A deterministic `created_by` user for a bearer key (or for out-of-band seeding)."""
    digest = hashlib.sha256((key or "goldrush-sim-foreign-user").encode()).hexdigest()
    short = digest[:8]
    return {
        "id": "user_" + digest[:27],
        "email": f"user-{short}@example.com",
        "display_name": f"user-{short}",
        "full_name": f"Simulated User {short}",
    }


@dataclass
class Runtime:
    """What the worker last did. `kind`: deploy | stop | idle | forced."""

    kind: str
    t0: float
    frozen: float = 0.0  # seconds of RUNNING accumulated before t0 (for counters)
    fail_reason: str | None = None
    unreachable: bool = False
    forced_phase: str | None = None
    log: str | None = None
    pod_suffix: str = ""
    started_at: float | None = None
    health: tuple[bool, str | None] | None = None
    metrics: dict[str, float] | None = None  # admin override of /metrics/ fields, until the next deploy


@dataclass
class Pipeline:
    """One stored pipeline: writeable `fields` plus read-only metadata and its runtime."""

    id: str
    group_id: str
    fields: dict[str, Any]
    created_by: dict[str, Any]
    created_at: float
    updated_at: float
    runtime: Runtime
    deleting_at: float | None = None

    @property
    def uid(self) -> str:
        return f"covalent-{self.fields.get('destination_type')}-{self.id.replace('_', '-')}"

    def order_key(self) -> tuple[str, str]:
        return (iso(self.created_at), self.id)


class Store:
    """All pipelines of all groups, with per-group ordering for paginated lists."""

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_change = on_change or (lambda: None)
        self.pipelines: dict[str, Pipeline] = {}
        self._order: dict[str, list[tuple[str, str]]] = {}
        self._deleting: set[str] = set()
        self._pod_rng = random.Random()

    # ------------------------------------------------------------ bookkeeping

    def clear(self) -> None:
        self.pipelines.clear()
        self._order.clear()
        self._deleting.clear()
        self.on_change()

    def _index(self, p: Pipeline) -> None:
        bisect.insort(self._order.setdefault(p.group_id, []), p.order_key())

    def _unindex(self, p: Pipeline) -> None:
        keys = self._order.get(p.group_id, [])
        pos = bisect.bisect_left(keys, p.order_key())
        if pos < len(keys) and keys[pos] == p.order_key():
            del keys[pos]

    def remove(self, pipeline_id: str) -> bool:
        """Drop a pipeline immediately (end of a delete, or out-of-band delete)."""
        p = self.pipelines.pop(pipeline_id, None)
        if p is None:
            return False
        self._unindex(p)
        self._deleting.discard(pipeline_id)
        self.on_change()
        return True

    def purge(self) -> None:
        """Finish deletions whose STOPPING window is over."""
        if not self._deleting:
            return
        now = self.clock()
        for pid in list(self._deleting):
            p = self.pipelines.get(pid)
            if p is None or (p.deleting_at or 0.0) + self.config.delete_seconds <= now:
                self.remove(pid)

    def get(self, pipeline_id: str, group_id: str | None = None) -> Pipeline | None:
        """A pipeline by id; with `group_id`, only if it belongs to that group."""
        self.purge()
        p = self.pipelines.get(pipeline_id)
        if p is None or (group_id is not None and p.group_id != group_id):
            return None
        return p

    def page(self, group_id: str, page_number: int, page_size: int) -> tuple[list[Pipeline], int]:
        """One page of a group's pipelines ordered by (created_at, id), plus the total count."""
        self.purge()
        keys = self._order.get(group_id, [])
        start = (page_number - 1) * page_size
        return [self.pipelines[pid] for _, pid in keys[start : start + page_size]], len(keys)

    def all(self) -> list[Pipeline]:
        self.purge()
        return sorted(self.pipelines.values(), key=lambda p: (p.order_key(), p.group_id))

    # ------------------------------------------------------------ runtime

    def _suffix(self) -> str:
        return "".join(self._pod_rng.choices(_POD_CHARS, k=5))

    def deploy(self, p: Pipeline, now: float) -> None:
        """(Re)start the worker: counters reset, forced phase, health and metrics overrides cleared."""
        fields = p.fields
        reason = model.transform_failure(fields.get("transforms") or {})
        host = model.unreachable_host(fields.get("destination_config"))
        if reason is None and host:
            reason = f"destination unreachable: {UNREACHABLE_ERROR} ({host})"
        if reason is None and fields.get("destination_type") == "kafka" and fields.get("abi_file"):
            reason = "configuration rejected: ABI decoding is not supported with the kafka destination"
        p.runtime = Runtime(
            kind="deploy",
            t0=now,
            fail_reason=reason,
            unreachable=bool(host),
            pod_suffix=self._suffix(),
            started_at=now,
        )

    def stop(self, p: Pipeline, now: float) -> None:
        """Pause the worker: STOPPING for stop_seconds then PAUSED; counters freeze."""
        phase, elapsed = self.phase(p, now)
        if phase in ("PAUSED", "STOPPING"):
            return
        rt = p.runtime
        p.runtime = Runtime(
            kind="stop",
            t0=now,
            frozen=elapsed,
            unreachable=rt.unreachable,
            pod_suffix=rt.pod_suffix,
            started_at=rt.started_at,
            health=rt.health,
            metrics=rt.metrics,
        )

    def force_phase(self, p: Pipeline, phase: str, log: str | None, now: float) -> None:
        """Hold `phase` until the next deploy (admin API)."""
        _, elapsed = self.phase(p, now)
        rt = p.runtime
        p.runtime = Runtime(
            kind="forced",
            t0=now,
            frozen=elapsed,
            fail_reason=rt.fail_reason,
            unreachable=rt.unreachable,
            forced_phase=phase,
            log=log,
            pod_suffix=rt.pod_suffix or self._suffix(),
            started_at=rt.started_at if rt.started_at is not None else now,
            health=rt.health,
            metrics=rt.metrics,
        )

    def phase(self, p: Pipeline, now: float | None = None) -> tuple[str, float]:
        """(runtime phase, seconds spent RUNNING by the current worker)."""
        now = self.clock() if now is None else now
        rt = p.runtime
        if p.deleting_at is not None:
            return "STOPPING", rt.frozen
        cfg = self.config
        if rt.kind == "deploy":
            run_start = rt.t0 + cfg.deploy_seconds
            if now < run_start:
                return "DEPLOYING", 0.0
            if rt.fail_reason:
                return "FAILED", 0.0
            elapsed = now - run_start
            if p.fields.get("execution_mode") == "bounded" and elapsed >= cfg.bounded_run_seconds:
                return "STOPPED", cfg.bounded_run_seconds
            return "RUNNING", elapsed
        if rt.kind == "stop":
            return ("STOPPING" if now < rt.t0 + cfg.stop_seconds else "PAUSED"), rt.frozen
        if rt.kind == "forced" and rt.forced_phase:
            extra = now - rt.t0 if rt.forced_phase == "RUNNING" else 0.0
            return rt.forced_phase, rt.frozen + extra
        return "PAUSED", rt.frozen

    def status_view(self, p: Pipeline) -> dict[str, Any]:
        phase, _ = self.phase(p)
        replicas, ready = {
            "DEPLOYING": (1, 0),
            "RUNNING": (1, 1),
            "FAILED": (1, 0),
        }.get(phase, (0, 0))
        started = p.runtime.started_at
        return {
            "uid": p.uid,
            "status": phase,
            "replicas": replicas,
            "ready": ready,
            "start_time": iso(started) if started is not None else None,
        }

    def _counters(self, p: Pipeline, elapsed: float, running: bool) -> dict[str, Any]:
        consumed = int(elapsed * RECORDS_PER_SECOND)
        start = str(p.fields.get("execution_start_from") or "")
        base = int(start) if start.isdigit() else DEFAULT_START_BLOCK
        return {
            "records_consumed": consumed,
            "last_offset": consumed,
            "last_block_height": base + int(elapsed * BLOCKS_PER_SECOND) if consumed else 0,
            "pending_records": min(consumed, 25) if running else 0,
            "processing_delay_ms": 1500 if running else 0,
            "records_per_second": RECORDS_PER_SECOND if running else 0.0,
            "normalization_errors": 0,
        }

    def metrics_view(self, p: Pipeline) -> dict[str, Any]:
        phase, elapsed = self.phase(p)
        return {"uid": p.uid, **self._counters(p, elapsed, phase == "RUNNING"), **(p.runtime.metrics or {})}

    def logs_view(self, p: Pipeline) -> dict[str, Any]:
        phase, elapsed = self.phase(p)
        rt = p.runtime
        suffix = rt.pod_suffix or self._suffix()
        rt.pod_suffix = suffix
        pod = ("pipeline-" + p.uid)[:58] + suffix
        started = iso(rt.started_at if rt.started_at is not None else p.created_at)
        lines: list[str]
        if phase == "RUNNING":
            counters = self._counters(p, elapsed, True)
            lines = [
                f"{started} INFO starting pipeline {p.uid} topic={p.fields.get('topic')}",
                f"{started} INFO connected to {p.fields.get('destination_type')} destination",
                f"{iso(self.clock())} INFO consumed {counters['records_consumed']} records, "
                f"last block {counters['last_block_height']}",
            ]
        elif phase == "FAILED":
            reason = rt.fail_reason or FORCED_FAILURE
            lines = [
                f"{started} INFO starting pipeline {p.uid} topic={p.fields.get('topic')}",
                f"ERROR {reason}",
            ]
        else:
            lines = [NOT_RUNNING_LOG]
        if rt.log:
            lines.append(rt.log)
        return {"uid": p.uid, "pods": [{"pod": pod, "logs": "\n".join(lines)}]}

    def health_view(self, p: Pipeline) -> dict[str, Any]:
        rt = p.runtime
        if rt.health is not None:
            return {"healthy": rt.health[0], "last_error": rt.health[1]}
        probed = rt.kind != "deploy" or self.clock() >= rt.t0 + self.config.deploy_seconds
        if rt.unreachable and probed:
            return {"healthy": False, "last_error": UNREACHABLE_ERROR}
        return {"healthy": True, "last_error": None}

    # ------------------------------------------------------------ mutations

    def create(self, group_id: str, fields: dict[str, Any], created_by: dict[str, Any]) -> Pipeline:
        now = self.clock()
        p = Pipeline(
            id=new_pipeline_id(),
            group_id=group_id,
            fields=fields,
            created_by=created_by,
            created_at=now,
            updated_at=now,
            runtime=Runtime(kind="idle", t0=now),
        )
        if fields.get("status") == "running":
            self.deploy(p, now)
        self.pipelines[p.id] = p
        self._index(p)
        self.on_change()
        return p

    def set_status(self, p: Pipeline, status: str, now: float) -> None:
        """Apply an intent change (PUT or the `status` of a PATCH)."""
        old = p.fields.get("status")
        p.fields["status"] = status
        if status == old:
            return
        if status == "paused":
            self.stop(p, now)
        else:
            self.deploy(p, now)

    def update(self, p: Pipeline, changes: dict[str, Any], *, merge: str) -> None:
        """Apply already validated PATCH changes; redeploys when a running worker's config changed."""
        now = self.clock()
        new_status = changes.pop("status", None)
        changed: set[str] = set()
        for name, value in changes.items():
            new = model.deep_merge(p.fields.get(name), value) if merge == "deep" else value
            if p.fields.get(name) != new:
                changed.add(name)
                p.fields[name] = copy.deepcopy(new)
        p.updated_at = now
        old_status = p.fields.get("status")
        if new_status is not None and new_status != old_status:
            self.set_status(p, new_status, now)
        elif old_status == "running" and changed - model.COSMETIC:
            self.deploy(p, now)
        self.on_change()

    def touch(self, p: Pipeline) -> None:
        p.updated_at = self.clock()
        self.on_change()

    def delete(self, p: Pipeline) -> None:
        """Start deleting: STOPPING for delete_seconds, then gone (immediately when 0)."""
        if p.deleting_at is not None:
            return
        if self.config.delete_seconds <= 0:
            self.remove(p.id)
            return
        now = self.clock()
        _, elapsed = self.phase(p, now)
        p.runtime.frozen = elapsed
        p.deleting_at = now
        self._deleting.add(p.id)
        self.on_change()

    # ------------------------------------------------------------ rendering and persistence

    def render(self, p: Pipeline, secrets: str = "mask") -> dict[str, Any]:
        """The API object (`secrets`: mask -> `******`, hash -> `sha256:<hex>`)."""
        f = p.fields
        config = f.get("destination_config")
        if self.config.echo_defaults:
            config = model.with_defaults(config, f.get("destination_type"))
        out: dict[str, Any] = {
            "id": p.id,
            "name": f.get("name"),
            "project": f.get("project"),
            "description": f.get("description", ""),
            "topic": f.get("topic"),
            "destination_type": f.get("destination_type"),
            "destination_config": model.masked(config) if secrets == "mask" else model.hashed(config),
            "transforms": copy.deepcopy(f.get("transforms", {})),
            "execution_mode": f.get("execution_mode"),
            "execution_start_from": f.get("execution_start_from", ""),
            "execution_stop_from": f.get("execution_stop_from", ""),
            "abi_file": copy.deepcopy(f.get("abi_file", {})),
            "abi_contract_addresses": list(f.get("abi_contract_addresses", [])),
            "abi_unmatched": f.get("abi_unmatched", ""),
            "status": f.get("status"),
            "created_by": dict(p.created_by),
            "group": group_object(p.group_id),
            "created_at": iso(p.created_at),
            "updated_at": iso(p.updated_at),
        }
        return out

    def dump(self) -> dict[str, Any]:
        """A JSON-able snapshot of every pipeline (for `--state-file`)."""
        items = []
        for p in self.pipelines.values():
            item = asdict(p)
            item["runtime"]["health"] = list(p.runtime.health) if p.runtime.health else None
            items.append(item)
        return {"version": 1, "pipelines": items}

    def load(self, data: dict[str, Any]) -> None:
        """Replace the store content with a `dump()` snapshot."""
        self.pipelines.clear()
        self._order.clear()
        self._deleting.clear()
        for item in data.get("pipelines", []):
            rt_data = dict(item["runtime"])
            health = rt_data.pop("health", None)
            runtime = Runtime(**rt_data, health=(bool(health[0]), health[1]) if health else None)
            p = Pipeline(**{**item, "runtime": runtime})
            self.pipelines[p.id] = p
            self._index(p)
            if p.deleting_at is not None:
                self._deleting.add(p.id)


__all__ = ["Pipeline", "Runtime", "Store", "group_object", "iso", "user_object"]
