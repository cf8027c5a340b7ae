"""One reconcile pass: inputs -> observe -> plan -> act -> status; and the finalizer's deletion.

`Controller.run_pass(key)` is what the scheduler's workers run (it returns the delay until the object is
due again). The steps, one module each: `inputs` (spec, Secrets, key, ABI -> the desired payload), `external`
(create crash-safe or adopt, and every other write), `act` (plan and apply the configuration: PATCH, pause and
resume), `observe` (the runtime phase into status), `finalize` (the pass of an object being deleted that
carries the operator's finalizer); `name_audit` (the name check of a create its previous writer made just
before this process took the object over, in the background). `timing` says when the object is due again;
every failure goes through `outcome.classify`, and only `status.StatusWriter` writes status.

Per-pipeline metrics: after every pass the phase and destination health it saw go to `Metrics`
(no extra read); a budget-paid poll of a stable pipeline also reads `GET /{id}/metrics/` when the
pipeline's metrics refresh is due (`Cadence.metrics_interval`). None of it writes to Kubernetes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from goldrush_operator import conditions as cond
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller import status
from goldrush_operator.controller.act import Act
from goldrush_operator.controller.external import PENDING_ANNOTATIONS, External, Wait, WouldWrite
from goldrush_operator.controller.failure import HOLD_RECHECK_SECONDS, Failures
from goldrush_operator.controller.finalize import DeleteLater, Finalizer
from goldrush_operator.controller.inputs import Desired, Inputs, Missing, parse_spec, reconcile_requested
from goldrush_operator.controller.name_audit import NameAudit
from goldrush_operator.controller.observe import Observer
from goldrush_operator.controller.outcome import InputProblem, Stall, classify, holds
from goldrush_operator.controller.ports import ClientFactory, KubePort, Metrics, NoMetrics
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.controller.timing import FULL_CHECK_READS, Poll, Timing
from goldrush_operator.credentials import applied_hashes_from_status
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError
from goldrush_operator.keyring import CredKey, Keyring, NotYetKnown
from goldrush_operator.lease import Fenced
from goldrush_operator.logcontext import about
from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
)
from goldrush_operator.state import ObjectKey, Store

log = logging.getLogger("goldrush_operator.controller")

STABLE_PHASES = frozenset({"RUNNING", "PAUSED", "STOPPED", "FAILED"})


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
        exported = metrics is not None and bool(settings.metrics_port)  # metrics reads only when they are exported
        self.timing = Timing(settings, store, clock, metrics_enabled=exported)
        self.observer = Observer(settings, self.external, self.status, self.metrics, self.timing, clock)
        self.act = Act(self.external, self.status, self.metrics, self.observer, self.timing)
        # Creates an earlier writer made just before this process took their objects over (`name_audit`).
        self.audit = NameAudit(store, clock, settings.poll_fast_seconds)
        self.failures = Failures(self.external, self.status, self.timing)
        self.finalizer = Finalizer(settings, store, self.inputs, self.external, client_for, key_source,
                                   self.metrics, self.timing.backoff)

    # ------------------------------------------------------------------------------------------ pass

    async def run_pass(self, key: ObjectKey) -> float | None:
        """One pass over the object `key`; the delay until it is due again (None: it is gone or going)."""
        record = self.store.get(key)
        if record is None or not record.wanted:
            return None  # gone, or going without the operator's finalizer: nothing to do
        if record.deleting:
            return await self.finalizer.run(record)
        started, result = self.clock(), "error"
        with about(key):
            p = Pass.of(record)
            try:
                delay, result = await self._pass(p)
            except Fenced as fenced:  # the Lease was lost mid-pass: nothing more is written; the scheduler parks it
                log.info("%s", fenced)
                delay, result = self.settings.poll_fast_seconds, "fenced"
            except Exception as exc:
                delay, result = await self.failures.handle(p, exc)
            finally:
                self.metrics.reconcile_done(result, self.clock() - started)
            self.observer.report(self.store, p, result)
        return delay

    def forget(self, key: ObjectKey) -> None:
        """The object is no longer managed here (gone from the watch): drop its per-pipeline series."""
        self.metrics.forget(key)

    async def _pass(self, p: Pass) -> tuple[float, str]:
        record = p.record
        token_new = reconcile_requested(p)
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
            status.pending_unless_created(p)
            await self.external.warn_once(p, missing.reason, missing.message)
            await self.status.write(p)
            return self.timing.intervals()[0], "missing"
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
            if holds(outcome):
                # Never send the same rejected write again before the inputs change.
                record.held_on, record.held_reason = fingerprint, (outcome.reason, outcome.message,
                                                                 outcome.synced_reason)
            if isinstance(outcome, Stall) and outcome.reason == cond.AUTH_FAILED and d.credentials is not None:
                self.on_auth_failed(d.credentials)
            raise

    async def _converge(
        self, p: Pass, d: Desired, client: GoldRushClient, token_new: bool, held: Stall | None
    ) -> tuple[float, str]:
        """Plan and act; with `held` (a stall on a rejected write) only observe the remote."""
        record, now = p.record, self.clock()
        pipeline_id = p.target_id()
        applied = (record.applied_hashes if record.applied_hashes is not None
                   else applied_hashes_from_status(p.current.get("secrets")))
        if pipeline_id and not record.finalized:
            await self.external.ensure_finalizer(p)  # e.g. adopted by annotation, or removed by hand
        if pipeline_id and not record.pipeline_id and (
            p.annotations.get(ANNOTATION_PIPELINE_ID) != pipeline_id
            or any(mark in p.annotations for mark in PENDING_ANNOTATIONS)
        ):
            await self.external.finish_record(p, pipeline_id)  # a crash between the two writes of record_id
        if pipeline_id:  # its creator may have died before the create's name check: audited in the background
            self.audit.consider(p, d, client, pipeline_id)
        remote, created = None, False
        if held is not None:
            if not pipeline_id:
                return HOLD_RECHECK_SECONDS, "stalled"
            full_check, wait = self.timing.pay(record, now >= record.next_full_check, FULL_CHECK_READS - 1)
            if wait:
                return wait, "budget"
            return await self.observer.observe(p, d, client, pipeline_id, full_check, False, held)
        if not pipeline_id and not d.spec.allows("Create"):
            remote = await self.external.find_existing(p, d, client)
            if remote is None:
                return await self.act.not_found(p, d)
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
                return await self.act.would_create(p, would.call)
            pipeline_id = remote.id
            applied = record.applied_hashes if record.applied_hashes is not None else applied
        elif record.name_check is not None:
            await self.external.check_name_kept(p, d, client, pipeline_id)  # raises NameConflict if it lost
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
        status_every, full_every = self.timing.intervals()
        if record.fresh and not work:
            record.fresh = False
            if p.current.get("phase") in STABLE_PHASES and cond.is_true(p.current.get("conditions"), cond.READY):
                # Restart with an in-sync object: spread the first reads over the intervals.
                record.pipeline_id, record.synced_generation, record.applied_hashes = pipeline_id, p.generation, applied
                record.next_full_check = now + random.uniform(0, full_every)
                return self.timing.on_tick(random.uniform(0, status_every)), "deferred"
        record.fresh = False
        poll = self.timing.plan_poll(record, work=work, stable=p.current.get("phase") in STABLE_PHASES,
                                     yield_to_writes=not work and client.writes_flowing(), now=now)
        if not isinstance(poll, Poll):
            return poll
        adopting = (not created and p.annotations.get(ANNOTATION_ADOPT) == "true"
                    and pipeline_id != (record.pipeline_id or p.current.get("pipelineId")))
        if not adopting:  # an adoption records the id with the secret hashes it trusts (_apply_config)
            record.pipeline_id = pipeline_id
            p.out["pipelineId"] = pipeline_id
        if poll.full_check:
            converged = await self.act.apply_config(p, d, client, pipeline_id, remote, applied, created, adopting)
            if converged is None:
                return 0.0, "recreate"
        if created:
            # The first status read of a new pipeline waits for the next pass, which is a read and so steps
            # aside for writes: a burst of creates sends every POST before the polls of those already made.
            # The create wrote the `created` status with the id; this writes only what the check added.
            await self.status.write(p)
            record.next_full_check = self.clock() + full_every * random.uniform(1, 1.15)
            return self.settings.poll_fast_seconds, "created"
        delay, result = await self.observer.observe(p, d, client, pipeline_id, poll.full_check, created)
        if poll.metrics_due and result == "ok":
            await self.observer.read_metrics(p, client, pipeline_id)
        return delay, result

__all__ = ["Controller", "DeleteLater", "KubePort"]
