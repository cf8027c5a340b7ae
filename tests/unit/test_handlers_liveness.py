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

    async def list_pipeline_versions(self, namespaces: tuple[str, ...]) -> dict[tuple[str, str], str]:
        self.calls += 1
        if self.fail:
            raise KubeError("Kubernetes API unreachable")
        return dict(self.versions)


async def _no_pass(key: tuple[str, str]) -> float | None:
    return None


@pytest.fixture
def rt() -> Any:
    kube = FakeKube()
    runtime = handlers.Runtime(controller=SimpleNamespace(forget=lambda key: None), store=Store(),  # type: ignore[arg-type]
                               scheduler=Scheduler(_no_pass), list_versions=kube.list_pipeline_versions)
    runtime.kube = kube  # type: ignore[attr-defined]
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
