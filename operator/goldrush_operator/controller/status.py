"""The only status writer, and the rules that turn what a pass learned into conditions.

`Pass` is the working data of one pass (built by `loop.Controller`); `StatusWriter.write` merge-patches
the `status` subresource only when the result differs from what is stored (no reconcile storms), and
remembers what it wrote in the object's record. The condition rules (design.md section 2, section 7):

- `Synced` is True only when the remote matches this generation (secret hashes included); as soon as the
  generation is ahead of what was applied it is False (`UpdatePending`, or the failure's reason) and
  `Reconciling` is True while the operator keeps trying.
- `Ready` describes "running and in sync": while the spec is not applied it is False with the same reason.
- A difference kept unwritten on purpose (management policies without Update: `UpdateNotAllowed`; dry-run
  mode: `DryRun`) sets only `Synced=False`; `Ready` then describes the remote runtime (`not_applied`).
- `Stalled` is True while a human must act; `Reconciling`/`Stalled` are present only while True.
- Every condition carries the generation it was judged for (`observedGeneration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from goldrush_operator import conditions as cond
from goldrush_operator.controller.outcome import Outcome, Retry
from goldrush_operator.controller.ports import KubePort
from goldrush_operator.crash import crash_point
from goldrush_operator.phases import Judgement
from goldrush_operator.resource import ANNOTATION_PIPELINE_ID
from goldrush_operator.secret_values import Scrubber
from goldrush_operator.state import ObjectRecord


@dataclass
class Pass:
    """Working data of one pass over one object."""

    record: ObjectRecord
    body: dict[str, Any]
    namespace: str
    name: str
    generation: int
    annotations: dict[str, str]
    status_in: dict[str, Any]
    conditions: list[dict[str, Any]]
    out: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    in_sync: bool = False  # the remote is known to hold this generation's spec (set by the pass as it learns)
    # Writes this pass did not send: (reason, message) for `Synced`, and the remote's pause intent then judged
    # instead of spec.paused (management policies without Update, or dry-run mode).
    not_applied: tuple[str, str] | None = None
    remote_paused: bool | None = None
    dry_calls: list[Any] = field(default_factory=list)  # dry run: the `decide.Call`s announced after the status
    # Per-pass caches: the scrubber of `secrets`, and the decoded stored status (`current`).
    _scrubber: Scrubber | None = field(default=None, repr=False)
    _scrubbed_for: tuple[str, ...] = field(default=(), repr=False)
    # The stored status (`current`), decoded, with the compact form it was decoded from (identity-checked).
    _current: tuple[bytes, dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, record: ObjectRecord) -> Pass:
        body = record.snapshot()
        meta = body.get("metadata") or {}
        status_in = dict(body.get("status") or {})
        last_raw, last = record.last_status_raw, record.last_status
        return cls(
            record=record,
            body=body,
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            generation=int(meta.get("generation") or 1),
            annotations=dict(meta.get("annotations") or {}),
            status_in=status_in,
            conditions=list((last if last is not None else status_in).get("conditions") or []),
            _current=(record.snapshot_raw, status_in) if last is None or last_raw is None else (last_raw, last),
        )

    @property
    def current(self) -> dict[str, Any]:
        """The status as stored: what this process wrote last, else what the latest watch event carries.

        The latest event, not the snapshot the pass started from: when the watch catches up with this
        process's write during the pass, the record drops its copy of that write (`Store.observe`), and the
        pass's own snapshot would make the next write look needed. Decoded once per stored version; callers
        must not modify it.
        """
        record = self.record
        last_raw = record.last_status_raw
        raw = last_raw if last_raw is not None else record.snapshot_raw
        if self._current is None or self._current[0] is not raw:
            value = record.last_status if raw is last_raw else record.snapshot().get("status")
            self._current = (raw, dict(value or {}))
        return self._current[1]

    def live_id(self, value: object) -> str | None:
        """`value` as a remote pipeline id, None when empty or the id of a pipeline found deleted out of band
        (a snapshot the watch has not yet updated may still carry that one)."""
        return str(value) if value and value != self.record.forgotten_id else None

    def known_id(self) -> str | None:
        """The object's remote pipeline id as recorded: memory, then the stored status, then the annotation."""
        return (self.record.pipeline_id or self.live_id(self.current.get("pipelineId"))
                or self.live_id(self.annotations.get(ANNOTATION_PIPELINE_ID)))

    def target_id(self) -> str | None:
        """The pipeline this pass works on: `known_id`, unless the id annotation names another live pipeline
        and no create of this object may be in flight (a user points the object at that pipeline: adopt it).
        The controller's loop and the dry-run planner both ask this."""
        known = self.known_id()
        user_id = self.live_id(self.annotations.get(ANNOTATION_PIPELINE_ID))
        if user_id and user_id != known and not self.record.create_pending:
            return user_id
        return known

    def scrub(self, text: str) -> str:
        if not text:
            return text
        if self._scrubber is None or self._scrubbed_for != self.secrets:
            self._scrubber, self._scrubbed_for = Scrubber(self.secrets), self.secrets
        return self._scrubber(text)

    def set(self, ctype: str, status: bool, reason: str, message: str, generation: int | None = None) -> None:
        self.conditions = cond.set_condition(
            self.conditions, ctype, status, reason, self.scrub(message),
            self.generation if generation is None else generation, cond.now_utc(),
        )

    def applied_generation(self) -> int | None:
        """The generation whose spec the remote is known to hold (memory first, then stored status)."""
        if self.record.synced_generation is not None:
            return self.record.synced_generation
        synced = cond.get_condition(self.current.get("conditions"), cond.SYNCED)
        if synced and synced.get("status") == cond.TRUE:
            gen = synced.get("observedGeneration")
            return int(gen) if isinstance(gen, int) else None
        return None


