"""`goldrush-operator plan`: its calls equal what the controller then sends (fake cluster, MockTransport API)."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from goldrush_operator import cli
from goldrush_operator.config import Settings
from goldrush_operator.goldrush_api import GoldRushClient, SharedState
from goldrush_operator.kube import NotFound
from goldrush_operator.plan import Planner, exit_code, load_documents, render_text
from unit.test_controller import KEY, World, pipeline


class ClusterView:
    """The reads `plan` makes of the cluster, answered from the world's fake Kubernetes."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def get_pipeline_object(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.world.kube.objects.get((namespace, name))
        if obj is None:
            raise NotFound("404", 404)
        return copy.deepcopy(obj)

    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        return await self.world.kube.get_secret(namespace, name)

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        raise NotFound("404", 404)


class WorldPlanner(Planner):
    def __init__(self, world: World, *, offline: bool = False, delete: bool = False) -> None:
        super().__init__(Settings(service_key=KEY), None if offline else ClusterView(world),  # type: ignore[arg-type]
                         {}, delete=delete)
        self.world = world
        self.shared = SharedState()

    def client(self, key: str) -> GoldRushClient:
        return GoldRushClient("http://goldrush.test/platform/pipeline-api/", key, rate_limit=1000, max_retries=0,
                              transport=httpx.MockTransport(self.world.api.handler), shared=self.shared, dry_run=True)


def calls(plan: Any) -> list[tuple[str, str]]:
    return [(c.method, c.route) for c in plan.calls]


@pytest.fixture
def world() -> World:
    return World()


async def _plan(world: World, body: dict[str, Any], **kw: Any) -> Any:
    return await WorldPlanner(world, **kw).plan(body, "ns")


async def test_plan_equals_what_the_operator_then_sends(world: World) -> None:
    body = pipeline()
    plan = await _plan(world, body)
    assert calls(plan) == [("POST", "create")] and exit_code([plan]) == 2
    assert plan.secrets == [{"field": "password", "secret": "pg", "key": "password", "state": "set"}]
    world.apply(body)
    await world.run()
    assert world.api.writes() == calls(plan)
    pid = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    await world.run()

    plan = await _plan(world, body)  # in sync: nothing
    assert calls(plan) == [] and exit_code([plan]) == 0 and plan.pipeline_id == pid
    assert plan.secrets[0]["state"] == "unchanged"
    assert "no changes" in render_text([plan])

    changed = pipeline(generation=2, description="new text", paused=True)
    plan = await _plan(world, changed)
    assert [c.describe() for c in plan.calls] == [f"PATCH /{pid}/ (description)", f"PUT /{pid}/ status=paused"]
    before = len(world.api.writes())
    world.apply(changed)
    await world.run()
    assert world.api.writes()[before:] == calls(plan)

    world.kube.secrets[("ns", "pg")] = {"password": "rotated"}
    plan = await _plan(world, changed)
    assert calls(plan) == [("PATCH", "patch")] and plan.secrets[0]["state"] == "changed"

    plan = await _plan(world, changed, delete=True)
    assert [c.describe() for c in plan.calls] == [f"DELETE /{pid}/"]
    orphan = await _plan(world, pipeline(generation=3, description="new text", paused=True, deletionPolicy="Orphan"),
                         delete=True)
    assert calls(orphan) == [] and "left in place" in orphan.note


async def test_plan_is_read_only_and_reports_conflicts_and_observe(world: World) -> None:
    world.api.pipelines["pipe_x"] = {"id": "pipe_x", "name": "ns-p1", "project": "proj", "status": "running",
                                     "topic": "base-mainnet.covalent.raw.block.v1", "destination_type": "postgres",
                                     "destination_config": {"type": "postgres", "host": "db", "port": 5432,
                                                            "database": "d", "user": "u", "password": "******"},
                                     "execution_mode": "unbounded"}
    conflict = await _plan(world, pipeline())
    assert "NameConflict" in conflict.error and exit_code([conflict]) == 1
    observed = await _plan(world, pipeline(managementPolicies=["Observe"]))
    assert calls(observed) == [] and observed.pipeline_id == "pipe_x" and not observed.error
    blocked = await _plan(world, pipeline(managementPolicies=["Observe"], description="mine"))
    assert calls(blocked) == [] and "description" in blocked.note
    assert world.api.writes() == []


async def test_offline_plan_marks_secrets_unknown(world: World) -> None:
    plan = await _plan(world, pipeline(), offline=True)
    assert calls(plan) == [("POST", "create")]
    pid = "pipe_x"
    body = pipeline()
    body["metadata"]["annotations"]["goldrush.dev/pipeline-id"] = pid
    world.api.pipelines[pid] = {"id": pid, "name": "ns-p1", "project": "proj", "status": "running",
                                "topic": "base-mainnet.covalent.raw.block.v1", "destination_type": "postgres",
                                "destination_config": {"type": "postgres", "host": "db", "port": 5432,
                                                       "database": "d", "user": "u", "password": "******"},
                                "execution_mode": "unbounded"}
    plan = await _plan(world, body, offline=True)
    assert calls(plan) == [] and plan.secrets == [{"field": "password", "secret": "pg", "key": "password",
                                                    "state": "unknown"}]


def test_load_documents_reads_files_dirs_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all([pipeline("a"), {"kind": "List", "items": [pipeline("b")]}]))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text(yaml.safe_dump(pipeline("c")))
    names = [d["metadata"]["name"] for d in load_documents([str(tmp_path)])]
    assert names == ["a", "b", "c"]
    assert [d["metadata"]["name"] for d in load_documents(["-"], io.StringIO(yaml.safe_dump(pipeline("d"))))] == ["d"]


def test_cli_plan_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["plan"])
    assert "-f" in capsys.readouterr().err


async def test_plan_follows_a_user_pointing_the_object_at_another_pipeline(world: World) -> None:
    """The id annotation naming another pipeline than the status: the plan works on that one, as the controller
    then does (one rule, `Pass.target_id`)."""
    body = pipeline()
    world.apply(body)
    await world.run()
    pid = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    await world.run()
    other = copy.deepcopy(world.api.pipelines[pid]) | {"id": "pipe_y"}
    world.api.pipelines["pipe_y"] = other
    pointed = copy.deepcopy(world.obj())
    pointed["metadata"]["annotations"]["goldrush.dev/pipeline-id"] = "pipe_y"
    plan = await _plan(world, pointed)
    assert plan.pipeline_id == "pipe_y" and calls(plan) == []
    world.kube.objects[("ns", "p1")] = pointed
    world.sync()
    await world.run()
    assert world.obj()["status"]["pipelineId"] == "pipe_y"
    assert world.api.writes() == [("POST", "create")]
