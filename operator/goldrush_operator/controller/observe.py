"""Observe the remote pipeline: its runtime phase, destination health and metrics, mirrored into status.

`Observer.observe` is the last step of a pass that reaches a remote pipeline (called by `loop.Controller`):
it reads `GET /{id}/status/` (and destination health on a full check or a phase change), judges the phase
(`phases.judge`), writes the status and returns when the object is due again. `remote_gone` handles a
pipeline that vanished out of band (also called by `act.Act`); `report` feeds the per-pipeline gauges from
what a pass saw, without a read of its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable

from goldrush_operator import conditions as cond
from goldrush_operator.config import Settings
from goldrush_operator.controller import status
from goldrush_operator.controller.external import External, now_iso, parse_time
from goldrush_operator.controller.inputs import Desired
from goldrush_operator.controller.outcome import Stall
from goldrush_operator.controller.ports import Metrics
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.controller.timing import Timing
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError, NotFoundError, PipelineMetrics, RuntimeStatus
from goldrush_operator.phases import judge
from goldrush_operator.state import Store

log = logging.getLogger("goldrush_operator.controller")


class Observer:
    """Reads the remote's runtime and writes what it saw; one per `loop.Controller`."""

    def __init__(
        self, settings: Settings, external: External, writer: StatusWriter, metrics: Metrics, timing: Timing,
        clock: Callable[[], float],
    ) -> None:
        self.settings, self.external, self.writer, self.metrics = settings, external, writer, metrics
        self.timing, self.clock = timing, clock

    async def observe(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, full_check: bool, created: bool,
        held: Stall | None = None,
    ) -> tuple[float, str]:
        """Read the runtime (and, on a full check, destination health) and write the status."""
        record = p.record
        runtime = await self._runtime(client, pipeline_id, p.secrets)
        if runtime is None:
            await self.remote_gone(p, d, pipeline_id)
            return 0.0, "recreate"
        phase, prev_phase = runtime.status, p.current.get("phase")
        p.out.update(phase=phase, replicas=runtime.replicas, readyReplicas=runtime.ready)
        if phase != prev_phase:
            self.metrics.phase_changed(record.key, phase)
        if full_check or phase != prev_phase:
            await self._destination_health(p, client, pipeline_id)
        hint = ""
        if phase == "FAILED":
            old = cond.get_condition(p.current.get("conditions"), cond.READY) or {}
            if phase != prev_phase or full_check or old.get("reason") != cond.REMOTE_FAILED:
                hint = await self._failure_hint(p, client, pipeline_id)
            else:
                hint = str(old.get("message", "")).partition(": ")[2]
        want_paused = d.spec.paused if p.remote_paused is None else p.remote_paused
        verdict = judge(phase, runtime.ready, runtime.replicas, want_paused=want_paused,
                        bounded=d.spec.execution.mode == "bounded", pipeline_id=pipeline_id, hint=hint)
        status.observed(p, verdict, pipeline_id)
        if p.not_applied is not None:
            status.not_applied(p, *p.not_applied)
            if p.dry_calls:
                await self.external.announce(p, p.dry_calls)
        if held is not None:
            status.failed(p, held, in_sync=False)
        if verdict.stalled and prev_phase != phase:
            await self.external.warn_once(p, verdict.reason, verdict.message)
        if verdict.ready and not cond.is_true(p.current.get("conditions"), cond.READY):
            created_at = parse_time(p.current.get("createdAt"))
            if created_at is not None:
                self.metrics.became_ready((dt.datetime.now(dt.UTC) - created_at).total_seconds())
        if record.last_event_reason and not verdict.stalled:
            record.last_event_reason = None
        if created:
            p.out["createdAt"] = now_iso()
        await self.writer.write(p)
        record.backoff = 0.0
        status_every, full_every = self.timing.intervals()
        fast = self.settings.poll_fast_seconds
        if full_check:
            next_full = fast if verdict.fast_poll else full_every * random.uniform(1, 1.15)
            record.next_full_check = self.clock() + next_full
        if held is not None:
            return status_every, "stalled"
        if verdict.fast_poll:
            return fast, "ok"
        return self.timing.on_tick(status_every, self.settings.poll_status_max_seconds), "ok"

    @staticmethod
    async def _destination_health(p: Pass, client: GoldRushClient, pipeline_id: str) -> None:
        """The latest destination probe into `DestinationHealthy`; kept as it was when the API has no verdict
        or the read fails (an auxiliary read never keeps the phase from being mirrored)."""
        try:
            health = await client.get_destination_health(pipeline_id, secrets=p.secrets)
        except NotFoundError:
            return
        except GoldRushError as exc:
            log.info("destination health of pipeline %s not read: %s", pipeline_id, p.scrub(str(exc)))
            return
        if health.healthy is not None:
            status.destination_health(p, health.healthy, p.scrub(health.last_error or "") or None, now_iso())

    async def _runtime(
        self, client: GoldRushClient, pipeline_id: str, secrets: tuple[str, ...]
    ) -> RuntimeStatus | None:
        """`GET /{id}/status/`; None only when the pipeline itself is gone.

        The API does not say what `/status/` answers while no runtime exists (right after a create, for a
        paused pipeline): a 404 there is confirmed with `GET /{id}/` before the pipeline counts as deleted,
        which would create it again. A pipeline without a runtime is `PAUSED` when its intent is paused,
        else `DEPLOYING` (polled fast until the runtime shows up).
        """
        try:
            return await client.get_status(pipeline_id, secrets=secrets)
        except NotFoundError:
            pass
        remote = await self.external.fetch(client, pipeline_id, secrets)
        if remote is None:
            return None
        return RuntimeStatus(status="PAUSED" if remote.status == "paused" else "DEPLOYING", replicas=0, ready=0)

    async def _failure_hint(self, p: Pass, client: GoldRushClient, pipeline_id: str) -> str:
        """The latest non-empty log line of the failed worker (scrubbed), as a hint for humans."""
        try:
            logs = await client.get_logs(pipeline_id, secrets=p.secrets)
        except GoldRushError:
            return ""
        for pod in reversed(logs.pods):
            lines = [line.strip() for line in pod.logs.splitlines() if line.strip()]
            if lines:
                return p.scrub(lines[-1])[:500]
        return ""

    async def read_metrics(self, p: Pass, client: GoldRushClient, pipeline_id: str) -> None:
        """`GET /{id}/metrics/` into the per-pipeline gauges; a failure only waits for the next refresh."""
        record = p.record
        record.metrics_paid = False
        record.next_metrics = self.clock() + (self.timing.metrics_interval() or 0.0)
        try:
            metrics: PipelineMetrics | None = await client.get_metrics(pipeline_id, secrets=p.secrets)
        except NotFoundError:
            metrics = None
        except GoldRushError as exc:
            log.info("metrics of pipeline %s not read: %s", pipeline_id, p.scrub(str(exc)))
            return
        self.metrics.pipeline_metrics(record.key, pipeline_id, metrics)

    async def remote_gone(self, p: Pass, d: Desired, pipeline_id: str) -> None:
        """The remote pipeline vanished out of band: forget the id so the next pass creates it again."""
        again = "creating it again" if d.spec.allows("Create") else "looking it up by name"
        msg = f"remote pipeline {pipeline_id} no longer exists; {again}"
        log.warning(msg)
        await self.external.forget_id(p, pipeline_id, msg)
        await self.external.event(p, "RemoteDeleted", msg, warning=True)

    def report(self, store: Store, p: Pass, result: str) -> None:
        """The per-pipeline phase and destination health gauges from what the pass saw (no extra read)."""
        key = p.record.key
        if result == "paused" or store.get(key) is not p.record:
            # Not managed while reconciliation is paused; or the object left the watch during the pass.
            self.metrics.forget(key)
            return
        seen = {**p.current, **p.out}
        health = seen.get("destinationHealth")
        healthy = health.get("healthy") if isinstance(health, dict) else None
        self.metrics.pipeline_observed(key, seen.get("pipelineId") or p.record.pipeline_id, seen.get("phase"),
                                       healthy if isinstance(healthy, bool) else None)
        self.metrics.metrics_refresh(self.timing.metrics_interval())
