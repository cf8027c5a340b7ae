"""Reconciler: observe -> decide (create | adopt | patch | put status | nothing) -> act -> status.

Plain async Python with no kopf import. The kopf handlers (`handlers.py`) call `Reconciler.reconcile` from
each object's daemon loop (it returns how long to sleep before the next pass) and `Reconciler.delete` from
the finalizer (it raises `Retry` while work remains). Kubernetes access goes through `kube.Kube`, the
GoldRush API through `api.GoldRushClient`.

Rules (design.md section 5): one POST per object, guarded by the `goldrush.dev/create-pending` intent mark
and an adopt-by-lookup on recovery; one PATCH per spec or Secret change carrying only changed fields;
pause/resume by PUT; status written only when it changed; fast polls while DEPLOYING/STOPPING, slow
jittered polls when stable; 401/403/400/422 are permanent (Stalled) until the spec, a Secret or the key
changes; everything that leaves the process is scrubbed of secret values.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from goldrush_operator import conditions as cond
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.crash import crash_point
from goldrush_operator.credentials import (
    ResolvedSecrets,
    applied_hashes_from_status,
    resolve_destination_secrets,
    resolve_service_key,
)
from goldrush_operator.goldrush_api import (
    ApiError,
    ForbiddenError,
    GoldRushClient,
    GoldRushError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    Pipeline,
    RateLimitedError,
    UnauthorizedError,
)
from goldrush_operator.kube import Kube, KubeError, NotFound
from goldrush_operator.logcontext import about
from goldrush_operator.payload import compute_diff, desired_payload, parse_abi_file
from goldrush_operator.phases import judge
from goldrush_operator.registry import ObjectState, Registry, wake_key
from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_CREATE_PENDING,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_RECONCILE_REQUESTED_AT,
    PipelineSpec,
)
from goldrush_operator.secret_values import scrub

log = logging.getLogger("goldrush_operator.reconciler")

STABLE_PHASES = frozenset({"RUNNING", "PAUSED", "STOPPED", "FAILED"})
TRANSIENT_PHASES = frozenset({"DEPLOYING", "STOPPING", "PENDING"})
LOOKUP_TTL_SECONDS = 10.0
STALLED_RECHECK_SECONDS = 2.0
# Written with the create-pending mark: the keyed hashes of the secret values the POST sends, so that a
# pipeline adopted after an interrupted create is not PATCHed with the same secrets again.
ANNOTATION_CREATE_PENDING_SECRETS = "goldrush.dev/create-pending-secrets"


def _pending_hashes(annotations: Mapping[str, str]) -> dict[str, str]:
    try:
        parsed = json.loads(annotations.get(ANNOTATION_CREATE_PENDING_SECRETS) or "{}")
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): str(v) for k, v in parsed.items()}


class Retry(Exception):
    """Raised by `delete` when it must run again after `delay` seconds; `message` is scrubbed."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay


class Metrics(Protocol):
    """What the reconciler reports (implemented by `metrics.PrometheusMetrics`, or a no-op)."""

    def reconcile_done(self, result: str, seconds: float) -> None: ...
    def phase_changed(self, key: tuple[str, str], phase: str | None) -> None: ...
    def drift_corrected(self) -> None: ...
    def secret_rotated(self) -> None: ...
    def became_ready(self, seconds: float) -> None: ...


class NoMetrics:
    """Metrics sink that drops everything."""

    def reconcile_done(self, result: str, seconds: float) -> None: ...
    def phase_changed(self, key: tuple[str, str], phase: str | None) -> None: ...
    def drift_corrected(self) -> None: ...
    def secret_rotated(self) -> None: ...
    def became_ready(self, seconds: float) -> None: ...


ClientFactory = Callable[[str], GoldRushClient]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass
class _Directory:
    """A short-lived snapshot of all remote pipelines visible to one key (shared by concurrent creates)."""

    fetched_at: float = 0.0
    items: list[Pipeline] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Pass:
    """Working data of one reconcile pass."""

    body: Mapping[str, Any]
    state: ObjectState
    namespace: str
    name: str
    generation: int
    annotations: Mapping[str, str]
    status_in: Mapping[str, Any]
    conditions: list[dict[str, Any]]
    out: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def set(self, ctype: str, status: bool, reason: str, message: str) -> None:
        self.conditions = cond.set_condition(
            self.conditions, ctype, status, reason, self.scrub(message), self.generation, cond.now_utc()
        )


