"""E2E: spec.managementPolicies on the real apiserver (CEL admission) and with the operator and the simulator:
observe-only mirrors and never writes, also through delete; a subset without Delete never deletes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pipelines import condition, events, get, pipeline_manifest, secret_manifest, wait_phase, wait_reason, writes

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.e2e


def _apply(kubectl: Kubectl, m: dict[str, Any]) -> tuple[bool, str]:
    proc = kubectl("apply", "-f", "-", input=json.dumps(m), check=False)
    return proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("spec", "ok", "text"), [
    ({}, True, ""),
    ({"managementPolicies": ["Observe"]}, True, ""),
    ({"managementPolicies": ["Observe", "Create", "Update", "Delete", "LateInitialize"]}, True, ""),
    ({"managementPolicies": ["Observe", "Create", "Update"], "deletionPolicy": "Orphan"}, True, ""),
    ({"managementPolicies": ["*", "Observe"]}, False, "cannot be combined"),
    ({"managementPolicies": ["Create", "Update"]}, False, "must include Observe"),
    ({"managementPolicies": []}, False, "spec.managementPolicies"),
    ({"managementPolicies": ["Observe", "Observe"]}, False, "spec.managementPolicies"),
    ({"managementPolicies": ["Observe", "Manage"]}, False, "spec.managementPolicies"),
    ({"managementPolicies": ["Observe", "Delete"], "deletionPolicy": "Orphan"}, False, "contradicts"),
])
def test_admission_of_policy_lists(
    kubectl: Kubectl, crd_installed: None, spec: dict[str, Any], ok: bool, text: str
) -> None:
    accepted, err = _apply(kubectl, pipeline_manifest("pol", **spec))
    assert accepted is ok, err
    assert text in err
    if ok and not spec:
        assert get(kubectl, "pol")["spec"]["managementPolicies"] == ["*"]


def test_paused_changes_only_with_update(kubectl: Kubectl, crd_installed: None) -> None:
    assert _apply(kubectl, pipeline_manifest("obs", managementPolicies=["Observe"], paused=True))[0]
    accepted, err = _apply(kubectl, pipeline_manifest("obs", managementPolicies=["Observe"], paused=False))
    assert not accepted and "spec.paused can only change" in err
    accepted, _ = _apply(kubectl, pipeline_manifest("obs", managementPolicies=["*"], paused=False))
    assert accepted  # widening the policies and resuming in one edit


def api_writes(sim: SimProcess) -> list[dict[str, Any]]:
    """Writes to the Pipeline API (the simulator's own admin calls, such as seeding, excluded)."""
    return [e for e in writes(sim) if e["route"] in ("create", "patch", "put", "delete")]


def _seed(sim: SimProcess, **fields: Any) -> dict[str, Any]:
    return sim.seed(group="group_default", **example_pipeline(**fields))


def _observer(name: str, seeded: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """An observe-only object whose spec matches the seeded pipeline (override with `spec`)."""
    fields: dict[str, Any] = {"pipelineName": seeded["name"], "project": seeded["project"], "topic": seeded["topic"],
                              "description": seeded["description"], "transforms": seeded["transforms"],
                              "managementPolicies": ["Observe"]}
    return pipeline_manifest(name, **{**fields, **spec})


def test_observe_only_mirrors_and_never_writes_also_through_delete(
    kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    seeded = _seed(sim, name="Made in the UI")
    sim.wait_phase(seeded["id"], "RUNNING")
    before = len(api_writes(sim))
    kubectl.apply(_observer("obs", seeded))  # no Secret "dest" exists: observe-only never needs it
    obj = wait_phase(kubectl, "obs", "RUNNING", ready="True")
    assert obj["status"]["pipelineId"] == seeded["id"]
    assert obj["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == seeded["id"]
    assert "secrets" not in obj["status"]
    assert (condition(obj, "Synced") or {}).get("status") == "True"
    sim.force_phase(seeded["id"], "FAILED", log="worker: destination refused the connection")
    failed = wait_phase(kubectl, "obs", "FAILED")
    assert (condition(failed, "Stalled") or {}).get("reason") == "RemoteFailed"
    sim.force_phase(seeded["id"], "RUNNING")
    wait_phase(kubectl, "obs", "RUNNING", ready="True")
    # A spec that differs is reported, never written.
    kubectl.apply(_observer("obs", seeded, description="not what the UI says"))
    synced = wait_reason(kubectl, "obs", "Synced", "False", "UpdateNotAllowed")
    assert "description" in (condition(synced, "Synced") or {})["message"]
    kubectl("delete", "grp", "obs", "--timeout=30s")
    assert any(e["reason"] == "Orphaned" and "do not include Delete" in e["message"] for e in events(kubectl))
    assert api_writes(sim)[before:] == []
    assert [p["id"] for p in sim.pipelines() if p["id"] == seeded["id"]] == [seeded["id"]]


def test_observe_only_without_a_remote_is_not_found_until_it_appears(
    kubectl: Kubectl, sim: SimProcess, start_operator: Any
) -> None:
    start_operator(env={"GOLDRUSH_POLL_STATUS_MAX_SECONDS": "2"})
    m = pipeline_manifest("late", pipelineName="Made later", managementPolicies=["Observe"])
    kubectl.apply(m)
    obj = wait_reason(kubectl, "late", "Ready", "False", "NotFound")
    assert condition(obj, "Stalled") is None and obj["status"]["phase"] == "PENDING"
    seeded = _seed(sim, name="Made later", project=m["spec"]["project"], topic=m["spec"]["topic"])
    obj = wait_phase(kubectl, "late", "RUNNING", timeout=60)
    assert obj["status"]["pipelineId"] == seeded["id"]
    assert api_writes(sim) == []


def test_subset_without_delete_never_deletes(kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess) -> None:
    policies = ["Observe", "Create", "Update"]
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("keep", managementPolicies=policies))
    pid = wait_phase(kubectl, "keep", "RUNNING", ready="True")["status"]["pipelineId"]
    kubectl.apply(pipeline_manifest("keep", managementPolicies=policies, description="edited"))
    wait_for(lambda: writes(sim, "patch"), 20, message="a PATCH")
    kubectl.apply(pipeline_manifest("keep", managementPolicies=policies, description="edited", paused=True))
    wait_phase(kubectl, "keep", "PAUSED", ready="True")
    kubectl("delete", "grp", "keep", "--timeout=30s")
    time.sleep(1)
    assert [e["route"] for e in api_writes(sim)] == ["create", "patch", "put"]
    assert any(p["id"] == pid for p in sim.pipelines())
    assert any(e["reason"] == "Orphaned" for e in events(kubectl))
