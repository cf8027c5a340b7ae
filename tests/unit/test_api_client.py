"""Unit tests of GoldRushClient over httpx.MockTransport: paths, methods, headers, models, paging."""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

import goldrush_operator
from goldrush_operator.goldrush_api import (
    DEFAULT_BASE_URL,
    DestinationHealth,
    GoldRushClient,
    ManualClock,
    Pipeline,
    PipelineLogs,
    PipelineMetrics,
    RuntimeStatus,
    SharedState,
    default_shared_state,
    open_pool,
    reset_shared_state,
)
from goldrush_operator.goldrush_api import client as client_module

pytestmark = pytest.mark.unit

BASE = "http://goldrush.test/platform/pipeline-api/"
KEY = "sk_test_key"
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, json={"data": data, "error": False, "error_message": None, "error_code": None}
    )


def pipe(pid: str = "pipe_1", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": pid,
        "name": "n",
        "project": "proj",
        "description": "d",
        "topic": "base.mainnet.ref.block.logs",
        "destination_type": "postgres",
        "destination_config": {
            "type": "postgres",
            "url": "postgresql://h/db",
            "user": "u",
            "password": "******",
        },
        "transforms": {},
        "execution_mode": "unbounded",
        "execution_start_from": "44745000",
        "execution_stop_from": "",
        "abi_file": {},
        "abi_contract_addresses": [],
        "abi_unmatched": "",
        "status": "running",
        "created_by": {"id": "user_1", "email": "a@b", "display_name": "a", "full_name": "A"},
        "group": {"id": "group_1", "name": "g", "slug": "g", "is_paid": True},
        "created_at": "2026-05-01T10:00:00Z",
        "updated_at": "2026-05-01T10:00:00Z",
        "brand_new_field": {"x": 1},
    }
    base.update(over)
    return base


def make(handler: Handler, **kw: Any) -> GoldRushClient:
    kw.setdefault("shared", SharedState())
    kw.setdefault("clock", ManualClock())
    kw.setdefault("rate_limit", 0)
    return GoldRushClient(BASE, KEY, transport=httpx.MockTransport(handler), rng=random.Random(1), **kw)


