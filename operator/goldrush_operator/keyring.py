"""The credentials objects the operator knows, the namespaces' labels, and who uses which key.

Fed by the kopf handlers (watch events of GoldRushCredentials, ClusterGoldRushCredentials and Namespaces,
through `controller.creds.CredentialsController`) and read by a pass (`controller.inputs.Inputs`), which
asks `resolve` where a pipeline's `spec.credentialsRef` key is. Pure: no I/O, no clock but the one given.

The rules of `resolve` (no confused deputy):
- `GoldRushCredentials` can only be named from its own namespace (`credentialsRef` has no namespace);
- `ClusterGoldRushCredentials` only from a namespace whose labels its `spec.namespaceSelector` matches;
  unknown labels never match (fail closed);
- right after start the watches may not have delivered everything yet: an unknown object is `NotYetKnown`
  for `grace` seconds (the pass waits silently), then `CredentialsNotFound`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from goldrush_operator.resource import CredentialsRef
from goldrush_operator.resource_credentials import (
    KIND_CLUSTER_CREDENTIALS,
    KIND_CREDENTIALS,
    ClusterCredentialsSpec,
    CredentialsSpec,
    LabelSelector,
)

ObjectKey = tuple[str, str]  # (namespace, name) of a pipeline or a Secret
CredKey = tuple[str, str, str]  # (kind, namespace or "", name)

CREDENTIALS_NOT_FOUND: Final = "CredentialsNotFound"
CREDENTIALS_NOT_ALLOWED: Final = "CredentialsNotAllowed"
CREDENTIALS_INVALID: Final = "CredentialsInvalid"
DEFAULT_GRACE_SECONDS: Final = 15.0


def cred_key(kind: str, namespace: str | None, name: str) -> CredKey:
    return kind, (namespace or "") if kind == KIND_CREDENTIALS else "", name


def describe(key: CredKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: all matchLabels and all matchExpressions; `{}` matches all."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or ():
        present = req.key in labels
        values = set(req.values or ())
        if req.operator == "In" and not (present and labels[req.key] in values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Credentials:
    """One credentials object as the watch last delivered it (parsed)."""

    key: CredKey
    uid: str
    generation: int
    secret: ObjectKey  # where the key Secret lives
    secret_key: str
    selector: LabelSelector | None  # ClusterGoldRushCredentials only
    invalid: str | None = None  # why the spec could not be parsed (the schema should prevent it)
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        """Enough of an object for an Event's involvedObject."""
        kind, namespace, name = self.key
        meta = {"name": name, "uid": self.uid, **({"namespace": namespace} if namespace else {})}
        return {"kind": kind, "metadata": meta}


