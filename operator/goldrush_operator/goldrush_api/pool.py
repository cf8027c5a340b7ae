"""The GoldRush client's connection pool: httpx's own transport, striped over several small pools.

Used by :mod:`.client`: the ``httpx.AsyncClient`` that all GoldRush clients of one base URL share (held by
:mod:`.shared`) runs on one :func:`striped_transport`.

Why stripes: each time a request enters or leaves one of httpx's pools, the pool walks all its connections,
and for every idle one counts the idle connections again; the cost of a request thus grows with the square of
the pooled connections. With the 50 concurrent requests of a create burst that is about a millisecond of
event-loop time per request, more than the request's own parsing. :class:`StripedTransport` hands each
request to the least busy of ``stripes`` independent ``httpx.AsyncHTTPTransport`` pools, the first among
equals, so each pool holds a few connections and the walk stays short. The first among equals, not round
robin: at a low request rate (the polls of a settled fleet, ~2/s) every request then goes to the first
pool and reuses its kept-alive connection; round robin would give each pool a request only every few
seconds, after httpx's keep-alive (5 s) had closed its connection, and every request would open a new one.

Behaviour otherwise is that of one httpx transport: timeouts, errors (``httpx.ConnectError`` and the others,
which the client maps) and keep-alive are httpx's. No stripe caps its connections: the concurrency caps per
service key (:mod:`.ratelimit`) bound the requests in flight, so a request never waits for a pool slot while
another stripe has one free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import httpx

__all__ = ["DEFAULT_STRIPES", "KEEPALIVE_PER_STRIPE", "StripedTransport", "striped_transport"]

DEFAULT_STRIPES = 16
"""Pools per base URL: a burst's 50 requests in flight leave three or four connections to each."""

KEEPALIVE_PER_STRIPE = 8
"""Idle connections each pool keeps (httpx's keep-alive expiry, 5 s, closes them once a burst is over)."""


class _CountedStream(httpx.AsyncByteStream):
    """A response body that tells its stripe when it is closed (the request then leaves the pool)."""

    def __init__(self, inner: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._inner = inner
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class StripedTransport(httpx.AsyncBaseTransport):
    """Send each request through the first stripe with the fewest requests in flight; close all on ``aclose``."""

    def __init__(self, stripes: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not stripes:
            raise ValueError("StripedTransport needs at least one stripe")
        self._stripes = list(stripes)
        self._busy = [0] * len(self._stripes)

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests in flight per stripe, sent and not yet closed (for tests and diagnostics)."""
        return tuple(self._busy)

    def _pick(self) -> int:
        busy = self._busy
        return busy.index(min(busy))

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self._busy[index] += 1
        try:
            response = await self._stripes[index].handle_async_request(request)
        except BaseException:
            self._release(index)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(stream, lambda: self._release(index))
        return response

    async def aclose(self) -> None:
        for stripe in self._stripes:
            await stripe.aclose()


def striped_transport(stripes: int = DEFAULT_STRIPES) -> StripedTransport:
    """The transport of a shared GoldRush connection pool: ``stripes`` httpx transports, uncapped.

    The stripes share one TLS context (httpx's default one: system CAs, ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    honoured): loading the CA bundle takes about 20 ms, once instead of once per stripe.
    """
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_PER_STRIPE)
    tls = httpx.create_ssl_context()
    return StripedTransport(
        [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(max(1, stripes))]
    )
