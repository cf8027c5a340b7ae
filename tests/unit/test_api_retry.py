"""Unit tests of retries, Retry-After, the per-key gate, token bucket and concurrency cap (fake clock)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from goldrush_operator.goldrush_api import (
    ConnectError,
    GoldRushClient,
    InvalidRequestError,
    ManualClock,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    SharedState,
    TokenBucket,
    parse_retry_after,
)

pytestmark = pytest.mark.unit

BASE = "http://goldrush.test/platform/pipeline-api/"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)
PIPE = {"id": "pipe_1", "name": "n", "status": "running"}


def ok(status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, json={"data": PIPE, "error": False, "error_message": None, "error_code": None}
    )


def r429(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(429, headers=headers, json={"data": None, "error": True, "error_message": "slow"})


class Script:
    """Answers requests from a list of responses/exceptions; records (clock time, method, key) per request."""

    def __init__(self, clock: ManualClock, *steps: httpx.Response | Exception) -> None:
        self.clock = clock
        self.steps = list(steps)
        self.log: list[tuple[float, str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append((self.clock.monotonic(), request.method, request.headers["Authorization"]))
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        return step


def make(handler: Handler, clock: ManualClock, **kw: Any) -> GoldRushClient:
    kw.setdefault("shared", SharedState())
    kw.setdefault("rate_limit", 0)
    kw.setdefault("key", "sk_key")
    key = kw.pop("key")
    return GoldRushClient(
        BASE, key, transport=httpx.MockTransport(handler), clock=clock, rng=random.Random(7), **kw
    )


async def test_get_retries_5xx_and_transport_errors_with_jittered_backoff() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.Response(503), httpx.ReadTimeout("t"), httpx.ReadError("r"), ok())
    async with make(script, clock, backoff_base=1.0, backoff_max=4.0) as client:
        assert (await client.get_pipeline("pipe_1")).id == "pipe_1"
    assert len(script.log) == 4
    assert len(clock.sleeps) == 3
    for retry, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= min(4.0, 1.0 * 2**retry)


@pytest.mark.parametrize("call", ["put", "delete", "status"])
async def test_idempotent_calls_retry_5xx(call: str) -> None:
    clock = ManualClock()
    final = httpx.Response(204) if call == "delete" else ok()
    if call == "status":
        final = httpx.Response(200, json={"data": {"status": "RUNNING"}, "error": False})
    script = Script(clock, httpx.Response(500), httpx.Response(502), final)
    async with make(script, clock) as client:
        if call == "put":
            await client.set_status("pipe_1", "paused")
        elif call == "delete":
            await client.delete_pipeline("pipe_1")
        else:
            await client.get_status("pipe_1")
    assert len(script.log) == 3


async def test_retry_count_is_bounded() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.Response(503))
    async with make(script, clock, max_retries=3) as client:
        with pytest.raises(ServerError):
            await client.get_pipeline("pipe_1")
    assert len(script.log) == 4


async def test_retry_total_time_is_bounded() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.Response(503))
    async with make(script, clock, max_retries=1000, retry_max_elapsed=10.0, backoff_base=1.0) as client:
        with pytest.raises(ServerError):
            await client.get_pipeline("pipe_1")
    assert sum(clock.sleeps) <= 10.0
    assert script.log[-1][0] - script.log[0][0] <= 10.0


async def test_no_retry_on_permanent_errors() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.Response(422, json={"error": True, "error_message": "bad"}))
    async with make(script, clock) as client:
        with pytest.raises(InvalidRequestError):
            await client.get_pipeline("pipe_1")
        with pytest.raises(InvalidRequestError):
            await client.create_pipeline({"name": "x"})
    assert len(script.log) == 2


@pytest.mark.parametrize(
    "failure", [httpx.Response(503), httpx.ReadTimeout("t"), httpx.RemoteProtocolError("d")]
)
async def test_post_and_patch_are_never_retried_blindly(failure: httpx.Response | Exception) -> None:
    clock = ManualClock()
    script = Script(clock, failure, ok(201))
    async with make(script, clock) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.create_pipeline({"name": "x"})
        assert len(script.log) == 1
    script = Script(clock, failure, ok())
    async with make(script, clock) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.update_pipeline("pipe_1", {"name": "x"})
        assert len(script.log) == 1


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), httpx.PoolTimeout("p"), r429("1")]
)
async def test_post_and_patch_retry_when_not_sent_or_429(failure: httpx.Response | Exception) -> None:
    clock = ManualClock()
    script = Script(clock, failure, ok(201))
    async with make(script, clock) as client:
        assert (await client.create_pipeline({"name": "x"})).id == "pipe_1"
    assert [m for _, m, _ in script.log] == ["POST", "POST"]
    script = Script(clock, failure, ok())
    async with make(script, clock) as client:
        await client.update_pipeline("pipe_1", {"name": "x"})
    assert [m for _, m, _ in script.log] == ["PATCH", "PATCH"]


async def test_post_connect_errors_exhausted_raise_connect_error() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.ConnectError("refused"))
    async with make(script, clock, max_retries=2) as client:
        with pytest.raises(ConnectError):
            await client.create_pipeline({"name": "x"})
    assert len(script.log) == 3


async def test_retry_after_seconds_is_honoured_exactly() -> None:
    clock = ManualClock()
    script = Script(clock, r429("7"), r429("3"), ok())
    async with make(script, clock) as client:
        await client.get_pipeline("pipe_1")
    t0, t1, t2 = (t for t, _, _ in script.log)
    assert t1 - t0 >= 7
    assert t2 - t1 >= 3
    assert t1 - t0 == pytest.approx(7)


async def test_retry_after_http_date() -> None:
    clock = ManualClock()
    when = datetime.fromtimestamp(clock.time() + 42, tz=UTC)
    script = Script(clock, r429(format_datetime(when, usegmt=True)), ok())
    async with make(script, clock) as client:
        await client.get_pipeline("pipe_1")
    assert script.log[1][0] - script.log[0][0] == pytest.approx(42, abs=1)
    assert script.log[1][0] - script.log[0][0] >= 41


async def test_429_without_retry_after_uses_backoff() -> None:
    clock = ManualClock()
    script = Script(clock, r429(), ok())
    async with make(script, clock) as client:
        await client.get_pipeline("pipe_1")
    assert len(clock.sleeps) == 1


async def test_503_retry_after_is_honoured() -> None:
    clock = ManualClock()
    script = Script(clock, httpx.Response(503, headers={"Retry-After": "9"}), ok())
    async with make(script, clock) as client:
        await client.get_pipeline("pipe_1")
    assert script.log[1][0] - script.log[0][0] >= 9


async def test_gate_is_shared_by_all_clients_of_a_key_only() -> None:
    clock = ManualClock()
    shared = SharedState()
    script = Script(clock, r429("5"), ok())
    a = make(script, clock, shared=shared, key="sk_one", max_retries=0)
    b = make(script, clock, shared=shared, key="sk_one")
    other = make(script, clock, shared=shared, key="sk_two")
    with pytest.raises(RateLimitedError) as info:
        await a.get_pipeline("pipe_1")
    assert info.value.retry_after == 5
    t0 = script.log[0][0]
    await other.get_pipeline("pipe_1")  # a different key is not held back
    assert script.log[1][0] == t0
    await b.get_pipeline("pipe_1")  # same key, different client: waits for the gate
    assert script.log[2][0] >= t0 + 5
    assert script.log[2][2] == "Bearer sk_one"
    for client in (a, b, other):
        await client.aclose()


async def test_retry_after_beyond_budget_fails_fast_and_sends_nothing_until_expiry() -> None:
    clock = ManualClock()
    script = Script(clock, r429("3600"), ok())
    async with make(script, clock, retry_max_elapsed=60) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_pipeline("pipe_1")
        assert info.value.retry_after == 3600
        clock.advance(100)
        with pytest.raises(RateLimitedError) as info:
            await client.get_pipeline("pipe_1")
        assert info.value.retry_after == pytest.approx(3500)
        assert len(script.log) == 1  # nothing was sent while the gate was closed
        clock.advance(3500)
        await client.get_pipeline("pipe_1")
    assert len(script.log) == 2
    assert clock.sleeps == []


async def test_total_timeout_per_attempt() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return ok()

    clock = ManualClock()
    async with make(slow, clock, timeout=0.05, max_retries=1) as client:
        with pytest.raises(RequestTimeoutError):
            await client.get_pipeline("pipe_1")
        with pytest.raises(OutcomeUnknownError):
            await client.create_pipeline({"name": "x"})


async def test_concurrency_cap_per_key() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return ok()

    shared = SharedState()
    clock = ManualClock()
    clients = [make(handler, clock, shared=shared, max_concurrency=2) for _ in range(3)]
    await asyncio.gather(*(c.get_pipeline("pipe_1") for c in clients for _ in range(4)))
    assert peak == 2
    for c in clients:
        await c.aclose()


async def test_token_bucket_limits_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    start = clock.monotonic()
    for _ in range(6):
        await bucket.acquire()
    assert clock.monotonic() - start == pytest.approx(2.0)
    unlimited = TokenBucket(rate=0, burst=None, clock=clock)
    for _ in range(100):
        await unlimited.acquire()
    assert clock.monotonic() - start == pytest.approx(2.0)


async def test_token_bucket_serves_writes_before_waiting_polls() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    await bucket.acquire()  # the bucket is empty now
    order: list[str] = []

    async def take(name: str, urgent: bool) -> None:
        await bucket.acquire(urgent=urgent)
        order.append(name)

    polls = [asyncio.create_task(take(f"poll{i}", False)) for i in range(3)]
    await asyncio.sleep(0)  # the polls queue first
    write = asyncio.create_task(take("write", True))
    await asyncio.gather(*polls, write)
    assert order.index("write") <= 1, order  # at most the poll already holding the lock goes first
    assert sorted(order) == ["poll0", "poll1", "poll2", "write"]


async def test_token_bucket_paces_evenly_by_default() -> None:
    """Without a burst setting the bucket holds a quarter second of tokens: after a quiet spell 5 requests
    (at 20/s) leave at once and the rest 1/rate apart, instead of a whole second's worth at once (which
    would spend the server's own allowance)."""
    clock = ManualClock()
    bucket = TokenBucket(rate=20.0, burst=None, clock=clock)
    clock.advance(60)
    start = clock.monotonic()
    for _ in range(5):
        await bucket.acquire()
    assert clock.monotonic() == start
    for _ in range(16):
        await bucket.acquire()
    assert clock.monotonic() - start == pytest.approx(0.8)


