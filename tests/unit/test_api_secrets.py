"""Unit tests of secret safety: the mask guard and a canary secret that must never leak from the client."""

from __future__ import annotations

import json
import logging
import random
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from goldrush_operator.goldrush_api import (
    GoldRushClient,
    GoldRushError,
    ManualClock,
    MaskedSecretError,
    SharedState,
)
from goldrush_operator.secret_values import Redactor

pytestmark = pytest.mark.unit

BASE = "http://goldrush.test/platform/pipeline-api/"
CANARY = 'canary-7f3a"\\Ω-secret'
KEY = "sk_canary_service_key_9b1c"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def body_with_canary() -> dict[str, Any]:
    return {
        "name": "p",
        "project": "proj",
        "destination_type": "kafka",
        "destination_config": {
            "type": "kafka",
            "password": CANARY + "-pw",
            "secret_access_key": CANARY + "-aws",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": CANARY + "-sasl"},
            "headers": {"Authorization": "Bearer " + CANARY + "-hdr"},
        },
    }


def make(handler: Handler, **kw: Any) -> GoldRushClient:
    kw.setdefault("max_retries", 1)
    return GoldRushClient(
        BASE,
        KEY,
        transport=httpx.MockTransport(handler),
        shared=SharedState(),
        clock=ManualClock(),
        rng=random.Random(0),
        rate_limit=0,
        **kw,
    )


def assert_no_leak(text: str) -> None:
    for needle in ("canary-7f3a", "7f3a", KEY, "9b1c", json.dumps(CANARY)[1:-1]):
        assert needle not in text, f"leaked {needle!r} in {text!r}"


def echo_json(status: int) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.content.decode()
        message = f"invalid request {echoed} (auth {request.headers['Authorization']})"
        return httpx.Response(
            status, json={"data": None, "error": True, "error_message": message, "error_code": str(status)}
        )

    return handler


def echo_text(status: int) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"<pre>{request.content.decode()}</pre>")

    return handler


def echo_in_success(request: httpx.Request) -> httpx.Response:
    data = json.loads(request.content)
    data["id"] = {"not": "a string"}  # invalid shape -> validation error over data holding the secrets
    return httpx.Response(201, json={"data": data, "error": False})


def echo_in_transport_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError(f"connection reset while sending {request.content.decode()}", request=request)


def echo_in_connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused {request.headers['Authorization']} {CANARY}-pw", request=request)


HANDLERS: dict[str, Handler] = {
    "json-400": echo_json(400),
    "json-401": echo_json(401),
    "json-422": echo_json(422),
    "json-429": echo_json(429),
    "json-500": echo_json(500),
    "json-503": echo_json(503),
    "text-400": echo_text(400),
    "text-502": echo_text(502),
    "success-bad-shape": echo_in_success,
    "transport-after-send": echo_in_transport_error,
    "connect-error": echo_in_connect_error,
}


