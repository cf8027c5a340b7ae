"""One reconcile pass: inputs -> observe -> plan -> act -> status; and the finalizer's deletion.

`Controller.run_pass(key)` is what the scheduler's workers run (it returns the delay until the object is
due again); `Controller.delete(body)`, what the kopf deletion handler runs, is `finalize.Finalizer.delete`.
Every failure of either goes through `outcome.classify`, and only `status.StatusWriter` writes status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from goldrush_operator import conditions as cond
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller import status
from goldrush_operator.controller.external import (
    ANNOTATION_CREATE_PENDING_SECRETS,
    External,
    Wait,
    now_iso,
    parse_time,
)
from goldrush_operator.controller.finalize import DeleteLater, Finalizer
from goldrush_operator.controller.inputs import Desired, Inputs, Missing, parse_spec
from goldrush_operator.controller.outcome import KUBERNETES_ERROR, InputProblem, Retry, Stall, classify
from goldrush_operator.controller.ports import ClientFactory, KubePort, Metrics, NoMetrics
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.credentials import applied_hashes_from_status
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError, NotFoundError, RuntimeStatus
from goldrush_operator.keyring import CredKey, Keyring, NotYetKnown
from goldrush_operator.logcontext import about
from goldrush_operator.payload import compute_diff
from goldrush_operator.phases import judge
from goldrush_operator.resource import (
    ANNOTATION_CREATE_PENDING,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_RECONCILE_REQUESTED_AT,
)
from goldrush_operator.scheduler import FULL_CHECK_EXTRA_READS, Cadence, ReadBudget
from goldrush_operator.state import ObjectKey, ObjectRecord, Store

log = logging.getLogger("goldrush_operator.controller")

STABLE_PHASES = frozenset({"RUNNING", "PAUSED", "STOPPED", "FAILED"})
HOLD_RECHECK_SECONDS = 30.0
# Stalls that only a change of the inputs can end (a write answered 4xx is never repeated as it was).
HOLD_UNTIL_CHANGE = frozenset({cond.AUTH_FAILED, cond.INVALID_SPEC})
FULL_CHECK_READS = 1 + FULL_CHECK_EXTRA_READS  # GET status, plus GET pipeline and destination health
KUBE_BACKOFF_MAX_SECONDS = 15.0


class Controller:
    """One per operator process; all per-object memory lives in `state.Store`."""

    def __init__(
        self, settings: Settings, kube: KubePort, store: Store, client_for: ClientFactory,
        key_source: ServiceKeySource, metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic,
        keyring: Keyring | None = None,
    ) -> None:
        self.settings, self.store, self.client_for, self.clock = settings, store, client_for, clock
        self.key_source = key_source
        self.metrics: Metrics = metrics or NoMetrics()
        self.status = StatusWriter(kube)
        self.inputs = Inputs(kube, store, key_source, settings.hash_key, keyring)
        # A key from a credentials object was refused (401/403): its object re-checks it (`creds` sets this).
        self.on_auth_failed: Callable[[CredKey], None] = lambda _key: None
        self.external = External(kube, self.status, request_timeout=settings.request_timeout,
                                 fast=settings.poll_fast_seconds, clock=clock)
        budget = settings.rate_limit * settings.poll_budget_share
        self.cadence = Cadence(settings.poll_fast_seconds, settings.poll_status_max_seconds,
                               settings.poll_slow_seconds, budget)
        self.budget = ReadBudget(budget, clock=clock)
        self.finalizer = Finalizer(settings, store, self.inputs, self.external, client_for, key_source,
                                   self.metrics, self._backoff)

    # ------------------------------------------------------------------------------------------ timing

    def intervals(self) -> tuple[float, float]:
        return self.cadence.intervals(len(self.store))

    def _backoff(self, record: ObjectRecord, floor: float | None = None, cap: float | None = None) -> float:
        """Exponential backoff with full jitter between the fast poll and the cap; at least `floor`."""
        base = max(self.settings.poll_fast_seconds, 1.0)
        top = min(cap or self.settings.error_backoff_max_seconds, self.settings.error_backoff_max_seconds)
        record.backoff = min(max(base, record.backoff * 2 or base), top)
        return max(random.uniform(base, record.backoff), floor or 0.0)

    # ------------------------------------------------------------------------------------------ pass

    async def run_pass(self, key: ObjectKey) -> float | None:
        """One pass over the object `key`; the delay until it is due again (None: it is gone or going)."""
        record = self.store.get(key)
        if record is None or record.deleting:
            return None
        started, result = self.clock(), "error"
        with about(key):
            p = Pass.of(record)
            try:
                delay, result = await self._pass(p)
            except Exception as exc:
                delay, result = await self._failed(p, exc)
            finally:
                self.metrics.reconcile_done(result, self.clock() - started)
        return delay

    async def _failed(self, p: Pass, exc: Exception) -> tuple[float, str]:
        outcome = classify(exc, p.scrub)
        record = p.record
        if isinstance(outcome, Retry):
            log.warning("%s; retrying", outcome.message)
            # The apiserver coming back must not find objects parked for minutes: its errors back off less.
            cap = KUBE_BACKOFF_MAX_SECONDS if outcome.reason == KUBERNETES_ERROR else None
            delay, result = self._backoff(record, outcome.delay, cap), "retry"
        else:
            await self.external.warn_once(p, outcome.reason, outcome.message)
            if outcome.reason in HOLD_UNTIL_CHANGE:
                # Held (no API call) until the fingerprint changes; "" marks a hold set before the inputs were
                # known, which the next pass re-evaluates. The key watcher wakes every held object.
                record.held_on = record.held_on or ""
                delay = HOLD_RECHECK_SECONDS
            else:
                record.held_on = ""
                delay = self.intervals()[1]  # the cause may lie outside the object: re-check on the slow cadence
            result = "stalled"
            if not (record.pipeline_id or p.current.get("pipelineId")):
                p.out["phase"] = "PENDING"
        status.failed(p, outcome, in_sync=p.in_sync)
        try:
            await self.status.write(p)
        except Exception as write_exc:  # the apiserver itself may be what failed: keep the delay chosen above
            log.warning("could not write status: %s", p.scrub(str(write_exc)))
            if isinstance(outcome, Stall):
                delay = self._backoff(record, None, KUBE_BACKOFF_MAX_SECONDS)
        return delay, result

    def _tokens(self, p: Pass) -> bool:
        """Whether an on-demand reconcile was requested (either annotation, a user's and Flux's)."""
        tokens = [t for t in (p.annotations.get(ANNOTATION_RECONCILE_REQUESTED_AT),
                              p.annotations.get(ANNOTATION_FLUX_REQUESTED_AT)) if t]
        handled = {*p.record.handled_tokens, p.current.get("lastHandledReconcileAt")}
        new = [t for t in tokens if t not in handled]
        if new:
            p.out["lastHandledReconcileAt"] = new[-1]
        p.record.handled_tokens = frozenset(tokens)
        return bool(new)

    async def _pass(self, p: Pass) -> tuple[float, str]:
        record = p.record
        token_new = self._tokens(p)
        p.in_sync = p.applied_generation() == p.generation
        spec = parse_spec(p)
        if p.annotations.get(ANNOTATION_PAUSE_RECONCILIATION) == "true":
            status.reconcile_paused(p, f"reconciliation paused by annotation {ANNOTATION_PAUSE_RECONCILIATION}")
            await self.status.write(p)
            return self.settings.poll_slow_seconds, "paused"
        try:
            d = await self.inputs.read(p, spec)
        except NotYetKnown as later:
            return later.delay, "waiting"  # the credentials watches are still starting: write nothing yet
        except Missing as missing:
            status.waiting(p, missing.reason, missing.message)
            if not (record.pipeline_id or p.current.get("pipelineId")):
                p.out["phase"] = "PENDING"
            await self.external.warn_once(p, missing.reason, missing.message)
            await self.status.write(p)
            return self.intervals()[0], "missing"
        fingerprint = d.fingerprint(p.generation)
        held: Stall | None = None
        if record.held_on is not None:
            if record.held_on == fingerprint and not token_new:
                if record.held_reason is None or record.held_reason[0] == cond.AUTH_FAILED:
                    return HOLD_RECHECK_SECONDS, "stalled"  # the key is refused: no call can succeed
                held = Stall(*record.held_reason)  # keep observing the remote, send no write
            else:
                record.held_on, record.held_reason = None, None
        try:
            return await self._converge(p, d, self.client_for(d.service_key), token_new, held)
        except (InputProblem, GoldRushError) as exc:
            outcome = classify(exc, p.scrub)
            if isinstance(outcome, Stall) and outcome.reason in HOLD_UNTIL_CHANGE:
                # Never send the same rejected write again before the inputs change.
                record.held_on, record.held_reason = fingerprint, (outcome.reason, outcome.message)
            if isinstance(outcome, Stall) and outcome.reason == cond.AUTH_FAILED and d.credentials is not None:
                self.on_auth_failed(d.credentials)
            raise

    def _pipeline_id(self, p: Pass) -> str | None:
        record = p.record
        known = record.pipeline_id or p.current.get("pipelineId") or p.annotations.get(ANNOTATION_PIPELINE_ID)
        user_id = p.annotations.get(ANNOTATION_PIPELINE_ID)
        if user_id and user_id != known and not record.create_pending:
            return user_id  # a user points the object at another pipeline: adopt it
        return str(known) if known else None

    async def _converge(
        self, p: Pass, d: Desired, client: GoldRushClient, token_new: bool, held: Stall | None
    ) -> tuple[float, str]:
        """Plan and act; with `held` (a stall on a rejected write) only observe the remote."""
        record, now = p.record, self.clock()
        pipeline_id = self._pipeline_id(p)
        applied = (record.applied_hashes if record.applied_hashes is not None
                   else applied_hashes_from_status(p.current.get("secrets")))
        if pipeline_id and not record.pipeline_id and (
            p.annotations.get(ANNOTATION_PIPELINE_ID) != pipeline_id
            or ANNOTATION_CREATE_PENDING in p.annotations or ANNOTATION_CREATE_PENDING_SECRETS in p.annotations
        ):
            await self.external.finish_record(p, pipeline_id)  # a crash between the two writes of record_id
        remote, created = None, False
        if held is not None:
            if not pipeline_id:
                return HOLD_RECHECK_SECONDS, "stalled"
            full_check = now >= record.next_full_check
            if not record.poll_reserved:
                wait = self.budget.reserve(FULL_CHECK_READS - 1 if full_check else 1)
                if wait > 0.05:
                    record.poll_reserved = True
                    return wait, "budget"
            record.poll_reserved = False
            return await self._observe(p, d, client, pipeline_id, full_check, False, held)
        if not pipeline_id:
            p.in_sync = False
            status.creating(p)
            try:
                remote, created = await self.external.create_or_adopt(p, d, client)
            except Wait as undecided:
                await self.status.write(p)
                return undecided.delay, "create_wait"
            pipeline_id = remote.id
            applied = record.applied_hashes if record.applied_hashes is not None else applied
        applied_gen = p.applied_generation()
        p.in_sync = applied_gen == p.generation and d.resolved.hashes == applied and not created
        work = (created or remote is not None or applied_gen != p.generation or d.resolved.hashes != applied
                or token_new or pipeline_id != (record.pipeline_id or p.current.get("pipelineId")))
        status_every, full_every = self.intervals()
        if record.fresh and not work:
            record.fresh = False
            if p.current.get("phase") in STABLE_PHASES and cond.is_true(p.current.get("conditions"), cond.READY):
                # Restart with an in-sync object: spread the first reads over the intervals.
                record.pipeline_id, record.synced_generation, record.applied_hashes = pipeline_id, p.generation, applied
                record.next_full_check = now + random.uniform(0, full_every)
                return random.uniform(0, status_every), "deferred"
        record.fresh = False
        full_check = work or now >= record.next_full_check
        # Only polls of stable pipelines are paid from the read budget; a phase on its way somewhere
        # (DEPLOYING, STOPPING) is polled fast.
        stable = p.current.get("phase") in STABLE_PHASES
        if not work and stable and not record.poll_reserved:
            wait = self.budget.reserve(FULL_CHECK_READS if full_check else 1)
            if wait > 0.05:
                record.poll_reserved = True  # paid for: the read goes out when it is due
                return wait, "budget"
        record.poll_reserved = False
        record.pipeline_id = pipeline_id
        p.out["pipelineId"] = pipeline_id
        if full_check:
            converged = await self._apply_config(p, d, client, pipeline_id, remote, applied, created)
            if converged is None:
                return 0.0, "recreate"
        return await self._observe(p, d, client, pipeline_id, full_check, created)

    async def _apply_config(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, remote: Any,
        applied: dict[str, str], created: bool,
    ) -> bool | None:
        """Plan and act on the configuration; None when the remote is gone (recreate next pass)."""
        record = p.record
        if remote is None:
            try:
                remote = await client.get_pipeline(pipeline_id)
            except NotFoundError:
                await self._remote_gone(p, pipeline_id)
                return None
        diff = compute_diff(d.payload, remote.model_dump(mode="json"), d.resolved.hashes, applied)
        if diff.immutable:
            fields = ", ".join(f"{name} (remote {r!r}, spec {w!r})" for name, (w, r) in sorted(diff.immutable.items()))
            msg = f"remote pipeline {pipeline_id} differs in fields that cannot change: {fields}"
            raise InputProblem(Stall(cond.IMMUTABLE_FIELD_CHANGED, msg))
        if diff.patch:
            in_sync_before = p.applied_generation() == p.generation and d.resolved.hashes == applied
            rotated = sorted({u.name for u in d.resolved.uses if applied.get(u.field) != u.hash})
            await self.external.update(client, pipeline_id, diff.patch)
            fields = ", ".join(diff.changed_fields)
            if not created and in_sync_before:
                self.metrics.drift_corrected()
                await self.external.event(p, "DriftCorrected", f"corrected out-of-band changes to: {fields}")
            elif rotated and d.resolved.hashes != applied:
                self.metrics.secret_rotated()
                await self.external.event(p, "SecretRotated", f"applied new values from Secret(s) {', '.join(rotated)}")
            else:
                await self.external.event(p, "Updated", f"updated pipeline {pipeline_id}: {fields}")
        record.applied_hashes = d.resolved.hashes
        if diff.status is not None:
            await self.external.set_paused(p, client, pipeline_id, diff.status == "paused")
        p.out["secrets"] = d.resolved.status_entries()
        p.out["pipelineName"] = d.payload["name"]
        record.synced_generation = p.generation
        p.in_sync = True
        return True

    async def _observe(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, full_check: bool, created: bool,
        held: Stall | None = None,
    ) -> tuple[float, str]:
        """Read the runtime (and, on a full check, destination health) and write the status."""
        record = p.record
        try:
            runtime: RuntimeStatus = await client.get_status(pipeline_id)
        except NotFoundError:
            await self._remote_gone(p, pipeline_id)
            return 0.0, "recreate"
        phase, prev_phase = runtime.status, p.current.get("phase")
        p.out.update(phase=phase, replicas=runtime.replicas, readyReplicas=runtime.ready)
        if phase != prev_phase:
            self.metrics.phase_changed(record.key, phase)
        if full_check or phase != prev_phase:
            try:
                health = await client.get_destination_health(pipeline_id)
                status.destination_health(p, health.healthy, p.scrub(health.last_error or "") or None, now_iso())
            except NotFoundError:
                pass
        hint = ""
        if phase == "FAILED":
            old = cond.get_condition(p.current.get("conditions"), cond.READY) or {}
            if phase != prev_phase or full_check or old.get("reason") != cond.REMOTE_FAILED:
                hint = await self._failure_hint(p, client, pipeline_id)
            else:
                hint = str(old.get("message", "")).partition(": ")[2]
        verdict = judge(phase, runtime.ready, runtime.replicas, want_paused=d.spec.paused,
                        bounded=d.spec.execution.mode == "bounded", pipeline_id=pipeline_id, hint=hint)
        status.observed(p, verdict, pipeline_id)
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
        await self.status.write(p)
        record.backoff = 0.0
        status_every, full_every = self.intervals()
        fast = self.settings.poll_fast_seconds
        if full_check:
            next_full = fast if verdict.fast_poll else full_every * random.uniform(1, 1.15)
            record.next_full_check = self.clock() + next_full
        if held is not None:
            return status_every, "stalled"
        return (fast if verdict.fast_poll else status_every), "ok"

    async def _failure_hint(self, p: Pass, client: GoldRushClient, pipeline_id: str) -> str:
        """The latest non-empty log line of the failed worker (scrubbed), as a hint for humans."""
        try:
            logs = await client.get_logs(pipeline_id)
        except GoldRushError:
            return ""
        for pod in reversed(logs.pods):
            lines = [line.strip() for line in pod.logs.splitlines() if line.strip()]
            if lines:
                return p.scrub(lines[-1])[:500]
        return ""

    async def _remote_gone(self, p: Pass, pipeline_id: str) -> None:
        """The remote pipeline vanished out of band: forget the id so the next pass creates it again."""
        msg = f"remote pipeline {pipeline_id} no longer exists; creating it again"
        log.warning(msg)
        await self.external.forget_id(p)
        await self.status.record(p, {"pipelineId": None, "phase": "PENDING"})
        record = p.record
        record.pipeline_id = record.applied_hashes = record.synced_generation = None
        record.last_status = None
        await self.external.event(p, "RemoteDeleted", msg, warning=True)

    # ------------------------------------------------------------------------------------------ delete

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Finalizer work (see `finalize.Finalizer.delete`); raises `DeleteLater` while work remains."""
        await self.finalizer.delete(body)

    # ------------------------------------------------------------------------------------------ key

    async def watch_service_key(self, wake: Callable[[ObjectKey], None], interval: float = 2.0) -> None:
        """Wake every held object when the operator's key changes (a fixed key file ends `AuthFailed`)."""
        def digest() -> str:
            return hashlib.sha256((self.key_source.get() or "").encode()).hexdigest()

        last = digest()
        while True:
            await asyncio.sleep(interval)
            current = digest()
            if current != last:
                last = current
                for record in list(self.store.records.values()):
                    if record.held_on is not None:
                        wake(record.key)


__all__ = ["Controller", "DeleteLater", "KubePort"]
