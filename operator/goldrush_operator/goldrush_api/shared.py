"""Process-wide shared state of GoldRush clients: one connection pool per base URL, limits per key.

Used by :class:`goldrush_operator.goldrush_api.client.GoldRushClient`. A :class:`SharedState` holds

* one ``httpx.AsyncClient`` per base URL, reference-counted: clients with different service keys share
  its connection pool; it is closed when the last GoldRush client using it closes;
* a :class:`~goldrush_operator.goldrush_api.ratelimit.LimiterRegistry` (token bucket, concurrency cap and
  Retry-After gate per (base URL, key)).

asyncio primitives and connection pools belong to one event loop, so the default state is one
:class:`SharedState` per running loop (:func:`default_shared_state`). Tests get isolation by passing their
own ``SharedState()`` to the client, or by calling :func:`reset_shared_state`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .ratelimit import LimiterRegistry

__all__ = ["SharedState", "default_shared_state", "reset_shared_state"]


@dataclass(eq=False)
class _Pool:
    client: httpx.AsyncClient
    users: int = 0


class SharedState:
    """Connection pools (per base URL) and rate limits (per base URL and key) shared by GoldRush clients."""

    def __init__(self) -> None:
        self.limiters = LimiterRegistry()
        self._pools: dict[str, _Pool] = {}

    def acquire_pool(self, base_url: str, factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
        """Return the pool of ``base_url`` (created with ``factory`` on first use) and count one more user."""
        pool = self._pools.get(base_url)
        if pool is None or pool.client.is_closed:
            pool = _Pool(factory())
            self._pools[base_url] = pool
        pool.users += 1
        return pool.client

    async def release_pool(self, base_url: str, client: httpx.AsyncClient) -> None:
        """Count one user less of ``base_url``'s pool; close it when nobody uses it any more."""
        pool = self._pools.get(base_url)
        if pool is None or pool.client is not client:
            return
        pool.users -= 1
        if pool.users <= 0:
            del self._pools[base_url]
            await pool.client.aclose()

    def pool_count(self) -> int:
        """Number of open pools (for tests and diagnostics)."""
        return len(self._pools)

    async def aclose(self) -> None:
        """Close every pool and forget all limits (clients still holding a pool will open a new one)."""
        pools, self._pools = list(self._pools.values()), {}
        self.limiters.clear()
        for pool in pools:
            await pool.client.aclose()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedState] = weakref.WeakKeyDictionary()


def default_shared_state() -> SharedState:
    """The process-wide :class:`SharedState` of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    state = _by_loop.get(loop)
    if state is None:
        state = SharedState()
        _by_loop[loop] = state
    return state


async def reset_shared_state() -> None:
    """Close and forget the running loop's default shared state (test isolation, operator shutdown)."""
    loop = asyncio.get_running_loop()
    state = _by_loop.pop(loop, None)
    if state is not None:
        await state.aclose()
