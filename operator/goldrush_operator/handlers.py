"""kopf handlers: thin adapters from kopf events to the scheduler and the controller. The only kopf importer.

- every watch event of a GoldRushPipeline updates its slim record (`state.Store.observe`) and wakes it in
  the scheduler when its generation, deletion or a control annotation changed; DELETED drops it;
- Secrets are not watched through kopf (that would bring every Secret's value into the process):
  `secretwatch.SecretWatch`, started here, watches their metadata only and wakes the users of a referenced
  Secret that changed (rotation);
- credentials objects (GoldRushCredentials, ClusterGoldRushCredentials) and Namespace labels go to
  `controller.creds.CredentialsController` (its task checks keys and writes their status; no finalizer);
- deletion has no kopf handler: the finalizer `goldrush.dev/finalizer` is the operator's own (added with the
  create's intent mark, removed when the remote is gone), and an object being deleted that carries it is woken
  like any other: its pass is the finalizer's work, under the same Lease gate as every write (kopf's own
  finalizer setting names one that no handler requires, so kopf never adds or removes a finalizer);
- kopf keeps no memory per object between events (`_NoObjectMemories`): the records in `state.Store` are the
  only per-object state; its worker per object, which holds the object's last body while idle, exits after
  1 s idle (`apply_settings`);
- start-up configures kopf and starts the scheduler, the key watcher and the loop-lag monitor; the liveness
  probe compares a quiet watch with a fresh LIST.
- with leader election (`Runtime.election`), the election task runs too; `take_over` prepares the objects
  of a newly acquired Lease; the cleanup handler stops writing and releases the Leases (graceful stop: a
  standby takes over at once).
  A standby keeps watching (its records stay warm) and its liveness probe is the same watch check.
- with shards, when the apiserver serves sharded lists and watches (`ShardedWatch`), the pipeline watch asks
  for the objects of the shards this replica holds only, and follows the shards held: a replica then holds
  in memory only the objects it reconciles (a standby none); otherwise every replica watches every object.

`cli.run` builds the `Runtime` and passes it to `start` (kopf's `memo`). kopf's own Event posting is off
(every Event the operator emits is scrubbed and sent by the controller); kopf keeps no diff-base, and
with no change or deletion handlers it writes no progress annotations either (its progress storage is set
to the `goldrush.dev` prefix all the same, should a handler ever need one).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kopf._cogs.structs.references import Insights  # no public name (kopf 1.x)
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory  # no public name (kopf 1.x)

from goldrush_operator.controller.creds import CredentialsController
from goldrush_operator.controller.failure import watch_service_key
from goldrush_operator.controller.loop import Controller
from goldrush_operator.election import Election
from goldrush_operator.kube import LIST_PAGE_SIZE, KubeError
from goldrush_operator.lease import shard_of, shard_selector
from goldrush_operator.resource import GROUP, KOPF_FINALIZER, PLURAL, VERSION
from goldrush_operator.resource_credentials import (
    KIND_CLUSTER_CREDENTIALS,
    KIND_CREDENTIALS,
    PLURAL_CLUSTER_CREDENTIALS,
    PLURAL_CREDENTIALS,
)
from goldrush_operator.scheduler import LoopLag, Scheduler
from goldrush_operator.secretwatch import SecretWatch
from goldrush_operator.state import ObjectKey, ObjectRecord, Store, object_key

log = logging.getLogger("goldrush_operator.handlers")


@dataclass
class ShardedWatch:
    """The pipeline watch of a sharded replica, filtered by the apiserver (`ShardedListAndWatch`, alpha in
    Kubernetes 1.36): `settings.watching.shard_selectors` of kopf carries `lease.shard_selector` of the shards
    held, and kopf's watch is restarted (a fresh list with the new selector) whenever they change.

    kopf reads the selector when a watch stream starts and re-lists only after an error, so the restart goes
    through kopf's orchestrator: the pipeline resource leaves kopf's `insights` (the watch stops, its queued
    events are processed) and comes back (a new watch lists the objects of the new selector). `serves` asks
    the apiserver once at start-up; without the feature the selector is never set (client-side shards).
    """

    shards: int
    serves: Callable[[str], Any]  # `kube.Kube.serves_shard_selectors` (of the operator's namespace)
    insights: Insights = field(default_factory=Insights)  # given to kopf.run
    settings: kopf.OperatorSettings | None = None  # set by `configure` when the apiserver serves the feature
    held: frozenset[int] | None = None  # the shards selected (None: not sharded server-side)

    @property
    def selector(self) -> str:
        """What the pipeline watch and the takeover's listing ask for now ("" = everything)."""
        return "" if self.held is None else shard_selector(self.held, self.shards)

    def select(self, held: frozenset[int]) -> None:
        assert self.settings is not None
        self.held = held
        self.settings.watching.shard_selectors[GROUP, PLURAL] = self.selector

    async def restart(self) -> None:
        """Restart kopf's pipeline watch(es) so that they list again with the current selector."""
        insights = self.insights
        resource = next((r for r in insights.watched_resources if r.group == GROUP and r.plural == PLURAL), None)
        if resource is None:
            return  # kopf does not watch it yet: its first watch starts with the selector
        async with insights.revised:
            insights.watched_resources.discard(resource)
            insights.revised.notify_all()
        # kopf's orchestrator takes the condition's lock on its way out of `wait()` and stops the watch while it
        # holds it, so once it has the lock the next `async with` below waits until the old watch is gone.
        await asyncio.sleep(0.1)
        async with insights.revised:
            insights.watched_resources.add(resource)
            insights.revised.notify_all()


