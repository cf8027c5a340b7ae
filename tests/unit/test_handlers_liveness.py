"""The watch liveness probe (handlers.probe): silence alone is healthy; a watch that disagrees with a
fresh LIST for longer than the grace period fails."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from goldrush_operator import handlers
from goldrush_operator.kube import KubeError
from goldrush_operator.scheduler import Scheduler
from goldrush_operator.state import Store


class FakeKube:
    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], str] = {}
        self.fail = False
        self.calls = 0
        self.selectors: list[str] = []

    async def list_pipeline_versions(
        self, namespaces: tuple[str, ...], shard_selector: str = "",
    ) -> dict[tuple[str, str], str]:
        self.calls += 1
        self.selectors.append(shard_selector)
        if self.fail:
            raise KubeError("Kubernetes API unreachable")
        return dict(self.versions)


async def _no_pass(key: tuple[str, str]) -> float | None:
    return None


@pytest.fixture
def rt() -> Any:
    kube = FakeKube()
    takeovers: list[bool] = []
    external = SimpleNamespace(became_writer=lambda: takeovers.append(True))
    runtime = handlers.Runtime(controller=SimpleNamespace(forget=lambda key: None, external=external),  # type: ignore[arg-type]
                               store=Store(),
                               scheduler=Scheduler(_no_pass), list_versions=kube.list_pipeline_versions)
    runtime.kube = kube  # type: ignore[attr-defined]
    runtime.takeovers = takeovers  # type: ignore[attr-defined]
    return runtime


def _event(rt: Any, name: str, rv: str, type_: str | None = "MODIFIED") -> None:
    body: Any = {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "uid": "u-" + name}}
    handlers.on_pipeline(rt, body, type_)


async def test_recent_event_is_healthy_without_listing(rt: Any) -> None:
    _event(rt, "a", "1")
    assert "last watch event" in await handlers.probe(rt)
    assert rt.kube.calls == 0


async def test_quiet_but_consistent_watch_is_healthy(rt: Any) -> None:
    _event(rt, "a", "1")
    rt.kube.versions = {("ns", "a"): "1"}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "consistent" in await handlers.probe(rt)
    # ... and an empty namespace with no events at all is healthy too.
    _event(rt, "a", "1", "DELETED")
    rt.kube.versions = {}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "consistent" in await handlers.probe(rt)


async def test_missed_changes_fail_only_after_the_grace_period(rt: Any) -> None:
    _event(rt, "a", "1")
    rt.kube.versions = {("ns", "a"): "2", ("ns", "b"): "7"}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "behind" in await handlers.probe(rt)
    rt.stale_since = time.monotonic() - rt.watch_stale_grace - 1
    with pytest.raises(kopf.PermanentError, match="missed changes of 2 object"):
        await handlers.probe(rt)
    # The watch catching up resets it.
    _event(rt, "a", "2")
    _event(rt, "b", "7")
    assert "last watch event" in await handlers.probe(rt)


async def test_unreachable_apiserver_does_not_fail_liveness(rt: Any) -> None:
    rt.last_watch_event = time.monotonic() - 10_000
    rt.kube.fail = True
    assert "cannot compare" in await handlers.probe(rt)


# ------------------------------------------------------------------------------------------ leader election


async def test_a_healthy_standby_passes_liveness(rt: Any) -> None:
    """A standby runs no pass, yet its watch is checked like a leader's: it is not restarted."""
    from test_lease import TIMING, Clock, FakeLeases

    from goldrush_operator.election import Election

    leases = FakeLeases()
    holder = Election(leases, "ops", "a", TIMING, lambda key: None, clock=Clock())
    await holder.step()
    standby = Election(leases, "ops", "b", TIMING, lambda key: None, clock=Clock())
    await standby.step()
    assert not standby.leader
    rt.election = standby
    _event(rt, "a", "1")
    rt.kube.versions = {("ns", "a"): "1"}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "consistent" in await handlers.probe(rt)


async def test_takeover_waits_for_the_watch_then_forgets_the_earlier_terms_memory(rt: Any) -> None:
    import asyncio

    _event(rt, "a", "5")
    _event(rt, "b", "3")
    record = rt.store.get(("ns", "a"))
    record.pipeline_id, record.create_pending = "old-id", "token"  # remembered from an earlier term
    rt.kube.versions = {("ns", "a"): "6", ("ns", "b"): "3"}  # the previous holder's last write to a
    task = asyncio.create_task(handlers.take_over(rt, lambda key: True, within=5.0))
    await asyncio.sleep(0.2)
    assert not task.done()  # a's version 6 has not arrived through the watch yet
    _event(rt, "a", "6")
    await asyncio.wait_for(task, 2)
    fresh = rt.store.get(("ns", "a"))
    assert fresh.pipeline_id is None and fresh.create_pending is None and fresh.uid == "u-a"
    assert rt.takeovers == [True]  # creates the previous holder left pending wait from now (External)
    assert fresh.snapshot()["metadata"]["resourceVersion"] == "6"
    assert rt.scheduler.due_in(("ns", "a")) is not None and rt.scheduler.due_in(("ns", "b")) is not None


async def test_takeover_only_touches_admitted_objects_and_gives_up_waiting(rt: Any) -> None:
    _event(rt, "a", "5")
    _event(rt, "b", "3")
    rt.store.get(("ns", "b")).pipeline_id = "kept"
    rt.scheduler.forget(("ns", "a"))
    rt.scheduler.forget(("ns", "b"))
    rt.kube.versions = {("ns", "a"): "9", ("ns", "b"): "3"}
    await handlers.take_over(rt, lambda key: key[1] == "a", within=0.2)  # a never catches up: proceeds
    assert rt.store.get(("ns", "b")).pipeline_id == "kept"
    assert rt.scheduler.due_in(("ns", "b")) is None and rt.scheduler.due_in(("ns", "a")) is not None


async def test_a_deleted_object_is_woken_only_while_it_carries_the_operators_finalizer(rt: Any) -> None:
    """Deletion has no kopf handler: the object's pass is the finalizer's work, so an object being deleted
    is woken when (and only when) it carries `goldrush.dev/finalizer`; another controller's does not count."""
    from goldrush_operator.resource import FINALIZER

    def deleting(name: str, finalizers: list[str]) -> Any:
        return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": "7", "uid": "u-" + name,
                             "deletionTimestamp": "2099-01-01T00:00:00Z", "finalizers": finalizers}}

    handlers.on_pipeline(rt, deleting("ours", ["other.io/keep", FINALIZER]), "MODIFIED")
    handlers.on_pipeline(rt, deleting("foreign", ["other.io/keep"]), "MODIFIED")
    assert rt.scheduler.due_in(("ns", "ours")) is not None
    assert rt.scheduler.due_in(("ns", "foreign")) is None
    assert rt.store.get(("ns", "ours")).finalized and not rt.store.get(("ns", "foreign")).finalized
