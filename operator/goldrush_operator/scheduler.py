"""One scheduler for every object: a heap of due times, a bounded pool of workers, and the read budget.

Replaces a task per object. `handlers.py` wakes objects on watch events (`wake`, also an object being
deleted: its pass is the finalizer's work) and drops deleted ones (`forget`). Each worker runs
`run_pass(key)` (the controller's pass), which returns the delay until the object is due again (None: drop
it). An object is run by at most one worker at a time; a wake that arrives while it runs makes it run again
right after.

Polls of stable pipelines are paid from a read budget (`ReadBudget`, a share of the API rate limit): the
cadence (`Cadence`) spreads the status reads evenly over the objects, never faster than the fast poll and
no slower than `GOLDRUSH_POLL_STATUS_MAX_SECONDS` while the budget can pay for it, and the full
configuration check on `GOLDRUSH_POLL_SLOW_SECONDS`, stretched when it would take more than a third of the
budget. The per-pipeline metrics read (`GOLDRUSH_PIPELINE_METRICS_SECONDS`) is paid only from what the
status reads do not need to run every half `GOLDRUSH_POLL_STATUS_MAX_SECONDS`: stretched when that part is
small, none at all when there is no such part. Writes never wait for the budget.

With leader election, `admit(key)` (`election.Election.admits`) decides whether this replica may run an
object now: a due object it does not admit is parked, and `readmit()` (after a takeover) makes every parked
object due again. A standby thus runs no pass, yet keeps its records warm.

`LoopLag` measures how late the event loop wakes up (the `goldrush_event_loop_lag_seconds` metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from goldrush_operator.state import ObjectKey

log = logging.getLogger("goldrush_operator.scheduler")

# Reads of one full configuration check beyond the status read it replaces: GET pipeline, destination health.
FULL_CHECK_EXTRA_READS = 2
FULL_CHECK_BUDGET_SHARE = 1 / 3
# Metrics reads are paid only while the status reads could still run at half their slowest cadence.
METRICS_STATUS_HEADROOM = 0.5


@dataclass(frozen=True)
class Cadence:
    """Poll intervals for `objects` stable pipelines paid from `budget` reads per second.

    `metrics` is the wanted refresh of the per-pipeline metrics in seconds (0: no metrics reads).
    """

    fast: float
    status_max: float
    slow: float
    budget: float
    metrics: float = 0.0

    def intervals(self, objects: int) -> tuple[float, float]:
        """(status read interval, full check interval) in seconds for that many objects."""
        n = max(objects, 1)
        if self.budget <= 0:
            return self.status_max, self.slow
        full = self._full(n)
        metrics = self.metrics_interval(n)
        status_budget = self.budget - FULL_CHECK_EXTRA_READS * n / full - (n / metrics if metrics else 0.0)
        return max(self.fast, n / status_budget), full

    def metrics_interval(self, objects: int) -> float | None:
        """Seconds between two metrics reads of one pipeline (None: no metrics reads, off or not affordable).

        The metrics reads get only the budget the status reads do not need at `status_max` x
        `METRICS_STATUS_HEADROOM`: metrics never push the detection of a remote FAILED towards its limit.
        """
        if self.metrics <= 0:
            return None
        if self.budget <= 0:
            return self.metrics
        n = max(objects, 1)
        status_reads = n / (self.status_max * METRICS_STATUS_HEADROOM)
        spare = self.budget - FULL_CHECK_EXTRA_READS * n / self._full(n) - status_reads
        return max(self.metrics, n / spare) if spare > 0 else None

    def _full(self, n: int) -> float:
        return max(self.slow, FULL_CHECK_EXTRA_READS * n / (self.budget * FULL_CHECK_BUDGET_SHARE))


def until_tick(tick: float, now: float) -> float:
    """Seconds from `now` to the next tick, a multiple of `tick` on the clock `now` was read from.

    The operator's periodic wake-ups meet on these ticks (the budget-paid polls, `controller.timing.on_tick`;
    the service-key watch and the idle loop-lag probe; the credentials loop's writes of changed counts), so an
    idle process wakes once a tick instead of once for each of them (bench/README finding 37).
    """
    return tick - now % tick if tick > 0 else 0.0


class ReadBudget:
    """A virtual-time token bucket for periodic reads: `reserve(n)` books `n` reads, returns the wait."""

    def __init__(self, rate: float, burst: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._burst = burst
        self._clock = clock
        self._tat = 0.0  # theoretical arrival time (GCRA): when every booked read has been paid

    def reserve(self, reads: int = 1) -> float:
        """Book `reads` reads; seconds to wait before sending them (0 when the budget pays at once)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tat = max(self._tat, now) + reads / self.rate
        return max(0.0, self._tat - self._burst / self.rate - now)