@dataclass
class Runtime:
    """What the handlers need (kopf's memo); built by `cli.run`.

    Watch liveness: `seen` holds the resourceVersion of every pipeline as the watch delivered it. A quiet
    watch is normal, so silence alone never fails the probe: after `watch_silence_limit` seconds without
    events the probe compares `seen` with a fresh LIST, and fails only when the two have disagreed for longer
    than `watch_stale_grace` (a dead or hung stream that kopf's own timeouts did not recover).
    """

    controller: Controller
    store: Store
    scheduler: Scheduler
    list_versions: Callable[[tuple[str, ...], str], Any]  # `kube.Kube.list_pipeline_versions`
    secret_watch: SecretWatch | None = None
    credentials: CredentialsController | None = None
    operator_namespace: str = ""
    on_loop_lag: Callable[[float], None] = lambda _lag: None
    watch_silence_limit: float = 120.0
    watch_stale_grace: float = 90.0
    last_watch_event: float = field(default_factory=time.monotonic)
    namespaces: tuple[str, ...] = ()
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    stale_since: float | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    election: Election | None = None
    election_task: asyncio.Task[None] | None = None
    sharded_watch: ShardedWatch | None = None
    close_writes: Callable[[], Awaitable[None]] | None = None  # `kube.Kube.aclose`, the last step of cleanup
    open_pool: Callable[[], None] = lambda: None  # `goldrush_api.open_pool` of the API's URL, run at start-up
    close_pools: Callable[[], Awaitable[None]] | None = None  # `goldrush_api.reset_shared_state`, at cleanup

    def outside(self, uid: str) -> bool:
        """An object of a shard the sharded watch did not select (an event the old watch still delivered)."""
        sw = self.sharded_watch
        return sw is not None and sw.held is not None and bool(uid) and shard_of(uid, sw.shards) not in sw.held

    def watch_selector(self) -> str:
        """The `shardSelector` the pipeline watch uses ("" when it watches every object)."""
        return self.sharded_watch.selector if self.sharded_watch is not None else ""


class _NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Keep no `last-handled-configuration` annotation, and build no essence to compare with one.

    There are no create/update handlers that need kopf's diff (changes are detected from
    `metadata.generation` and Secret hashes), so kopf's diff-base would only cost one Kubernetes write per
    object on creation and per spec change, and copy the spec into an annotation. kopf also builds the
    essence of every event's body (two deep copies and a diff against nothing), about a tenth of the event
    loop's work during a burst of creates (bench/README, finding 26): it is empty here.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class _NoObjectMemories(ResourceMemories):
    """kopf keeps no memory per object between events.

    kopf's own `ResourceMemories` keeps a `ResourceMemory` for every object of every watched resource for
    the object's life: a copy of the memo, an error throttler, daemon and index state, about 1 KB in a dozen
    small allocations per object, made in the middle of a creation burst (bench/README.md, finding 23). It
    serves daemons, timers, change/resume handlers and indexes, none of which the operator registers (a unit
    test checks the registry); its event handlers keep their own slim records (`state.Store`). So every
    recall is ephemeral: the memory lives for the one event being processed.
    """

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing,
                                    ephemeral=True)


WORKER_IDLE_SECONDS = 0.2
"""How long kopf's worker for an object waits for its next event before it exits (kopf's default: 5 s). While it
waits it keeps the object's last event, the whole body: after a list, every listed object's body at once. The
event handler only updates the object's slim record, so a worker that exits early costs only a new worker at the
object's next event (bench/README findings 35 and 39)."""