class Recorder:
    """Records requests and answers from a route table keyed by (method, path)."""

    def __init__(self, routes: dict[tuple[str, str], httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes[(request.method, request.url.raw_path.decode().split("?")[0])]


P = "/platform/pipeline-api/"


async def test_every_endpoint_method_path_and_model() -> None:
    rec = Recorder(
        {
            ("POST", P): ok(pipe(), 201),
            ("GET", P + "pipe_1/"): ok(pipe()),
            ("PATCH", P + "pipe_1/"): ok(pipe(name="new")),
            ("PUT", P + "pipe_1/"): ok(pipe(status="paused")),
            ("DELETE", P + "pipe_1/"): httpx.Response(204),
            ("GET", P + "pipe_1/status/"): ok(
                {"uid": "u", "status": "RUNNING", "replicas": 1, "ready": 1, "start_time": None}
            ),
            ("GET", P + "pipe_1/logs/"): ok({"uid": "u", "pods": [{"pod": "p-1", "logs": "a\nb"}]}),
            ("GET", P + "pipe_1/metrics/"): ok(
                {"uid": "u", "records_consumed": 5, "last_block_height": 7, "records_per_second": 1.5}
            ),
            ("GET", P + "pipe_1/destination-health/"): ok({"healthy": False, "last_error": "refused"}),
        }
    )
    async with make(rec) as client:
        created = await client.create_pipeline({"name": "n", "destination_config": {"password": "pw"}})
        assert isinstance(created, Pipeline)
        assert created.id == "pipe_1"
        assert created.group is not None
        assert created.group.is_paid is True
        assert created.model_extra == {"brand_new_field": {"x": 1}}
        assert (await client.get_pipeline("pipe_1")).destination_config["password"] == "******"
        assert (await client.update_pipeline("pipe_1", {"name": "new"})).name == "new"
        assert (await client.set_status("pipe_1", "paused")).status == "paused"
        await client.delete_pipeline("pipe_1")
        status = await client.get_status("pipe_1")
        assert isinstance(status, RuntimeStatus)
        assert (status.status, status.replicas, status.ready, status.start_time) == ("RUNNING", 1, 1, None)
        logs = await client.get_logs("pipe_1")
        assert isinstance(logs, PipelineLogs)
        assert logs.pods[0].logs == "a\nb"
        metrics = await client.get_metrics("pipe_1")
        assert isinstance(metrics, PipelineMetrics)
        assert (metrics.records_consumed, metrics.records_per_second, metrics.pending_records) == (
            5,
            1.5,
            None,
        )
        health = await client.get_destination_health("pipe_1")
        assert isinstance(health, DestinationHealth)
        assert (health.healthy, health.last_error) == (False, "refused")

    bodies = [json.loads(r.content) if r.content else None for r in rec.requests]
    assert bodies[0] == {"name": "n", "destination_config": {"password": "pw"}}
    assert bodies[2] == {"name": "new"}
    assert bodies[3] == {"status": "paused"}
    for request in rec.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["User-Agent"] == f"goldrush-operator/{goldrush_operator.__version__}"
        assert request.url.path.endswith("/")


async def test_base_url_without_trailing_slash_and_default() -> None:
    rec = Recorder({("GET", P + "pipe_1/status/"): ok({"status": "PAUSED"})})
    client = GoldRushClient(
        BASE.rstrip("/"), KEY, transport=httpx.MockTransport(rec), shared=SharedState(), rate_limit=0
    )
    await client.get_status("pipe_1")
    await client.aclose()
    assert str(rec.requests[0].url) == BASE + "pipe_1/status/"
    assert GoldRushClient(None, KEY).base_url == DEFAULT_BASE_URL


async def test_pipeline_id_is_quoted_and_validated() -> None:
    rec = Recorder({("GET", P + "a%2Fb/"): ok(pipe("a/b"))})
    async with make(rec) as client:
        assert (await client.get_pipeline("a/b")).id == "a/b"
        for bad in ("", " ", "..", "."):
            with pytest.raises(ValueError, match="pipeline_id"):
                await client.get_pipeline(bad)
        with pytest.raises(ValueError, match="status"):
            await client.set_status("pipe_1", "stopped")  # type: ignore[arg-type]
    assert len(rec.requests) == 1


def test_service_key_is_validated_without_echo() -> None:
    for bad in ("", "   ", "key with space", "key\r\nX-Evil: 1"):
        with pytest.raises(ValueError, match="service key") as info:
            GoldRushClient(BASE, bad)
        assert "Evil" not in str(info.value)
    assert "sk_x" not in repr(GoldRushClient(BASE, " sk_x\n"))


async def test_pagination_across_several_pages() -> None:
    total = 7
    seen_params: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page_number"])
        size = int(request.url.params["page_size"])
        seen_params.append((request.url.params.get("page_number"), request.url.params.get("page_size")))
        ids = list(range(total))[(number - 1) * size : number * size]
        return ok(
            {
                "items": [pipe(f"pipe_{i}") for i in ids],
                "pagination": {
                    "page_number": number,
                    "page_size": size,
                    "total_count": total,
                    "has_more": number * size < total,
                },
                "updated_at": "2026-05-01T10:00:00Z",
            }
        )

    async with make(handler) as client:
        got = [p.id async for p in client.list_pipelines(page_size=3)]
    assert got == [f"pipe_{i}" for i in range(total)]
    assert seen_params == [("1", "3"), ("2", "3"), ("3", "3")]


@pytest.mark.parametrize("block", [
    {"total_count": 7},  # no has_more: the total decides
    {},  # neither: a full page means another follows
])
async def test_pagination_without_has_more_reads_every_page(block: dict[str, int]) -> None:
    """The documented list shape was truncated: a pagination block without `has_more` must not end the
    listing after page 1 (a missed pipeline is a missed name conflict, or a twin)."""
    total = 7

    def handler(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["page_number"]), int(request.url.params["page_size"])
        ids = list(range(total))[(number - 1) * size : number * size]
        return ok({"items": [pipe(f"pipe_{i}") for i in ids], "pagination": {"page_number": number, **block}})

    async with make(handler) as client:
        got = [p.id async for p in client.list_pipelines(page_size=3)]
    assert got == [f"pipe_{i}" for i in range(total)]


async def test_a_refused_page_size_falls_back_to_the_apis_default() -> None:
    """`page_size`'s maximum is not documented: a first page refused with 422 is asked again without it, and
    later listings of the client do not send it."""
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("page_size"))
        if "page_size" in request.url.params:
            return httpx.Response(422, json={"data": None, "error": True, "error_message": "page_size > 50"})
        return ok({"items": [pipe("pipe_a")], "pagination": {"page_number": 1, "has_more": False}})

    async with make(handler) as client:
        assert [p.id async for p in client.list_pipelines()] == ["pipe_a"]
        assert [p.id async for p in client.list_pipelines()] == ["pipe_a"]
    assert asked == ["100", None, None]


async def test_pagination_without_pagination_block_stops_on_empty_or_repeated_page() -> None:
    pages = {1: [pipe("pipe_a"), pipe("pipe_b")], 2: [pipe("pipe_b"), pipe("pipe_c")], 3: []}

    def handler(request: httpx.Request) -> httpx.Response:
        return ok({"items": pages[int(request.url.params["page_number"])]})

    async with make(handler) as client:
        assert [p.id async for p in client.list_pipelines(page_size=2)] == ["pipe_a", "pipe_b", "pipe_c"]

    def same_page_forever(request: httpx.Request) -> httpx.Response:
        return ok({"items": [pipe("pipe_a")], "pagination": {"page_number": 1, "has_more": True}})

    async with make(same_page_forever) as client:
        assert [p.id async for p in client.list_pipelines()] == ["pipe_a"]
        with pytest.raises(ValueError, match="page_size"):
            _ = [p async for p in client.list_pipelines(page_size=0)]


async def test_on_request_hook_gets_method_route_outcome() -> None:
    calls: list[tuple[str, str, str]] = []
    answers = iter([httpx.Response(503), ok(pipe())])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/logs/"):
            raise httpx.ReadError("reset", request=request)
        if request.method == "DELETE":
            return httpx.Response(204)
        return next(answers)

    def hook(method: str, route: str, outcome: str) -> None:
        calls.append((method, route, outcome))
        raise RuntimeError("a broken hook must not break the call")

    async with make(handler, on_request=hook, max_retries=0) as client:
        await client.delete_pipeline("pipe_1")
        with pytest.raises(Exception, match="503"):
            await client.get_pipeline("pipe_1")
        await client.get_pipeline("pipe_1")
        with pytest.raises(Exception, match="ReadError"):
            await client.get_logs("pipe_1")
    assert calls == [
        ("DELETE", "delete", "204"),
        ("GET", "get", "503"),
        ("GET", "get", "200"),
        ("GET", "logs", "transport_error"),
    ]


async def test_route_names_for_hook() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/status/"):
            return ok({"status": "RUNNING"})
        if path.endswith("/logs/"):
            return ok({"pods": []})
        if path.endswith("/metrics/"):
            return ok({})
        if path.endswith("/destination-health/"):
            return ok({"healthy": True})
        if request.method == "DELETE":
            return httpx.Response(204)
        if path == P and request.method == "GET":
            return ok({"items": [], "pagination": {"has_more": False}})
        return ok(pipe())

    async with make(handler, on_request=lambda m, r, o: calls.append(r)) as client:
        _ = [p async for p in client.list_pipelines()]
        await client.create_pipeline({"name": "x"})
        await client.get_pipeline("pipe_1")
        await client.set_status("pipe_1", "running")
        await client.update_pipeline("pipe_1", {})
        await client.delete_pipeline("pipe_1")
        await client.get_status("pipe_1")
        await client.get_logs("pipe_1")
        await client.get_metrics("pipe_1")
        await client.get_destination_health("pipe_1")
    assert calls == [
        "list",
        "create",
        "get",
        "put",
        "patch",
        "delete",
        "status",
        "logs",
        "metrics",
        "destination-health",
    ]


async def test_shared_pool_per_base_url_is_refcounted() -> None:
    shared = SharedState()
    a = GoldRushClient(BASE, "key_a", shared=shared)
    b = GoldRushClient(BASE, "key_b", shared=shared)
    c = GoldRushClient("http://other.test/platform/pipeline-api/", "key_a", shared=shared)
    http_a, limits_a = a._resources()
    http_b, limits_b = b._resources()
    http_c, _ = c._resources()
    assert http_a is http_b
    assert http_c is not http_a
    assert limits_a is not limits_b  # limits are per (base URL, key)
    assert shared.pool_count() == 2
    await a.aclose()
    assert not http_a.is_closed
    await b.aclose()
    assert http_a.is_closed
    await c.aclose()
    assert shared.pool_count() == 0
    with pytest.raises(RuntimeError, match="closed"):
        await a.get_pipeline("pipe_1")


async def test_open_pool_builds_the_base_urls_pool_for_every_key_and_keeps_it_until_the_state_closes(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The pool belongs to the base URL: built ahead of any client (no key needed, nothing sent), with the
    timeouts it was given; every key's client then uses it, and it outlives them. A TLS setting that cannot be
    loaded is only logged."""
    shared = SharedState()
    open_pool(BASE.rstrip("/"), timeout=7.0, connect_timeout=3.0, shared=shared)
    assert shared.pool_count() == 1
    a = GoldRushClient(BASE, "key_a", shared=shared)
    b = GoldRushClient(BASE, "key_b", shared=shared)
    http_a, _ = a._resources()
    assert b._resources()[0] is http_a and shared.pool_count() == 1, "the clients of any key take that pool"
    assert (http_a.timeout.read, http_a.timeout.connect) == (7.0, 3.0)
    await a.aclose()
    await b.aclose()
    assert not http_a.is_closed, "held for the process, not closed with its last client"
    await shared.aclose()
    assert http_a.is_closed

    def no_ca(*_args: Any) -> httpx.AsyncClient:
        raise ssl.SSLError("cannot load the CA bundle")

    monkeypatch.setattr(client_module, "_new_http", no_ca)
    open_pool(BASE, shared=shared)
    assert shared.pool_count() == 0 and "could not build the GoldRush connection pool" in caplog.text


async def test_default_shared_state_is_per_loop_and_resettable() -> None:
    state = default_shared_state()
    assert default_shared_state() is state
    a = GoldRushClient(BASE, "key_a")
    b = GoldRushClient(BASE, "key_a")
    assert a._resources()[1] is b._resources()[1]
    await reset_shared_state()
    assert default_shared_state() is not state
    await a.aclose()
    await b.aclose()


async def test_env_defaults_for_rate_and_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDRUSH_RATE_LIMIT", "0")
    monkeypatch.setenv("GOLDRUSH_MAX_CONCURRENCY", "3")
    client = GoldRushClient(BASE, KEY, shared=SharedState())
    _, limits = client._resources()
    assert limits.bucket.rate == 0
    assert limits.semaphore is not None
    assert limits.semaphore._value == 3
    await client.aclose()
    monkeypatch.setenv("GOLDRUSH_RATE_LIMIT", "fast")
    with pytest.raises(ValueError, match="GOLDRUSH_RATE_LIMIT"):
        GoldRushClient(BASE, KEY)
    monkeypatch.delenv("GOLDRUSH_RATE_LIMIT")
    monkeypatch.delenv("GOLDRUSH_MAX_CONCURRENCY")
    client = GoldRushClient(BASE, KEY, shared=SharedState())
    _, limits = client._resources()
    assert limits.bucket.rate == 20
    assert limits.semaphore is not None
    assert limits.semaphore._value == 10
    await client.aclose()


async def test_models_are_tolerant() -> None:
    p = Pipeline.model_validate(
        {"id": "pipe_1", "execution_start_from": 123, "transforms": None, "abi_contract_addresses": None}
    )
    assert p.execution_start_from == "123"
    assert p.transforms == {}
    assert p.abi_contract_addresses == []
    assert "destination_config" not in repr(
        Pipeline.model_validate({"id": "x", "destination_config": {"a": 1}})
    )
    assert RuntimeStatus.model_validate({"status": "DEPLOYING", "surprise": 1}).replicas == 0


async def test_httpcore_finds_the_async_library_without_searching_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks sniffio which async library runs, several times per request; without sniffio each ask
    is a failed import that searches sys.path (measurable CPU in a burst). The dependency keeps it a lookup."""
    import importlib.machinery

    from httpcore._synchronization import current_async_library

    searched: list[str] = []
    original = importlib.machinery.PathFinder.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", staticmethod(find_spec))
    for _ in range(3):
        assert current_async_library() == "asyncio"
    assert searched == []
