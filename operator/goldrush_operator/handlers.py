"""kopf handlers: thin adapters from kopf events to the reconciler. The only module that imports kopf.

- one daemon per GoldRushPipeline runs `reconciler.run_loop` (reconcile, sleep fast/slow, wake early);
- every watch event of a pipeline wakes its loop when generation or a control annotation changed;
- every watch event of a Secret that some pipeline references wakes those pipelines (rotation);
- the deletion handler (kopf adds the `goldrush.dev/finalizer` finalizer) deletes or orphans the remote.

`cli.run` calls `install(runtime)` before starting kopf. kopf's own Event posting is off (every Event the
operator emits is scrubbed and sent by the reconciler); kopf keeps its progress in annotations under the
`goldrush.dev` prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from goldrush_operator.credentials import decode_secret_data
from goldrush_operator.reconciler import Reconciler, Retry, run_loop
from goldrush_operator.registry import Registry
from goldrush_operator.resource import FINALIZER, GROUP, PLURAL, VERSION

log = logging.getLogger("goldrush_operator.handlers")


@dataclass
class Runtime:
    """What the handlers need; built by `cli.run`."""

    reconciler: Reconciler
    registry: Registry
    watch_silence_limit: float = 600.0
    last_watch_event: float = 0.0


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make `runtime` the one the handlers use (called once before kopf starts)."""
    global _runtime
    _runtime = runtime
    runtime.last_watch_event = time.monotonic()


def _rt() -> Runtime:
    if _runtime is None:
        raise RuntimeError("goldrush_operator.handlers.install() was not called")
    return _runtime


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-dict copy of kopf's live body, safe to read while kopf updates it."""
    def copy(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value
    result: dict[str, Any] = copy(body)
    return result


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.inactivity_timeout = 70
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def pipeline_daemon(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    rt = _rt()
    state = rt.registry.attach(body)
    stop = asyncio.Event()

    async def bridge() -> None:
        await stopped.wait()
        stop.set()
        state.wake.set()

    bridge_task = asyncio.create_task(bridge())
    try:
        await run_loop(rt.reconciler, lambda: _snapshot(body), state, stop)
    finally:
        bridge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge_task
        # The state stays registered while the object is being deleted: the finalizer still needs it.
        if not body.get("metadata", {}).get("deletionTimestamp"):
            rt.registry.detach(state)


@kopf.on.event(GROUP, VERSION, PLURAL)
def pipeline_event(body: kopf.Body, **_: Any) -> None:
    rt = _rt()
    rt.last_watch_event = time.monotonic()
    rt.registry.notify(body)


@kopf.on.event("", "v1", "secrets")
def secret_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    rt = _rt()
    rt.last_watch_event = time.monotonic()
    meta = body.get("metadata", {})
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    if not rt.registry.referenced(namespace, name):
        return
    data = None if type == "DELETED" else decode_secret_data(body.get("data"), body.get("stringData"))
    woken = rt.registry.secret_event(namespace, name, data)
    if woken:
        log.info("Secret %s/%s changed; woke %d pipeline(s)", namespace, name, woken)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def pipeline_delete(body: kopf.Body, **_: Any) -> None:
    rt = _rt()
    state = rt.registry.get(body)
    try:
        await rt.reconciler.delete(_snapshot(body), state)
    except Retry as retry:
        raise kopf.TemporaryError(retry.message, delay=retry.delay) from None
    rt.registry.detach(state)


@kopf.on.probe(id="watch")
def watch_probe(**_: Any) -> str:
    """Liveness: fails when no watch event arrived for too long (kopf's watch re-lists every few minutes)."""
    rt = _rt()
    silent = time.monotonic() - rt.last_watch_event
    if silent > rt.watch_silence_limit:
        raise kopf.PermanentError(f"no watch event for {silent:.0f}s")
    return f"last watch event {silent:.0f}s ago"


def start(namespaces: tuple[str, ...], liveness_endpoint: str | None) -> None:
    """Run kopf (standalone: one active replica, no peering) until it is stopped by a signal."""
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
    )
