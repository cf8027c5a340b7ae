"""The Kubernetes adapter's write path (`kube.Kube._write`) against a real local HTTP server.

Checks what the controller relies on: the request as sent (method, path, JSON body, content type, the
client configuration's auth header), errors mapped to `NotFound`/`KubeError` with the API's reason, a
transport failure as status 0, at most `workers` writes in flight, and the write guard deciding before
anything leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from goldrush_operator.kube import Kube, KubeError, NotFound


class Server:
    """An aiohttp server that records the writes it receives and answers with `status` and `answer`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.answer: dict[str, Any] = {}
        self.gate: asyncio.Event | None = None
        self.in_flight = self.most_in_flight = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.received.append({"method": request.method, "path": request.path,
                                  "content_type": request.headers.get("Content-Type"),
                                  "authorization": request.headers.get("Authorization"),
                                  "body": json.loads(await request.read() or b"null")})
            if self.gate is not None:
                await self.gate.wait()
            return web.json_response(self.answer, status=self.status)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield srv
    await runner.cleanup()


def kube_for(port: int, workers: int = 4) -> Kube:
    cfg = client.Configuration(host=f"http://127.0.0.1:{port}")
    cfg.api_key = {"authorization": "token-123"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return Kube(client.ApiClient(cfg), workers=workers)


async def test_a_status_patch_is_sent_as_a_merge_patch_with_the_configured_auth(server: Server) -> None:
    kube = kube_for(server.port)
    await kube.patch_status("ns", "p1", {"phase": "RUNNING"})
    await kube.patch_annotations("ns", "p1", {"goldrush.dev/pipeline-id": "pipe_1", "gone": None})
    await kube.aclose()
    status, meta = server.received
    path = "/apis/goldrush.dev/v1alpha1/namespaces/ns/goldrushpipelines/p1/status"
    assert status == {"method": "PATCH", "path": path,
                      "content_type": "application/merge-patch+json", "authorization": "Bearer token-123",
                      "body": {"status": {"phase": "RUNNING"}}}
    assert meta["path"].endswith("/goldrushpipelines/p1")
    assert meta["body"] == {"metadata": {"annotations": {"goldrush.dev/pipeline-id": "pipe_1", "gone": None}}}
    assert kube.writes == 2


async def test_an_event_is_posted_to_the_objects_namespace(server: Server) -> None:
    kube = kube_for(server.port)
    await kube.post_event({"metadata": {"name": "p1", "namespace": "ns", "uid": "u1"}}, "Created", "created pipe_1")
    await kube.aclose()
    (event,) = server.received
    assert (event["method"], event["path"], event["content_type"]) == ("POST", "/api/v1/namespaces/ns/events",
                                                                        "application/json")
    assert event["body"]["reason"] == "Created" and event["body"]["involvedObject"]["uid"] == "u1"


async def test_an_error_answer_keeps_its_status_and_reason(server: Server) -> None:
    kube = kube_for(server.port)
    server.status, server.answer = 404, {"kind": "Status", "reason": "NotFound"}
    with pytest.raises(NotFound) as gone:
        await kube.patch_status("ns", "p1", {"phase": "RUNNING"})
    server.status, server.answer = 409, {"kind": "Status", "reason": "Conflict"}
    with pytest.raises(KubeError) as conflict:
        await kube.patch_annotations("ns", "p1", {}, finalizers=["goldrush.dev/cleanup"], resource_version="7")
    await kube.aclose()
    assert gone.value.status == 404 and str(gone.value) == "Kubernetes API 404 NotFound"
    assert conflict.value.status == 409 and not isinstance(conflict.value, NotFound)
    assert str(conflict.value) == "Kubernetes API 409 Conflict"
    assert server.received[1]["body"]["metadata"] == {"finalizers": ["goldrush.dev/cleanup"], "resourceVersion": "7"}


async def test_an_error_answer_carries_the_apiservers_explanation_on_writes_and_reads(server: Server) -> None:
    """A webhook that cannot be reached, a denied read: the condition says why, not only "500 InternalError"
    (cut at a bounded length); 404 and 409 keep their short form (callers act on the status)."""
    kube = kube_for(server.port)
    webhook = ('Internal error occurred: failed calling webhook "check.example.com": failed to call webhook: '
               'Post "https://127.0.0.1:1/validate?timeout=1s": dial tcp 127.0.0.1:1: connect: connection refused')
    server.status, server.answer = 500, {"kind": "Status", "reason": "InternalError", "message": webhook}
    with pytest.raises(KubeError) as refused:
        await kube.patch_annotations("ns", "p1", {"goldrush.dev/create-pending": "t"})
    forbidden = 'secrets "pg" is forbidden: User "x" cannot get resource ' + "y" * 400
    server.status, server.answer = 403, {"kind": "Status", "reason": "Forbidden", "message": forbidden}
    with pytest.raises(KubeError) as denied:
        await kube.get_secret("ns", "pg")
    await kube.aclose()
    assert refused.value.status == 500
    assert str(refused.value) == f"Kubernetes API 500 InternalError: {webhook}"
    assert denied.value.status == 403 and str(denied.value).startswith(
        'Kubernetes API 403 Forbidden: secrets "pg" is forbidden')
    assert str(denied.value).endswith("y...") and len(str(denied.value)) < 360


async def test_an_unreachable_apiserver_is_a_kube_error_without_status() -> None:
    kube = kube_for(9)  # nothing listens on the discard port of the loopback
    with pytest.raises(KubeError) as failed:
        await kube.patch_status("ns", "p1", {"phase": "RUNNING"})
    await kube.aclose()
    assert failed.value.status == 0 and str(failed.value).startswith("Kubernetes API unreachable: ")


async def test_no_more_than_workers_writes_are_in_flight(server: Server) -> None:
    kube = kube_for(server.port, workers=2)
    server.gate = asyncio.Event()
    writes = [asyncio.create_task(kube.patch_status("ns", f"p{i}", {"phase": "RUNNING"})) for i in range(5)]
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(server.received) >= 2:
            break
    await asyncio.sleep(0.1)
    assert len(server.received) == 2  # the other three wait for a slot
    server.gate.set()
    await asyncio.gather(*writes)
    await kube.aclose()
    assert len(server.received) == 5 and server.most_in_flight == 2


async def test_a_write_the_guard_refuses_never_leaves(server: Server) -> None:
    kube = kube_for(server.port)

    class Fenced(Exception):
        pass

    def refuse() -> None:
        raise Fenced

    kube.write_guard = refuse
    with pytest.raises(Fenced):
        await kube.patch_status("ns", "p1", {"phase": "RUNNING"})
    await kube.aclose()
    assert server.received == []