def apply_settings(settings: kopf.OperatorSettings) -> None:
    """kopf's settings of the operator (called by `configure`): storages, timeouts, paged lists."""
    settings.persistence.finalizer = KOPF_FINALIZER  # required by no handler: kopf never writes it
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBaseStorage()
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.inactivity_timeout = 70
    settings.watching.chunk_size = LIST_PAGE_SIZE  # the initial and re-lists in pages: one page in memory at a time
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_settings(settings)
    rt: Runtime = memo.runtime
    rt.open_pool()  # the GoldRush connection pool now, not in the first pass of a burst
    tick = rt.controller.settings.poll_fast_seconds  # the poll grid's: periodic wake-ups meet on its ticks
    rt.tasks = [
        asyncio.create_task(rt.scheduler.run(), name="goldrush-scheduler"),
        asyncio.create_task(watch_service_key(rt.controller.key_source, rt.store, rt.scheduler.wake, tick),
                            name="goldrush-key-watch"),
        asyncio.create_task(LoopLag(rt.on_loop_lag, idle_interval=tick).run(), name="goldrush-loop-lag"),
    ]
    if rt.credentials is not None:
        rt.tasks.append(asyncio.create_task(rt.credentials.run(), name="goldrush-credentials"))
    if rt.secret_watch is not None:
        watched = rt.namespaces
        if watched and rt.operator_namespace and rt.operator_namespace not in watched:
            watched = (*watched, rt.operator_namespace)  # key Secrets of ClusterGoldRushCredentials
        rt.tasks.append(asyncio.create_task(rt.secret_watch.run(watched), name="goldrush-secret-watch"))
    if rt.election is not None:
        await _configure_sharded_watch(rt, settings)
        rt.election_task = asyncio.create_task(rt.election.run(), name="goldrush-election")


async def _configure_sharded_watch(rt: Runtime, settings: kopf.OperatorSettings) -> None:
    """Before the first watch: with shards, filter it server-side if the apiserver can (see `ShardedWatch`)."""
    sw, election = rt.sharded_watch, rt.election
    if sw is None or election is None:
        return
    if not await sw.serves(election.namespace):
        rt.sharded_watch = None
        log.info("sharded watch: client-side (the apiserver does not filter by shardSelector; feature gate "
                 "ShardedListAndWatch): every replica watches every pipeline and reconciles those of its shards")
        return
    sw.settings = settings
    sw.select(frozenset())  # a replica holding no shard yet lists none

    async def follow(held: frozenset[int]) -> None:
        await follow_shards(rt, held)

    election.configure_watch(follow)
    log.info("sharded watch: server-side (ShardedListAndWatch): this replica watches only the pipelines of the "
             "shards it holds")


async def follow_shards(rt: Runtime, held: frozenset[int]) -> None:
    """The shards held changed (`Election.configure_watch`): restart the watch with the selector of those
    held, then forget the objects of the shards given up."""
    sw = rt.sharded_watch
    if sw is None:
        return
    sw.select(held)
    log.info("sharded watch: shards %s -> %s", ",".join(map(str, sorted(held))) or "none", sw.selector)
    await sw.restart()
    # After the old watch is gone: the events it still had queued were processed on its way out.
    for key, record in list(rt.store.records.items()):
        if rt.outside(record.uid):
            _forget(rt, key)


@kopf.on.cleanup()
async def stop_tasks(memo: kopf.Memo, **_: Any) -> None:
    """kopf's cleanup: stop the tasks, release the Lease, then close the GoldRush pools and the writes client."""
    rt: Runtime = memo.runtime
    if rt.election is not None:
        rt.election.stopping = True  # no write leaves this process from now on
    for task in [*rt.tasks, *([rt.election_task] if rt.election_task else [])]:
        task.cancel()
    for task in [*rt.tasks, *([rt.election_task] if rt.election_task else [])]:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if rt.election is not None:
        await rt.election.release()
    if rt.close_pools is not None:  # the GoldRush connections: nothing is sent any more
        await rt.close_pools()
    if rt.close_writes is not None:
        await rt.close_writes()


def _memory_reset(record: ObjectRecord) -> ObjectRecord:
    """A record that keeps what the watch delivered and forgets what an earlier term remembered."""
    fresh = ObjectRecord(key=record.key, uid=record.uid)
    fresh._snapshot, fresh.wake_key, fresh.deleting = record._snapshot, record.wake_key, record.deleting
    fresh.finalized = record.finalized
    fresh.secret_keys = record.secret_keys
    return fresh


def _caught_up(seen: str | None, listed: str) -> bool:
    if seen is None:
        return False
    if seen.isdigit() and listed.isdigit():
        return int(seen) >= int(listed)  # etcd revisions; newer events may already have arrived
    return seen == listed