class StatusWriter:
    """Writes `status` (merge patch) when, and only when, it changes."""

    def __init__(self, kube: KubePort) -> None:
        self._kube = kube

    @staticmethod
    def full(p: Pass) -> dict[str, Any]:
        """The pass's full result as a status patch: `out`, the conditions and the top-level
        `observedGeneration` (also kept in `out`)."""
        p.out["conditions"] = p.conditions
        p.out["observedGeneration"] = p.generation
        return dict(p.out)

    async def write(self, p: Pass) -> None:
        """Write the pass's full result (`full`)."""
        patch = self.full(p)
        if self._differs(p, patch):
            crash_point("status.before-write")
        await self._patch(p, patch)

    async def record(self, p: Pass, fields: Mapping[str, Any]) -> None:
        """An early write of a few fields (the remote id and secret hashes right after a create)."""
        await self._patch(p, dict(fields))

    @staticmethod
    def _differs(p: Pass, patch: Mapping[str, Any]) -> bool:
        return cond.status_changed(p.current, patch)

    async def _patch(self, p: Pass, patch: dict[str, Any]) -> None:
        if not self._differs(p, patch):
            return
        current = p.current
        await self._kube.patch_status(p.namespace, p.name, patch)
        merged = dict(current)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        p.record.last_status = merged


# ---------------------------------------------------------------------------------------------- rules


def observed(p: Pass, verdict: Judgement, pipeline_id: str) -> None:
    """The remote matches this generation and its runtime was judged `verdict`."""
    p.set(cond.SYNCED, True, cond.IN_SYNC, f"remote pipeline {pipeline_id} matches generation {p.generation}")
    p.set(cond.READY, verdict.ready, verdict.reason, verdict.message)
    p.set(cond.RECONCILING, verdict.reconciling, verdict.reason, verdict.message if verdict.reconciling else "")
    p.set(cond.STALLED, verdict.stalled, verdict.reason, verdict.message if verdict.stalled else "")


def failed(p: Pass, outcome: Outcome, *, in_sync: bool) -> None:
    """A pass ended in `outcome`; `in_sync`: the remote is known to hold this generation's spec."""
    if isinstance(outcome, Retry):
        p.set(cond.RECONCILING, True, cond.RETRYING if outcome.reason != cond.RATE_LIMITED else outcome.reason,
              outcome.message)
        p.set(cond.STALLED, False, outcome.reason, "")
        if not in_sync:
            p.set(cond.SYNCED, False, outcome.reason, outcome.message)
            p.set(cond.READY, False, outcome.reason, outcome.message)
        elif not cond.is_true(p.conditions, cond.READY):
            p.set(cond.READY, False, outcome.reason, outcome.message)
        return
    p.set(cond.READY, False, outcome.reason, outcome.message)
    p.set(cond.SYNCED, False, outcome.synced_reason, outcome.message)
    p.set(cond.RECONCILING, False, outcome.reason, "")
    p.set(cond.STALLED, True, outcome.reason, outcome.message)


