"""kopf keeps no per-object memory (handlers._NoObjectMemories) and builds no essence of the bodies
(handlers._NoDiffBaseStorage): safe only while the operator registers no daemon, timer, change/resume
handler, index or webhook, which is what these tests pin down."""

from __future__ import annotations

import gc
from typing import Any

import kopf
import pytest

from goldrush_operator import handlers


def _body(name: str) -> Any:
    return {"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushPipeline",
            "metadata": {"namespace": "ns", "name": name, "uid": "uid-" + name}}


def test_the_operator_registers_nothing_that_needs_kopfs_object_memory() -> None:
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers(), "the event handlers are registered"
    assert not registry._spawning.get_all_handlers(), "daemons and timers keep state in kopf's object memory"
    assert not registry._changing.get_all_handlers(), "change/resume handlers keep state in kopf's object memory"
    assert not registry._indexing.get_all_handlers(), "indexes keep state in kopf's object memory"
    assert not registry._webhooks.get_all_handlers()


async def test_each_event_gets_a_fresh_memory_and_none_is_kept() -> None:
    memories = handlers._NoObjectMemories()
    memo = kopf.Memo(runtime="rt")
    first = await memories.recall(_body("a"), memobase=memo)
    again = await memories.recall(_body("a"), memobase=memo)
    assert first is not again
    assert dict(first.memo) == {"runtime": "rt"}  # type: ignore[call-overload]  # the handlers still get the operator's memo
    assert list(memories.iter_all_daemon_memories()) == []


def test_kopf_runs_with_the_memoryless_inventory_and_the_start_up_objects_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs, frozen=gc.get_freeze_count()))
    runtime: Any = type("R", (), {"sharded_watch": None})()
    try:
        handlers.start(runtime, ("ns",), None)
    finally:
        gc.unfreeze()
    assert isinstance(seen["memories"], handlers._NoObjectMemories)
    assert seen["memo"]["runtime"] is runtime
    assert seen["frozen"] > 1000  # what was built before kopf starts is out of the collector's reach


def test_kopf_builds_no_essence_of_the_bodies() -> None:
    storage = handlers._NoDiffBaseStorage()
    body = kopf.Body(_body("a") | {"spec": {"project": "p"}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None


def test_kopf_lists_in_pages_and_keeps_no_diff_base() -> None:
    settings = kopf.OperatorSettings()
    handlers.apply_settings(settings)
    assert settings.watching.chunk_size == 500  # a start-up list of 10,000 objects is read 500 at a time
    assert isinstance(settings.persistence.diffbase_storage, handlers._NoDiffBaseStorage)
    assert settings.posting.enabled is False
    # kopf's worker per object holds the object's last body until idle this long: not kopf's 5 s
    assert settings.queueing.idle_timeout == handlers.WORKER_IDLE_SECONDS <= 0.2
