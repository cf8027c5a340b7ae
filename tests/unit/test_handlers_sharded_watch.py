"""Server-side sharded watches (handlers.ShardedWatch, follow_shards, take_over; Election.configure_watch):
the pipeline watch's `shardSelector` follows the shards held, the objects of shards given up are forgotten,
a takeover lists with the selector and forgets what was deleted while the watch restarted."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from test_handlers_liveness import FakeKube
from test_lease import TIMING, Clock, FakeLeases, election

from goldrush_operator import handlers
from goldrush_operator.lease import shard_of, shard_selector
from goldrush_operator.resource import GROUP, PLURAL, VERSION
from goldrush_operator.scheduler import Scheduler
from goldrush_operator.state import Store

PIPELINES = kopf.Resource(GROUP, VERSION, PLURAL, namespaced=True)
CREDENTIALS = kopf.Resource(GROUP, VERSION, "goldrushcredentials", namespaced=True)


async def _no_pass(key: tuple[str, str]) -> float | None:
    return None


async def _serves(namespace: str) -> bool:
    return True


@pytest.fixture
def rt() -> Any:
    kube = FakeKube()
    external = SimpleNamespace(became_writer=lambda: None)
    runtime = handlers.Runtime(controller=SimpleNamespace(forget=lambda key: None, external=external),  # type: ignore[arg-type]
                               store=Store(), scheduler=Scheduler(_no_pass), list_versions=kube.list_pipeline_versions)
    runtime.kube = kube  # type: ignore[attr-defined]
    sw = handlers.ShardedWatch(3, _serves)
    sw.settings = kopf.OperatorSettings()
    runtime.sharded_watch = sw
    return runtime


def _uids_by_shard(shards: int, each: int) -> dict[str, str]:
    """name -> uid, `each` objects per shard (names s<shard>-<n>)."""
    rnd, out = random.Random(1), {}
    counts = [0] * shards
    while min(counts) < each:
        uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        shard = shard_of(uid, shards)
        if counts[shard] < each:
            out[f"s{shard}-{counts[shard]}"] = uid
            counts[shard] += 1
    return out


def _event(rt: Any, name: str, uid: str, rv: str = "1") -> None:
    body: Any = {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "uid": uid}}
    handlers.on_pipeline(rt, body, "MODIFIED")


async def test_following_the_shards_sets_kopfs_selector_and_forgets_the_objects_of_shards_given_up(rt: Any) -> None:
    uids = _uids_by_shard(3, 4)
    for name, uid in uids.items():
        _event(rt, name, uid)
    await handlers.follow_shards(rt, frozenset({1}))
    assert sorted(k[1] for k in rt.store.records) == [f"s1-{i}" for i in range(4)]
    assert sorted(k[1] for k in rt.seen) == [f"s1-{i}" for i in range(4)]
    settings = rt.sharded_watch.settings
    assert settings.watching.shard_selectors.collect(PIPELINES) == [shard_selector({1}, 3)]
    assert settings.watching.shard_selectors.collect(CREDENTIALS) == []  # only the pipelines are sharded
    assert rt.watch_selector() == shard_selector({1}, 3)
    # The probe compares the watch with a list of the same shards.
    rt.last_watch_event -= 10_000
    await handlers.probe(rt)
    assert rt.kube.selectors[-1] == shard_selector({1}, 3)


async def test_a_restart_takes_the_pipelines_out_of_kopfs_insights_and_back(rt: Any) -> None:
    """kopf's orchestrator restarts a watch when its resource leaves `insights.watched_resources` and comes
    back; each revision is announced on `insights.revised` (what the orchestrator waits on)."""
    import asyncio

    insights = rt.sharded_watch.insights
    insights.watched_resources.update({PIPELINES, CREDENTIALS})
    seen: list[set[str]] = []

    async def orchestrator() -> None:
        async with insights.revised:
            while True:
                await insights.revised.wait()
                seen.append({r.plural for r in insights.watched_resources})

    task = asyncio.create_task(orchestrator())
    await asyncio.sleep(0)
    await rt.sharded_watch.restart()
    await asyncio.sleep(0.05)
    task.cancel()
    assert seen == [{"goldrushcredentials"}, {"goldrushcredentials", PLURAL}]


async def test_a_takeover_lists_with_the_selector_and_forgets_what_was_deleted_meanwhile(rt: Any) -> None:
    uids = _uids_by_shard(3, 2)
    for name, uid in uids.items():
        _event(rt, name, uid)
    await handlers.follow_shards(rt, frozenset({0, 2}))
    # s0-1 was deleted while the watch restarted: the fresh list does not show it, no DELETED came.
    rt.kube.versions = {("ns", n): "1" for n in ("s0-0", "s2-0", "s2-1")}
    await handlers.take_over(rt, lambda key: True, within=1.0)
    assert rt.kube.selectors == [shard_selector({0, 2}, 3)]
    assert sorted(k[1] for k in rt.store.records) == ["s0-0", "s2-0", "s2-1"]


async def test_the_election_tells_the_watch_the_shards_held_before_it_takes_them_over() -> None:
    leases, clock = FakeLeases(), Clock()
    calls: list[tuple[str, Any]] = []
    a = election(leases, clock, "a", shards=3)

    async def on_shards(held: frozenset[int]) -> None:
        calls.append(("watch", sorted(held)))

    async def on_acquired(admitted: Any) -> None:
        calls.append(("takeover", None))

    a.configure_takeover(on_acquired, lambda: None)
    a.configure_watch(on_shards)
    await a.step()  # its first step: one shard (another replica may be starting too)
    clock.now += TIMING.retry_period
    await a.step()  # alone: the rest
    assert calls == [("watch", [0]), ("takeover", None), ("watch", [0, 1, 2]), ("takeover", None)]
    await a.step()
    assert len(calls) == 4  # nothing changed: no restart
    b = election(leases, clock, "b", shards=3)
    for _ in range(4):  # b joins: a releases shards down to its fair share
        clock.now += TIMING.retry_period
        await b.step()
        await a.step()
    assert calls[-1] == ("watch", a.owned()) and 0 < len(a.owned()) < 3


async def test_events_of_objects_outside_the_shards_held_leave_no_record(rt: Any) -> None:
    """What the old watch still delivers on its way out (or an apiserver that ignored the selector)."""
    uids = _uids_by_shard(3, 2)
    await handlers.follow_shards(rt, frozenset({2}))
    for name, uid in uids.items():
        _event(rt, name, uid)
    assert sorted(k[1] for k in rt.store.records) == ["s2-0", "s2-1"]
    assert sorted(k[1] for k in rt.seen) == ["s2-0", "s2-1"]
    rt.sharded_watch.held = None  # not sharded server-side: every object is kept
    _event(rt, "s0-0", uids["s0-0"])
    assert ("ns", "s0-0") in rt.store.records
