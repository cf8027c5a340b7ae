"""The watch liveness probe (handlers.watch_probe): silence alone is healthy; a watch that disagrees with a
fresh LIST for longer than the grace period fails."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from goldrush_operator import handlers
from goldrush_operator.kube import KubeError
from goldrush_operator.registry import Registry


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


@pytest.fixture
def rt() -> Any:
    kube = FakeKube()
    runtime = handlers.Runtime(reconciler=SimpleNamespace(kube=kube), registry=Registry())  # type: ignore[arg-type]
    handlers.install(runtime)
    return runtime


def _event(name: str, rv: str, type_: str | None = "MODIFIED") -> None:
    body: Any = {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}}
    handlers.pipeline_event(body=body, type=type_)


async def test_recent_event_is_healthy_without_listing(rt: Any) -> None:
    _event("a", "1")
    assert "last watch event" in await handlers.watch_probe()
    assert rt.reconciler.kube.calls == 0


async def test_quiet_but_consistent_watch_is_healthy(rt: Any) -> None:
    _event("a", "1")
    rt.reconciler.kube.versions = {("ns", "a"): "1"}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "consistent" in await handlers.watch_probe()
    # ... and an empty namespace with no events at all is healthy too.
    _event("a", "1", "DELETED")
    rt.reconciler.kube.versions = {}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "consistent" in await handlers.watch_probe()


async def test_missed_changes_fail_only_after_the_grace_period(rt: Any) -> None:
    _event("a", "1")
    rt.reconciler.kube.versions = {("ns", "a"): "2", ("ns", "b"): "7"}
    rt.last_watch_event = time.monotonic() - 10_000
    assert "behind" in await handlers.watch_probe()
    rt.stale_since = time.monotonic() - rt.watch_stale_grace - 1
    with pytest.raises(kopf.PermanentError, match="missed changes of 2 object"):
        await handlers.watch_probe()
    # The watch catching up resets it.
    _event("a", "2")
    _event("b", "7")
    assert "last watch event" in await handlers.watch_probe()


async def test_unreachable_apiserver_does_not_fail_liveness(rt: Any) -> None:
    rt.last_watch_event = time.monotonic() - 10_000
    rt.reconciler.kube.fail = True
    assert "cannot compare" in await handlers.watch_probe()
