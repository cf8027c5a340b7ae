"""The handlers' start-up (handlers.configure): the GoldRush connection pool is built before the operator's
tasks start, so that no pass pays for it; the cleanup (handlers.stop_tasks) stops what the start-up started
and closes the pool once the tasks are stopped."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from goldrush_operator import handlers
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.goldrush_api import default_shared_state, open_pool, reset_shared_state
from goldrush_operator.scheduler import Scheduler
from goldrush_operator.state import Store

pytestmark = pytest.mark.unit


async def _no_pass(key: tuple[str, str]) -> float | None:
    return None


def _runtime(settings: Settings) -> handlers.Runtime:
    controller = SimpleNamespace(settings=settings, key_source=ServiceKeySource(settings))
    return handlers.Runtime(controller=controller, store=Store(), scheduler=Scheduler(_no_pass),  # type: ignore[arg-type]
                            list_versions=lambda *_: None)


async def test_the_start_up_builds_the_connection_pool_before_any_task_runs() -> None:
    settings = Settings(poll_fast_seconds=2.0)
    tasks_at_open: list[int] = []
    rt = _runtime(settings)
    rt.open_pool = lambda: tasks_at_open.append(len(rt.tasks))
    memo: Any = kopf.Memo(runtime=rt)
    await handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    try:
        assert tasks_at_open == [0], "built once, before the scheduler and the other tasks started"
        assert rt.tasks and not any(task.done() for task in rt.tasks)
    finally:
        await handlers.stop_tasks(memo=memo)
    assert all(task.done() for task in rt.tasks)


async def test_the_cleanup_closes_the_connection_pool_after_the_tasks_and_before_the_kubernetes_writes() -> None:
    rt = _runtime(Settings(poll_fast_seconds=2.0))
    rt.open_pool = lambda: open_pool("https://api.example.test")
    order: list[str] = []

    async def close_pools() -> None:
        order.append(f"pools, tasks done: {all(task.done() for task in rt.tasks)}")
        await reset_shared_state()

    async def close_writes() -> None:
        order.append("writes")

    rt.close_pools, rt.close_writes = close_pools, close_writes
    memo: Any = kopf.Memo(runtime=rt)
    await handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    pool = default_shared_state()
    assert pool.pool_count() == 1
    await handlers.stop_tasks(memo=memo)
    assert order == ["pools, tasks done: True", "writes"]
    assert pool.pool_count() == 0, "the pool built at start-up is closed at cleanup"
