"""One reconcile pass: inputs -> observe -> plan -> act -> status; and the finalizer's deletion.

`Controller.run_pass(key)` is what the scheduler's workers run (it returns the delay until the object is
due again); for an object being deleted that carries the operator's finalizer, the pass is the finalizer's
work (`finalize.Finalizer.delete`, also `Controller.delete(body)`), repeated until it is done.
Every failure of either goes through `outcome.classify`, and only `status.StatusWriter` writes status.

Per-pipeline metrics: after every pass the phase and destination health it saw go to `Metrics`
(no extra read); a budget-paid poll of a stable pipeline also reads `GET /{id}/metrics/` when the
pipeline's metrics refresh is due (`Cadence.metrics_interval`). None of it writes to Kubernetes.
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
from goldrush_operator.controller import decide, status
from goldrush_operator.controller.external import (
    ANNOTATION_CREATE_PENDING_SECRETS,
    External,
    Wait,
    WouldWrite,
    adopted_secrets_note,
    now_iso,
    parse_time,
    trusted_hashes,
)
from goldrush_operator.controller.finalize import DeleteLater, Finalizer
from goldrush_operator.controller.inputs import Desired, Inputs, Missing, parse_spec
from goldrush_operator.controller.outcome import KUBERNETES_ERROR, InputProblem, Retry, Stall, classify
from goldrush_operator.controller.ports import ClientFactory, KubePort, Metrics, NoMetrics
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.credentials import applied_hashes_from_status
from goldrush_operator.goldrush_api import (
    GoldRushClient,
    GoldRushError,
    NotFoundError,
    PipelineMetrics,
    RuntimeStatus,
)
from goldrush_operator.keyring import CredKey, Keyring, NotYetKnown
from goldrush_operator.lease import Fenced
from goldrush_operator.logcontext import about
from goldrush_operator.payload import compute_diff
from goldrush_operator.phases import judge
from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_CREATE_PENDING,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_RECONCILE_REQUESTED_AT,
)
from goldrush_operator.scheduler import FULL_CHECK_EXTRA_READS, Cadence, ReadBudget
from goldrush_operator.state import NOTHING, ObjectKey, ObjectRecord, Store

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
        # Metrics reads only when something exports them: a metrics sink and its endpoint.
        metrics_every = settings.pipeline_metrics_seconds if metrics is not None and settings.metrics_port else 0.0
        self.cadence = Cadence(settings.poll_fast_seconds, settings.poll_status_max_seconds,
                               settings.poll_slow_seconds, budget, metrics_every)
        self.budget = ReadBudget(budget, clock=clock)
        self.finalizer = Finalizer(settings, store, self.inputs, self.external, client_for, key_source,
                                   self.metrics, self._backoff)

    # ------------------------------------------------------------------------------------------ timing

    def intervals(self) -> tuple[float, float]:
        return self.cadence.intervals(len(self.store))

    def metrics_interval(self) -> float | None:
        return self.cadence.metrics_interval(len(self.store))

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
        if record is None or not record.wanted:
            return None  # gone, or going without the operator's finalizer: nothing to do
        if record.deleting:
            return await self._finalize(record)
        started, result = self.clock(), "error"
        with about(key):
            p = Pass.of(record)
            try:
                delay, result = await self._pass(p)
            except Fenced as fenced:  # the Lease was lost mid-pass: nothing more is written; the scheduler parks it
                log.info("%s", fenced)
                delay, result = self.settings.poll_fast_seconds, "fenced"
            except Exception as exc:
                delay, result = await self._failed(p, exc)
            finally:
                self.metrics.reconcile_done(result, self.clock() - started)
            self._report(p, result)
        return delay

    def _report(self, p: Pass, result: str) -> None:
        """The per-pipeline phase and destination health gauges from what the pass saw (no extra read)."""
        key = p.record.key
        if result == "paused" or self.store.get(key) is not p.record:
            # Not managed while reconciliation is paused; or the object left the watch during the pass.
            self.metrics.forget(key)
            return
        seen = {**p.current, **p.out}
        health = seen.get("destinationHealth")
        healthy = health.get("healthy") if isinstance(health, dict) else None
        self.metrics.pipeline_observed(key, seen.get("pipelineId") or p.record.pipeline_id, seen.get("phase"),
                                       healthy if isinstance(healthy, bool) else None)
        self.metrics.metrics_refresh(self.metrics_interval())

    def forget(self, key: ObjectKey) -> None:
        """The object is no longer managed here (gone from the watch): drop its per-pipeline series."""
        self.metrics.forget(key)

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
        p.record.handled_tokens = frozenset(tokens) if tokens else NOTHING
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
        except Wait as undecided:  # the finalizer could not be added yet (the object changed meanwhile)
            return undecided.delay, "create_wait"
        except (InputProblem, GoldRushError) as exc:
            outcome = classify(exc, p.scrub)
            if isinstance(outcome, Stall) and outcome.reason in HOLD_UNTIL_CHANGE:
                # Never send the same rejected write again before the inputs change.
                record.held_on, record.held_reason = fingerprint, (outcome.reason, outcome.message)
            if isinstance(outcome, Stall) and outcome.reason == cond.AUTH_FAILED and d.credentials is not None:
                self.on_auth_failed(d.credentials)
            raise

    def _paid(self, record: ObjectRecord, full_check: bool, full_reads: int) -> tuple[bool, float]:
        """Pay a poll from the read budget: (whether it may be a full check, seconds to wait first, or 0).

        The reads are booked when the poll is planned and sent when the budget has paid for them; a full check
        that fell due while a status read waited is left to the next poll, so every read sent is paid for.
        """
        if record.poll_reserved:
            paid, record.poll_reserved = record.poll_reserved, 0
            return full_check and paid >= full_reads, 0.0
        reads = full_reads if full_check else 1
        wait = self.budget.reserve(reads)
        if wait > 0.05:
            record.poll_reserved = reads  # the reads go out when they are due
            return full_check, wait
        return full_check, 0.0

    def _metrics_due(self, record: ObjectRecord, now: float) -> bool:
        """Whether the pipeline's metrics refresh is due (never when the budget cannot pay for one)."""
        return self.metrics_interval() is not None and now >= record.next_metrics

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
        if pipeline_id and not record.finalized:
            await self.external.ensure_finalizer(p)  # e.g. adopted by annotation, or removed by hand
        if pipeline_id and not record.pipeline_id and (
            p.annotations.get(ANNOTATION_PIPELINE_ID) != pipeline_id
            or ANNOTATION_CREATE_PENDING in p.annotations or ANNOTATION_CREATE_PENDING_SECRETS in p.annotations
        ):
            await self.external.finish_record(p, pipeline_id)  # a crash between the two writes of record_id
        remote, created = None, False
        if held is not None:
            if not pipeline_id:
                return HOLD_RECHECK_SECONDS, "stalled"
            full_check, wait = self._paid(record, now >= record.next_full_check, FULL_CHECK_READS - 1)
            if wait:
                return wait, "budget"
            return await self._observe(p, d, client, pipeline_id, full_check, False, held)
        if not pipeline_id and not d.spec.allows("Create"):
            remote = await self.external.find_existing(p, d, client)
            if remote is None:
                return await self._not_found(p, d)
            pipeline_id = remote.id
        if not pipeline_id:
            p.in_sync = False
            status.creating(p)
            try:
                remote, created = await self.external.create_or_adopt(p, d, client)
            except Wait as undecided:
                await self.status.write(p)
                return undecided.delay, "create_wait"
            except WouldWrite as would:
                return await self._would_create(p, would.call)
            pipeline_id = remote.id
            applied = record.applied_hashes if record.applied_hashes is not None else applied
        applied_gen = p.applied_generation()
        p.in_sync = applied_gen == p.generation and d.resolved.hashes == applied and not created
        # A difference the policies or dry-run mode keep unwritten is not work again until the inputs change: it
        # is looked at on the full-check cadence, and the status polls keep reporting it.
        memo = record.not_applied if record.not_applied and record.not_applied[0] == d.fingerprint(p.generation) \
            else None
        record.not_applied = memo
        work = (created or remote is not None or token_new
                or (memo is None and (applied_gen != p.generation or d.resolved.hashes != applied))
                or pipeline_id != (record.pipeline_id or p.current.get("pipelineId")))
        if memo is not None and memo[1] is not None:
            p.not_applied, p.remote_paused = (memo[1], memo[2]), memo[3]
        status_every, full_every = self.intervals()
        if record.fresh and not work:
            record.fresh = False
            if p.current.get("phase") in STABLE_PHASES and cond.is_true(p.current.get("conditions"), cond.READY):
                # Restart with an in-sync object: spread the first reads over the intervals.
                record.pipeline_id, record.synced_generation, record.applied_hashes = pipeline_id, p.generation, applied
                record.next_full_check = now + random.uniform(0, full_every)
                return random.uniform(0, status_every), "deferred"
        record.fresh = False
        if not work and client.writes_flowing():
            # Writes go first: this poll would hold a worker while the writes take every token, and the
            # creates of a burst need the workers. It runs once they have passed.
            return self.settings.poll_fast_seconds * random.uniform(0.5, 1.0), "yielded"
        full_check = work or now >= record.next_full_check
        # Only polls of stable pipelines are paid from the read budget; a phase on its way somewhere
        # (DEPLOYING, STOPPING) is polled fast.
        stable = p.current.get("phase") in STABLE_PHASES
        metrics_due = False
        if not work and stable:
            planning = not record.poll_reserved
            full_check, wait = self._paid(record, full_check, FULL_CHECK_READS)
            metrics_wait = 0.0
            if planning and not record.metrics_paid and self._metrics_due(record, now):
                record.metrics_paid = True  # booked: it goes out with this poll, or with the next one
                metrics_wait = self.budget.reserve(1)
            if wait:
                return wait, "budget"
            metrics_due = record.metrics_paid and metrics_wait <= 0.05
        record.poll_reserved = 0
        adopting = (not created and p.annotations.get(ANNOTATION_ADOPT) == "true"
                    and pipeline_id != (record.pipeline_id or p.current.get("pipelineId")))
        if not adopting:  # an adoption records the id with the secret hashes it trusts (_apply_config)
            record.pipeline_id = pipeline_id
            p.out["pipelineId"] = pipeline_id
        if full_check:
            converged = await self._apply_config(p, d, client, pipeline_id, remote, applied, created, adopting)
            if converged is None:
                return 0.0, "recreate"
        if created:
            # The first status read of a new pipeline waits for the next pass, which is a read and so steps
            # aside for writes: a burst of creates sends every POST before the polls of those already made.
            # The create wrote the `created` status with the id; this writes only what the check added.
            await self.status.write(p)
            record.next_full_check = self.clock() + full_every * random.uniform(1, 1.15)
            return self.settings.poll_fast_seconds, "created"
        delay, result = await self._observe(p, d, client, pipeline_id, full_check, created)
        if metrics_due and result == "ok":
            await self._read_metrics(p, client, pipeline_id)
        return delay, result

    async def _read_metrics(self, p: Pass, client: GoldRushClient, pipeline_id: str) -> None:
        """`GET /{id}/metrics/` into the per-pipeline gauges; a failure only waits for the next refresh."""
        record = p.record
        record.metrics_paid = False
        record.next_metrics = self.clock() + (self.metrics_interval() or 0.0)
        try:
            metrics: PipelineMetrics | None = await client.get_metrics(pipeline_id)
        except NotFoundError:
            metrics = None
        except GoldRushError as exc:
            log.info("metrics of pipeline %s not read: %s", pipeline_id, p.scrub(str(exc)))
            return
        self.metrics.pipeline_metrics(record.key, pipeline_id, metrics)

    async def _apply_config(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, remote: Any,
        applied: dict[str, str], created: bool, adopting: bool = False,
    ) -> bool | None:
        """Plan and act on the configuration; None when the remote is gone (recreate next pass).

        `adopting`: the object takes over this pipeline now (`external.trusted_hashes` says which secrets).
        """
        record = p.record
        if remote is None:
            try:
                remote = await client.get_pipeline(pipeline_id)
            except NotFoundError:
                await self._remote_gone(p, pipeline_id)
                return None
        if adopting:
            applied = trusted_hashes(d.resolved, remote.destination_config)
            record.pipeline_id, record.applied_hashes = pipeline_id, applied
            p.out["pipelineId"] = pipeline_id
            p.out["secrets"] = [u.to_status() for u in d.resolved.uses if u.field in applied]
            await self.external.event(p, "Adopted", f"adopted pipeline {pipeline_id}" + adopted_secrets_note(applied))
        remote_json = remote.model_dump(mode="json")
        # Secret values an object never applied cannot be compared (the API masks them): without Update they
        # count as unchanged instead of as a difference that could never be resolved.
        known = applied if applied or d.spec.allows("Update") else d.resolved.hashes
        diff = compute_diff(d.payload, remote_json, d.resolved.hashes, known)
        plan = decide.config_calls(pipeline_id, diff, d.spec, remote_json.get("status"))
        if plan.blocked or (client.dry_run and plan.calls):
            return self._not_applied(p, d, pipeline_id, plan)
        record.announced = NOTHING
        if not d.spec.allows("Update"):
            p.out["pipelineName"] = d.payload["name"]
            record.synced_generation = p.generation
            record.not_applied = (d.fingerprint(p.generation), None, "", None)  # in sync; secrets not comparable
            p.in_sync = True
            return True
        record.not_applied = None
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

    def _not_applied(self, p: Pass, d: Desired, pipeline_id: str, plan: decide.ConfigPlan) -> bool:
        """The remote differs and nothing is sent: the policies forbid it, or dry-run mode (announced)."""
        if plan.blocked:
            p.not_applied = (cond.UPDATE_NOT_ALLOWED,
                             f"remote pipeline {pipeline_id} differs from the spec in: {', '.join(plan.blocked)}; "
                             "not written: spec.managementPolicies do not include Update")
        else:
            p.not_applied = (cond.DRY_RUN, "dry run (GOLDRUSH_DRY_RUN): would send "
                             + "; ".join(c.describe() for c in plan.calls))
            p.dry_calls = list(plan.calls)
        p.remote_paused = plan.remote_status == "paused"
        p.record.synced_generation = None
        p.record.not_applied = (d.fingerprint(p.generation), *p.not_applied, p.remote_paused)
        p.in_sync = False
        return True

    async def _not_found(self, p: Pass, d: Desired) -> tuple[float, str]:
        """Without Create and no remote pipeline to observe: say so and look again (at most every status poll)."""
        msg = (f"no remote pipeline named {d.payload['name']!r} in project {d.payload['project']!r} (and no "
               f"{ANNOTATION_PIPELINE_ID} annotation); spec.managementPolicies do not include Create")
        status.not_found(p, msg)
        p.out["phase"] = "PENDING"
        await self.external.warn_once(p, cond.NOT_FOUND, msg)
        await self.status.write(p)
        return max(self.intervals()[0], self.settings.poll_status_max_seconds), "not_found"

    async def _would_create(self, p: Pass, call: decide.Call) -> tuple[float, str]:
        """Dry run: the create is announced (once), not sent; nothing is marked on the object."""
        await self.external.announce(p, [call])
        msg = f"dry run (GOLDRUSH_DRY_RUN): would send {call.describe()}"
        for ctype in (cond.READY, cond.SYNCED):
            p.set(ctype, False, cond.DRY_RUN, msg)
        p.set(cond.RECONCILING, False, cond.DRY_RUN, "")
        p.out["phase"] = "PENDING"
        await self.status.write(p)
        return self.intervals()[0], "dry_run"

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
        policies = (p.body.get("spec") or {}).get("managementPolicies") or ["*"]
        again = "creating it again" if "*" in policies or "Create" in policies else "looking it up by name"
        msg = f"remote pipeline {pipeline_id} no longer exists; {again}"
        log.warning(msg)
        await self.external.forget_id(p)
        await self.status.record(p, {"pipelineId": None, "phase": "PENDING"})
        record = p.record
        record.pipeline_id = record.applied_hashes = record.synced_generation = record.not_applied = None
        record.last_status = None
        await self.external.event(p, "RemoteDeleted", msg, warning=True)

    # ------------------------------------------------------------------------------------------ delete

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Finalizer work (see `finalize.Finalizer.delete`); raises `DeleteLater` while work remains."""
        await self.finalizer.delete(body)

    async def _finalize(self, record: ObjectRecord) -> float | None:
        """The pass of an object being deleted: the finalizer's work, again after a delay until it is done."""
        with about(record.key):
            try:
                await self.finalizer.delete(record.snapshot())
            except Fenced as fenced:
                log.info("%s", fenced)
                return self.settings.poll_fast_seconds
            except DeleteLater as later:
                log.info("%s; again in %.0fs", later.message, later.delay)
                return later.delay
        return None

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
