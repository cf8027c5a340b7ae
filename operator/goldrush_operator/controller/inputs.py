"""Step 1 of a pass: spec, referenced Secrets, service key and ABI -> the desired API payload.

Called by `loop.Controller` at the start of every pass. Kubernetes reads only (Secrets come from the
watch-fed cache in `state.Store` when they can). Any unusable input raises `outcome.InputProblem` with the
precise reason and message: `InvalidSpec`, `SecretNotFound`, `ConfigMapNotFound`, `AuthFailed` (no key).
The service key comes from `spec.credentialsRef` (a credentials object, resolved by `keyring.Keyring`; its
refusals are `CredentialsNotFound`, `CredentialsNotAllowed`), `spec.serviceKeySecretRef`, or the operator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from goldrush_operator import conditions as cond
from goldrush_operator.config import ServiceKeySource
from goldrush_operator.controller.outcome import InputProblem, Stall
from goldrush_operator.controller.ports import KubePort
from goldrush_operator.controller.status import Pass
from goldrush_operator.credentials import ResolvedSecrets, resolve_destination_secrets
from goldrush_operator.keyring import CredKey, Keyring, NotYetKnown, ObjectKey, Refused
from goldrush_operator.kube import NotFound
from goldrush_operator.payload import desired_payload, parse_abi_file
from goldrush_operator.resource import (
    ANNOTATION_FLUX_REQUESTED_AT,
    ANNOTATION_RECONCILE_REQUESTED_AT,
    PipelineSpec,
)
from goldrush_operator.secret_values import object_hmac_key
from goldrush_operator.state import NOTHING, Store

CONFIGMAP_NOT_FOUND = "ConfigMapNotFound"


class Missing(Exception):
    """An input the user still has to create (not a stall: it is picked up as soon as it appears)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Desired:
    """Everything the remote side of a pass needs."""

    spec: PipelineSpec
    payload: dict[str, Any]
    resolved: ResolvedSecrets
    service_key: str
    key_id: str
    credentials: CredKey | None = None  # the credentials object the key came from


    def fingerprint(self, generation: int) -> str:
        """Changes whenever the spec, a secret value or the key changes (the hold of a stall ends)."""
        digest = hashlib.sha256(json.dumps(self.payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"{generation}:{self.key_id}:{digest}"


def parse_spec(p: Pass) -> PipelineSpec:
    try:
        return PipelineSpec.model_validate(p.body.get("spec") or {})
    except ValidationError as exc:
        msg = "; ".join(f"spec.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InputProblem(Stall(cond.INVALID_SPEC, f"invalid spec: {msg}")) from None


def reconcile_requested(p: Pass) -> bool:
    """Whether an on-demand reconcile was requested since the last pass (a user's or Flux's annotation)."""
    tokens = [t for t in (p.annotations.get(ANNOTATION_RECONCILE_REQUESTED_AT),
                          p.annotations.get(ANNOTATION_FLUX_REQUESTED_AT)) if t]
    handled = {*p.record.handled_tokens, p.current.get("lastHandledReconcileAt")}
    new = [t for t in tokens if t not in handled]
    if new:
        p.out["lastHandledReconcileAt"] = new[-1]
    p.record.handled_tokens = frozenset(tokens) if tokens else NOTHING
    return bool(new)


@dataclass(frozen=True)
class KeyRef:
    """Where an object's own service key is (None of these: the operator's key)."""

    secret: ObjectKey
    key: str
    origin: str
    credentials: CredKey | None = None

    def missing(self, data: dict[str, str] | None) -> str | None:
        if data is None:
            return f"Secret {self.secret[1]!r} not found (referenced by {self.origin})"
        if self.key not in data:
            return f"key {self.key!r} not found in Secret {self.secret[1]!r} (referenced by {self.origin})"
        return None


class Inputs:
    """Reads the inputs of a pass."""

    def __init__(
        self, kube: KubePort, store: Store, key_source: ServiceKeySource, pepper: str, keyring: Keyring | None = None
    ) -> None:
        self._kube = kube
        self._store = store
        self._key_source = key_source
        self._pepper = pepper
        self.keyring = keyring
        # Secret reads in flight: the passes that miss the cache for the same Secret at once (a restart's
        # start-up pass, a burst of creates sharing a Secret) wait for one GET instead of sending one each.
        self._reading: dict[ObjectKey, asyncio.Future[dict[str, str] | None]] = {}

    def key_ref(self, p: Pass, spec: PipelineSpec) -> KeyRef | None:
        """Where the object's key is; raises `NotYetKnown`, `Missing` or `InputProblem` (credentials refused)."""
        if spec.service_key_secret_ref is not None:
            ref = spec.service_key_secret_ref
            if self.keyring is not None:
                self.keyring.release(p.record.key)
            return KeyRef((p.namespace, ref.name), ref.key, "spec.serviceKeySecretRef")
        if spec.credentials_ref is None:
            if self.keyring is not None:
                self.keyring.release(p.record.key)
            return None
        if self.keyring is None:
            raise InputProblem(Stall(cond.INVALID_SPEC, "spec.credentialsRef: credentials objects are not served"))
        try:
            use = self.keyring.resolve(p.record.key, spec.credentials_ref)
        except Refused as refused:
            if refused.stall:
                raise InputProblem(Stall(refused.reason, refused.message)) from None
            raise Missing(refused.reason, refused.message) from None
        return KeyRef(use.secret, use.credentials.secret_key, use.origin, use.credentials.key)

    async def own_key(self, p: Pass, spec: PipelineSpec) -> str | None:
        """The value of the object's own key (None: the operator's); raises like `key_ref`, `Missing` if absent."""
        ref = self.key_ref(p, spec)
        if ref is None:
            return None
        data = await self.read_secret(*ref.secret)
        problem = ref.missing(data)
        if problem is not None or data is None:
            raise Missing(cond.SECRET_NOT_FOUND, problem or "")
        return data[ref.key]

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A referenced Secret's data (None: it does not exist), from the cache or one GET shared by every
        pass that asks for it while that GET is in flight."""
        key = (namespace, name)
        cached = self._store.cached_secret(namespace, name)
        if cached is not None:
            return cached.data
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._get_secret(key))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        # shielded: a waiter cancelled (its object deleted, shutdown) does not cancel the others' read
        return await asyncio.shield(reading)

    async def _get_secret(self, key: ObjectKey) -> dict[str, str] | None:
        version = ""
        try:
            data: dict[str, str] | None
            data, version = await self._kube.get_secret(*key)
        except NotFound:
            data = None
        return self._store.cache_secret(*key, data, version)

    def _read_done(self, key: ObjectKey, done: asyncio.Future[dict[str, str] | None]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have been cancelled meanwhile

    async def read(self, p: Pass, spec: PipelineSpec) -> Desired:
        """The desired payload; raises `Missing` or `InputProblem`.

        An object whose management policies allow neither Create nor Update never sends a secret value, so a
        missing destination Secret does not hold it: the field is left out of the payload (and of the diff).
        """
        hkey = object_hmac_key(self._pepper, p.record.uid)
        names = frozenset(ref.name for ref in (spec.destination.secret_refs or {}).values())
        try:
            key_ref = self.key_ref(p, spec)
        except (Missing, InputProblem, NotYetKnown):
            self._store.set_references(p.record, names)
            raise
        self._store.set_references(p.record, names, frozenset({key_ref.secret}) if key_ref else frozenset())
        fetched = {n: await self.read_secret(p.namespace, n) for n in sorted(names)}
        resolved = resolve_destination_secrets(spec, fetched, hkey)
        p.secrets = tuple(resolved.values.values())
        sends_secrets = spec.allows("Create") or spec.allows("Update")
        missing = [m.message for m in resolved.missing] if sends_secrets else []
        own: str | None = None
        if key_ref is not None:
            data = await self.read_secret(*key_ref.secret)
            problem = key_ref.missing(data)
            if problem is not None or data is None:
                missing.append(problem or "")
            else:
                own = data[key_ref.key]
                p.secrets = (*p.secrets, own)
        if missing:
            raise Missing(cond.SECRET_NOT_FOUND, "; ".join(missing))
        service_key = own if key_ref is not None else self._key_source.get()
        if not service_key:
            raise InputProblem(Stall(cond.AUTH_FAILED, "no service key: set GOLDRUSH_SERVICE_KEY_FILE or "
                                                       "GOLDRUSH_SERVICE_KEY, or spec.credentialsRef"))
        p.secrets = (*p.secrets, service_key)
        abi_file = await self._abi(p, spec)
        try:
            payload = desired_payload(p.namespace, p.name, spec, resolved.values, abi_file)
        except ValueError as exc:
            raise InputProblem(Stall(cond.INVALID_SPEC, p.scrub(str(exc)))) from None
        key_id = hashlib.sha256(service_key.encode()).hexdigest()
        return Desired(spec, payload, resolved, service_key, key_id, key_ref.credentials if key_ref else None)

    async def _abi(self, p: Pass, spec: PipelineSpec) -> dict[str, Any] | None:
        if not (spec.abi and spec.abi.config_map_ref):
            return None
        ref = spec.abi.config_map_ref
        try:
            data = await self._kube.get_configmap_data(p.namespace, ref.name)
        except NotFound:
            raise Missing(CONFIGMAP_NOT_FOUND, f"ConfigMap {ref.name!r} not found (spec.abi.configMapRef)") from None
        if ref.key not in data:
            raise Missing(CONFIGMAP_NOT_FOUND, f"key {ref.key!r} not found in ConfigMap {ref.name!r}")
        try:
            return parse_abi_file(data[ref.key])
        except ValueError as exc:
            raise InputProblem(Stall(cond.INVALID_SPEC, f"spec.abi.configMapRef: {exc}")) from None
