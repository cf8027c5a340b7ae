"""Slim per-object records and the Secret index: all the operator keeps in memory about its objects.

The kopf handlers (`handlers.py`) feed every watch event of a pipeline to `Store.observe` (which keeps a
compact snapshot, not kopf's body) and of a referenced Secret to `Store.secret_event`; the controller
(`controller/loop.py`) reads the snapshot and keeps its own memory in the record (what it wrote last, what it
applied, backoff, hold). Nothing here talks to an API.

Why memory beyond the snapshot: a watch event can lag our own writes by a round-trip, so what we wrote last
(the remote id, the create-pending mark, the status) is remembered here and wins over an older snapshot;
the remembered status is dropped once a watch event shows exactly it (one copy per object, not two).
After a restart the records are empty and the objects (a fresh LIST) are authoritative.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_PAUSE_RECONCILIATION,
    ANNOTATION_PIPELINE_ID,
    ANNOTATION_RECONCILE_REQUESTED_AT,
    FINALIZER,
    GROUP,
)

ObjectKey = tuple[str, str]  # (namespace, name)
# The one empty frozenset records share (each `frozenset()` call allocates a new one).
NOTHING: frozenset[Any] = frozenset()

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


def _kept_annotations(annotations: Mapping[str, Any]) -> dict[str, str]:
    """Only the annotations the operator reads: ours and Flux's reconcile request."""
    return {k: str(v) for k, v in annotations.items() if k.startswith(GROUP + "/") or k == ANNOTATION_FLUX_REQUESTED_AT}


def snapshot_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object the controller reads: identity, generation, our annotations, spec, status."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "finalizers": [str(f) for f in meta.get("finalizers") or []],
            "annotations": _kept_annotations(meta.get("annotations") or {}),
        },
        "spec": _plain(body.get("spec") or {}),
        "status": _plain(body.get("status") or {}),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(slots=True)
class ObjectRecord:
    """One object: its compact snapshot plus the controller's memory of it (lost on restart, by design)."""

    key: ObjectKey
    uid: str
    _snapshot: bytes = b"{}"
    wake_key: tuple[Any, ...] = ()
    deleting: bool = False
    finalized: bool = False  # the object carries the operator's finalizer (`resource.FINALIZER`)
    pipeline_id: str | None = None
    # The id of a remote pipeline found deleted out of band: a snapshot the watch has not yet updated may still
    # carry it (status, annotation); it is never taken for the object's pipeline again.
    forgotten_id: str | None = None
    create_pending: str | None = None
    create_call_ended: float | None = None  # when this process's POST for `create_pending` returned or failed
    pending_hashes: dict[str, str] | None = None
    pending_name: str | None = None  # the remote name the create marked `create_pending` was sent with
    # After this process created the object's pipeline: when its POST returned, until a listing begun after that
    # showed the name kept (`External.check_name_kept`).
    name_check: float | None = None
    applied_hashes: dict[str, str] | None = None
    synced_generation: int | None = None
    _last_status: bytes | None = None
    held_on: str | None = None
    held_reason: tuple[str, str, str] | None = None  # (reason, message, Synced's reason) of the holding stall
    handled_tokens: frozenset[str] = NOTHING
    secret_keys: frozenset[ObjectKey] = NOTHING  # (namespace, name) of every Secret it references
    next_full_check: float = 0.0
    poll_reserved: int = 0  # reads booked from the read budget for the next poll
    metrics_paid: bool = False  # a metrics read is booked from the read budget and not sent yet
    next_metrics: float = 0.0
    backoff: float = 0.0
    last_event_reason: str | None = None
    delete_sent: bool = False
    remote_done: bool = False  # the deletion's remote part is done (deleted or left); only the finalizer remains
    fresh: bool = True
    announced: frozenset[str] = NOTHING  # dry run: the changes already announced (`decide.Call.key`)
    # A difference kept unwritten (policies, dry run): (inputs fingerprint, Synced reason or None when in sync,
    # message, remote pause intent); the status polls keep reporting it until the inputs change.
    not_applied: tuple[str, str | None, str, bool | None] | None = None

    @property
    def wanted(self) -> bool:
        """Whether a pass has anything to do: a live object, or one being deleted that carries the finalizer."""
        return self.finalized or not self.deleting

    def snapshot(self) -> dict[str, Any]:
        """A fresh dict copy of the last observed object (see `snapshot_of`)."""
        parsed: dict[str, Any] = json.loads(self._snapshot)
        return parsed

    def set_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        self._snapshot = _encode(snapshot)

    @property
    def last_status(self) -> dict[str, Any] | None:
        """The status as the operator last wrote it (None before its first write in this process)."""
        if self._last_status is None:
            return None
        parsed: dict[str, Any] = json.loads(self._last_status)
        return parsed

    @last_status.setter
    def last_status(self, value: Mapping[str, Any] | None) -> None:
        self._last_status = None if value is None else _encode(value)

    @property
    def snapshot_raw(self) -> bytes:
        """The compact form of `snapshot` (a new object after every watch event: an identity check suffices)."""
        return self._snapshot

    @property
    def last_status_raw(self) -> bytes | None:
        """The compact form of `last_status` (a new object after every write: an identity check suffices)."""
        return self._last_status


def wake_key(snapshot: Mapping[str, Any]) -> tuple[Any, ...]:
    """What, when it changes, must trigger a pass now: generation, deletion, control annotations."""
    meta = snapshot.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (meta.get("generation"), meta.get("deletionTimestamp"), *(annotations.get(n) for n in _WAKE_ANNOTATIONS))


