"""GoldRushClient against the GoldRush simulator over real HTTP: endpoints, paging, faults, retry rules."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from goldrush_operator.goldrush_api import (
    ConnectError,
    ForbiddenError,
    GoldRushClient,
    InvalidRequestError,
    MaskedSecretError,
    NotFoundError,
    OutcomeUnknownError,
    Pipeline,
    UnauthorizedError,
    reset_shared_state,
)
from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.sim

Factory = Callable[..., GoldRushClient]


@pytest.fixture
async def make_client(sim: SimProcess) -> AsyncIterator[Factory]:
    """Clients on the running loop's shared state (one pool, one gate per key); closed after the test."""
    clients: list[GoldRushClient] = []

    def factory(key: str | None = None, base_url: str | None = None, **kw: Any) -> GoldRushClient:
        kw.setdefault("backoff_base", 0.02)
        kw.setdefault("backoff_max", 0.2)
        kw.setdefault("rate_limit", 0)
        client = GoldRushClient(base_url or sim.base_url, key or sim.service_key, **kw)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
    await reset_shared_state()


async def find_by_name(client: GoldRushClient, name: str) -> list[Pipeline]:
    return [p async for p in client.list_pipelines() if p.name == name]


async def test_every_endpoint_round_trip(sim: SimProcess, make_client: Factory) -> None:
    client = make_client()
    created = await client.create_pipeline(example_pipeline(name="round-trip"))
    assert created.id.startswith("pipe_")
    assert created.destination_config["password"] == "******"
    fetched = await client.get_pipeline(created.id)
    assert (fetched.name, fetched.project, fetched.status) == ("round-trip", created.project, "running")
    updated = await client.update_pipeline(created.id, {"description": "changed"})
    assert updated.description == "changed"
    deadline = time.monotonic() + 10
    while (status := await client.get_status(created.id)).status != "RUNNING":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)
    assert status.ready == status.replicas
    logs = await client.get_logs(created.id)
    assert logs.pods
    metrics = await client.get_metrics(created.id)
    assert metrics.records_consumed is not None
    health = await client.get_destination_health(created.id)
    assert isinstance(health.healthy, bool)
    paused = await client.set_status(created.id, "paused")
    assert paused.status == "paused"
    await client.delete_pipeline(created.id)
    with pytest.raises(NotFoundError):
        await client.get_pipeline(created.id)
    with pytest.raises(NotFoundError):
        await client.delete_pipeline("pipe_doesnotexist")


async def test_pagination_over_several_pages(sim: SimProcess, make_client: Factory) -> None:
    names = {f"paged-{i:02d}" for i in range(23)}
    for name in sorted(names):
        sim.seed(group="group_default", **example_pipeline(name=name))
    sim.seed(**example_pipeline(name="foreign"))  # another group: invisible to the key
    client = make_client()
    got = [p.name or "" async for p in client.list_pipelines(page_size=10)]
    assert sorted(got) == sorted(names)
    assert sim.counters()["requests"]["list"] == 3


async def test_429_burst_is_waited_out_without_early_retries(sim: SimProcess, make_client: Factory) -> None:
    # Same key: both clients share the Retry-After gate and the concurrency cap of 1 (set by the first).
    first, second = make_client(max_concurrency=1), make_client()
    pid = (await first.create_pipeline(example_pipeline())).id
    sim.faults(rate_limit={"count": 3, "retry_after": 1, "route": "*"})
    started = time.monotonic()
    results = await asyncio.gather(*(c.get_pipeline(pid) for c in (first, second, first, second)))
    assert all(r.id == pid for r in results)
    counters = sim.counters()
    assert counters["early_retries"] == 0
    assert counters["by_route_status"].get("get 429") == 3
    assert counters["by_route_status"].get("get 200") == 4
    assert time.monotonic() - started >= 3.0


async def test_concurrent_calls_send_nothing_new_during_retry_after(
    sim: SimProcess, make_client: Factory
) -> None:
    """With requests in flight when the 429 is answered, only those may arrive inside the window."""
    pid = (await make_client().create_pipeline(example_pipeline())).id
    sim.faults(rate_limit={"count": 1, "retry_after": 2, "route": "*"})
    client = make_client()
    seq = sim.journal()[-1]["seq"]
    results = await asyncio.gather(*(client.get_status(pid) for _ in range(6)))
    assert len(results) == 6
    entries = sim.journal(since=seq)
    first_429 = next(e for e in entries if e["status"] == 429)
    window = [e for e in entries if first_429["time"] < e["time"] < first_429["time"] + 2]
    assert all(e["time"] - first_429["time"] < 0.2 for e in window), window  # in flight, not new
    after = [e for e in entries if e["time"] >= first_429["time"] + 2]
    assert after  # the rest waited for the whole Retry-After
    assert sim.counters()["early_retries"] == len(window)


async def test_client_rate_limit_keeps_under_server_rps(sim: SimProcess, make_client: Factory) -> None:
    client = make_client(rate_limit=4, burst=1)
    pid = (await client.create_pipeline(example_pipeline())).id
    sim.faults(rate_limit_rps=5)
    await asyncio.gather(*(client.get_status(pid) for _ in range(10)))
    counters = sim.counters()
    assert counters["early_retries"] == 0
    assert "429" not in counters["statuses"]