def not_applied(p: Pass, reason: str, message: str) -> None:
    """The remote differs from the spec and the operator may not (policies) or will not (dry run) write it.

    `Ready` keeps describing the remote runtime (it is mirrored); `Synced` says what is not applied.
    """
    p.set(cond.SYNCED, False, reason, message)


def not_found(p: Pass, message: str) -> None:
    """No remote pipeline to observe, and the management policies do not allow creating one."""
    for ctype in (cond.READY, cond.SYNCED):
        p.set(ctype, False, cond.NOT_FOUND, message)
    p.set(cond.RECONCILING, False, cond.NOT_FOUND, "")
    p.set(cond.STALLED, False, cond.NOT_FOUND, "")


def waiting(p: Pass, reason: str, message: str) -> None:
    """An input the user must provide is missing (a Secret, a ConfigMap): not stalled; `Reconciling` while
    this generation is not applied yet (it will be, once the input exists)."""
    p.set(cond.READY, False, reason, message)
    p.set(cond.SYNCED, False, reason, message)
    ahead = p.applied_generation() != p.generation
    p.set(cond.RECONCILING, ahead, reason, message if ahead else "")
    p.set(cond.STALLED, False, reason, "")


def update_pending(p: Pass, pipeline_id: str) -> None:
    """This generation's changes are about to be sent: `Synced` False and `Reconciling` True before the write
    (which may wait for rate-limit tokens or a Retry-After); `Ready` keeps describing the runtime it saw."""
    message = f"applying generation {p.generation} to remote pipeline {pipeline_id}"
    p.set(cond.SYNCED, False, cond.UPDATE_PENDING, message)
    p.set(cond.RECONCILING, True, cond.UPDATE_PENDING, message)
    p.set(cond.STALLED, False, cond.UPDATE_PENDING, "")


def pending_unless_created(p: Pass) -> None:
    """`status.phase` PENDING while no pipeline id is known (none recorded, none in the status)."""
    if not (p.record.pipeline_id or p.current.get("pipelineId")):
        p.out["phase"] = "PENDING"


def creating(p: Pass) -> None:
    """A create is about to be decided: whatever this pass ends in (a wait, a retry, a stall), the phase says
    PENDING until a pipeline id is known."""
    pending_unless_created(p)
    p.set(cond.READY, False, cond.PENDING, "creating the remote pipeline")
    p.set(cond.SYNCED, False, cond.UPDATE_PENDING, "creating the remote pipeline")
    p.set(cond.RECONCILING, True, cond.CREATING, "creating the remote pipeline")


def vanished(p: Pass, message: str) -> None:
    """The remote pipeline is gone (deleted out of band): from here the status describes no pipeline, even
    if forgetting its id then fails; a pass ending in an error reports it against a spec not applied."""
    p.in_sync = False
    p.out["phase"] = "PENDING"
    p.set(cond.READY, False, cond.PENDING, message)
    p.set(cond.SYNCED, False, cond.UPDATE_PENDING, message)


def created(p: Pass, pipeline_id: str) -> None:
    """The remote pipeline was just created from this generation; its runtime has not been read yet."""
    message = f"created remote pipeline {pipeline_id}; waiting for its first runtime status"
    p.out.pop("phase", None)  # `creating` said PENDING; the first status read says what it is
    p.set(cond.SYNCED, True, cond.IN_SYNC, f"remote pipeline {pipeline_id} matches generation {p.generation}")
    p.set(cond.READY, False, cond.PENDING, message)
    p.set(cond.RECONCILING, True, cond.CREATING, message)


def reconcile_paused(p: Pass, message: str) -> None:
    for ctype in (cond.READY, cond.SYNCED, cond.RECONCILING, cond.STALLED):
        p.set(ctype, False, cond.RECONCILE_PAUSED, message)


def destination_health(p: Pass, healthy: bool, last_error: str | None, checked_at: str) -> None:
    old = p.current.get("destinationHealth") or {}
    if old.get("healthy") != healthy or old.get("lastError") != last_error:
        p.out["destinationHealth"] = {"healthy": healthy, "lastError": last_error, "checkedAt": checked_at}
    if healthy:
        p.set(cond.DESTINATION_HEALTHY, True, cond.HEALTHY, "destination is reachable")
    else:
        p.set(cond.DESTINATION_HEALTHY, False, cond.UNHEALTHY, last_error or "destination unhealthy")