def _data_digest(data: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(_encode(dict(data or {}))).hexdigest()


class SecretReading(NamedTuple):
    """One cached reading of a referenced Secret (kept by `Store`, read by the controller's inputs and the
    Secret watch): the decoded data (None: known not to exist), the resourceVersion it was read at, and a
    digest of the data that tells a change from a resend of the same values."""

    data: dict[str, str] | None
    version: str
    digest: str


@dataclass
class Store:
    """Every live object's record, the Secret -> objects index and the referenced Secrets' data."""

    records: dict[ObjectKey, ObjectRecord] = field(default_factory=dict)
    _by_secret: dict[ObjectKey, set[ObjectKey]] = field(default_factory=dict)
    _owners_by_secret: dict[ObjectKey, set[str]] = field(default_factory=dict)
    # (namespace, secret) -> the last reading of it; referenced Secrets only.
    _secrets: dict[ObjectKey, SecretReading] = field(default_factory=dict)

    def observe(self, body: Mapping[str, Any]) -> tuple[ObjectRecord, bool]:
        """Record a watch event of a pipeline; returns (record, whether a pass is needed now)."""
        snap = snapshot_of(body)
        key = object_key(body)
        uid = str(snap["metadata"].get("uid") or "")
        record = self.records.get(key)
        new = record is None or record.uid != uid
        if record is None or new:
            if record is not None:
                self.set_references(record, frozenset())
            record = ObjectRecord(key=key, uid=uid)
            self.records[key] = record
        record.set_snapshot(snap)
        if record._last_status is not None and record._last_status == _encode(snap["status"]):
            record._last_status = None  # the watch caught up with the last write: one copy is enough
        record.deleting = bool(snap["metadata"].get("deletionTimestamp"))
        record.finalized = FINALIZER in snap["metadata"]["finalizers"]
        wake = wake_key(snap)
        changed = new or wake != record.wake_key
        record.wake_key = wake
        return record, changed

    def get(self, key: ObjectKey) -> ObjectRecord | None:
        return self.records.get(key)

    def forget(self, key: ObjectKey) -> None:
        record = self.records.pop(key, None)
        if record is not None:
            self.set_references(record, frozenset())

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------------------------- secrets

    def set_references(
        self, record: ObjectRecord, secret_names: frozenset[str], others: frozenset[ObjectKey] = frozenset()
    ) -> None:
        """The Secrets `record` references: `secret_names` in its namespace, `others` anywhere (a key Secret of
        a ClusterGoldRushCredentials lives in the operator's namespace)."""
        keys = (frozenset((record.key[0], name) for name in secret_names) | others) or NOTHING
        for key in record.secret_keys - keys:
            users = self._by_secret.get(key)
            if users is not None:
                users.discard(record.key)
                if not users:
                    del self._by_secret[key]
                    self._drop_unreferenced(key)
        for key in keys - record.secret_keys:
            self._by_secret.setdefault(key, set()).add(record.key)
        record.secret_keys = keys

    def set_owner_reference(self, owner: str, key: ObjectKey | None) -> None:
        """A non-pipeline user of a Secret (a credentials object, by id) references `key` (None: nothing)."""
        for secret, owners in list(self._owners_by_secret.items()):
            if owner in owners and secret != key:
                owners.discard(owner)
                if not owners:
                    del self._owners_by_secret[secret]
                    self._drop_unreferenced(secret)
        if key is not None:
            self._owners_by_secret.setdefault(key, set()).add(owner)

    def _drop_unreferenced(self, key: ObjectKey) -> None:
        if key in self._by_secret or key in self._owners_by_secret:
            return
        self._secrets.pop(key, None)

    def cached_secret(self, namespace: str, name: str) -> SecretReading | None:
        """The cached reading of a referenced Secret (None: not read yet, or no longer referenced)."""
        return self._secrets.get((namespace, name))

    def referenced(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._by_secret or (namespace, name) in self._owners_by_secret

    def secret_event(
        self, namespace: str, name: str, data: dict[str, str] | None, version: str = ""
    ) -> list[ObjectKey] | None:
        """A Secret was added/changed (`data`) or deleted (None): refresh the cache; return the pipelines to wake
        (maybe none: a credentials object's Secret), or None when the data did not change or nobody
        references the Secret."""
        key = (namespace, name)
        if not self.referenced(namespace, name) or not self._keep(key, data, version):
            return None
        return sorted(self._by_secret.get(key) or ())

    def cache_secret(
        self, namespace: str, name: str, data: dict[str, str] | None, version: str = ""
    ) -> dict[str, str] | None:
        """Remember a Secret read through the API (only while it is referenced); return the cached reading.

        A reading the cache already holds wins: the Secret watch stored it while the GET was in flight, so it
        is the newer one (the GET may predate the change), and the watch brings any later change.
        """
        key = (namespace, name)
        cached = self._secrets.get(key)
        if cached is not None:
            return cached.data
        if self.referenced(namespace, name):
            self._keep(key, data, version)
        return data

    def _keep(self, key: ObjectKey, data: dict[str, str] | None, version: str) -> bool:
        """Cache a reading of a referenced Secret at `version`; True when its data differs from the cached."""
        digest = "absent" if data is None else _data_digest(data)
        before = self._secrets.get(key)
        self._secrets[key] = SecretReading(data, version, digest)
        return before is None or before.digest != digest