async def test_half_of_idempotent_calls_failing_503_still_succeed(
    sim: SimProcess, make_client: Factory
) -> None:
    client = make_client(max_retries=40)
    pid = (await client.create_pipeline(example_pipeline())).id
    sim.faults(
        rules=[
            {"route": route, "method": "*", "status": 503, "rate": 0.5, "count": None}
            for route in ("get", "status", "put", "list", "delete")
        ]
    )
    for _ in range(10):
        assert (await client.get_pipeline(pid)).id == pid
        await client.get_status(pid)
    await client.set_status(pid, "paused")
    assert [p.id async for p in client.list_pipelines()] == [pid]
    await client.delete_pipeline(pid)
    counters = sim.counters()["by_route_status"]
    assert counters.get("get 503", 0) > 0
    assert counters.get("delete 204") == 1
    assert sim.pipelines() == [] or all(p["deleting"] for p in sim.pipelines())


async def test_dropped_connection_after_committed_create(sim: SimProcess, make_client: Factory) -> None:
    client = make_client()
    sim.faults(drop_after_commit={"route": "create", "count": 1})
    with pytest.raises(OutcomeUnknownError) as info:
        await client.create_pipeline(example_pipeline(name="dropped"))
    assert info.value.status is None
    assert sim.counters()["requests"]["create"] == 1  # never repeated blindly
    found = await find_by_name(client, "dropped")
    assert len(found) == 1


async def test_create_answer_slower_than_timeout_is_outcome_unknown(
    sim: SimProcess, make_client: Factory
) -> None:
    client = make_client(timeout=0.5)
    sim.faults(delay_after_commit={"route": "create", "seconds": 5, "count": 1})
    with pytest.raises(OutcomeUnknownError):
        await client.create_pipeline(example_pipeline(name="slow"))
    assert len(await find_by_name(client, "slow")) == 1
    deadline = time.monotonic() + 10  # the create is journalled when it commits
    while "create" not in sim.counters()["requests"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert sim.counters()["requests"]["create"] == 1


async def test_create_5xx_is_outcome_unknown_and_429_is_retried(
    sim: SimProcess, make_client: Factory
) -> None:
    client = make_client()
    sim.faults(rules=[{"route": "create", "status": 500, "count": 1}])
    with pytest.raises(OutcomeUnknownError) as info:
        await client.create_pipeline(example_pipeline(name="five-hundred"))
    assert info.value.status == 500
    assert sim.counters()["requests"]["create"] == 1
    sim.faults(rules=[{"route": "create", "status": 429, "retry_after": 1, "count": 1}])
    created = await client.create_pipeline(example_pipeline(name="after-429"))
    assert [p.id for p in await find_by_name(client, "after-429")] == [created.id]
    counters = sim.counters()
    assert counters["by_route_status"]["create 429"] == 1
    assert counters["early_retries"] == 0


async def test_patch_5xx_is_not_repeated(sim: SimProcess, make_client: Factory) -> None:
    client = make_client()
    pid = (await client.create_pipeline(example_pipeline())).id
    sim.faults(rules=[{"route": "patch", "status": 503, "count": 5}])
    with pytest.raises(OutcomeUnknownError):
        await client.update_pipeline(pid, {"description": "x"})
    assert sim.counters()["requests"]["patch"] == 1


async def test_auth_errors(sim: SimProcess, make_client: Factory) -> None:
    with pytest.raises(UnauthorizedError) as unauthorized:
        await make_client(key="not-a-key").get_pipeline("pipe_x")
    assert "not-a-key" not in str(unauthorized.value)
    with pytest.raises(ForbiddenError):
        _ = [p async for p in make_client(key="regular-api-key").list_pipelines()]


async def test_mask_guard_sends_nothing(sim: SimProcess, make_client: Factory) -> None:
    client = make_client()
    body = example_pipeline()
    body["destination_config"]["password"] = "******"
    with pytest.raises(MaskedSecretError):
        await client.create_pipeline(body)
    assert sim.counters()["total"] == 0


async def test_echoed_secret_never_leaks(
    sim: SimProcess, make_client: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "canary-sim-5e1d-secret"
    client = make_client()
    sim.faults(echo_body_in_422={"route": "create", "count": 1})
    body = example_pipeline()
    body["destination_config"]["password"] = canary
    with pytest.raises(InvalidRequestError) as info:
        await client.create_pipeline(body)
    assert info.value.status == 422
    assert "[REDACTED]" in str(info.value)
    for text in (str(info.value), repr(info.value), caplog.text):
        assert canary not in text
        assert sim.service_key not in text


async def test_on_request_hook_over_http(sim: SimProcess, make_client: Factory) -> None:
    calls: list[tuple[str, str, str]] = []
    client = make_client(on_request=lambda m, r, o: calls.append((m, r, o)))
    sim.faults(rules=[{"route": "get", "status": 502, "count": 1}])
    with pytest.raises(NotFoundError):
        await client.get_pipeline("pipe_missing")
    assert calls == [("GET", "get", "502"), ("GET", "get", "404")]


async def test_connection_refused_is_connect_error(make_client: Factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    calls: list[str] = []
    client = make_client(
        base_url=f"http://127.0.0.1:{port}/platform/pipeline-api/",
        max_retries=2,
        on_request=lambda m, r, o: calls.append(o),
    )
    with pytest.raises(ConnectError):
        await client.create_pipeline(example_pipeline())
    assert calls == ["transport_error"] * 3
