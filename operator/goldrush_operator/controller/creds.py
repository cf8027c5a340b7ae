"""Credentials objects: follow their watch events, check their keys against the API, write their status.

The kopf handlers feed `on_event` (GoldRushCredentials, ClusterGoldRushCredentials) and `on_namespace`
(Namespace labels, for `spec.namespaceSelector`); `secretwatch.SecretWatch` calls `on_secret_changed` when a
key Secret changes, and `loop.Controller` calls `auth_failed` when a pipeline's key from a credentials object
was refused. `run` (a task started by the handlers) checks each object's key with one `GET` of the first
page of the pipeline list (through the same per-key client, so the same rate limit as its pipelines), and
re-checks on every change, after every refusal a pipeline saw, and on the slow cadence.

Status (written only here, merge patch, only when it changes):
- `Ready`: True `KeyValid`; False `AuthFailed` (401: unknown or revoked key), `NotAServiceKey` (403: a
  regular GoldRush API key), `SecretNotFound`, `ApiUnavailable` (retried with backoff), `InvalidSpec`;
- `Stalled`: present (True) only with AuthFailed, NotAServiceKey or InvalidSpec: a human must act;
- `usedBy`: the number of pipelines using the key (the keyring's count; a change is written on the next tick
  of the poll grid, together with the other changed counts), `observedGeneration`.
Rotation never writes a pipeline: its users are woken by the Secret index and use the new key on their
next call. No key value reaches a message: every text is scrubbed with the key before it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from goldrush_operator import conditions as cond
from goldrush_operator.controller.ports import ClientFactory
from goldrush_operator.goldrush_api import ForbiddenError, GoldRushError, UnauthorizedError
from goldrush_operator.keyring import CredKey, Keyring, ObjectKey, cred_key, describe
from goldrush_operator.kube import KubeError
from goldrush_operator.resource_credentials import (
    KIND_CLUSTER_CREDENTIALS,
    PLURAL_CLUSTER_CREDENTIALS,
    PLURAL_CREDENTIALS,
)
from goldrush_operator.scheduler import until_tick
from goldrush_operator.secret_values import scrub
from goldrush_operator.state import Store

log = logging.getLogger("goldrush_operator.credentials")

KEY_VALID: Final = "KeyValid"
NOT_A_SERVICE_KEY: Final = "NotAServiceKey"
RETRY_MIN_SECONDS: Final = 2.0
RETRY_MAX_SECONDS: Final = 300.0
HINT_MIN_INTERVAL: Final = 2.0  # at most one check per object this often on pipelines' refusals


class StatusPort(Protocol):
    """The Kubernetes call this module makes (`kube.Kube`)."""

    async def patch_credentials_status(
        self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """The result of one check of a key."""

    ready: bool
    reason: str
    message: str
    stalled: bool = False
    transient: bool = False


def owner_id(key: CredKey) -> str:
    """The id of a credentials object in the Secret index (`Store.set_owner_reference`)."""
    return "/".join(key)


class CredentialsController:
    """One per operator process."""

    def __init__(
        self, keyring: Keyring, store: Store, kube: StatusPort, client_for: ClientFactory,
        read_secret: Callable[[str, str], Awaitable[dict[str, str] | None]], wake: Callable[[ObjectKey], None],
        *, recheck_seconds: float, clock: Callable[[], float] = time.monotonic, tick: float = 2.0,
    ) -> None:
        self.keyring, self._store, self._kube, self._client_for = keyring, store, kube, client_for
        self._read_secret, self._wake, self._recheck, self._clock = read_secret, wake, recheck_seconds, clock
        self._tick = tick  # changed counts are written together on the poll grid's ticks (scheduler.until_tick)
        self._flush_at: float | None = None  # the tick on which the changed counts are written (None: none changed)
        keyring.on_dirty = self._counts_changed
        if keyring.dirty:  # marked before this controller existed
            self._flush_at = self._next_settled_tick()
        self._due: dict[CredKey, float] = {}
        self._verdicts: dict[CredKey, Verdict] = {}
        self._written: dict[CredKey, dict[str, Any]] = {}
        self._checked_at: dict[CredKey, float] = {}
        self._backoff: dict[CredKey, float] = {}
        self._signal = asyncio.Event()

    # ------------------------------------------------------------------------------------------ events

    def on_event(self, kind: str, body: Mapping[str, Any], event_type: str | None) -> None:
        """A watch event of a credentials object."""
        meta = body.get("metadata") or {}
        key = cred_key(kind, meta.get("namespace"), str(meta.get("name") or ""))
        if event_type == "DELETED":
            users = self.keyring.forget(key)
            self._store.set_owner_reference(owner_id(key), None)
            self._due.pop(key, None)
            self._verdicts.pop(key, None)
            self._written.pop(key, None)
            self._checked_at.pop(key, None)
            self._backoff.pop(key, None)
            self._wake_all(users)
            return
        old = self.keyring.objects.get(key)
        creds, users = self.keyring.observe(kind, body)
        self._store.set_owner_reference(owner_id(key), creds.secret if creds.secret[1] else None)
        if key not in self._written:
            self._written[key] = dict(creds.status)
        self._wake_all(users)
        if old is None:
            # At start the first check waits until the pipelines had time to be counted (no usedBy flap).
            self.schedule(key, self.keyring.grace_left())
        elif users or (old.generation, old.secret) != (creds.generation, creds.secret):
            self.schedule(key)

    def on_namespace(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """A watch event of a Namespace: its labels decide who may use ClusterGoldRushCredentials."""
        meta = body.get("metadata") or {}
        labels = None if event_type == "DELETED" else dict(meta.get("labels") or {})
        self._wake_all(self.keyring.observe_namespace(str(meta.get("name") or ""), labels))

    def on_secret_changed(self, secret: ObjectKey) -> None:
        """A referenced Secret's data changed: re-check the objects whose key it holds."""
        for key, creds in list(self.keyring.objects.items()):
            if creds.secret == secret:
                self.schedule(key)

    def auth_failed(self, key: CredKey) -> None:
        """A pipeline's call with this object's key was refused: check the key again now, or, when it was
        checked less than `HINT_MIN_INTERVAL` ago (the refusal may be what revoked it since), as soon as that
        has passed; never dropped."""
        elapsed = self._clock() - self._checked_at.get(key, -1e9)
        self.schedule(key, max(0.0, HINT_MIN_INTERVAL - elapsed))

    def schedule(self, key: CredKey, delay: float = 0.0) -> None:
        due = self._clock() + delay
        if key not in self._due or self._due[key] > due:
            self._due[key] = due
        self._signal.set()

    def _wake_all(self, users: list[ObjectKey]) -> None:
        for user in users:
            self._wake(user)

    # ------------------------------------------------------------------------------------------ loop

    def _counts_changed(self) -> None:
        """The keyring marked an object's `usedBy` as changed: write it on the next tick after the keyring's
        start-up grace (one wake-up now, only when no write of the counts is scheduled yet, so that a burst of
        pipelines costs one write per tick)."""
        if self._flush_at is None:
            self._flush_at = self._next_settled_tick()
            self._signal.set()

    def _next_settled_tick(self) -> float:
        """The time of the first tick after now at which the keyring is settled (its start-up grace over)."""
        t = self._clock() + self.keyring.grace_left()
        return t + until_tick(self._tick, t)

    def next_wake(self) -> float | None:
        """Seconds until the loop has work (the first due check, or the tick of the changed counts); None:
        nothing until a signal. An idle loop therefore never wakes on its own between rechecks."""
        now = self._clock()
        waits = [t - now for t in self._due.values()]
        if self._flush_at is not None:
            waits.append(self._flush_at - now)
        return max(0.05, min(waits)) if waits else None

    async def run(self) -> None:
        """Check due objects and write changed counts until cancelled."""
        while True:
            now = self._clock()
            for key in [k for k, t in self._due.items() if t <= now]:
                del self._due[key]
                try:
                    await self.check(key)
                except Exception:  # one object's failure must not stop the others
                    log.exception("credentials check of %s failed", describe(key))
                    self.schedule(key, RETRY_MAX_SECONDS)
            await self.flush_counts()
            wait = self.next_wake()
            self._signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), wait)

    async def flush_counts(self) -> None:
        """On the tick of the changed counts, write them (scheduled after the keyring's start-up grace)."""
        now = self._clock()
        if self._flush_at is None or now < self._flush_at:
            return
        if not self.keyring.settled():  # only when the keyring reads another clock than this loop
            self._flush_at = self._next_settled_tick()
            return
        self._flush_at = None
        for key in self.keyring.take_dirty():
            if key in self.keyring.objects and key in self._verdicts:
                await self._write(key)

    async def check(self, key: CredKey) -> Verdict | None:
        """Check one object's key against the API and write its status; the verdict (None: it is gone)."""
        creds = self.keyring.objects.get(key)
        if creds is None:
            return None
        self._checked_at[key] = self._clock()
        value: str | None = None
        if creds.invalid:
            verdict = Verdict(False, cond.INVALID_SPEC, creds.invalid, stalled=True)
        else:
            data = await self._read_secret(*creds.secret)
            where = f"Secret {creds.secret[1]!r} in namespace {creds.secret[0]}"
            if data is None:
                verdict = Verdict(False, cond.SECRET_NOT_FOUND, f"{where} not found (spec.serviceKeySecretRef)")
            elif not data.get(creds.secret_key):
                verdict = Verdict(False, cond.SECRET_NOT_FOUND,
                                  f"key {creds.secret_key!r} not found or empty in {where} (spec.serviceKeySecretRef)")
            else:
                value = data[creds.secret_key]
                verdict = await self._probe(value)
        self._verdicts[key] = verdict
        if verdict.transient:
            delay = self._backoff[key] = min(max(RETRY_MIN_SECONDS, self._backoff.get(key, 0.0) * 2), RETRY_MAX_SECONDS)
            self.schedule(key, delay)
        else:
            self._backoff.pop(key, None)
            self.schedule(key, self._recheck * random.uniform(1.0, 1.15))
        if verdict.reason != (self._last_reason(key) or ""):
            log.log(logging.INFO if verdict.ready else logging.WARNING, "%s: %s: %s", describe(key), verdict.reason,
                    scrub(verdict.message, [value] if value else []))
        await self._write(key, value)
        return verdict

    async def _probe(self, value: str) -> Verdict:
        client = self._client_for(value)
        try:
            async for _ in client.list_pipelines(page_size=1):
                break
        except UnauthorizedError as exc:
            return Verdict(False, cond.AUTH_FAILED, scrub(f"the GoldRush API rejected the service key (401): {exc}",
                                                         [value]), stalled=True)
        except ForbiddenError as exc:
            return Verdict(False, NOT_A_SERVICE_KEY, scrub(
                "the GoldRush API refused the key (403): a regular GoldRush API key cannot manage pipelines; "
                f"create a ServiceKey (Platform, Service Keys): {exc}", [value]), stalled=True)
        except GoldRushError as exc:
            return Verdict(False, cond.API_UNAVAILABLE, scrub(f"could not check the key: {exc}", [value]),
                           transient=True)
        return Verdict(True, KEY_VALID, "the GoldRush API accepted the service key")

    def _last_reason(self, key: CredKey) -> str | None:
        ready = cond.get_condition((self._written.get(key) or {}).get("conditions"), cond.READY)
        return str(ready.get("reason")) if ready else None

    async def _write(self, key: CredKey, value: str | None = None) -> None:
        creds, verdict = self.keyring.objects.get(key), self._verdicts.get(key)
        if creds is None or verdict is None:
            return
        current = self._written.get(key) or {}
        now = cond.now_utc()
        conditions = cond.set_condition(current.get("conditions"), cond.READY, verdict.ready, verdict.reason,
                                        verdict.message, creds.generation, now)
        conditions = cond.set_condition(conditions, cond.STALLED, verdict.stalled, verdict.reason,
                                        verdict.message if verdict.stalled else "", creds.generation, now)
        # Not ready and no human needed: waited for (its Secret) or retried (the API). Flux's kstatus reads a
        # custom resource by Reconciling and Stalled, not Ready: without it, such an object would be Current.
        waiting = not verdict.ready and not verdict.stalled
        conditions = cond.set_condition(conditions, cond.RECONCILING, waiting, verdict.reason,
                                        verdict.message if waiting else "", creds.generation, now)
        patch = {"observedGeneration": creds.generation, "conditions": conditions,
                 "usedBy": self.keyring.used_by(key)}
        if not cond.status_changed(current, patch):
            return
        kind, namespace, name = key
        plural = PLURAL_CLUSTER_CREDENTIALS if kind == KIND_CLUSTER_CREDENTIALS else PLURAL_CREDENTIALS
        try:
            await self._kube.patch_credentials_status(plural, namespace or None, name, patch)
        except KubeError as exc:
            log.warning("could not write the status of %s: %s", describe(key), exc)
            self.schedule(key, RETRY_MIN_SECONDS)
            return
        self._written[key] = {**current, **patch}
