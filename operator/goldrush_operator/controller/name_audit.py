"""The name rule for creates that an earlier writer of an object made just before this process took it over.

Called by `loop.Controller` on every pass that has a pipeline id (`NameAudit.consider`, which enlists an
object on its first pass in this process when the rule below applies). The check
after a create (`External.check_name_kept`) lives in the memory of the process that created the pipeline:
when that process died within seconds of its create (a crash, a restart, a replica whose Lease another took
over), the check never ran, and a same-named pipeline made by someone else within the create's listing
window could stay beside the object's own. The next writer enlists each create of this operator
(`status.createdAt`) younger than `NAME_AUDIT_SECONDS`.

No pass waits for the audit: per service key, one background task lets the start-up or takeover pass run
first (`SETTLE_TICKS` ticks), then waits until the key's writes are idle (a burst's POSTs go first), streams
one listing page by page and keeps a small record (id, name, project, creation time) only of the pipelines
of an enlisted name, so memory holds a page and those records, not every pipeline of the key. Only an object
whose pipeline lost the name (`external.first_keeper`) is touched: its `name_check` is set and it is woken
(`wake`), and its next pass runs the ordinary check, which deletes its pipeline and stalls `NameConflict`
on a listing of its own. A listing that fails is tried again later, up to `ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from goldrush_operator.controller.external import first_keeper, parse_time
from goldrush_operator.controller.inputs import Desired
from goldrush_operator.controller.status import Pass
from goldrush_operator.goldrush_api import GoldRushClient
from goldrush_operator.resource import ANNOTATION_ADOPT
from goldrush_operator.state import ObjectKey, Store

log = logging.getLogger("goldrush_operator.controller")

# A create of the previous writer younger than this (by `status.createdAt`) when this process first passes its
# object may have died before its name check. The check runs within seconds of a create; the tail of a burst
# can hold it back while writes flow, so the window is generous.
NAME_AUDIT_SECONDS = 300.0
ATTEMPTS = 3
# Ticks (GOLDRUSH_POLL_FAST_SECONDS) before the listing: the passes of a restart or a Lease takeover (their
# writes and status reads) have the loop and the key's rate to themselves; a twin staying this long is harmless.
SETTLE_TICKS = 10


class _Seen(NamedTuple):
    """What the name rule reads of one listed pipeline (`external.Dated`), kept instead of the whole model."""

    id: str
    name: str | None
    project: str | None
    created_at: dt.datetime | None


@dataclass
class _Pending:
    """What waits for one key's listing."""

    client: GoldRushClient
    pipelines: dict[str, ObjectKey] = field(default_factory=dict)  # pipeline id -> its object
    names: set[tuple[str, str]] = field(default_factory=set)  # (name, project) the creates were sent with
    attempt: int = 0


class NameAudit:
    """The pending audits of every key (one background task per key while anything waits)."""

    def __init__(self, store: Store, clock: Callable[[], float], delay: float) -> None:
        self._store = store
        self._clock = clock
        self.delay = delay  # seconds between looks at the key's writes (a tick)
        self.settle = delay * SETTLE_TICKS  # seconds before the first look, after the first object enlisted
        self._pending: dict[str, _Pending] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.wake: Callable[[ObjectKey], None] = lambda _key: None  # `cli` sets the scheduler's

    def consider(self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str) -> None:
        """Enlist the object of pass `p` when its pipeline may have missed its creator's name check.

        That is: this process's first pass of the object (`fresh`), with no create or check of this process's
        own, an object that may create and is not being adopted, and a status that names the pipeline, whose
        `createdAt` (this operator's create of it) is under `NAME_AUDIT_SECONDS` old.
        """
        record, current = p.record, p.current
        if not record.fresh or record.name_check is not None or record.create_call_ended is not None \
                or not d.spec.allows("Create") or p.annotations.get(ANNOTATION_ADOPT) == "true" \
                or current.get("pipelineId") != pipeline_id:
            return
        created = parse_time(current.get("createdAt"))
        if created is None or (dt.datetime.now(dt.UTC) - created).total_seconds() > NAME_AUDIT_SECONDS:
            return
        pending = self._pending.setdefault(d.key_id, _Pending(client))
        pending.pipelines[pipeline_id] = record.key
        pending.names.add((str(current.get("pipelineName") or d.payload["name"]), str(d.payload["project"])))
        self._schedule(d.key_id)

    def _schedule(self, key_id: str) -> None:
        """Start the key's background task unless one is under way (it takes whatever is pending then); called by
        `consider` and `_retry`."""
        if key_id not in self._tasks:
            self._tasks[key_id] = asyncio.create_task(self._later(key_id))

    def tasks(self) -> list[asyncio.Task[None]]:
        """The audits under way (tests await them; they end on their own)."""
        return list(self._tasks.values())

    async def _later(self, key_id: str) -> None:
        try:
            pending = self._pending[key_id]
            wait = self.settle * (1 + pending.attempt)
            while True:  # the client offers no signal when a key's writes stop: look once a tick
                await asyncio.sleep(wait)
                if not pending.client.writes_flowing():
                    break
                wait = self.delay
            del self._pending[key_id]
        finally:
            self._tasks.pop(key_id, None)
        try:
            await self._sweep(pending)
        except Exception as exc:  # a background task: whatever failed, it is tried again
            log.info("name audit of %d recent create(s) could not list the key's pipelines: %s",
                     len(pending.pipelines), type(exc).__name__)
            if pending.attempt + 1 < ATTEMPTS:
                self._retry(key_id, pending)

    def _retry(self, key_id: str, pending: _Pending) -> None:
        again = self._pending.setdefault(key_id, _Pending(pending.client, attempt=pending.attempt + 1))
        again.pipelines.update(pending.pipelines)
        again.names.update(pending.names)
        self._schedule(key_id)

    async def _sweep(self, pending: _Pending) -> None:
        """One listing of the key; every enlisted pipeline that lost the name gets its object's check."""
        began = self._clock()
        ours: dict[str, _Seen] = {}
        named: dict[tuple[str | None, str | None], list[_Seen]] = {}  # of an enlisted name (enlisted ones too)
        async for item in pending.client.list_pipelines():
            seen = _Seen(item.id, item.name, item.project, item.created_at)
            if item.id in pending.pipelines:
                ours[item.id] = seen
            if (item.name, item.project) in pending.names:
                named.setdefault((item.name, item.project), []).append(seen)
        for pipeline_id, key in pending.pipelines.items():
            mine = ours.get(pipeline_id)
            if mine is None:
                continue  # deleted meanwhile: the object's status reads see it
            first = first_keeper(named.get((mine.name, mine.project), ()), mine)
            record = self._store.get(key)
            if first is None or record is None or record.pipeline_id not in (None, pipeline_id):
                continue
            log.info("%s/%s: pipeline %s of a create just before this process took the object over shares "
                     "its name with %s, created no later: checking the name", key[0], key[1], pipeline_id, first.id)
            record.name_check = began
            self.wake(key)
