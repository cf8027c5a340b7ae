"""In-memory per-object state, wake-ups and the Secret -> objects index.

The kopf handlers (`handlers.py`) attach one `ObjectState` per live GoldRushPipeline (its daemon loop owns
it), forward every watch event of a pipeline (`notify`) and of a Secret (`secret_event`) here; the
reconciler reads and updates the state. Nothing here talks to an API.

Why in-memory state at all: kopf's live body can lag our own writes by a watch round-trip, so what we
wrote last (the remote id, the create-pending mark, the status) is remembered here and always wins over an
older body. After a restart the state is empty and the body (a fresh LIST) is authoritative.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_RECONCILE_REQUESTED_AT,
)

ObjectKey = tuple[str, str]  # (namespace, name)

_WAKE_ANNOTATIONS = (
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_RECONCILE_REQUESTED_AT,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_ADOPT,
)


def object_key(body: Mapping[str, Any]) -> ObjectKey:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def wake_key(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What, when it changes, must trigger a reconcile now: generation, deletion, control annotations."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        meta.get("deletionTimestamp"),
        *(annotations.get(name) for name in _WAKE_ANNOTATIONS),
    )


@dataclass
class ObjectState:
    """What the operator remembers about one object between reconciles (lost on restart, by design)."""

    key: ObjectKey
    uid: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_wake_key: tuple[Any, ...] | None = None
    pipeline_id: str | None = None
    create_pending: str | None = None
    pending_hashes: dict[str, str] | None = None
    stalled_on: tuple[Any, ...] | None = None
    handled_tokens: frozenset[str] = frozenset()
    stalled_until: float = 0.0
    last_status: dict[str, Any] | None = None
    synced_generation: int | None = None
    applied_hashes: dict[str, str] | None = None
    secret_names: frozenset[str] = frozenset()
    next_poll: float = 0.0
    next_full_check: float = 0.0
    backoff: float = 0.0
    last_event_reason: str | None = None
    delete_sent: bool = False
    fresh: bool = True

    async def sleep(self, delay: float, stop: asyncio.Event | None = None) -> None:
        """Wait `delay` seconds, or less when woken (or stopped)."""
        if self.wake.is_set():
            self.wake.clear()
            return
        waiters = [asyncio.ensure_future(self.wake.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.0, delay), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self.wake.clear()


def _data_digest(data: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(dict(data or {}), sort_keys=True).encode()).hexdigest()


class Registry:
    """All attached objects, the Secret index and a small cache of referenced Secrets' data."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, ObjectState] = {}
        self._by_secret: dict[ObjectKey, set[ObjectKey]] = {}
        # (namespace, secret) -> decoded data, or None when known not to exist; only referenced Secrets.
        self.secret_cache: dict[ObjectKey, dict[str, str] | None] = {}
        self._secret_digest: dict[ObjectKey, str] = {}

    def attach(self, body: Mapping[str, Any]) -> ObjectState:
        key = object_key(body)
        uid = str((body.get("metadata") or {}).get("uid") or "")
        state = self.objects.get(key)
        if state is None or state.uid != uid:
            state = ObjectState(key=key, uid=uid)
            self.objects[key] = state
        return state

    def detach(self, state: ObjectState) -> None:
        if self.objects.get(state.key) is state:
            del self.objects[state.key]
        self.set_references(state, frozenset())

    def get(self, body: Mapping[str, Any]) -> ObjectState:
        """The attached state, or a detached one (e.g. for the deletion handler after the daemon ended)."""
        key = object_key(body)
        state = self.objects.get(key)
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if state is not None and state.uid == uid:
            return state
        return ObjectState(key=key, uid=uid)

    def notify(self, body: Mapping[str, Any]) -> None:
        """A watch event for a pipeline object: wake its loop when something that matters changed."""
        state = self.objects.get(object_key(body))
        if state is None:
            return
        key = wake_key(body)
        if state.last_wake_key is not None and key != state.last_wake_key:
            state.wake.set()

    # ------------------------------------------------------------------------------------- secrets

    def set_references(self, state: ObjectState, secret_names: frozenset[str]) -> None:
        namespace = state.key[0]
        for name in state.secret_names - secret_names:
            refs = self._by_secret.get((namespace, name))
            if refs is not None:
                refs.discard(state.key)
                if not refs:
                    del self._by_secret[(namespace, name)]
                    self.secret_cache.pop((namespace, name), None)
                    self._secret_digest.pop((namespace, name), None)
        for name in secret_names - state.secret_names:
            self._by_secret.setdefault((namespace, name), set()).add(state.key)
        state.secret_names = secret_names

    def referenced(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._by_secret

    def secret_event(self, namespace: str, name: str, data: dict[str, str] | None) -> int:
        """A Secret was added/changed (`data`) or deleted (None): refresh the cache, wake its users.

        Returns how many objects were woken; an event that does not change the data wakes nobody.
        """
        key = (namespace, name)
        users = self._by_secret.get(key)
        if not users:
            return 0
        digest = "absent" if data is None else _data_digest(data)
        if self._secret_digest.get(key) == digest and key in self.secret_cache:
            return 0
        self._secret_digest[key] = digest
        self.secret_cache[key] = data
        woken = 0
        for object_key_ in users:
            state = self.objects.get(object_key_)
            if state is not None:
                state.wake.set()
                woken += 1
        return woken

    def cache_secret(self, namespace: str, name: str, data: dict[str, str] | None) -> None:
        """Remember a Secret read through the API (only while it is referenced)."""
        if (namespace, name) in self._by_secret:
            self.secret_cache[(namespace, name)] = data
            self._secret_digest[(namespace, name)] = "absent" if data is None else _data_digest(data)