def parse_credentials(kind: str, body: Mapping[str, Any], operator_namespace: str) -> Credentials:
    meta = body.get("metadata") or {}
    key = cred_key(kind, meta.get("namespace"), str(meta.get("name") or ""))
    spec_raw = body.get("spec") or {}
    uid, generation = str(meta.get("uid") or ""), int(meta.get("generation") or 1)
    status = dict(body.get("status") or {})
    home = key[1] if kind == KIND_CREDENTIALS else operator_namespace
    try:
        if kind == KIND_CREDENTIALS:
            spec = CredentialsSpec.model_validate(spec_raw)
            selector = None
        else:
            cluster = ClusterCredentialsSpec.model_validate(spec_raw)
            spec, selector = cluster, cluster.namespace_selector  # type: ignore[assignment]
    except ValidationError as exc:
        msg = "; ".join(f"spec.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        return Credentials(key, uid, generation, (home, ""), "", None, f"invalid spec: {msg}", status)
    ref = spec.service_key_secret_ref
    return Credentials(key, uid, generation, (home, ref.name), ref.key, selector, None, status)


@dataclass(frozen=True)
class Use:
    """Where a pipeline's key is: the credentials object and its Secret key."""

    credentials: Credentials

    @property
    def secret(self) -> ObjectKey:
        return self.credentials.secret

    @property
    def origin(self) -> str:
        return f"{describe(self.credentials.key)} (spec.credentialsRef)"


class NotYetKnown(Exception):
    """The watches have not delivered what a pass needs yet: look again after `delay`, write nothing."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"credentials not known yet; again in {delay}s")
        self.delay = delay


class Refused(Exception):
    """The pipeline cannot use the credentials it names; `stall`: only a human change can end it."""

    def __init__(self, reason: str, message: str, *, stall: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.stall = reason, message, stall


@dataclass
class Keyring:
    """Credentials objects by key, namespace labels, and the pipelines that reference each object."""

    operator_namespace: str
    grace: float = DEFAULT_GRACE_SECONDS
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    objects: dict[CredKey, Credentials] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    _refs: dict[ObjectKey, tuple[CredKey, bool]] = field(default_factory=dict)  # pipeline -> (object, allowed)
    _users: dict[CredKey, set[ObjectKey]] = field(default_factory=dict)
    dirty: set[CredKey] = field(default_factory=set)  # objects whose usedBy may have changed
    # Called when `dirty` gains an object (the credentials loop schedules the write of the counts).
    on_dirty: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def settled(self) -> bool:
        return self.grace_left() <= 0

    def grace_left(self) -> float:
        """Seconds until the start-up grace is over (0 once it is)."""
        return max(0.0, self.grace - (self.clock() - self.started))

    # ------------------------------------------------------------------------------------- watch side

    def observe(self, kind: str, body: Mapping[str, Any]) -> tuple[Credentials, list[ObjectKey]]:
        """A watch event of a credentials object; returns it and the pipelines to wake (when it changed)."""
        creds = parse_credentials(kind, body, self.operator_namespace)
        old = self.objects.get(creds.key)
        self.objects[creds.key] = creds
        changed = old is None or (old.uid, old.generation, old.secret, old.secret_key, old.selector) != (
            creds.uid, creds.generation, creds.secret, creds.secret_key, creds.selector)
        return creds, (self.users(creds.key) if changed else [])

    def forget(self, key: CredKey) -> list[ObjectKey]:
        """The object was deleted; returns its users to wake."""
        self.objects.pop(key, None)
        return self.users(key)

    def observe_namespace(self, name: str, labels: Mapping[str, str] | None) -> list[ObjectKey]:
        """A Namespace's labels (None: deleted); returns the cluster-credentials users there to wake."""
        old = self.labels.get(name)
        if labels is None:
            self.labels.pop(name, None)
        else:
            self.labels[name] = {str(k): str(v) for k, v in labels.items()}
        if old == self.labels.get(name):
            return []
        return sorted(p for p, (c, _) in self._refs.items() if p[0] == name and c[0] == KIND_CLUSTER_CREDENTIALS)

    def users(self, key: CredKey) -> list[ObjectKey]:
        return sorted(self._users.get(key, ()))

    def used_by(self, key: CredKey) -> int:
        """Pipelines that reference `key` and are allowed to use it."""
        return sum(1 for p in self._users.get(key, ()) if self._refs[p][1])

    # ------------------------------------------------------------------------------------- pass side

    def resolve(self, pipeline: ObjectKey, ref: CredentialsRef) -> Use:
        """Where `pipeline`'s key is; raises `NotYetKnown` or `Refused`. Records the reference."""
        namespace = pipeline[0]
        key = cred_key(ref.kind, namespace, ref.name)
        creds = self.objects.get(key)
        if creds is None:
            self._record(pipeline, key, False)
            if not self.settled():
                raise NotYetKnown(0.5)
            where = f" in namespace {namespace}" if ref.kind == KIND_CREDENTIALS else ""
            raise Refused(CREDENTIALS_NOT_FOUND, f"{ref.kind} {ref.name!r} not found{where} (spec.credentialsRef)",
                          stall=False)
        if creds.invalid:
            self._record(pipeline, key, False)
            raise Refused(CREDENTIALS_INVALID, f"{describe(key)}: {creds.invalid}", stall=True)
        if creds.selector is not None:
            labels = self.labels.get(namespace)
            if labels is None and not self.settled():
                self._record(pipeline, key, False)
                raise NotYetKnown(0.5)
            if labels is None or not selector_matches(creds.selector, labels):
                self._record(pipeline, key, False)
                raise Refused(CREDENTIALS_NOT_ALLOWED,
                              f"namespace {namespace} is not allowed to use {describe(key)}: its "
                              "spec.namespaceSelector does not match the namespace's labels", stall=True)
        self._record(pipeline, key, True)
        return Use(creds)

    def release(self, pipeline: ObjectKey) -> None:
        """`pipeline` no longer references any credentials object (gone, or it dropped credentialsRef)."""
        old = self._refs.pop(pipeline, None)
        if old is None:
            return
        users = self._users.get(old[0])
        if users is not None:
            users.discard(pipeline)
            if not users:
                del self._users[old[0]]
        if old[1]:
            self._mark(old[0])

    def _record(self, pipeline: ObjectKey, key: CredKey, allowed: bool) -> None:
        old = self._refs.get(pipeline)
        if old == (key, allowed):
            return
        if old is not None and old[0] != key:
            self.release(pipeline)
        self._refs[pipeline] = (key, allowed)
        self._users.setdefault(key, set()).add(pipeline)
        self._mark(key)

    def _mark(self, key: CredKey) -> None:
        if key not in self.dirty:
            self.dirty.add(key)
            self.on_dirty()

    def credentials_of(self, pipeline: ObjectKey) -> CredKey | None:
        ref = self._refs.get(pipeline)
        return ref[0] if ref else None

    def take_dirty(self) -> set[CredKey]:
        dirty, self.dirty = self.dirty, set()
        return dirty
