"""A small async Kubernetes client for the benchmarks (aiohttp, admin client certificate).

The benchmark driver must not be the bottleneck, so objects are created with many concurrent requests and
observed with one cluster-wide watch (`Watcher`) that records, per object, when each phase and each Ready
state was first seen (harness wall clock, comparable with the simulator journal's `time`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL = "goldrush.dev", "v1alpha1", "goldrushpipelines"


class KubeClient:
    def __init__(self, url: str, ssl_context: ssl.SSLContext, concurrency: int = 32) -> None:
        self.url = url.rstrip("/")
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(concurrency)
        self._limit = max(64, 2 * concurrency)

    async def __aenter__(self) -> KubeClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                      ok: tuple[int, ...] = (200, 201, 202), retries: int = 5) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        for attempt in range(retries + 1):
            async with self._sem:
                try:
                    async with self.session.request(method, self.url + path, data=data, headers=headers) as r:
                        text = await r.text()
                        if r.status in ok:
                            return json.loads(text) if text else None
                        if r.status in (409, 429, 500, 503) and attempt < retries:
                            pass
                        else:
                            raise RuntimeError(f"{method} {path}: HTTP {r.status} {text[:300]}")
                except (TimeoutError, aiohttp.ClientError):
                    if attempt >= retries:
                        raise
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: retries exhausted")

    # -- helpers ------------------------------------------------------------------------------------------

    async def ensure_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.request("POST", "/api/v1/namespaces", body, ok=(200, 201, 409))

    async def create_secret(self, namespace: str, manifest: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", manifest, ok=(200, 201))

    async def replace_secret_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        await self.request("PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}", {"data": data},
                           content_type="application/merge-patch+json")

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.request("PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}", patch,
                           content_type="application/merge-patch+json")

    def _cr_path(self, namespace: str, name: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        return base if name is None else f"{base}/{name}"

    async def create_pipeline(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        data = await self.request("POST", self._cr_path(namespace), manifest, ok=(200, 201))
        return data if isinstance(data, dict) else {}

    async def patch_pipeline(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.request("PATCH", self._cr_path(namespace, name), patch,
                           content_type="application/merge-patch+json")

    async def patch_pipeline_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.request("PATCH", self._cr_path(namespace, name) + "/status", patch,
                           content_type="application/merge-patch+json")

    async def get_pipeline(self, namespace: str, name: str) -> dict[str, Any]:
        data = await self.request("GET", self._cr_path(namespace, name))
        assert isinstance(data, dict)
        return data

    async def delete_pipelines(self, namespace: str) -> None:
        """Delete every GoldRushPipeline of a namespace (deletecollection)."""
        await self.request("DELETE", self._cr_path(namespace), ok=(200, 202))

    async def create_event(self, namespace: str, manifest: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{namespace}/events", manifest, ok=(200, 201))

    async def count_pipelines(self) -> int:
        data = await self.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}?limit=1")
        meta = data.get("metadata") or {}
        return len(data.get("items") or []) + int(meta.get("remainingItemCount") or 0)


@dataclass
class ObjRecord:
    created: float | None = None           # harness time when the create request was sent
    pipeline_id: str | None = None
    uid: str | None = None
    phase: str | None = None
    ready: bool = False
    first_ready: float | None = None
    phases: list[tuple[float, str]] = field(default_factory=list)       # (time, phase) on each change
    readiness: list[tuple[float, bool]] = field(default_factory=list)   # (time, ready) on each change


def _ready(obj: dict[str, Any]) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class Watcher:
    """One cluster-wide watch of GoldRushPipelines; `records[(ns, name)]` is updated as events arrive."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.records: dict[tuple[str, str], ObjRecord] = {}
        self.ready_count = 0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def record(self, key: tuple[str, str]) -> ObjRecord:
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = ObjRecord()
        return rec

    def _apply(self, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        rec = self.record((meta.get("namespace", ""), meta.get("name", "")))
        status = obj.get("status") or {}
        rec.pipeline_id = status.get("pipelineId") or rec.pipeline_id
        rec.uid = meta.get("uid") or rec.uid
        phase = status.get("phase")
        if phase != rec.phase:
            rec.phase = phase
            rec.phases.append((now, phase))
        ready = _ready(obj)
        if ready != rec.ready:
            rec.ready = ready
            rec.readiness.append((now, ready))
            self.ready_count += 1 if ready else -1
            if ready and rec.first_ready is None:
                rec.first_ready = now
        self._changed.set()

    async def start(self) -> None:
        data = await self.kube.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}")
        now = time.time()
        for item in data.get("items") or []:
            self._apply(item, now)
        rv = data["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        while True:
            path = (f"/apis/{GROUP}/{VERSION}/{PLURAL}?watch=1&allowWatchBookmarks=true"
                    f"&resourceVersion={rv}&timeoutSeconds=3600")
            try:
                async with self.kube.session.get(self.kube.url + path,
                                                 timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                    async for line in r.content:
                        if not line.strip():
                            continue
                        ev = json.loads(line)
                        obj = ev.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if ev.get("type") in ("ADDED", "MODIFIED"):
                            self._apply(obj, time.time())
                        elif ev.get("type") == "DELETED":
                            meta = obj.get("metadata") or {}
                            rec = self.records.pop((meta.get("namespace", ""), meta.get("name", "")), None)
                            if rec is not None and rec.ready:
                                self.ready_count -= 1
                        elif ev.get("type") == "ERROR":
                            raise RuntimeError("watch expired")
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                await asyncio.sleep(0.5)
                data = await self.kube.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}")
                now = time.time()
                for item in data.get("items") or []:
                    self._apply(item, now)
                rv = data["metadata"]["resourceVersion"]

    async def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
