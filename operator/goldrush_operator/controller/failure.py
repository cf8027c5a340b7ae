"""What a failed pass leaves behind: a retry with backoff, or a stall held until its inputs change.

`Failures.handle` is called by `loop.Controller` with any exception a pass raised (after `outcome.classify`
has turned it into a `Retry` or a `Stall`): it writes the failure's conditions, sends the warning Event once,
and returns the delay until the object is due again. Stalls that `outcome.holds` are held: the loop sends no
API call for the object until its fingerprint (spec, Secret values, key) changes. `watch_service_key` (run as
a task by the handlers) wakes every held object when the operator's own key changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from goldrush_operator.config import ServiceKeySource
from goldrush_operator.controller import status
from goldrush_operator.controller.external import External
from goldrush_operator.controller.outcome import KUBERNETES_ERROR, Retry, Stall, classify, holds
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.controller.timing import Timing
from goldrush_operator.scheduler import until_tick
from goldrush_operator.state import ObjectKey, Store

log = logging.getLogger("goldrush_operator.controller")

HOLD_RECHECK_SECONDS = 30.0
KUBE_BACKOFF_MAX_SECONDS = 15.0


class Failures:
    """The failure step of a pass; one per `loop.Controller`."""

    def __init__(self, external: External, writer: StatusWriter, timing: Timing) -> None:
        self.external, self.writer, self.timing = external, writer, timing

    async def handle(self, p: Pass, exc: Exception) -> tuple[float, str]:
        """Report `exc` on the object; (delay until it is due again, the pass's result for the metrics)."""
        outcome = classify(exc, p.scrub)
        record = p.record
        if isinstance(outcome, Retry):
            log.warning("%s; retrying", outcome.message)
            # The apiserver coming back must not find objects parked for minutes: its errors back off less.
            cap = KUBE_BACKOFF_MAX_SECONDS if outcome.reason == KUBERNETES_ERROR else None
            delay, result = self.timing.backoff(record, outcome.delay, cap), "retry"
        else:
            await self.external.warn_once(p, outcome.reason, outcome.message)
            if holds(outcome):
                # Held (no API call) until the fingerprint changes; "" marks a hold set before the inputs were
                # known, which the next pass re-evaluates. The key watcher wakes every held object.
                record.held_on = record.held_on or ""
                delay = HOLD_RECHECK_SECONDS
            else:
                record.held_on = ""
                delay = self.timing.intervals()[1]  # the cause may lie outside the object: the slow cadence
            result = "stalled"
            status.pending_unless_created(p)
        status.failed(p, outcome, in_sync=p.in_sync)
        try:
            await self.writer.write(p)
        except Exception as write_exc:  # the apiserver itself may be what failed: keep the delay chosen above
            log.warning("could not write status: %s", p.scrub(str(write_exc)))
            if isinstance(outcome, Stall):
                delay = self.timing.backoff(record, None, KUBE_BACKOFF_MAX_SECONDS)
        return delay, result


async def watch_service_key(
    key_source: ServiceKeySource, store: Store, wake: Callable[[ObjectKey], None], interval: float = 2.0,
) -> None:
    """Wake every held object when the operator's key changes (a fixed key file ends `AuthFailed`); looked at
    on every tick of `interval` (the poll grid's, from `handlers.configure`)."""
    def digest() -> str:
        return hashlib.sha256((key_source.get() or "").encode()).hexdigest()

    last = digest()
    while True:
        await asyncio.sleep(until_tick(interval, time.monotonic()))  # with the other periodic wake-ups
        current = digest()
        if current != last:
            last = current
            for record in list(store.records.values()):
                if record.held_on is not None:
                    wake(record.key)
