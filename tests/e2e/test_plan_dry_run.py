"""E2E: `goldrush-operator plan` against the real apiserver and simulator, compared call by call with what the
operator then sends (journal); and the operator-wide dry run, which sends no write under a full lifecycle."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pipelines import condition, events, get, pipeline_manifest, secret_manifest, wait_phase, wait_reason, writes

from support.kubectl import Kubectl
from support.operator import OperatorProcess, operator_executable, wait_for
from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.e2e

API_ROUTES = ("create", "patch", "put", "delete")


def api_writes(sim: SimProcess) -> list[dict[str, Any]]:
    return [e for e in writes(sim) if e["route"] in API_ROUTES]


def plan(kubeconfig: Path, sim: SimProcess, namespace: str, tmp_path: Path, *docs: dict[str, Any],
         delete: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """Run the CLI on a manifest file; (exit status, planned calls as (method, route, fields, status))."""
    path = tmp_path / f"plan-{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "GOLDRUSH_API_URL": sim.base_url,
           "GOLDRUSH_SERVICE_KEY": "dev-key"}
    cmd = [operator_executable(), "plan", "-f", str(path), "-n", namespace, "-o", "json",
           *(["--delete"] if delete else [])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    objects = json.loads(proc.stdout)["objects"]
    return proc.returncode, [c for o in objects for c in o["calls"]]


def as_calls(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal entries in the plan's terms: method, route, PATCH fields, PUT status."""
    out = []
    for e in entries:
        call: dict[str, Any] = {"method": e["method"], "route": e["route"]}
        if e["route"] == "patch":
            call["fields"] = sorted(e["body"])
        if e["route"] == "put":
            call["status"] = e["body"]["status"]
        out.append(call)
    return out


def plan_terms(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = {"method", "route", "status"}
    return [{k: v for k, v in c.items() if k in keep} | ({"fields": c["fields"]} if c["route"] == "patch" else {})
            for c in calls]


def test_plan_matches_the_operator_call_by_call(
    kubectl: Kubectl, kubeconfig: Path, namespace: str, sim: SimProcess, operator: OperatorProcess, tmp_path: Path
) -> None:
    kubectl.apply(secret_manifest())
    m = pipeline_manifest("p1")
    # create
    code, calls = plan(kubeconfig, sim, namespace, tmp_path, m)
    assert code == 2 and [(c["method"], c["route"]) for c in calls] == [("POST", "create")]
    assert api_writes(sim) == []  # planning wrote nothing
    kubectl.apply(m)
    wait_phase(kubectl, "p1", "RUNNING", ready="True")
    assert [(e["method"], e["route"]) for e in api_writes(sim)] == [("POST", "create")]
    # no-op
    code, calls = plan(kubeconfig, sim, namespace, tmp_path, m)
    assert (code, calls) == (0, [])
    # update + pause
    seen = len(api_writes(sim))
    changed = pipeline_manifest("p1", description="changed by review", paused=True)
    code, calls = plan(kubeconfig, sim, namespace, tmp_path, changed)
    assert code == 2 and [c["route"] for c in calls] == ["patch", "put"]
    assert len(api_writes(sim)) == seen
    kubectl.apply(changed)
    wait_phase(kubectl, "p1", "PAUSED", ready="True")
    wait_for(lambda: get(kubectl, "p1")["status"].get("observedGeneration") == 2, 20, message="generation 2")
    assert as_calls(api_writes(sim)[seen:]) == plan_terms(calls)
    code, calls = plan(kubeconfig, sim, namespace, tmp_path, changed)
    assert (code, calls) == (0, [])
    # delete
    seen = len(api_writes(sim))
    code, calls = plan(kubeconfig, sim, namespace, tmp_path, changed, delete=True)
    assert code == 2 and [(c["method"], c["route"]) for c in calls] == [("DELETE", "delete")]
    kubectl("delete", "grp", "p1", "--timeout=30s")
    assert as_calls(api_writes(sim)[seen:]) == plan_terms(calls)


def test_dry_run_sends_no_write_under_a_full_lifecycle(
    kubectl: Kubectl, sim: SimProcess, start_operator: Any
) -> None:
    seeded = sim.seed(group="group_default", **example_pipeline(name="Existing"))
    sim.wait_phase(seeded["id"], "RUNNING")
    start_operator(env={"GOLDRUSH_DRY_RUN": "true"})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("fresh"))  # would be created
    obj = wait_reason(kubectl, "fresh", "Synced", "False", "DryRun")
    assert obj["status"]["phase"] == "PENDING" and "POST" in (condition(obj, "Synced") or {})["message"]
    adopted = pipeline_manifest("adopted", pipelineName="Existing", project=seeded["project"],
                                topic=seeded["topic"], description="changed")
    adopted["metadata"]["annotations"] = {"goldrush.dev/pipeline-id": seeded["id"]}
    kubectl.apply(adopted)
    obj = wait_reason(kubectl, "adopted", "Synced", "False", "DryRun")
    assert obj["status"]["phase"] == "RUNNING" and "PATCH" in (condition(obj, "Synced") or {})["message"]
    paused = {**adopted, "spec": {**adopted["spec"], "paused": True, "description": "changed twice"}}
    kubectl.apply(paused)
    wait_for(lambda: any(e["reason"] == "WouldPause" for e in events(kubectl)), 30, message="WouldPause")
    kubectl("delete", "grp", "adopted", "--wait=false")
    wait_for(lambda: any(e["reason"] == "WouldDelete" for e in events(kubectl)), 30, message="WouldDelete")
    time.sleep(5)  # many passes later: still nothing sent, and each change announced once
    assert api_writes(sim) == []
    assert kubectl("get", "grp", "adopted", "-o", "name").stdout.strip()  # the finalizer stays
    assert any(p["id"] == seeded["id"] for p in sim.pipelines())
    reasons = [(e["involvedObject"]["name"], e["reason"]) for e in events(kubectl) if e["reason"].startswith("Would")]
    assert sorted(reasons) == sorted([("fresh", "WouldCreate"), ("adopted", "WouldUpdate"), ("adopted", "WouldUpdate"),
                                      ("adopted", "WouldPause"), ("adopted", "WouldDelete")])
