"""The handlers' start-up (handlers.configure): the GoldRush connection pool is built before the operator's
tasks start, so that no pass pays for it; the cleanup stops what the start-up started."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from goldrush_operator import handlers
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.scheduler import Scheduler
from goldrush_operator.state import Store

pytestmark = pytest.mark.unit


async def _no_pass(key: tuple[str, str]) -> float | None:
    return None


async def test_the_start_up_builds_the_connection_pool_before_any_task_runs() -> None:
    settings = Settings(poll_fast_seconds=2.0)
    controller = SimpleNamespace(settings=settings, key_source=ServiceKeySource(settings))
    tasks_at_open: list[int] = []
    rt = handlers.Runtime(controller=controller, store=Store(), scheduler=Scheduler(_no_pass),  # type: ignore[arg-type]
                          list_versions=lambda *_: None)
    rt.open_pool = lambda: tasks_at_open.append(len(rt.tasks))
    memo: Any = kopf.Memo(runtime=rt)
    await handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    try:
        assert tasks_at_open == [0], "built once, before the scheduler and the other tasks started"
        assert rt.tasks and not any(task.done() for task in rt.tasks)
    finally:
        await handlers.stop_tasks(memo=memo)
    assert all(task.done() for task in rt.tasks)