class Scheduler:
    """Due times per object and `workers` tasks that run `run_pass`."""

    def __init__(
        self,
        run_pass: Callable[[ObjectKey], Awaitable[float | None]],
        workers: int = 128,
        clock: Callable[[], float] = time.monotonic,
        admit: Callable[[ObjectKey], bool] | None = None,
    ) -> None:
        self._run_pass = run_pass
        self._admit = admit
        self._parked: set[ObjectKey] = set()
        self._workers = max(1, workers)
        self._clock = clock
        self._heap: list[tuple[float, int, ObjectKey]] = []
        self._due: dict[ObjectKey, float] = {}
        self._seq = itertools.count()
        self._running: dict[ObjectKey, asyncio.Event] = {}
        self._again: set[ObjectKey] = set()
        self._changed = asyncio.Event()
        self._ready: asyncio.Queue[ObjectKey] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------------------------------ API

    def wake(self, key: ObjectKey) -> None:
        """Run `key` as soon as a worker is free (again right after, if it is running now)."""
        if key in self._running:
            self._again.add(key)
            return
        self._set_due(key, self._clock(), earlier_only=True)

    def schedule(self, key: ObjectKey, delay: float) -> None:
        """Run `key` after `delay` seconds (an earlier due time stays)."""
        self._set_due(key, self._clock() + max(0.0, delay), earlier_only=True)

    def forget(self, key: ObjectKey) -> None:
        """Never run `key` again (its running pass, if any, finishes)."""
        self._due.pop(key, None)
        self._again.discard(key)
        self._parked.discard(key)

    def readmit(self) -> None:
        """Make every parked object due now (`admit` is asked again when it comes up)."""
        parked, self._parked = self._parked, set()
        for key in parked:
            self.wake(key)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def due_in(self, key: ObjectKey) -> float | None:
        """Seconds until `key` is due (None when not scheduled)."""
        due = self._due.get(key)
        return None if due is None else due - self._clock()

    @property
    def scheduled(self) -> int:
        return len(self._due)

    async def run(self) -> None:
        """Dispatch due objects to the workers until cancelled."""
        self._tasks = [asyncio.create_task(self._worker(), name=f"goldrush-worker-{i}") for i in range(self._workers)]
        try:
            await self._dispatch()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------------------------------------ inside

    def _set_due(self, key: ObjectKey, due: float, *, earlier_only: bool) -> None:
        current = self._due.get(key)
        if earlier_only and current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if self._heap[0][2] == key:
            self._changed.set()

    async def _dispatch(self) -> None:
        while True:
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != due:
                    continue  # superseded by a later schedule or forgotten
                if key in self._running:
                    # Busy: run it when the pass ends (checked again shortly).
                    self._due[key] = now + 0.05
                    heapq.heappush(self._heap, (now + 0.05, next(self._seq), key))
                    continue
                del self._due[key]
                if self._admit is not None and not self._admit(key):
                    self._parked.add(key)  # another replica's (or nobody's yet): until `readmit`
                    continue
                self._running[key] = asyncio.Event()
                self._ready.put_nowait(key)
            self._changed.clear()
            timeout = (self._heap[0][0] - now) if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            delay: float | None = None
            try:
                delay = await self._run_pass(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # the controller classifies its own errors; this is a last resort
                log.exception("reconcile pass of %s/%s failed unexpectedly", *key)
                delay = 30.0
            finally:
                done = self._running.pop(key)
                done.set()
            if key in self._again:
                self._again.discard(key)
                self._set_due(key, self._clock(), earlier_only=False)
            elif delay is not None:
                self._set_due(key, self._clock() + max(0.0, delay), earlier_only=False)


class LoopLag:
    """Measures event-loop lag: how much later than asked a short sleep returns.

    Sampled every `interval` seconds while the loop is busy (a sample late by more than `busy`), and ever less
    often, up to every `idle_interval` seconds, while it is not: on an idle operator every wake-up of the
    loop is CPU (about a tenth of its idle wake-ups were this probe's), and a quiet loop has no lag to see.
    At that slowest pace the samples are taken on the ticks of `idle_interval` (`until_tick`), with the
    operator's other periodic wake-ups.
    """

    def __init__(self, report: Callable[[float], None], interval: float = 0.1, idle_interval: float = 2.0,
                 busy: float = 0.002) -> None:
        self._report = report
        self._interval = interval
        self._idle_interval = max(interval, idle_interval)
        self._busy = busy
        self.next_interval = interval

    def observe(self, lag: float) -> None:
        """Report one sample and choose the next interval."""
        self._report(lag)
        if lag > self._busy:
            self.next_interval = self._interval
        else:
            self.next_interval = min(self._idle_interval, self.next_interval * 2)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            asked = self.next_interval
            if asked >= self._idle_interval:
                asked = until_tick(self._idle_interval, started)
            await asyncio.sleep(asked)
            self.observe(max(0.0, time.monotonic() - started - asked))