@pytest.mark.parametrize("call", ["create", "patch"])
@pytest.mark.parametrize("name", sorted(HANDLERS))
async def test_canary_never_leaks(name: str, call: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with make(HANDLERS[name]) as client:
        operation = (
            client.create_pipeline(body_with_canary())
            if call == "create"
            else client.update_pipeline("pipe_1", body_with_canary())
        )
        with pytest.raises(GoldRushError) as info:
            await operation
    err = info.value
    assert_no_leak(str(err))
    assert_no_leak(repr(err))
    assert_no_leak("".join(traceback.format_exception(err)))
    assert_no_leak(caplog.text)
    assert "[REDACTED]" in str(err) or name in ("success-bad-shape",)


async def test_server_echo_of_unknown_secret_is_scrubbed_by_field_name() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        stored = json.dumps({"destination_config": {"password": "stored-old-secret", "headers": {"A": "hv"}}})
        return httpx.Response(400, json={"error": True, "error_message": f"conflict with {stored}"})

    async with make(handler) as client:
        with pytest.raises(GoldRushError) as info:
            await client.update_pipeline("pipe_1", {"description": "x"})
    assert "stored-old-secret" not in str(info.value)
    assert '"hv"' not in str(info.value)


async def test_extra_redactor_secrets_are_scrubbed() -> None:
    redactor = Redactor(["operator-known-secret"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="db operator-known-secret down")

    async with make(handler, redactor=redactor, max_retries=0) as client:
        with pytest.raises(GoldRushError) as info:
            await client.get_pipeline("pipe_1")
    assert "operator-known-secret" not in str(info.value)


DSN = "postgresql://u:Hunter2-in-a-dsn@db.internal:5432/orders"


@pytest.mark.parametrize("call", ["create", "update"])
async def test_secrets_of_other_fields_are_scrubbed_before_the_text_is_shortened(call: str) -> None:
    """A Secret-sourced value outside the known secret fields (a DSN `url`): the write's `secrets` scrub it
    before the error text is collapsed and cut, which would otherwise leave an unrecognisable prefix."""
    def handler(request: httpx.Request) -> httpx.Response:
        text = "x" * 470 + " bad url " + DSN + "\n"  # the cut at 500 characters falls inside the DSN
        return httpx.Response(400, json={"error": True, "error_message": text})

    async with make(handler) as client:
        write = (client.create_pipeline({"name": "p", "destination_config": {"url": DSN}}, secrets=[DSN + "\n"])
                 if call == "create" else
                 client.update_pipeline("pipe_1", {"destination_config": {"url": DSN}}, secrets=[DSN]))
        with pytest.raises(GoldRushError) as info:
            await write
    assert "Hunter2" not in str(info.value) and "postgresql://u:" not in str(info.value)


PER_PIPELINE_CALLS: dict[str, Callable[[GoldRushClient, list[str]], Coroutine[Any, Any, Any]]] = {
    "get": lambda c, s: c.get_pipeline("pipe_1", secrets=s),
    "status": lambda c, s: c.get_status("pipe_1", secrets=s),
    "logs": lambda c, s: c.get_logs("pipe_1", secrets=s),
    "metrics": lambda c, s: c.get_metrics("pipe_1", secrets=s),
    "destination-health": lambda c, s: c.get_destination_health("pipe_1", secrets=s),
    "put": lambda c, s: c.set_status("pipe_1", "paused", secrets=s),
    "delete": lambda c, s: c.delete_pipeline("pipe_1", secrets=s),
}


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("call", sorted(PER_PIPELINE_CALLS))
async def test_every_per_pipeline_call_scrubs_the_objects_secrets_before_the_text_is_shortened(
    call: str, status: int
) -> None:
    """Reads, pause/resume and delete carry no secret in their body, but their error text may echo one (a
    DSN in a failing probe's message): the object's secrets, given to the call, are scrubbed before the cut
    at 500 characters, which would otherwise leave a prefix no later scrub recognises."""
    def handler(request: httpx.Request) -> httpx.Response:
        text = "x" * 470 + " probe failed for " + DSN
        return httpx.Response(status, json={"error": True, "error_message": text})

    async with make(handler, max_retries=0) as client:
        with pytest.raises(GoldRushError) as info:
            await PER_PIPELINE_CALLS[call](client, [DSN])
    assert "Hunter2" not in str(info.value) and "postgresql://u:" not in str(info.value)
    assert "[RED" in str(info.value)


def test_a_value_read_from_a_file_is_scrubbed_without_its_newline() -> None:
    """`kubectl create secret --from-file` keeps the trailing newline; the API echoes the value without it."""
    redactor = Redactor([DSN + "\n"])
    assert "Hunter2" not in redactor.scrub(f"cannot connect to {DSN}: refused")
    assert "Hunter2" not in redactor.scrub("cannot connect to " + " ".join((DSN + "\n  tail").split()))


@pytest.mark.parametrize(
    "body",
    [
        {"destination_config": {"password": "******"}},
        {"destination_config": {"sasl": {"password": "******"}}},
        {"destination_config": {"headers": {"Authorization": "Bearer ******"}}},
        {"transforms": {"t": "SELECT '******' FROM t"}},
        {"abi_contract_addresses": ["0x1", "******"]},
    ],
)
async def test_mask_guard_refuses_before_any_io(body: dict[str, Any]) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with make(handler) as client:
        with pytest.raises(MaskedSecretError) as info:
            await client.create_pipeline(body)
        assert isinstance(info.value, ValueError)
        with pytest.raises(MaskedSecretError):
            await client.update_pipeline("pipe_1", body)
    assert sent == []
    assert info.value.paths
    assert "******" in str(info.value)  # the message names the placeholder, never a value


async def test_returned_pipeline_repr_hides_destination_config() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = json.loads(request.content) | {"id": "pipe_1"}
        return httpx.Response(201, json={"data": data, "error": False})

    async with make(handler) as client:
        created = await client.create_pipeline(body_with_canary())
    assert_no_leak(repr(created))
    assert_no_leak(str(created))
    assert_no_leak(repr(client))


async def test_bodies_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        data = json.loads(request.content) | {"id": "pipe_1"}
        return httpx.Response(201, json={"data": data, "error": False})

    async with make(handler) as client:
        await client.create_pipeline(body_with_canary())
    assert "create" in caplog.text
    assert_no_leak(caplog.text)
