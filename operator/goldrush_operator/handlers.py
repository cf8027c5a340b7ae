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
from dataclasses import dataclass, field
from typing import Any

import kopf

from goldrush_operator.kube import KubeError
from goldrush_operator.reconciler import Reconciler, Retry, run_loop
from goldrush_operator.registry import Registry
from goldrush_operator.resource import FINALIZER, GROUP, PLURAL, VERSION
from goldrush_operator.secret_values import decode_secret_data

log = logging.getLogger("goldrush_operator.handlers")


@dataclass
class Runtime:
    """What the handlers need; built by `cli.run`.

    Watch liveness: `seen` holds the resourceVersion of every pipeline as the watch delivered it. A quiet
    watch is normal (nothing changes), so silence alone never fails the probe: after `watch_silence_limit`
    seconds without events the probe compares `seen` with a fresh LIST, and fails only when the two have
    disagreed for longer than `watch_stale_grace` (events that the watch should have delivered did not
    arrive: a dead or hung stream that kopf's own timeouts did not recover).
    """

    reconciler: Reconciler
    registry: Registry
    watch_silence_limit: float = 120.0
    watch_stale_grace: float = 90.0
    last_watch_event: float = 0.0
    namespaces: tuple[str, ...] = ()
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    stale_since: float | None = None


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


class _NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Keep no `last-handled-configuration` annotation.

    The operator has no create/update handlers that need kopf's diff (changes are detected from
    `metadata.generation` and Secret hashes), so kopf's diff-base would only cost one Kubernetes write per
    object on creation and per spec change, and copy the spec into an annotation. Deletion is detected before
    kopf consults the diff-base, so the finalizer still runs.
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBaseStorage()
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
def pipeline_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    rt = _rt()
    rt.last_watch_event = time.monotonic()
    rt.stale_since = None
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace")), str(meta.get("name")))
    if type == "DELETED":
        rt.seen.pop(key, None)
    else:
        rt.seen[key] = str(meta.get("resourceVersion"))
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
async def watch_probe(**_: Any) -> str:
    """Liveness: fails when the pipeline watch demonstrably stopped delivering events (see `Runtime`)."""
    rt = _rt()
    now = time.monotonic()
    silent = now - rt.last_watch_event
    if silent < rt.watch_silence_limit:
        return f"last watch event {silent:.0f}s ago"
    try:
        current = await rt.reconciler.kube.list_pipeline_versions(rt.namespaces)
    except KubeError as exc:
        # The apiserver itself is unreachable: restarting the operator would not help.
        return f"no watch event for {silent:.0f}s; cannot compare with a list: {exc}"
    missed = sorted(k for k in set(current) | set(rt.seen) if current.get(k) != rt.seen.get(k))
    if not missed:
        rt.stale_since = None
        rt.last_watch_event = now  # the quiet watch agrees with the cluster: it is healthy
        return f"watch quiet for {silent:.0f}s and consistent with a fresh list"
    if rt.stale_since is None:
        rt.stale_since = now  # the events may still be on their way
    stale = now - rt.stale_since
    if stale > rt.watch_stale_grace:
        raise kopf.PermanentError(
            f"the watch missed changes of {len(missed)} object(s) for {stale:.0f}s (e.g. {missed[0][0]}/{missed[0][1]})"
        )
    return f"watch behind a fresh list for {stale:.0f}s ({len(missed)} object(s))"


def start(namespaces: tuple[str, ...], liveness_endpoint: str | None) -> None:
    """Run kopf (standalone: one active replica, no peering) until it is stopped by a signal."""
    _rt().namespaces = tuple(namespaces)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
    )
