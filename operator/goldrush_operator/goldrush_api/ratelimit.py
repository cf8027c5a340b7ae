"""Client-side rate limiting for the GoldRush client: clock, token bucket, Retry-After gate, per-key registry.

Used only by :mod:`goldrush_operator.goldrush_api.client`: before every HTTP attempt the client takes the
:class:`KeyLimits` of its (base URL, service key) from a :class:`LimiterRegistry` and

1. awaits the :class:`NotBeforeGate` (set from ``Retry-After``: nothing is sent for the key before then;
   afterwards a single probe request goes first),
2. holds a slot of the concurrency cap (``asyncio.Semaphore``),
3. takes a token from the :class:`TokenBucket` (requests per second; rate 0 = unlimited),
4. checks the gate again (it may have closed meanwhile) and sends.

Time comes from a :class:`Clock` so tests can run with :class:`ManualClock` (instant, deterministic sleeps).
No HTTP library is imported here.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Clock",
    "KeyLimits",
    "LimiterRegistry",
    "ManualClock",
    "NotBeforeGate",
    "SystemClock",
    "TokenBucket",
]


class Clock(Protocol):
    """Time source: ``monotonic()`` for intervals, ``time()`` (epoch seconds) for HTTP dates, ``sleep()``."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A fake clock for tests: ``sleep(s)`` advances time by ``s`` at once and records ``s`` in ``sleeps``."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping."""
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


DEFAULT_BURST_SECONDS = 0.25
# While writes flow (one took a token less than this many token intervals ago), polls wait.
WRITE_FLOW_INTERVALS = 2.0


class TokenBucket:
    """Token bucket: ``rate`` tokens per second, at most ``burst`` stored; ``rate <= 0`` means unlimited.

    ``burst`` None stores a quarter second of tokens (at least one): enough to make up for a late event
    loop, too little to spend much of the server's own burst allowance (its algorithm is not documented)
    after a quiet spell, so that jitter on the way does not turn into 429s.

    Waiters are served in arrival order, except that ``urgent`` ones (writes: the changes people are waiting
    for) go before ordinary ones (polls): whenever both are waiting, and also while writes flow (a write
    took a token within ``WRITE_FLOW_INTERVALS`` token intervals), so that the polls of a burst's first
    pipelines do not take the tokens the burst's next creates are about to ask for.
    """

    def __init__(self, rate: float, burst: float | None, clock: Clock) -> None:
        self.rate = max(0.0, rate)
        self.capacity = max(1.0, burst if burst is not None else self.rate * DEFAULT_BURST_SECONDS)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock.monotonic()
        self._lock = asyncio.Lock()
        self._urgent_waiting = 0
        self._last_urgent = float("-inf")

    def writes_flow(self) -> bool:
        """Whether writes are waiting for a token or one took a token moments ago (polls step aside)."""
        if self.rate <= 0:
            return False
        return self._urgent_waiting > 0 or (
            self._clock.monotonic() - self._last_urgent < WRITE_FLOW_INTERVALS / self.rate)

    async def acquire(self, urgent: bool = False) -> None:
        """Wait until a token is available and take it."""
        if self.rate <= 0:
            return
        if urgent:
            self._urgent_waiting += 1
        try:
            while True:
                async with self._lock:
                    if urgent or not self.writes_flow():
                        await self._take()
                        if urgent:
                            self._last_urgent = self._clock.monotonic()
                        return
                # Writes are waiting or flowing: step aside for one token's time, then queue again.
                await self._clock.sleep(1.0 / self.rate)
        finally:
            if urgent:
                self._urgent_waiting -= 1

    async def _take(self) -> None:
        while True:
            now = self._clock.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0 - 1e-9:  # a float refill may end a hair short of the whole token
                self._tokens = max(0.0, self._tokens - 1.0)
                return
            await self._clock.sleep((1.0 - self._tokens) / self.rate)


class NotBeforeGate:
    """A shared "no request before" instant, pushed by ``Retry-After``, awaited before each send.

    When the instant has passed after a push, one caller is let through first as a probe (``wait()``
    returns True for it); the others wait until :meth:`probe_finished` is called. If the probe was not
    answered with another Retry-After, everybody proceeds; otherwise the gate stays closed. This avoids
    a burst of requests (and new 429s) the moment a Retry-After expires.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._not_before = float("-inf")
        self._pushes = 0
        self._probe_needed = False
        self._probe_active = False
        self._probe_pushes = 0
        self._probe_done: asyncio.Event | None = None

    def push(self, delay: float) -> None:
        """Forbid requests for ``delay`` seconds from now (never moves the instant backwards)."""
        self._not_before = max(self._not_before, self._clock.monotonic() + max(0.0, delay))
        self._pushes += 1
        self._probe_needed = True

    def remaining(self) -> float:
        """Seconds until requests are allowed again (0 when the instant has passed)."""
        return max(0.0, self._not_before - self._clock.monotonic())

    def is_open(self, *, probe: bool = False) -> bool:
        """True when a request may be sent now (for the probe: once the instant has passed)."""
        return self.remaining() <= 0 and (probe or not self._probe_needed)

    async def wait(self) -> bool:
        """Return once a request may be sent; True means the caller is the probe and must call
        :meth:`probe_finished` after its attempt (also when it gives up)."""
        while True:
            left = self.remaining()
            if left > 0:
                await self._clock.sleep(left)
                continue
            if not self._probe_needed:
                return False
            if not self._probe_active:
                self._probe_active = True
                self._probe_pushes = self._pushes
                self._probe_done = asyncio.Event()
                return True
            assert self._probe_done is not None
            await self._probe_done.wait()

    def probe_finished(self) -> None:
        """End the probe; the gate opens for all unless a Retry-After arrived meanwhile."""
        if not self._probe_active:
            return
        self._probe_active = False
        if self._pushes == self._probe_pushes:
            self._probe_needed = False
        if self._probe_done is not None:
            self._probe_done.set()


@dataclass(eq=False)
class KeyLimits:
    """Everything shared by all clients of one (base URL, service key)."""

    bucket: TokenBucket
    gate: NotBeforeGate
    semaphore: asyncio.Semaphore | None


class LimiterRegistry:
    """Maps (base URL, service key) to its :class:`KeyLimits`; the first caller's settings win.

    Keys are stored as SHA-256 fingerprints, never in clear. Create a fresh registry (or call ``clear()``)
    to isolate tests.
    """

    def __init__(self) -> None:
        self._limits: dict[tuple[str, str], KeyLimits] = {}

    @staticmethod
    def _fingerprint(service_key: str) -> str:
        return hashlib.sha256(service_key.encode()).hexdigest()

    def get(
        self,
        base_url: str,
        service_key: str,
        *,
        rate: float,
        burst: float | None,
        max_concurrency: int,
        clock: Clock,
    ) -> KeyLimits:
        """Return the limits of (``base_url``, ``service_key``), creating them on first use.

        ``max_concurrency <= 0`` means no concurrency cap.
        """
        key = (base_url, self._fingerprint(service_key))
        limits = self._limits.get(key)
        if limits is None:
            semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None
            limits = KeyLimits(TokenBucket(rate, burst, clock), NotBeforeGate(clock), semaphore)
            self._limits[key] = limits
        return limits

    def clear(self) -> None:
        """Forget every key's limits (next use starts fresh)."""
        self._limits.clear()

    def __len__(self) -> int:
        return len(self._limits)