async def take_over(rt: Runtime, admitted: Callable[[ObjectKey], bool], within: float) -> None:
    """Prepare the objects of a newly acquired Lease before the first pass: wait (up to `within` seconds)
    until the watch has delivered at least what a fresh LIST shows (the previous holder's last writes), then
    drop the controller's memory of those objects (it may be from an earlier term) and wake them."""
    before = set(rt.seen)
    try:
        present = await rt.list_versions(rt.namespaces, rt.watch_selector())
    except KubeError as exc:
        log.warning("takeover: cannot list the pipelines (%s); relying on the watch", exc)
        present = None
    listed = {k: v for k, v in (present or {}).items() if admitted(k)}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        behind = [k for k, v in listed.items() if not _caught_up(rt.seen.get(k), v)]
        if not behind:
            break
        await asyncio.sleep(0.05)
    else:
        log.warning("takeover: the watch is still behind a fresh list after %gs; continuing", within)
    if rt.sharded_watch is not None and present is not None:
        # A restarted watch lists what exists, but cannot tell what was deleted while it restarted.
        for key in before - set(present):
            _forget(rt, key)
    rt.controller.external.became_writer()  # creates the previous holder may have left in flight
    for key, record in list(rt.store.records.items()):
        if admitted(key):
            rt.store.records[key] = _memory_reset(record)
            if record.wanted:
                rt.scheduler.wake(key)


def _forget(rt: Runtime, key: ObjectKey) -> None:
    """Drop every trace of an object: it was deleted, or it left the shards this replica watches."""
    rt.seen.pop(key, None)
    rt.store.forget(key)
    if rt.credentials is not None:
        rt.credentials.keyring.release(key)
    rt.scheduler.forget(key)
    rt.controller.forget(key)


def on_pipeline(rt: Runtime, body: Any, event_type: str | None) -> None:
    """A watch event of a pipeline (also called by unit tests)."""
    rt.last_watch_event = time.monotonic()
    rt.stale_since = None
    key = object_key(body)
    if event_type == "DELETED":
        _forget(rt, key)
        return
    meta = body.get("metadata") or {}
    if rt.outside(str(meta.get("uid") or "")):
        _forget(rt, key)
        return
    rt.seen[key] = str(meta.get("resourceVersion"))
    record, wake = rt.store.observe(body)
    if wake and record.wanted:
        rt.scheduler.wake(key)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    on_pipeline(memo.runtime, body, type)


@kopf.on.event(GROUP, VERSION, PLURAL_CREDENTIALS)
async def credentials_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if memo.runtime.credentials is not None:
        memo.runtime.credentials.on_event(KIND_CREDENTIALS, body, type)


@kopf.on.event(GROUP, VERSION, PLURAL_CLUSTER_CREDENTIALS)
async def cluster_credentials_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if memo.runtime.credentials is not None:
        memo.runtime.credentials.on_event(KIND_CLUSTER_CREDENTIALS, body, type)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if memo.runtime.credentials is not None:
        memo.runtime.credentials.on_namespace(body, type)


async def probe(rt: Runtime) -> str:
    """Liveness: fails when the pipeline watch demonstrably stopped delivering events (see `Runtime`)."""
    now = time.monotonic()
    if rt.election_task is not None and rt.election_task.done() and not rt.election_task.cancelled():
        raise kopf.PermanentError("the leader election task ended")
    silent = now - rt.last_watch_event
    if silent < rt.watch_silence_limit:
        return f"last watch event {silent:.0f}s ago"
    try:
        current = await rt.list_versions(rt.namespaces, rt.watch_selector())
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


@kopf.on.probe(id="watch")
async def watch_probe(memo: kopf.Memo, **_: Any) -> str:
    return await probe(memo.runtime)


def start(runtime: Runtime, namespaces: tuple[str, ...], liveness_endpoint: str | None) -> None:
    """Run kopf until it is stopped by a signal: standalone (no kopf peering); replicas coordinate through
    Leases when `runtime.election` is set, else this process is the one writer."""
    runtime.namespaces = tuple(namespaces)
    # Everything built so far (modules, classes, kopf's and the clients' machinery: about 80,000 objects)
    # lives as long as the process: out of the cyclic collector's reach, a full collection during a burst
    # of events costs half of what it did (bench/README, finding 24).
    gc.freeze()
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
        memories=_NoObjectMemories(),
        insights=runtime.sharded_watch.insights if runtime.sharded_watch is not None else None,
        memo=kopf.Memo(runtime=runtime),
    )
