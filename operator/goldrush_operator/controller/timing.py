"""When an object's next pass runs: the poll cadence, the read budget, and the backoff after a failure.

Owned by `loop.Controller` (and used by `observe.Observer` and `finalize.Finalizer`). `intervals` turns the
number of managed objects into the status-poll and full-check intervals (`scheduler.Cadence`); `pay` books a
poll of a stable pipeline on the global read budget (`scheduler.ReadBudget`); `on_tick` moves the due time of
such a poll onto the poll grid; `backoff` draws the jittered delay after a failure.

The poll grid: the budget-paid polls of stable pipelines fall due on ticks, multiples of
`GOLDRUSH_POLL_FAST_SECONDS` on the monotonic clock (a status interval shorter than two ticks is kept as it
is), so an idle operator wakes once a tick for the few reads due by then instead of once per read. On an
idle machine a wake-up costs about as much CPU as the read it sends (bench/README finding 37). A poll is
never sent before the budget has paid for it, never faster than the fast poll, and no later than
`GOLDRUSH_POLL_STATUS_MAX_SECONDS` when its interval is within it; the status cadence moves to the nearest
tick, so on average it stays what the budget pays for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from goldrush_operator.config import Settings
from goldrush_operator.scheduler import FULL_CHECK_EXTRA_READS, Cadence, ReadBudget
from goldrush_operator.state import ObjectRecord, Store

FULL_CHECK_READS = 1 + FULL_CHECK_EXTRA_READS  # GET status, plus GET pipeline and destination health


@dataclass(frozen=True)
class Poll:
    """A poll that goes out now: whether it is a full configuration check, and whether it reads metrics."""

    full_check: bool
    metrics_due: bool


class Timing:
    """The cadence and the read budget of one operator process."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float], metrics_enabled: bool) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        budget = settings.rate_limit * settings.poll_budget_share
        # Metrics reads only when something exports them (a metrics sink and its endpoint).
        metrics_every = settings.pipeline_metrics_seconds if metrics_enabled else 0.0
        self.cadence = Cadence(settings.poll_fast_seconds, settings.poll_status_max_seconds,
                               settings.poll_slow_seconds, budget, metrics_every)
        self.budget = ReadBudget(budget, clock=clock)

    def on_tick(self, delay: float, limit: float | None = None) -> float:
        """`delay` moved onto a tick of the poll grid (see the module docstring).

        Without `limit` (a wait for the budget, or the first poll after a restart): the next tick at or after
        it. With `limit` (the status cadence, at most that long while the budget pays for it): the nearest
        tick, so the cadence stays what the budget pays for on average, or the one before when the nearest
        would pass the limit; a delay shorter than two ticks stays as it is (never faster than the fast poll).
        """
        tick = self.settings.poll_fast_seconds
        if tick <= 0:
            return delay
        now = self.clock()
        if limit is None:
            return max(0.0, math.ceil((now + delay) / tick) * tick - now)
        if delay < 2 * tick:
            return delay
        due = round((now + delay) / tick) * tick
        if delay <= limit < due - now:
            due -= tick
        return due - now

    def intervals(self) -> tuple[float, float]:
        """(status-poll interval, full-check interval) for the objects managed now."""
        return self.cadence.intervals(len(self.store))

    def metrics_interval(self) -> float | None:
        """Seconds between two metrics reads of one pipeline (None: the budget cannot pay for them)."""
        return self.cadence.metrics_interval(len(self.store))

    def metrics_due(self, record: ObjectRecord, now: float) -> bool:
        """Whether the pipeline's metrics refresh is due (never when the budget cannot pay for one)."""
        return self.metrics_interval() is not None and now >= record.next_metrics

    def backoff(self, record: ObjectRecord, floor: float | None = None, cap: float | None = None) -> float:
        """Exponential backoff with full jitter between the fast poll and the cap; at least `floor`."""
        base = max(self.settings.poll_fast_seconds, 1.0)
        top = min(cap or self.settings.error_backoff_max_seconds, self.settings.error_backoff_max_seconds)
        record.backoff = min(max(base, record.backoff * 2 or base), top)
        return max(random.uniform(base, record.backoff), floor or 0.0)

    def pay(self, record: ObjectRecord, full_check: bool, full_reads: int) -> tuple[bool, float]:
        """Pay a poll from the read budget: (whether it may be a full check, seconds to wait first, or 0).

        The reads are booked when the poll is planned and sent when the budget has paid for them; a full check
        that fell due while a status read waited is left to the next poll, so every read sent is paid for.
        """
        if record.poll_reserved:
            paid, record.poll_reserved = record.poll_reserved, 0
            return full_check and paid >= full_reads, 0.0
        reads = full_reads if full_check else 1
        wait = self.budget.reserve(reads)
        if wait > 0.05:
            record.poll_reserved = reads  # the reads go out when they are due
            return full_check, wait
        return full_check, 0.0

    def plan_poll(
        self, record: ObjectRecord, *, work: bool, stable: bool, yield_to_writes: bool, now: float,
    ) -> Poll | tuple[float, str]:
        """The poll of this pass, or (delay, result) when it must wait: for writes, or for the budget to pay.

        Only polls of stable pipelines are paid from the read budget; a phase on its way somewhere (DEPLOYING,
        STOPPING) is polled fast, and a pass with work to do (a change to apply) is never held back.
        """
        if yield_to_writes:
            # Writes go first: this poll would hold a worker while the writes take every token, and the
            # creates of a burst need the workers. It runs once they have passed.
            return self.settings.poll_fast_seconds * random.uniform(0.5, 1.0), "yielded"
        full_check = work or now >= record.next_full_check
        metrics_due = False
        if not work and stable:
            planning = not record.poll_reserved
            full_check, wait = self.pay(record, full_check, FULL_CHECK_READS)
            metrics_wait = 0.0
            if planning and not record.metrics_paid and self.metrics_due(record, now):
                record.metrics_paid = True  # booked: it goes out with this poll, or with the next one
                metrics_wait = self.budget.reserve(1)
            if wait:
                return self.on_tick(wait), "budget"  # paid by then; due with the others paid by that tick
            metrics_due = record.metrics_paid and metrics_wait <= 0.05
        record.poll_reserved = 0
        return Poll(full_check, metrics_due)