async def test_token_bucket_polls_wait_while_writes_flow() -> None:
    """A poll that finds no write waiting still steps aside right after a write took a token: in a burst
    of creates, the next create is usually a moment away (its worker is writing to Kubernetes)."""
    clock = ManualClock()
    bucket = TokenBucket(rate=10.0, burst=None, clock=clock)
    await bucket.acquire(urgent=True)
    wrote = clock.monotonic()
    await bucket.acquire()
    assert clock.monotonic() - wrote >= 2 / 10 - 1e-9
    # Without recent writes a poll only waits for its token.
    clock.advance(5)
    before = clock.monotonic()
    await bucket.acquire()
    assert clock.monotonic() == pytest.approx(before)


async def test_client_rate_limit_spaces_requests() -> None:
    clock = ManualClock()
    script = Script(clock, ok())
    async with make(script, clock, rate_limit=5, burst=1) as client:
        for _ in range(4):
            await client.get_pipeline("pipe_1")
    times = [t for t, _, _ in script.log]
    assert times[-1] - times[0] == pytest.approx(0.6)


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("5", now) == 5
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("inf", now) is None
    future = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    past = format_datetime(datetime.fromtimestamp(now - 30, tz=UTC), usegmt=True)
    assert parse_retry_after(future, now) == pytest.approx(30)
    assert parse_retry_after(past, now) == 0


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, rng=random.Random(3))
    samples = [policy.backoff(n) for n in range(20) for _ in range(20)]
    assert all(0 <= s <= 8.0 for s in samples)
    assert max(policy.backoff(0) for _ in range(200)) <= 0.5
    assert max(policy.backoff(10) for _ in range(200)) > 4.0
    assert policy.allows(0, 0.0, 1.0)
    assert not RetryPolicy(max_retries=0).allows(0, 0.0, 0.0)
    assert not RetryPolicy(max_elapsed=5).allows(0, 4.5, 1.0)


