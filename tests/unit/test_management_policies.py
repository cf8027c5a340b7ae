"""spec.managementPolicies and dry-run mode: the CRD's rules, Crossplane's deletion table, the planned calls,
and what the controller sends (fake Kubernetes, MockTransport API from test_controller)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from goldrush_operator.config import Settings
from goldrush_operator.controller import decide
from goldrush_operator.controller.loop import DeleteLater
from goldrush_operator.controller.outcome import Stall, classify
from goldrush_operator.crdgen import generate_crd
from goldrush_operator.goldrush_api import DryRunRefusedError, GoldRushClient
from goldrush_operator.payload import PayloadDiff
from goldrush_operator.resource import PipelineSpec, deletes_remote
from unit.test_argocd_health import CASES, _load_input, run_health
from unit.test_controller import World, pipeline

# ----------------------------------------------------------------------------------------- CRD rules


def _spec_rules() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    crd = generate_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec["x-kubernetes-validations"], spec["properties"]["managementPolicies"]["x-kubernetes-validations"]


def _cel(rule: str, **names: Any) -> bool:
    """Evaluate the small CEL subset the policy rules use (`||`, `&&`, `!`, `in`, `has()`, `size()`, `==`)."""
    expr = rule.replace("||", " or ").replace("&&", " and ").replace("!=", " <> ")
    expr = re.sub(r"!(?!=)", " not ", expr).replace(" <> ", " != ")
    expr = re.sub(r"has\((\w+)\.(\w+)\)", r"('\2' in \1)", expr)
    expr = re.sub(r"\b(self|oldSelf)\.(\w+)", r"\1['\2']", expr)
    return bool(eval(expr, {"size": len}, names))  # noqa: S307 - our own rule text, test only


POLICY_RULES = [r for r in _spec_rules()[0] if "managementPolicies" in r["rule"]]
LIST_RULES = _spec_rules()[1]


def admitted(policies: list[str], deletion: str = "Delete", paused: bool = False,
             old_paused: bool | None = None) -> bool:
    new = {"managementPolicies": policies, "deletionPolicy": deletion, "paused": paused}
    old = {"paused": paused if old_paused is None else old_paused}
    list_ok = all(_cel(r["rule"], self=policies) for r in LIST_RULES)
    spec_ok = all(_cel(r["rule"], self=new, oldSelf=old) for r in POLICY_RULES)
    return list_ok and spec_ok


@pytest.mark.parametrize(("policies", "ok"), [
    (["*"], True), (["Observe"], True), (["Observe", "Create", "Update"], True),
    (["Observe", "Create", "Update", "Delete", "LateInitialize"], True), (["Observe", "Delete"], True),
    (["*", "Observe"], False), (["Create", "Update"], False), (["Delete"], False),
])
def test_list_rules(policies: list[str], ok: bool) -> None:
    assert admitted(policies) is ok


def test_orphan_with_an_explicit_delete_is_refused() -> None:
    assert admitted(["*"], "Orphan")
    assert admitted(["Observe"], "Orphan")
    assert admitted(["Observe", "Create", "Update"], "Orphan")
    assert not admitted(["Observe", "Create", "Update", "Delete"], "Orphan")


def test_paused_changes_only_with_update() -> None:
    assert admitted(["Observe"], paused=True)  # created paused (mirrors a paused pipeline): not a change
    assert not admitted(["Observe"], paused=True, old_paused=False)
    assert not admitted(["Observe", "Create"], paused=False, old_paused=True)
    assert admitted(["Observe", "Create", "Update"], paused=True, old_paused=False)
    assert admitted(["*"], paused=True, old_paused=False)


@pytest.mark.parametrize(("policies", "deletion", "deletes"), [
    (["*"], "Delete", True), (["*"], "Orphan", False),
    (["Observe", "Create", "Update", "Delete"], "Delete", True), (["Observe", "Delete"], "Orphan", True),
    (["Observe", "Create", "Update"], "Delete", False), (["Observe"], "Delete", False),
    (["Observe"], "Orphan", False), (None, None, True),
])
def test_crossplane_deletion_table(policies: list[str] | None, deletion: str | None, deletes: bool) -> None:
    assert deletes_remote(policies, deletion) is deletes


def test_default_and_parsing() -> None:
    spec = PipelineSpec.model_validate(pipeline()["spec"])
    assert spec.management_policies == ["*"] and spec.allows("Update") and spec.deletes_remote()
    observe = PipelineSpec.model_validate({**pipeline()["spec"], "managementPolicies": ["Observe"]})
    assert not observe.allows("Create") and not observe.allows("Update") and not observe.deletes_remote()


# ----------------------------------------------------------------------------------------- decide


def _spec(policies: list[str]) -> PipelineSpec:
    return PipelineSpec.model_validate({**pipeline()["spec"], "managementPolicies": policies})


def test_config_calls_follow_the_diff_and_the_policies() -> None:
    diff = PayloadDiff(patch={"description": "x"}, immutable={}, status="paused")
    plan = decide.config_calls("pipe_1", diff, _spec(["*"]), "running")
    assert [call.describe() for call in plan.calls] == ["PATCH /pipe_1/ (description)", "PUT /pipe_1/ status=paused"]
    assert [call.reason for call in plan.calls] == ["WouldUpdate", "WouldPause"]
    blocked = decide.config_calls("pipe_1", diff, _spec(["Observe", "Create"]), "running")
    assert blocked.calls == () and blocked.blocked == ("description", "status")
    stuck = decide.config_calls("pipe_1", PayloadDiff({}, {"topic": ("a", "b")}, None), _spec(["*"]), None)
    assert stuck.calls == () and stuck.immutable == ("topic",)


def test_lookup() -> None:
    one, two = [object()], [object(), object()]
    assert decide.lookup([], _spec(["*"]), adopt=False) == "create"
    assert decide.lookup(one, _spec(["*"]), adopt=False) == "conflict"
    assert decide.lookup(one, _spec(["*"]), adopt=True) == "adopt"
    assert decide.lookup([], _spec(["Observe"]), adopt=False) == "not-found"
    assert decide.lookup(one, _spec(["Observe"]), adopt=False) == "observe"
    assert decide.lookup(two, _spec(["Observe"]), adopt=False) == "ambiguous"
    assert decide.lookup(one, _spec(["Observe", "Update"]), adopt=False) == "conflict"
    assert decide.lookup(one, _spec(["Observe", "Update"]), adopt=True) == "observe"


# ----------------------------------------------------------------------------------------- controller


@pytest.fixture
def world() -> World:
    return World()


def _remote(world: World, pid: str = "pipe_ext", **fields: Any) -> str:
    body = {"id": pid, "name": "ns-p1", "project": "proj", "description": "made in the UI",
            "topic": "base-mainnet.covalent.raw.block.v1", "destination_type": "postgres",
            "destination_config": {"type": "postgres", "host": "db", "port": 5432, "database": "d", "user": "u",
                                   "password": "remote-pw"},
            "execution_mode": "unbounded", "status": "running", "created_at": "2099-01-01T00:00:00Z"}
    body.update(fields)
    world.api.pipelines[pid] = body
    world.api.phase[pid] = "RUNNING"
    return pid


async def test_observe_only_mirrors_by_name_and_never_writes(world: World) -> None:
    pid = _remote(world)
    del world.kube.secrets[("ns", "pg")]  # never sent, so never needed
    world.apply(pipeline(managementPolicies=["Observe"], description="made in the UI"))
    await world.run()
    obj = world.obj()
    assert obj["status"]["pipelineId"] == pid and obj["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == pid
    assert obj["status"]["phase"] == "RUNNING"
    assert world.cond("Ready")["status"] == "True" and world.cond("Synced")["status"] == "True"  # type: ignore[index]
    assert "secrets" not in obj["status"]
    world.api.phase[pid] = "FAILED"
    world.now += 100
    await world.run()
    assert world.obj()["status"]["phase"] == "FAILED" and world.cond("Stalled")["reason"] == "RemoteFailed"  # type: ignore[index]
    # A spec that differs is reported, not written.
    world.apply(pipeline(generation=2, managementPolicies=["Observe"], description="mine"))
    world.api.phase[pid] = "RUNNING"
    world.now += 100
    delay = await world.run()
    synced = world.cond("Synced")
    assert synced is not None and synced["reason"] == "UpdateNotAllowed" and "description" in synced["message"]
    assert world.cond("Ready")["status"] == "True"  # type: ignore[index]
    assert delay is not None and delay >= 2.0
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    await world.controller.finalizer.delete(body)
    assert world.api.writes() == [] and pid in world.api.pipelines
    assert any(r == "Orphaned" and "do not include Delete" in m for r, m in world.kube.events)


async def test_observe_only_without_a_remote_says_not_found(world: World) -> None:
    world.apply(pipeline(managementPolicies=["Observe"]))
    delay = await world.run()
    ready, synced = world.cond("Ready"), world.cond("Synced")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "NotFound"
    assert synced is not None and synced["reason"] == "NotFound" and world.cond("Stalled") is None
    assert world.obj()["status"]["phase"] == "PENDING"
    assert world.api.writes() == [] and delay is not None and delay >= 2.0
    pid = _remote(world)  # made later in the UI: found at the next look
    world.now += delay
    await world.run()
    assert world.obj()["status"]["pipelineId"] == pid and world.api.writes() == []


async def test_subset_without_delete_creates_and_updates_but_never_deletes(world: World) -> None:
    policies = ["Observe", "Create", "Update"]
    world.apply(pipeline(managementPolicies=policies))
    await world.run()
    pid = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    world.apply(pipeline(generation=2, managementPolicies=policies, description="new"))
    await world.run()
    assert world.api.writes() == [("POST", "create"), ("PATCH", "patch")]
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    await world.controller.finalizer.delete(body)
    assert ("DELETE", "delete") not in world.api.writes() and pid in world.api.pipelines


async def test_create_only_never_patches_or_pauses(world: World) -> None:
    policies = ["Observe", "Create"]
    world.apply(pipeline(managementPolicies=policies))
    await world.run()
    pid = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    world.apply(pipeline(generation=2, managementPolicies=policies, description="new", paused=True))
    world.now += 100
    await world.run()
    gets = world.api.journal.count(("GET", "get"))
    for _ in range(3):  # the unwritten difference is not work again: status polls only, still reported
        world.now += 100
        await world.run()
    assert world.api.journal.count(("GET", "get")) == gets
    assert world.api.writes() == [("POST", "create")]
    synced = world.cond("Synced")
    assert synced is not None and synced["reason"] == "UpdateNotAllowed"
    assert "description" in synced["message"] and "status" in synced["message"]
    assert world.cond("Ready")["status"] == "True" and world.cond("Reconciling") is None  # type: ignore[index]


# ----------------------------------------------------------------------------------------- dry run


def _dry(world: World) -> None:
    real = world.controller.client_for

    def client_for(key: str) -> GoldRushClient:
        client = real(key)
        client.dry_run = True
        return client

    world.controller.client_for = client_for
    world.controller.finalizer.client_for = client_for


def _would(world: World) -> list[str]:
    return [r for r, _ in world.kube.events if r.startswith("Would")]


async def test_dry_run_client_refuses_every_write_before_io() -> None:
    client = GoldRushClient("http://goldrush.test/", "k", dry_run=True)
    for call in (client.create_pipeline({}), client.update_pipeline("p", {}), client.set_status("p", "paused"),
                 client.delete_pipeline("p")):
        with pytest.raises(DryRunRefusedError):
            await call


async def test_dry_run_announces_each_change_once_and_sends_nothing(world: World) -> None:
    _dry(world)
    world.apply(pipeline())
    for _ in range(3):
        world.now += 100
        await world.run()
    assert _would(world) == ["WouldCreate"] and world.api.writes() == []
    assert "goldrush.dev/create-pending" not in world.obj()["metadata"]["annotations"]
    assert world.cond("Synced")["reason"] == "DryRun"  # type: ignore[index]
    pid = _remote(world, description="e2e")  # adopt an existing pipeline, then change and pause it
    world.obj()["metadata"]["annotations"]["goldrush.dev/pipeline-id"] = pid
    world.apply(pipeline(generation=2, description="changed", paused=True))
    delays = []
    for _ in range(3):
        world.now += 100
        delays.append(await world.run())
    assert _would(world) == ["WouldCreate", "WouldUpdate", "WouldPause"]
    assert all(d is not None and d >= 2.0 for d in delays)  # no hot loop
    synced = world.cond("Synced")
    assert synced is not None and synced["reason"] == "DryRun" and "PATCH" in synced["message"]
    assert world.cond("Reconciling") is None  # the remote still runs as it did: nothing in progress
    world.apply(pipeline(generation=3, description="changed again", paused=True))
    world.now += 100
    await world.run()
    assert _would(world)[-1] == "WouldUpdate" and len(_would(world)) == 4
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    for _ in range(2):
        with pytest.raises(DeleteLater):
            await world.controller.finalizer.delete(body)
    assert _would(world)[-1] == "WouldDelete" and _would(world).count("WouldDelete") == 1
    assert world.api.writes() == [] and pid in world.api.pipelines


def test_dry_run_setting_and_its_error_class() -> None:
    assert Settings.from_env({"GOLDRUSH_DRY_RUN": "true"}).dry_run is True
    assert Settings.from_env({}).dry_run is False
    with pytest.raises(ValueError, match="GOLDRUSH_DRY_RUN"):
        Settings.from_env({"GOLDRUSH_DRY_RUN": "maybe"})
    outcome = classify(DryRunRefusedError("PATCH", "patch"), lambda text: text)
    assert isinstance(outcome, Stall) and outcome.reason == outcome.synced_reason == "DryRun"
    assert "PATCH patch not sent" in outcome.message


@pytest.mark.parametrize("reason", ["UpdateNotAllowed", "DryRun"])
def test_argo_cd_judges_an_unwritten_difference_by_ready(reason: str) -> None:
    base = _load_input(next(case for case in CASES if case["inputPath"].endswith("healthy_running.yaml")))
    obj = copy.deepcopy(base)
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Synced":
            condition.update(status="False", reason=reason, message="differs in: description")
    assert run_health(obj)["status"] == "Healthy"
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status="False", reason="NotFound", message="no remote pipeline")
    obj["status"]["phase"] = "PENDING"
    assert run_health(obj)["status"] == "Progressing"


@pytest.mark.parametrize(("policies", "next_step"), [
    (["*"], "creating it again"), (["Observe", "Update"], "looking it up by name"),
])
async def test_a_remote_deleted_out_of_band_is_forgotten_as_the_policies_say(
    world: World, policies: list[str], next_step: str,
) -> None:
    pid = _remote(world)
    world.apply(pipeline(managementPolicies=policies, description="made in the UI"))
    world.kube.objects[("ns", "p1")]["metadata"]["annotations"] = {"goldrush.dev/pipeline-id": pid}
    world.sync()
    await world.run()
    assert world.obj()["status"]["pipelineId"] == pid
    del world.api.pipelines[pid]
    world.now += 1000
    await world.run()
    assert ("RemoteDeleted", f"remote pipeline {pid} no longer exists; {next_step}") in world.kube.events
    assert world.obj()["status"].get("pipelineId") is None