class Reconciler:
    """One per operator process; stateless between calls except for the `Registry` and caches."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        registry: Registry,
        client_factory: ClientFactory,
        key_source: ServiceKeySource,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.registry = registry
        self.client_for = client_factory
        self.key_source = key_source
        self.metrics: Metrics = metrics or NoMetrics()
        self.clock = clock
        self._directories: dict[str, _Directory] = {}
        self._pepper = (settings.hash_key or "goldrush-operator/secret-hash/v1").encode()

    # ------------------------------------------------------------------------------------------ helpers

    def hmac_key(self, uid: str) -> bytes:
        """Per-object HMAC key for secret hashes: stable for the object's life, independent of API keys."""
        return hmac.new(self._pepper, uid.encode(), hashlib.sha256).digest()

    def _slow_delay(self) -> float:
        return self.settings.poll_slow_seconds * random.uniform(1.0, 1.15)

    def _backoff(self, state: ObjectState, retry_after: float | None = None) -> float:
        base = max(self.settings.poll_fast_seconds, 1.0)
        state.backoff = min(max(base, state.backoff * 2 or base), self.settings.error_backoff_max_seconds)
        delay = random.uniform(base, state.backoff)
        return max(delay, retry_after or 0.0)

    async def _event(self, p: _Pass, reason: str, message: str, *, warning: bool = False) -> None:
        try:
            await self.kube.post_event(p.body, reason, p.scrub(message), warning=warning)
        except KubeError as exc:
            log.warning("could not record Event %s for %s/%s: %s", reason, p.namespace, p.name, exc)

    async def _warn_once(self, p: _Pass, reason: str, message: str) -> None:
        """A Warning Event only when the failure reason changes (never one per poll)."""
        if p.state.last_event_reason != reason:
            p.state.last_event_reason = reason
            await self._event(p, reason, message, warning=True)

    async def _read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        key = (namespace, name)
        if key in self.registry.secret_cache:
            return self.registry.secret_cache[key]
        try:
            data: dict[str, str] | None = await self.kube.get_secret_data(namespace, name)
        except NotFound:
            data = None
        self.registry.cache_secret(namespace, name, data)
        return data

    async def _write_status(self, p: _Pass) -> None:
        """Merge-patch status when (and only when) it differs from what is stored / last written."""
        p.out["conditions"] = p.conditions
        p.out["observedGeneration"] = p.generation
        current = p.state.last_status if p.state.last_status is not None else dict(p.status_in)
        if not cond.status_changed(current, p.out):
            return
        crash_point("status.before-write")
        patch = dict(p.out)
        # Conditions that vanished (Reconciling/Stalled) must be removed: lists are replaced whole.
        await self.kube.patch_status(p.namespace, p.name, patch)
        merged = dict(current)
        merged.update({k: v for k, v in patch.items() if v is not None})
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
        p.state.last_status = merged

    async def _record_id(
        self, p: _Pass, pipeline_id: str, secrets: list[dict[str, str]] | None = None
    ) -> None:
        """Record the id right after create/adopt: status first, then the annotations.

        `secrets`: the `status.secrets` entries of what the remote now holds, in the same status write, so
        that a crash at any later point never makes the next pass send the same secret values again. The
        status write comes first because it carries both the id and the hashes: a crash between the two
        writes leaves a complete record in status, and the next pass only finishes the annotations
        (`_finish_record`); the other order would lose the hashes and cost a redundant PATCH.
        """
        p.out["pipelineId"] = pipeline_id
        recorded: dict[str, Any] = {"pipelineId": pipeline_id}
        if secrets is not None:
            recorded["secrets"] = secrets
        await self.kube.patch_status(p.namespace, p.name, recorded)
        base = p.state.last_status if p.state.last_status is not None else dict(p.status_in)
        p.state.last_status = {**base, **recorded}
        crash_point("create.after-record-status")
        await self._finish_record(p, pipeline_id)
        p.state.create_pending = None
        p.state.pending_hashes = None

    async def _finish_record(self, p: _Pass, pipeline_id: str) -> None:
        """Annotate the id and drop the create-pending marks."""
        await self.kube.patch_annotations(
            p.namespace, p.name,
            {ANNOTATION_PIPELINE_ID: pipeline_id, ANNOTATION_CREATE_PENDING: None,
             ANNOTATION_CREATE_PENDING_SECRETS: None},
        )
        p.state.pipeline_id = pipeline_id

    async def _directory(self, client: GoldRushClient, key: str, *, fresh: bool) -> list[Pipeline]:
        directory = self._directories.setdefault(key, _Directory())
        async with directory.lock:
            if fresh or self.clock() - directory.fetched_at > LOOKUP_TTL_SECONDS:
                # Creates wait on this listing: it gets the rate-limit priority of a write.
                directory.items = [p async for p in client.list_pipelines(urgent=True)]
                directory.fetched_at = self.clock()
            return list(directory.items)

    # ------------------------------------------------------------------------------------------ reconcile

    async def reconcile(self, body: Mapping[str, Any], state: ObjectState) -> float:
        """One pass over one object; returns the delay before the next pass (a wake-up may cut it short)."""
        with about(state.key):
            return await self._reconcile_pass(body, state)

    async def _reconcile_pass(self, body: Mapping[str, Any], state: ObjectState) -> float:
        started = self.clock()
        meta = body.get("metadata") or {}
        p = _Pass(
            body=body,
            state=state,
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            generation=int(meta.get("generation") or 1),
            annotations=dict(meta.get("annotations") or {}),
            status_in=dict(body.get("status") or {}),
            conditions=list((state.last_status or body.get("status") or {}).get("conditions") or []),
        )
        state.last_wake_key = wake_key(body)
        result = "error"
        try:
            delay, result = await self._reconcile(p)
        except KubeError as exc:
            log.warning("%s/%s: Kubernetes API error: %s", p.namespace, p.name, exc)
            delay = self._backoff(state)
        finally:
            self.metrics.reconcile_done(result, self.clock() - started)
        return delay

    async def _reconcile(self, p: _Pass) -> tuple[float, str]:
        state = p.state
        # Either on-demand annotation may carry a new value (both can be present: a user's and Flux's).
        tokens = [t for t in (p.annotations.get(ANNOTATION_RECONCILE_REQUESTED_AT),
                              p.annotations.get(ANNOTATION_FLUX_REQUESTED_AT)) if t]
        handled = {*state.handled_tokens, p.status_in.get("lastHandledReconcileAt")}
        new_tokens = [t for t in tokens if t not in handled]
        token_new = bool(new_tokens)
        if new_tokens:
            p.out["lastHandledReconcileAt"] = new_tokens[-1]
        state.handled_tokens = frozenset(tokens)
        try:
            spec = PipelineSpec.model_validate(p.body.get("spec") or {})
        except ValidationError as exc:
            msg = "; ".join(f"spec.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            return await self._stalled(p, cond.INVALID_SPEC, f"invalid spec: {msg}"), "invalid"

        if p.annotations.get(ANNOTATION_PAUSE_RECONCILIATION) == "true":
            msg = f"reconciliation paused by annotation {ANNOTATION_PAUSE_RECONCILIATION}"
            p.set(cond.READY, False, cond.RECONCILE_PAUSED, msg)
            p.set(cond.SYNCED, False, cond.RECONCILE_PAUSED, msg)
            p.set(cond.RECONCILING, False, cond.RECONCILE_PAUSED, msg)
            p.set(cond.STALLED, False, cond.RECONCILE_PAUSED, msg)
            await self._write_status(p)
            return self._slow_delay(), "paused"

        # ---- Secrets (Kubernetes reads only) --------------------------------------------------------
        hkey = self.hmac_key(state.uid)
        names = {ref.name for ref in (spec.destination.secret_refs or {}).values()}
        if spec.service_key_secret_ref is not None:
            names.add(spec.service_key_secret_ref.name)
        self.registry.set_references(state, frozenset(names))
        fetched = {n: await self._read_secret(p.namespace, n) for n in sorted(names)}
        resolved = resolve_destination_secrets(spec, fetched, hkey)
        key_resolved = resolve_service_key(spec, fetched, hkey)
        p.secrets = tuple(resolved.values.values()) + (
            tuple(key_resolved.values.values()) if key_resolved else ()
        )
        missing = [*resolved.missing, *(key_resolved.missing if key_resolved else ())]
        if missing:
            msg = "; ".join(m.message for m in missing)
            p.set(cond.READY, False, cond.SECRET_NOT_FOUND, msg)
            p.set(cond.SYNCED, False, cond.SECRET_NOT_FOUND, msg)
            p.set(cond.RECONCILING, False, cond.SECRET_NOT_FOUND, msg)
            p.set(cond.STALLED, False, cond.SECRET_NOT_FOUND, msg)
            if not (state.pipeline_id or p.status_in.get("pipelineId")):
                p.out["phase"] = "PENDING"
            await self._warn_once(p, cond.SECRET_NOT_FOUND, msg)
            await self._write_status(p)
            return self._slow_delay(), "secret_missing"
        service_key = key_resolved.values["serviceKey"] if key_resolved else self.key_source.get()
        if not service_key:
            msg = "no service key: set GOLDRUSH_SERVICE_KEY_FILE or GOLDRUSH_SERVICE_KEY, or spec.serviceKeySecretRef"
            return await self._stalled(p, cond.AUTH_FAILED, msg), "auth"
        p.secrets = (*p.secrets, service_key)

        abi_file: dict[str, Any] | None = None
        if spec.abi and spec.abi.config_map_ref:
            ref = spec.abi.config_map_ref
            try:
                data = await self.kube.get_configmap_data(p.namespace, ref.name)
                if ref.key not in data:
                    raise NotFound(f"key {ref.key!r} not found in ConfigMap {ref.name!r}", 404)
                abi_file = parse_abi_file(data[ref.key])
            except NotFound as exc:
                msg = str(exc) if "key" in str(exc) else f"ConfigMap {ref.name!r} not found (spec.abi.configMapRef)"
                p.set(cond.READY, False, "ConfigMapNotFound", msg)
                p.set(cond.SYNCED, False, "ConfigMapNotFound", msg)
                await self._write_status(p)
                return self._slow_delay(), "configmap_missing"
            except ValueError as exc:
                return await self._stalled(p, cond.INVALID_SPEC, f"spec.abi.configMapRef: {exc}"), "invalid"

        desired = desired_payload(p.namespace, p.name, spec, resolved.values, abi_file)
        client = self.client_for(service_key)
        key_id = hashlib.sha256(service_key.encode()).hexdigest()

        # A permanent API rejection (401/403/400/422) is not retried until the spec, a referenced Secret or
        # the key changes (or the slow poll / an on-demand reconcile asks for it). Checking is cheap (no API
        # call, Secrets come from the watch-fed cache, the key file is stat'ed), so it runs every few
        # seconds: a fixed key file clears Stalled at once, Secret and spec changes wake the loop directly.
        fingerprint = (p.generation, key_id,
                       hashlib.sha256(json.dumps(desired, sort_keys=True, default=str).encode()).hexdigest())
        if state.stalled_on is not None:
            left = state.stalled_until - self.clock()
            if state.stalled_on == fingerprint and not token_new and left > 0:
                return min(left, STALLED_RECHECK_SECONDS), "stalled"
            state.stalled_on = None

        try:
            return await self._reconcile_remote(p, spec, desired, resolved, client, key_id, token_new)
        except (UnauthorizedError, ForbiddenError) as exc:
            reason = cond.AUTH_FAILED
            msg = f"GoldRush API rejected the service key ({exc.status}): {p.scrub(str(exc))}"
            await self._warn_once(p, reason, msg)
            return self._hold(state, fingerprint, await self._stalled(p, reason, msg)), "auth"
        except InvalidRequestError as exc:
            msg = f"GoldRush API rejected the pipeline ({exc.status}): {p.scrub(str(exc))}"
            await self._warn_once(p, cond.INVALID_SPEC, msg)
            return self._hold(state, fingerprint, await self._stalled(p, cond.INVALID_SPEC, msg)), "invalid"
        except OutcomeUnknownError as exc:
            log.warning("%s/%s: write outcome unknown, will look it up: %s", p.namespace, p.name, p.scrub(str(exc)))
            p.set(cond.RECONCILING, True, cond.RETRYING, "write outcome unknown; looking the pipeline up")
            await self._write_status(p)
            return self.settings.poll_fast_seconds, "retry"
        except GoldRushError as exc:
            retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
            msg = f"GoldRush API unavailable: {p.scrub(str(exc))}"
            log.warning("%s/%s: %s", p.namespace, p.name, msg)
            p.set(cond.RECONCILING, True, cond.RETRYING, msg)
            if not cond.is_true(p.conditions, cond.READY):
                p.set(cond.READY, False, cond.API_UNAVAILABLE, msg)
            await self._write_status(p)
            return self._backoff(p.state, retry_after), "retry"

    def _hold(self, state: ObjectState, fingerprint: tuple[Any, ...], delay: float) -> float:
        """Remember a permanent rejection of `fingerprint` until `delay` passed; re-check the inputs sooner."""
        state.stalled_on = fingerprint
        state.stalled_until = self.clock() + delay
        return min(delay, STALLED_RECHECK_SECONDS)

    async def _stalled(self, p: _Pass, reason: str, message: str) -> float:
        p.set(cond.READY, False, reason, message)
        synced_reason = reason if reason in (cond.NAME_CONFLICT, cond.SECRET_NOT_FOUND) else cond.API_ERROR
        p.set(cond.SYNCED, False, synced_reason, message)
        p.set(cond.RECONCILING, False, reason, message)
        p.set(cond.STALLED, True, reason, message)
        if not (p.state.pipeline_id or p.status_in.get("pipelineId")):
            p.out["phase"] = "PENDING"
        await self._write_status(p)
        return self._slow_delay()

    # ------------------------------------------------------------------------------------------ remote

    async def _reconcile_remote(
        self,
        p: _Pass,
        spec: PipelineSpec,
        desired: dict[str, Any],
        resolved: ResolvedSecrets,
        client: GoldRushClient,
        key_id: str,
        token_new: bool,
    ) -> tuple[float, str]:
        state = p.state
        now = self.clock()
        pipeline_id = (
            state.pipeline_id
            or (state.last_status or {}).get("pipelineId")
            or p.status_in.get("pipelineId")
            or p.annotations.get(ANNOTATION_PIPELINE_ID)
        )
        user_id = p.annotations.get(ANNOTATION_PIPELINE_ID)
        if user_id and user_id != pipeline_id and not state.create_pending:
            pipeline_id = user_id  # a user points the object at another pipeline: adopt it
        applied = (
            state.applied_hashes
            if state.applied_hashes is not None
            else applied_hashes_from_status(p.status_in.get("secrets"))
        )
        remote: Pipeline | None = None
        created = False

        if pipeline_id and not state.pipeline_id and (
            p.annotations.get(ANNOTATION_PIPELINE_ID) != pipeline_id
            or ANNOTATION_CREATE_PENDING in p.annotations
            or ANNOTATION_CREATE_PENDING_SECRETS in p.annotations
        ):
            # A crash between the two writes of `_record_id`: status has the id, the annotations lag.
            await self._finish_record(p, pipeline_id)

        if not pipeline_id:
            outcome = await self._create_or_adopt(p, desired, resolved, client, key_id)
            if isinstance(outcome, float):
                return outcome, "create_wait"
            remote, created = outcome
            pipeline_id = remote.id
            if created:
                applied = resolved.hashes
            elif state.applied_hashes is not None:
                applied = state.applied_hashes  # adopted after an interrupted create: what that POST sent

        # ---- Is there work, or is a poll due? -------------------------------------------------------
        observed_gen = state.synced_generation
        if observed_gen is None and state.fresh:
            observed_gen = p.status_in.get("observedGeneration")
        work = (
            created
            or remote is not None
            or observed_gen != p.generation
            or resolved.hashes != applied
            or token_new
            or pipeline_id != (state.pipeline_id or p.status_in.get("pipelineId"))
        )
        if state.fresh and not work:
            state.fresh = False
            phase = p.status_in.get("phase")
            if phase in STABLE_PHASES and cond.is_true(p.status_in.get("conditions"), cond.READY):
                # Restart with an in-sync object: spread the first poll over the slow interval.
                state.pipeline_id = pipeline_id
                state.synced_generation = p.generation
                state.applied_hashes = applied
                state.next_poll = now + random.uniform(0, self.settings.poll_slow_seconds)
                state.next_full_check = state.next_poll
                return state.next_poll - now, "deferred"
        state.fresh = False
        if not work and now < state.next_poll:
            return state.next_poll - now, "idle"

        full_check = work or now >= state.next_full_check
        state.pipeline_id = pipeline_id
        p.out["pipelineId"] = pipeline_id

        # ---- Converge configuration -----------------------------------------------------------------
        if full_check:
            if remote is None:
                try:
                    remote = await client.get_pipeline(pipeline_id)
                except NotFoundError:
                    return await self._remote_gone(p, pipeline_id), "recreate"
            diff = compute_diff(desired, remote.model_dump(mode="json"), resolved.hashes, applied)
            if diff.immutable:
                fields = ", ".join(
                    f"{name} (remote {r!r}, spec {d!r})" for name, (d, r) in sorted(diff.immutable.items())
                )
                msg = f"remote pipeline {pipeline_id} differs in fields that cannot change: {fields}"
                await self._warn_once(p, cond.IMMUTABLE_FIELD_CHANGED, msg)
                return await self._stalled(p, cond.IMMUTABLE_FIELD_CHANGED, msg), "invalid"
            if diff.patch:
                drift = not created and observed_gen == p.generation and resolved.hashes == applied
                rotated = sorted(
                    {u.name for u in resolved.uses if applied.get(u.field) != u.hash}
                ) if resolved.hashes != applied else []
                crash_point("update.before-patch")
                remote = await client.update_pipeline(pipeline_id, diff.patch)
                crash_point("update.after-patch")
                applied = resolved.hashes
                fields = ", ".join(diff.changed_fields)
                if drift:
                    self.metrics.drift_corrected()
                    await self._event(p, "DriftCorrected", f"corrected out-of-band changes to: {fields}")
                elif rotated:
                    self.metrics.secret_rotated()
                    await self._event(p, "SecretRotated", f"applied new values from Secret(s) {', '.join(rotated)}")
                else:
                    await self._event(p, "Updated", f"updated pipeline {pipeline_id}: {fields}")
            elif resolved.hashes != applied:
                applied = resolved.hashes
            if diff.status is not None:
                step = "pause" if diff.status == "paused" else "resume"
                crash_point(f"{step}.before-put")
                remote = await client.set_status(pipeline_id, "paused" if diff.status == "paused" else "running")
                crash_point(f"{step}.after-put")
                await self._event(p, "Paused" if step == "pause" else "Resumed",
                                  f"{'paused' if step == 'pause' else 'resumed'} pipeline {pipeline_id}")
            state.applied_hashes = applied
            p.out["secrets"] = resolved.status_entries()
            p.out["pipelineName"] = desired["name"]

        # ---- Observe the runtime ------------------------------------------------------------------------
        try:
            runtime = await client.get_status(pipeline_id)
        except NotFoundError:
            return await self._remote_gone(p, pipeline_id), "recreate"
        phase = runtime.status
        prev_phase = p.status_in.get("phase") if state.last_status is None else state.last_status.get("phase")
        p.out["phase"] = phase
        p.out["replicas"] = runtime.replicas
        p.out["readyReplicas"] = runtime.ready
        if phase != prev_phase:
            self.metrics.phase_changed(state.key, phase)
        if full_check or phase != prev_phase:
            try:
                health = await client.get_destination_health(pipeline_id)
                old = (state.last_status or p.status_in).get("destinationHealth") or {}
                last_error = p.scrub(health.last_error or "") or None
                if old.get("healthy") != health.healthy or old.get("lastError") != last_error:
                    p.out["destinationHealth"] = {"healthy": health.healthy, "lastError": last_error,
                                                  "checkedAt": now_iso()}
                if health.healthy:
                    p.set(cond.DESTINATION_HEALTHY, True, cond.HEALTHY, "destination is reachable")
                else:
                    p.set(cond.DESTINATION_HEALTHY, False, cond.UNHEALTHY, last_error or "destination unhealthy")
            except NotFoundError:
                pass

        # ---- Conditions -------------------------------------------------------------------------------
        synced_msg = f"remote pipeline {pipeline_id} matches generation {p.generation}"
        p.set(cond.SYNCED, True, cond.IN_SYNC, synced_msg)
        p.set(cond.STALLED, False, cond.IN_SYNC, "")
        hint = await self._failure_hint(client, pipeline_id, p) if phase == "FAILED" else ""
        verdict = judge(
            phase, runtime.ready, runtime.replicas, want_paused=spec.paused,
            bounded=spec.execution.mode == "bounded", pipeline_id=pipeline_id, hint=hint,
        )
        p.set(cond.READY, verdict.ready, verdict.reason, verdict.message)
        p.set(cond.RECONCILING, verdict.reconciling, verdict.reason, verdict.message if verdict.reconciling else "")
        if verdict.stalled:
            p.set(cond.STALLED, True, verdict.reason, verdict.message)
            if prev_phase != phase:
                await self._warn_once(p, verdict.reason, verdict.message)
        fast = verdict.fast_poll

        if cond.is_true(p.conditions, cond.READY) and not cond.is_true(
            (state.last_status or p.status_in).get("conditions"), cond.READY
        ):
            created_at = _parse_time((state.last_status or p.status_in).get("createdAt"))
            if created_at is not None:
                self.metrics.became_ready((dt.datetime.now(dt.UTC) - created_at).total_seconds())
        if state.last_event_reason and not cond.is_true(p.conditions, cond.STALLED):
            state.last_event_reason = None
        if created:
            p.out["createdAt"] = now_iso()
        await self._write_status(p)
        state.synced_generation = p.generation
        state.backoff = 0.0
        delay = self.settings.poll_fast_seconds if fast else self._slow_delay()
        state.next_poll = self.clock() + delay
        if full_check:
            state.next_full_check = self.clock() + (self.settings.poll_fast_seconds if fast else self._slow_delay())
        return delay, "ok"

    async def _failure_hint(self, client: GoldRushClient, pipeline_id: str, p: _Pass) -> str:
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

    async def _remote_gone(self, p: _Pass, pipeline_id: str) -> float:
        """The remote pipeline vanished out of band: forget the id so the next pass creates it again."""
        msg = f"remote pipeline {pipeline_id} no longer exists; creating it again"
        log.warning("%s/%s: %s", p.namespace, p.name, msg)
        await self.kube.patch_annotations(p.namespace, p.name, {ANNOTATION_PIPELINE_ID: None})
        await self.kube.patch_status(p.namespace, p.name, {"pipelineId": None, "phase": "PENDING"})
        p.state.pipeline_id = None
        p.state.last_status = None
        p.state.applied_hashes = None
        p.state.synced_generation = None
        await self._event(p, "RemoteDeleted", msg, warning=True)
        p.state.wake.set()
        return 0.0

    async def _create_or_adopt(
        self,
        p: _Pass,
        desired: dict[str, Any],
        resolved: ResolvedSecrets,
        client: GoldRushClient,
        key_id: str,
    ) -> tuple[Pipeline, bool] | float:
        """Create the remote pipeline exactly once, or adopt the one an interrupted attempt created.

        Returns (remote, created) or a delay when it must wait (lookup inconclusive, stalled).
        """
        state = p.state
        pending = state.create_pending or p.annotations.get(ANNOTATION_CREATE_PENDING)
        same = [
            item
            for item in await self._directory(client, key_id, fresh=bool(pending))
            if item.name == desired["name"] and item.project == desired["project"] and item.topic == desired["topic"]
        ]
        if pending:
            mark = _parse_time(pending)
            if mark is not None:
                floor = mark - dt.timedelta(seconds=5)
                same = [i for i in same if (_parse_time(i.created_at) or floor) >= floor]
            if len(same) == 1:
                sent = state.pending_hashes if state.pending_hashes is not None else _pending_hashes(p.annotations)
                await self._record_id(p, same[0].id, resolved.status_entries() if sent == resolved.hashes else None)
                state.applied_hashes = sent
                await self._event(p, "Adopted", f"found pipeline {same[0].id} created by an interrupted attempt")
                return same[0], False
            if len(same) > 1:
                ids = ", ".join(sorted(i.id for i in same))
                msg = f"an interrupted create left several matching pipelines ({ids}); set {ANNOTATION_PIPELINE_ID}"
                await self._warn_once(p, cond.CREATE_INCOMPLETE, msg)
                return await self._stalled(p, cond.CREATE_INCOMPLETE, msg)
            age = (dt.datetime.now(dt.UTC) - mark).total_seconds() if mark else 1e9
            if age < self.settings.request_timeout + 5:
                # The earlier POST may still be in flight: look again before deciding it never landed.
                return self.settings.poll_fast_seconds
        elif same:
            if p.annotations.get(ANNOTATION_ADOPT) == "true" and len(same) == 1:
                await self._record_id(p, same[0].id)
                await self._event(p, "Adopted", f"adopted existing pipeline {same[0].id} by name")
                return same[0], False
            ids = ", ".join(sorted(i.id for i in same))
            msg = (
                f"a pipeline named {desired['name']!r} in project {desired['project']!r} already exists ({ids}) "
                f"and was not created by this object; set {ANNOTATION_ADOPT}: \"true\" to take it over"
            )
            await self._warn_once(p, cond.NAME_CONFLICT, msg)
            return await self._stalled(p, cond.NAME_CONFLICT, msg)

        crash_point("create.before-intent")
        mark_value = now_iso()
        await self.kube.patch_annotations(
            p.namespace, p.name,
            {ANNOTATION_CREATE_PENDING: mark_value,
             ANNOTATION_CREATE_PENDING_SECRETS: json.dumps(resolved.hashes, sort_keys=True)},
        )
        state.create_pending = mark_value
        state.pending_hashes = dict(resolved.hashes)
        crash_point("create.after-intent")
        p.set(cond.READY, False, cond.PENDING, "creating the remote pipeline")
        p.set(cond.RECONCILING, True, cond.CREATING, "creating the remote pipeline")
        remote = await client.create_pipeline(desired)
        crash_point("create.after-post")
        await self._record_id(p, remote.id, resolved.status_entries())
        crash_point("create.after-record")
        await self._event(p, "Created", f"created pipeline {remote.id}")
        state.applied_hashes = resolved.hashes
        return remote, True

    # ------------------------------------------------------------------------------------------ delete

    async def delete(self, body: Mapping[str, Any], state: ObjectState) -> None:
        """Finalizer work: delete the remote pipeline (policy Delete) and wait until it is gone.

        Raises `Retry` while work remains; on return the object has left the phase gauge.
        """
        with about(state.key):
            await self._delete(body, state)
        self.metrics.phase_changed(state.key, None)

    async def _delete(self, body: Mapping[str, Any], state: ObjectState) -> None:
        meta = body.get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        p = _Pass(
            body=body, state=state, namespace=str(meta.get("namespace")), name=str(meta.get("name")),
            generation=int(meta.get("generation") or 1), annotations=annotations,
            status_in=dict(body.get("status") or {}),
            conditions=list((body.get("status") or {}).get("conditions") or []),
        )
        if annotations.get(ANNOTATION_PAUSE_RECONCILIATION) == "true":
            raise Retry("reconciliation is paused; the remote pipeline is left alone until it is resumed",
                        self.settings.poll_slow_seconds)
        spec_raw = body.get("spec") or {}
        policy = spec_raw.get("deletionPolicy") or "Delete"
        pipeline_id = (
            state.pipeline_id or p.status_in.get("pipelineId") or annotations.get(ANNOTATION_PIPELINE_ID)
        )
        if policy == "Orphan":
            if pipeline_id:
                await self._event(p, "Orphaned", f"left remote pipeline {pipeline_id} in place (deletionPolicy Orphan)")
            return
        try:
            spec = PipelineSpec.model_validate(spec_raw)
        except ValidationError:
            spec = None
        service_key: str | None = self.key_source.get()
        if spec is not None and spec.service_key_secret_ref is not None:
            ref = spec.service_key_secret_ref
            data = await self._read_secret(p.namespace, ref.name)
            service_key = (data or {}).get(ref.key)
            if not service_key:
                raise Retry(f"cannot delete the remote pipeline: Secret {ref.name!r} key {ref.key!r} "
                            "(spec.serviceKeySecretRef) is missing", self.settings.poll_slow_seconds / 10)
        if not service_key:
            raise Retry("cannot delete the remote pipeline: no service key configured", 60.0)
        client = self.client_for(service_key)
        secrets = (service_key,)
        try:
            pending = state.create_pending or annotations.get(ANNOTATION_CREATE_PENDING)
            if not pipeline_id and pending and spec is not None:
                # An interrupted create may have landed: find it so that it is not orphaned.
                desired_name = spec.pipeline_display_name(p.namespace, p.name)
                key_id = hashlib.sha256(service_key.encode()).hexdigest()
                for item in await self._directory(client, key_id, fresh=True):
                    if item.name == desired_name and item.project == spec.project and item.topic == spec.topic:
                        pipeline_id = item.id
                        break
            if not pipeline_id:
                return
            if not state.delete_sent:
                crash_point("delete.before-delete")
                with contextlib.suppress(NotFoundError):
                    await client.delete_pipeline(pipeline_id)
                crash_point("delete.after-delete")
                state.delete_sent = True
            try:
                await client.get_pipeline(pipeline_id)
            except NotFoundError:
                await self._event(p, "Deleted", f"deleted remote pipeline {pipeline_id}")
                return
            raise Retry(f"waiting for remote pipeline {pipeline_id} to be deleted", self.settings.poll_fast_seconds)
        except (UnauthorizedError, ForbiddenError) as exc:
            raise Retry(f"cannot delete: the API rejected the service key ({exc.status})", 60.0) from None
        except ApiError as exc:
            delay = exc.retry_after if isinstance(exc, RateLimitedError) and exc.retry_after else 5.0
            raise Retry(f"remote delete failed: {scrub(str(exc), secrets)}", delay) from None
        except GoldRushError as exc:
            raise Retry(f"remote delete failed: {scrub(str(exc), secrets)}", 5.0) from None


async def run_loop(
    reconciler: Reconciler, get_body: Callable[[], Mapping[str, Any]], state: ObjectState,
    stop: asyncio.Event, on_iteration: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Reconcile until `stop` is set; used by the per-object daemon in handlers.py."""
    while not stop.is_set():
        delay = await reconciler.reconcile(get_body(), state)
        if on_iteration is not None:
            await on_iteration()
        await state.sleep(delay, stop)
