"""The finalizer's work: delete the remote pipeline (policy `Delete`) and wait until it is gone, or leave it.

Whether the remote goes follows Crossplane's rule (`resource.deletes_remote`): management policies other than
`["*"]` decide alone (Delete in the list or not), `["*"]` follows `deletionPolicy`. In dry-run mode the DELETE
is announced once (`WouldDelete`) and the finalizer stays.

`Finalizer.run` is called by `loop.Controller` as the pass of an object being deleted that carries the
operator's finalizer (the scheduler's workers run it like any pass, under the same Lease gate). When the work
is done the finalizer is removed (`External.release`) and the object goes away. Failures go through
`outcome.classify` like a pass's: a retry becomes `DeleteLater` with the backoff, a stall `DeleteLater` with a
long delay (the pass runs again then; the finalizer stays). An interrupted create is looked up so that
deleting the object never orphans what it created.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller import decide
from goldrush_operator.controller.external import External
from goldrush_operator.controller.inputs import Inputs, Missing, parse_spec
from goldrush_operator.controller.outcome import InputProblem, Retry, classify
from goldrush_operator.controller.ports import ClientFactory, Metrics
from goldrush_operator.controller.status import Pass
from goldrush_operator.keyring import NotYetKnown
from goldrush_operator.lease import Fenced
from goldrush_operator.logcontext import about
from goldrush_operator.resource import (
    ANNOTATION_CREATE_PENDING,
    ANNOTATION_PAUSE_RECONCILIATION,
    deletes_remote,
)
from goldrush_operator.state import ObjectRecord, Store, object_key, snapshot_of

log = logging.getLogger("goldrush_operator.controller")


class DeleteLater(Exception):
    """The deletion must run again after `delay` seconds; `message` is scrubbed."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay


class Finalizer:
    """Deletion of one object's remote pipeline."""

    def __init__(
        self, settings: Settings, store: Store, inputs: Inputs, external: External, client_for: ClientFactory,
        key_source: ServiceKeySource, metrics: Metrics,
        backoff: Callable[[ObjectRecord, float | None, float | None], float],
    ) -> None:
        self.settings, self.store, self.inputs, self.external = settings, store, inputs, external
        self.client_for, self.key_source, self.metrics, self._backoff = client_for, key_source, metrics, backoff

    async def run(self, record: ObjectRecord) -> float | None:
        """The pass of an object being deleted: the delay until it runs again, or None when it is done."""
        with about(record.key):
            try:
                await self.delete(record.snapshot())
            except Fenced as fenced:
                log.info("%s", fenced)
                return self.settings.poll_fast_seconds
            except DeleteLater as later:
                log.info("%s; again in %.0fs", later.message, later.delay)
                return later.delay
        return None

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Finalizer work: delete the remote pipeline (policy Delete) and wait until it is gone.

        Raises `DeleteLater` while work remains; on return the object has left the store and the gauges.
        """
        key = object_key(body)
        record = self.store.get(key)
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if record is None or record.uid != uid:
            record = ObjectRecord(key=key, uid=uid)
        record.set_snapshot(snapshot_of(body))
        with about(key):
            p = Pass.of(record)
            try:
                if not record.remote_done:
                    await self._delete(p)
                    record.remote_done = True  # a failed finalizer removal does not delete (or announce) twice
                await self.external.release(p)
            except (DeleteLater, Fenced):  # the scheduler parks the object on `Fenced` until the Lease is back
                raise
            except Exception as exc:
                outcome = classify(exc, p.scrub)
                delay = (self._backoff(record, outcome.delay, None) if isinstance(outcome, Retry)
                         else self.settings.poll_slow_seconds / 10)
                message = f"cannot delete the remote pipeline yet: {outcome.message}"
                # The object stays Terminating: say why where `kubectl describe` shows it (once per reason).
                await self.external.warn_once(p, outcome.reason, message)
                raise DeleteLater(message, delay) from None
        self.metrics.phase_changed(key, None)
        self.store.forget(key)

    async def _delete(self, p: Pass) -> None:
        record = p.record
        if p.annotations.get(ANNOTATION_PAUSE_RECONCILIATION) == "true":
            raise DeleteLater("reconciliation is paused; the remote pipeline is left alone until it is resumed",
                              self.settings.poll_slow_seconds)
        spec_raw = p.body.get("spec") or {}
        pipeline_id = p.known_id()
        policies = spec_raw.get("managementPolicies") or ["*"]
        if not deletes_remote(policies, spec_raw.get("deletionPolicy")):
            if pipeline_id:
                why = ("deletionPolicy Orphan" if "*" in policies else
                       f"managementPolicies {', '.join(policies)} do not include Delete")
                await self.external.event(p, "Orphaned", f"left remote pipeline {pipeline_id} in place ({why})")
            return
        try:
            spec = parse_spec(p)
        except InputProblem:
            spec = None
        service_key = self.key_source.get()
        if spec is not None and spec.credentials_ref is not None:
            try:
                service_key = await self.inputs.own_key(p, spec)
            except NotYetKnown as later:
                raise DeleteLater("the credentials objects are not known yet", later.delay) from None
            except (Missing, InputProblem) as problem:
                text = problem.message if isinstance(problem, Missing) else problem.outcome.message
                if not (pipeline_id or record.create_pending or p.annotations.get(ANNOTATION_CREATE_PENDING)):
                    return  # nothing was created with the key: nothing to delete
                raise DeleteLater(f"cannot delete the remote pipeline: {text}",
                                  self.settings.poll_slow_seconds / 10) from None
        elif spec is not None and spec.service_key_secret_ref is not None:
            ref = spec.service_key_secret_ref
            service_key = ((await self.inputs.read_secret(p.namespace, ref.name)) or {}).get(ref.key)
            if not service_key:
                raise DeleteLater(f"cannot delete the remote pipeline: Secret {ref.name!r} key {ref.key!r} "
                                  "(spec.serviceKeySecretRef) is missing", self.settings.poll_slow_seconds / 10)
        if not service_key:
            raise DeleteLater("cannot delete the remote pipeline: no service key configured", 60.0)
        p.secrets = (service_key,)
        client = self.client_for(service_key)
        pending = record.create_pending or p.annotations.get(ANNOTATION_CREATE_PENDING)
        if not pipeline_id and pending and spec is not None:
            key_id = hashlib.sha256(service_key.encode()).hexdigest()
            sent_as = self.external.pending_name(p) or spec.pipeline_display_name(p.namespace, p.name)
            pipeline_id = await self.external.find_interrupted(client, key_id, sent_as, spec.project, spec.topic,
                                                               pending)
            if not pipeline_id and self.external.create_may_land_for(record, pending) > 0:
                raise DeleteLater("an interrupted create of this object may still land at the API; looking "
                                  "again before the finalizer is removed", self.settings.poll_fast_seconds)
        if not pipeline_id:
            return
        if client.dry_run:
            await self.external.announce(p, [decide.delete_call(str(pipeline_id))])
            raise DeleteLater(f"dry run: would delete remote pipeline {pipeline_id}; the finalizer stays until the "
                              "operator runs without GOLDRUSH_DRY_RUN", self.settings.poll_slow_seconds / 10)
        gone = await self.external.delete(client, str(pipeline_id), already_sent=record.delete_sent,
                                          secrets=p.secrets)
        record.delete_sent = True
        if not gone:
            raise DeleteLater(f"waiting for remote pipeline {pipeline_id} to be deleted",
                              self.settings.poll_fast_seconds)
        await self.external.event(p, "Deleted", f"deleted remote pipeline {pipeline_id}")

