"""The GoldRush client's striped connection pool (goldrush_api.pool): spreading, release, errors, closing."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from goldrush_operator.goldrush_api import GoldRushClient, SharedState
from goldrush_operator.goldrush_api.pool import StripedTransport, striped_transport

pytestmark = pytest.mark.unit

SERVICE_KEY = "cqt_" + "a" * 26


class _Recorder(httpx.AsyncBaseTransport):
    """A stripe that answers 200 with the stripe's number and remembers whether it was closed."""

    def __init__(self, number: int, fail: bool = False) -> None:
        self.number = number
        self.fail = fail
        self.requests = 0
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.fail:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, stream=httpx.ByteStream(str(self.number).encode()))

    async def aclose(self) -> None:
        self.closed = True


async def test_requests_one_after_the_other_reuse_the_first_stripe() -> None:
    """At a low rate every request goes to one pool, whose kept-alive connection it reuses."""
    stripes = [_Recorder(i) for i in range(3)]
    transport = StripedTransport(stripes)
    async with httpx.AsyncClient(transport=transport) as http:
        answers = [(await http.get("http://api.test/x")).text for _ in range(4)]
    assert answers == ["0", "0", "0", "0"]
    assert transport.in_flight == (0, 0, 0)
    assert all(stripe.closed for stripe in stripes)


async def test_requests_in_flight_spread_to_the_least_busy_stripe() -> None:
    stripes = [_Recorder(i) for i in range(3)]
    transport = StripedTransport(stripes)
    async with httpx.AsyncClient(transport=transport) as http:
        held = [await http.send(http.build_request("GET", "http://api.test/x"), stream=True) for _ in range(4)]
        assert transport.in_flight == (2, 1, 1)
        await held[1].aclose()  # it went to stripe 1
        assert transport.in_flight == (2, 0, 1)
        assert (await http.get("http://api.test/x")).text == "1"
        await held[0].aclose()
        assert transport.in_flight == (1, 0, 1)
        await held[2].aclose()
        assert transport.in_flight == (1, 0, 0)
        assert (await http.get("http://api.test/x")).text == "1"  # the first among the least busy
        await held[3].aclose()
        assert (await http.get("http://api.test/x")).text == "0"
        assert transport.in_flight == (0, 0, 0)


async def test_a_failing_stripe_releases_its_count_and_the_error_is_httpx_s() -> None:
    stripes = [_Recorder(0, fail=True), _Recorder(1)]
    transport = StripedTransport(stripes)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://api.test/x")
        assert transport.in_flight == (0, 0)


def test_a_striped_transport_needs_a_stripe() -> None:
    with pytest.raises(ValueError, match="at least one stripe"):
        StripedTransport([])


CONNECTIONS: list[int] = []


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal keep-alive HTTP/1.1 server: every request gets 200 after 20 ms; counts its connections."""
    CONNECTIONS.append(1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                return
            await asyncio.sleep(0.02)
            body = b'{"ok": true}'
            status = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            writer.write(status + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_concurrent_requests_over_real_connections_spread_over_the_stripes() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = striped_transport(4)
    peak = [0, 0, 0, 0]

    async def one(http: httpx.AsyncClient) -> int:
        response = await http.get(f"http://127.0.0.1:{port}/v1/x")
        peak[:] = [max(p, b) for p, b in zip(peak, transport.in_flight, strict=True)]
        return response.status_code

    try:
        async with httpx.AsyncClient(transport=transport) as http:
            codes = await asyncio.gather(*(one(http) for _ in range(40)))
        assert codes == [200] * 40
        assert transport.in_flight == (0, 0, 0, 0)
        assert all(p >= 2 for p in peak), peak
    finally:
        server.close()
        await server.wait_closed()


async def test_requests_at_a_low_rate_reuse_one_kept_alive_connection() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    CONNECTIONS.clear()
    try:
        async with httpx.AsyncClient(transport=striped_transport(4)) as http:
            for _ in range(6):
                assert (await http.get(f"http://127.0.0.1:{port}/v1/x")).status_code == 200
        assert len(CONNECTIONS) == 1  # round robin over the stripes would have opened 4
    finally:
        server.close()
        await server.wait_closed()


async def test_the_shared_pool_of_a_client_is_striped() -> None:
    state = SharedState()
    client = GoldRushClient("http://127.0.0.1:9/", SERVICE_KEY, shared=state)
    try:
        http, _ = client._resources()
        assert isinstance(http._transport, StripedTransport)
    finally:
        await client.aclose()
        await state.aclose()
