"""Unit tests of the scheduler (one pass per object at a time, wake-ups, holds), the read budget, the poll
cadence and the one error policy (controller/outcome.py)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from goldrush_operator.controller.outcome import Retry, Stall, classify
from goldrush_operator.goldrush_api import api_error_for_status
from goldrush_operator.goldrush_api.errors import (
    MaskedSecretError,
    OutcomeUnknownError,
    RateLimitedError,
    TransportError,
    UnexpectedResponseError,
)
from goldrush_operator.kube import KubeError
from goldrush_operator.payload import MaskedValueError
from goldrush_operator.scheduler import Cadence, LoopLag, ReadBudget, Scheduler, until_tick


async def test_one_pass_per_object_at_a_time_and_wake_during_a_pass_reruns() -> None:
    running: set[tuple[str, str]] = set()
    runs: list[tuple[str, str]] = []
    overlap = False
    gate = asyncio.Event()

    async def run_pass(key: tuple[str, str]) -> float | None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        runs.append(key)
        if len(runs) == 1:
            await gate.wait()
        running.discard(key)
        return None

    scheduler = Scheduler(run_pass, workers=4)
    task = asyncio.create_task(scheduler.run())
    key = ("ns", "a")
    scheduler.wake(key)
    await asyncio.sleep(0.05)
    scheduler.wake(key)  # arrives while the first pass runs
    scheduler.wake(key)
    await asyncio.sleep(0.05)
    assert runs == [key]
    gate.set()
    await asyncio.sleep(0.1)
    task.cancel()
    assert runs == [key, key] and not overlap


async def test_due_times_and_forget() -> None:
    runs: list[str] = []

    async def run_pass(key: tuple[str, str]) -> float | None:
        runs.append(key[1])
        return 0.05 if key[1] == "again" else None

    scheduler = Scheduler(run_pass, workers=2)
    task = asyncio.create_task(scheduler.run())
    scheduler.schedule(("ns", "later"), 0.1)
    scheduler.wake(("ns", "again"))
    scheduler.schedule(("ns", "gone"), 0.05)
    scheduler.forget(("ns", "gone"))
    await asyncio.sleep(0.03)
    assert runs == ["again"]
    await asyncio.sleep(0.2)
    scheduler.forget(("ns", "again"))
    task.cancel()
    assert "later" in runs and "gone" not in runs and runs.count("again") >= 3


def test_read_budget_pays_a_burst_then_spreads() -> None:
    now = [100.0]
    budget = ReadBudget(2.0, burst=4, clock=lambda: now[0])
    waits = [budget.reserve(1) for _ in range(8)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[4:] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    now[0] += 100
    assert budget.reserve(1) == 0.0


@pytest.mark.parametrize(("objects", "status_every", "full_every"), [
    (1, 2.0, 900.0), (10, 5.056, 900.0), (100, 56.25, 900.0), (1000, 750.0, 3000.0),
])
def test_cadence_follows_the_budget(objects: int, status_every: float, full_every: float) -> None:
    cadence = Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=2.0)
    got = cadence.intervals(objects)
    assert got == pytest.approx((status_every, full_every), rel=1e-3)
    # The reads it implies never exceed the budget.
    assert objects / got[0] + 2 * objects / got[1] <= 2.0 + 1e-9


def _scrub(text: str) -> str:
    return text.replace("s3cret", "[REDACTED]")


@pytest.mark.parametrize(("exc", "kind", "reason"), [
    (api_error_for_status(409, "PATCH patch: HTTP 409: busy"), Retry, "Conflict"),
    (api_error_for_status(422, "PATCH patch: HTTP 422: s3cret bad"), Stall, "InvalidSpec"),
    (api_error_for_status(400, "bad"), Stall, "InvalidSpec"),
    (api_error_for_status(401, "no"), Stall, "AuthFailed"),
    (api_error_for_status(403, "no"), Stall, "AuthFailed"),
    (api_error_for_status(418, "teapot"), Stall, "UnexpectedResponse"),
    (api_error_for_status(503, "down"), Retry, "ApiUnavailable"),
    (RateLimitedError("slow down", retry_after=3.0), Retry, "RateLimited"),
    (UnexpectedResponseError("HTTP 302", status=302, transient=False), Stall, "UnexpectedResponse"),
    (OutcomeUnknownError("maybe"), Retry, "OutcomeUnknown"),
    (TransportError("reset"), Retry, "ApiUnavailable"),
    (MaskedSecretError(["destination_config.password"]), Stall, "InvalidSpec"),
    (MaskedValueError("destination_config.host: mask"), Stall, "InvalidSpec"),
    (KubeError("Kubernetes API 500", 500), Retry, "KubernetesError"),
    (RuntimeError("bug"), Retry, "InternalError"),
])
def test_every_error_has_one_outcome_with_its_own_reason(exc: Exception, kind: type, reason: str) -> None:
    outcome = classify(exc, _scrub)
    assert isinstance(outcome, kind) and outcome.reason == reason
    assert "s3cret" not in outcome.message
    if isinstance(exc, RateLimitedError):
        assert isinstance(outcome, Retry) and outcome.delay == 3.0


def test_loop_lag_samples_fast_while_busy_and_slowly_while_idle() -> None:
    """The lag probe wakes the loop every 0.1 s only while samples are late; an idle loop is sampled ever less
    often, up to once a second (each wake-up of an idle operator is CPU)."""
    seen: list[float] = []
    lag = LoopLag(seen.append, interval=0.1, idle_interval=1.0, busy=0.002)
    intervals = []
    for sample in [0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0]:
        lag.observe(sample)
        intervals.append(lag.next_interval)
    assert intervals == [0.2, 0.4, 0.8, 1.0, 1.0, 0.1, 0.2]
    assert seen == [0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0]  # every sample is reported


def test_until_tick_is_the_wait_for_the_next_multiple_of_the_tick() -> None:
    assert until_tick(2.0, 1000.0) == 2.0  # on a tick: the next one
    assert until_tick(2.0, 1001.5) == pytest.approx(0.5)
    assert until_tick(2.0, 1003.99) == pytest.approx(0.01)
    assert until_tick(0.0, 1001.5) == 0.0


async def test_loop_lag_samples_an_idle_loop_on_the_ticks() -> None:
    """At its slowest pace the probe wakes on the ticks of `idle_interval`, where the operator's other
    periodic wake-ups meet (one wake-up of the idle process instead of one for each)."""
    times: list[float] = []
    lag = LoopLag(lambda _lag: times.append(time.monotonic()), interval=0.05, idle_interval=0.5, busy=5.0)
    # Started on a tick: unaligned, the idle samples would come 0.05 + 0.1 + 0.2 + 0.4 s on, half-way between.
    await asyncio.sleep(until_tick(0.5, time.monotonic()))
    task = asyncio.create_task(lag.run())
    try:
        while len(times) < 7:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    idle = times[4:]  # after 0.05, 0.1, 0.2 and 0.4 s: at the idle pace
    assert all(min(t % 0.5, 0.5 - t % 0.5) < 0.15 for t in idle), idle
    assert all(b - a > 0.3 for a, b in itertools.pairwise(idle))