async def test_after_retry_after_one_probe_goes_first() -> None:
    clock = ManualClock()
    events: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if not events:
            events.append("429")
            return r429("5")
        events.append("start")
        await asyncio.sleep(0.01)
        events.append("end")
        return ok()

    async with make(handler, clock, max_retries=0, max_concurrency=10) as client:
        with pytest.raises(RateLimitedError):
            await client.get_pipeline("pipe_1")
        results = await asyncio.gather(*(client.get_pipeline("pipe_1") for _ in range(4)))
    assert len(results) == 4
    assert events[:3] == ["429", "start", "end"]  # the probe went alone ...
    assert events[3:5] == ["start", "start"]  # ... then the others together


async def test_probe_answered_429_keeps_the_gate_closed() -> None:
    clock = ManualClock()
    script = Script(clock, r429("5"), r429("5"), ok())
    shared = SharedState()
    a = make(script, clock, shared=shared, max_retries=0)
    b = make(script, clock, shared=shared)
    with pytest.raises(RateLimitedError):
        await a.get_pipeline("pipe_1")  # t0: gate closed for 5 s
    results = await asyncio.gather(*(b.get_pipeline("pipe_1") for _ in range(3)))
    assert len(results) == 3
    times = [t for t, _, _ in script.log]
    t0 = times[0]
    assert times[1] >= t0 + 5  # the probe, answered 429 again
    assert all(t >= times[1] + 5 for t in times[2:])  # nobody went while the probe was out or after
    await a.aclose()
    await b.aclose()


async def test_gate_probe_protocol() -> None:
    from goldrush_operator.goldrush_api import NotBeforeGate

    clock = ManualClock()
    gate = NotBeforeGate(clock)
    assert await gate.wait() is False  # never pushed: open, no probe
    gate.push(3)
    assert not gate.is_open()
    assert await gate.wait() is True  # sleeps 3 s, becomes the probe
    assert clock.sleeps == [3]
    assert gate.is_open(probe=True)
    assert not gate.is_open()
    waiter = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    assert not waiter.done()  # waits for the probe
    gate.probe_finished()
    assert await waiter is False
    assert gate.is_open()
