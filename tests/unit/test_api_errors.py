"""Unit tests of the GoldRush client's error tree: every class, its status and transient flag."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from goldrush_operator.goldrush_api import (
    ApiError,
    ConflictError,
    ConnectError,
    ForbiddenError,
    GoldRushClient,
    GoldRushError,
    InvalidRequestError,
    ManualClock,
    MaskedSecretError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    SharedState,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    api_error_for_status,
)

pytestmark = pytest.mark.unit

BASE = "http://goldrush.test/platform/pipeline-api/"


def error_body(status: int, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"data": None, "error": True, "error_message": message, "error_code": str(status)}
    )


def make(response: httpx.Response | Exception, **kw: Any) -> GoldRushClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    return GoldRushClient(
        BASE,
        "sk_key",
        transport=httpx.MockTransport(handler),
        shared=SharedState(),
        clock=ManualClock(),
        rng=random.Random(0),
        rate_limit=0,
        max_retries=0,
        **kw,
    )


@pytest.mark.parametrize(
    ("status", "cls", "transient"),
    [
        (400, InvalidRequestError, False),
        (401, UnauthorizedError, False),
        (403, ForbiddenError, False),
        (404, NotFoundError, False),
        (409, ConflictError, True),
        (408, ApiError, True),
        (422, InvalidRequestError, False),
        (429, RateLimitedError, True),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
    ],
)
async def test_status_maps_to_error_class(status: int, cls: type[ApiError], transient: bool) -> None:
    async with make(error_body(status, f"boom {status}")) as client:
        with pytest.raises(ApiError) as info:
            await client.get_pipeline("pipe_1")
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.transient is transient
    assert err.error_code == str(status)
    assert err.route == "get"
    assert err.method == "GET"
    assert f"boom {status}" in str(err)
    assert isinstance(err, GoldRushError)


async def test_rate_limited_carries_retry_after() -> None:
    response = httpx.Response(429, headers={"Retry-After": "120"}, text="slow down")
    async with make(response) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_status("pipe_1")
    assert info.value.retry_after == 120
    assert "slow down" in str(info.value)


async def test_delete_404_raises_not_found() -> None:
    async with make(error_body(404, "Pipeline not found")) as client:
        with pytest.raises(NotFoundError, match="Pipeline not found"):
            await client.delete_pipeline("pipe_gone")


async def test_non_json_error_body_is_tolerated() -> None:
    response = httpx.Response(502, text="<html><body>Bad   gateway</body>\n</html>")
    async with make(response) as client:
        with pytest.raises(ServerError, match="Bad gateway") as info:
            await client.get_pipeline("pipe_1")
    assert info.value.error_code is None
    async with make(httpx.Response(500)) as client:
        with pytest.raises(ServerError, match="Internal Server Error"):
            await client.get_pipeline("pipe_1")


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ConnectTimeout("slow connect"), ConnectError),
        (httpx.PoolTimeout("no slot"), ConnectError),
        (httpx.ReadTimeout("slow read"), RequestTimeoutError),
        (httpx.WriteTimeout("slow write"), RequestTimeoutError),
        (httpx.ReadError("reset"), TransportError),
        (httpx.RemoteProtocolError("server disconnected"), TransportError),
    ],
)
async def test_transport_errors_for_idempotent_calls(exc: Exception, cls: type[TransportError]) -> None:
    async with make(exc) as client:
        with pytest.raises(TransportError) as info:
            await client.get_pipeline("pipe_1")
    assert type(info.value) is cls
    assert info.value.transient is True
    assert info.value.status is None
    assert type(exc).__name__ in str(info.value)


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("t"), httpx.ReadError("r"), httpx.RemoteProtocolError("d"), httpx.WriteError("w")],
)
@pytest.mark.parametrize("method", ["create", "patch"])
async def test_write_failing_after_send_is_outcome_unknown(exc: Exception, method: str) -> None:
    async with make(exc) as client:
        call = (
            client.create_pipeline({"name": "x"})
            if method == "create"
            else client.update_pipeline("pipe_1", {"name": "x"})
        )
        with pytest.raises(OutcomeUnknownError) as info:
            await call
    assert info.value.transient is True
    assert info.value.status is None
    assert "look the result up" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_write_answered_5xx_is_outcome_unknown(status: int) -> None:
    async with make(error_body(status, "oops")) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.create_pipeline({"name": "x"})
    assert info.value.status == status


async def test_write_not_sent_is_connect_error_not_outcome_unknown() -> None:
    async with make(httpx.ConnectError("refused")) as client:
        with pytest.raises(ConnectError):
            await client.create_pipeline({"name": "x"})


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (httpx.Response(200, text="<html>login</html>"), "not JSON"),
        (httpx.Response(200, json=[1, 2]), "not an envelope"),
        (httpx.Response(200, json={"data": {"no_id": True}, "error": False}), "unexpected shape"),
    ],
)
async def test_unexpected_success_bodies(response: httpx.Response, fragment: str) -> None:
    async with make(response) as client:
        with pytest.raises(UnexpectedResponseError, match=fragment) as info:
            await client.get_pipeline("pipe_1")
        assert info.value.status == 200
        with pytest.raises(OutcomeUnknownError, match=fragment):
            await client.create_pipeline({"name": "x"})


async def test_error_envelope_with_200_status() -> None:
    response = httpx.Response(
        200, json={"data": None, "error": True, "error_message": "nope", "error_code": "403"}
    )
    async with make(response) as client:
        with pytest.raises(ForbiddenError, match="nope"):
            await client.get_pipeline("pipe_1")
    odd = httpx.Response(200, json={"data": None, "error": True, "error_message": "odd", "error_code": "X1"})
    async with make(odd) as client:
        with pytest.raises(UnexpectedResponseError, match="odd"):
            await client.get_pipeline("pipe_1")


async def test_redirect_is_not_followed() -> None:
    async with make(httpx.Response(301, headers={"Location": "http://elsewhere/"})) as client:
        with pytest.raises(UnexpectedResponseError) as info:
            await client.get_pipeline("pipe_1")
    assert info.value.status == 301
    assert info.value.transient is False


def test_masked_secret_error_is_value_error() -> None:
    err = MaskedSecretError(["destination_config.password"])
    assert isinstance(err, ValueError)
    assert isinstance(err, GoldRushError)
    assert err.transient is False
    assert err.status is None
    assert err.paths == ("destination_config.password",)


def test_api_error_for_status_and_repr() -> None:
    err = api_error_for_status(429, "m", retry_after=3.0)
    assert isinstance(err, RateLimitedError)
    assert err.retry_after == 3.0
    assert repr(err) == "RateLimitedError('m', status=429)"
    assert type(api_error_for_status(418, "m")) is ApiError
    assert api_error_for_status(425, "m").transient is True
