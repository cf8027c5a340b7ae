"""E2E: the GoldRushPipeline lifecycle against a real kube-apiserver, the simulator and the operator process."""

from __future__ import annotations

import json
import time

import pytest
from pipelines import (
    CANARY,
    condition,
    events,
    get,
    pipeline_manifest,
    secret_manifest,
    wait_phase,
    wait_reason,
    writes,
)

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess


def test_apply_creates_exactly_one_pipeline_and_becomes_ready(
    kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    status = obj["status"]
    assert status["pipelineId"].startswith("pipe_")
    assert obj["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == status["pipelineId"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert (status["replicas"], status["readyReplicas"]) == (1, 1)
    assert condition(obj, "Synced")["status"] == "True"  # type: ignore[index]
    assert condition(obj, "Reconciling") is None and condition(obj, "Stalled") is None
    kubectl("wait", "--for=condition=Ready", "goldrushpipeline/p1", "--timeout=10s")

    posts = writes(sim, "create")
    assert len(posts) == 1
    body = posts[0]["body"]
    assert body["name"] == f"{kubectl.namespace}-p1"
    assert body["destination_config"]["password"].startswith("sha256:")  # the real value was sent
    remote = sim.pipelines()
    assert [p["id"] for p in remote] == [status["pipelineId"]]

    table = kubectl("get", "grp").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "READY", "PIPELINE", "TOPIC", "AGE"]
    assert table[1].split()[:5] == ["p1", "RUNNING", "True", status["pipelineId"], "base.mainnet.ref.block.transfers"]
    wide = kubectl("get", "grp", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:10] == ["NAME", "PHASE", "READY", "PIPELINE", "TOPIC", "AGE", "PROJECT",
                                    "DESTINATION", "REASON", "MESSAGE"]
    assert wide[1].split()[6:9] == ["e2e-project", "postgres", "Running"]
    assert "goldrushpipeline.goldrush.dev/p1" in kubectl("get", "goldrush", "-o", "name").stdout
    assert any(e["reason"] == "Created" for e in events(kubectl))


def test_spec_change_sends_one_patch_with_only_the_changed_field(
    kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    assert obj["metadata"]["generation"] == 1

    # Metadata-only change: no API write, generation unchanged.
    kubectl("label", "goldrushpipeline", "p1", "team=data")
    kubectl("annotate", "goldrushpipeline", "p1", "example.com/note=hello")
    time.sleep(3)
    assert [e["route"] for e in writes(sim)] == ["create"]

    kubectl.apply(pipeline_manifest("p1", description="changed description"))
    wait_for(lambda: writes(sim, "patch"), 20, message="a PATCH")
    obj = wait_for(
        lambda: (o := get(kubectl, "p1"))["status"].get("observedGeneration") == 2
        and (condition(o, "Ready") or {}).get("status") == "True" and o,
        40, message="observedGeneration 2 and Ready",
    )
    patches = writes(sim, "patch")
    assert len(patches) == 1
    assert patches[0]["body"] == {"description": "changed description"}
    assert obj["metadata"]["generation"] == 2
    time.sleep(2)
    assert len(writes(sim)) == 2  # the create and the one PATCH; nothing else
    assert any(e["reason"] == "Updated" for e in events(kubectl))


def test_pause_and_resume_go_through_put(kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    wait_phase(kubectl, "p1", "RUNNING", ready="True")

    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":true}}')
    obj = wait_phase(kubectl, "p1", "PAUSED", ready="True")
    assert condition(obj, "Ready")["reason"] == "Paused"  # type: ignore[index]
    assert obj["status"]["observedGeneration"] == 2
    puts = writes(sim, "put")
    assert [p["body"] for p in puts] == [{"status": "paused"}]

    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":false}}')
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    assert [p["body"] for p in writes(sim, "put")] == [{"status": "paused"}, {"status": "running"}]
    assert not writes(sim, "patch")
    reasons = {e["reason"] for e in events(kubectl)}
    assert {"Paused", "Resumed"} <= reasons


def test_delete_policy_delete_removes_the_remote(kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    kubectl("delete", "goldrushpipeline", "p1", "--timeout=30s")
    assert kubectl("get", "goldrushpipeline", "p1", check=False).returncode != 0
    assert sim.pipelines() == []
    deletes = writes(sim, "delete")
    assert len(deletes) == 1 and pid in deletes[0]["path"]


def test_delete_policy_orphan_keeps_the_remote(kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1", deletionPolicy="Orphan"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    kubectl("delete", "goldrushpipeline", "p1", "--timeout=30s")
    assert kubectl("get", "goldrushpipeline", "p1", check=False).returncode != 0
    assert [p["id"] for p in sim.pipelines()] == [pid]
    assert not writes(sim, "delete")


def test_missing_secret_waits_without_post_then_proceeds(
    kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    kubectl.apply(pipeline_manifest("p1"))
    obj = wait_reason(kubectl, "p1", "Ready", "False", "SecretNotFound")
    assert "dest" in condition(obj, "Ready")["message"]  # type: ignore[index]
    assert obj["status"]["phase"] == "PENDING"
    time.sleep(2)
    assert writes(sim) == []
    generation = obj["metadata"]["generation"]

    kubectl.apply(secret_manifest())
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    assert obj["metadata"]["generation"] == generation  # the object itself was not touched
    assert len(writes(sim, "create")) == 1


def test_remote_failure_is_stalled(kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.force_phase(pid, "FAILED", log="fatal: destination table is read-only")
    kubectl.apply(pipeline_manifest("p1", description="poke"))  # a change makes the operator look now
    obj = wait_reason(kubectl, "p1", "Stalled", "True", "RemoteFailed")
    assert obj["status"]["phase"] == "FAILED"
    ready = condition(obj, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "RemoteFailed")
    assert "read-only" in ready["message"]


@pytest.mark.parametrize(
    ("case", "mutate", "expected"),
    [
        ("unknown destination type", lambda m: m["spec"]["destination"].update(type="bigquery"),
         "spec.destination.type"),
        ("inline password", lambda m: m["spec"]["destination"]["config"].update(password="x"), "password"),
        ("bounded without stopAt", lambda m: m["spec"]["execution"].update(mode="bounded"), "stopAt"),
        ("bad topic", lambda m: m["spec"].update(topic="not a topic"), "spec.topic"),
    ],
)
def test_invalid_objects_are_rejected_at_apply(
    kubectl: Kubectl, crd_installed: None, case: str, mutate: object, expected: str
) -> None:
    manifest = pipeline_manifest("bad")
    assert callable(mutate)
    mutate(manifest)
    proc = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0, case
    assert expected in proc.stderr, proc.stderr


def test_immutable_topic_change_is_rejected(kubectl: Kubectl, crd_installed: None) -> None:
    kubectl.apply(pipeline_manifest("p1"))
    proc = kubectl("apply", "-f", "-", check=False,
                   input=json.dumps(pipeline_manifest("p1", topic="base.mainnet.ref.block.logs")))
    assert proc.returncode != 0
    assert "spec.topic" in proc.stderr and "immutable" in proc.stderr
    kubectl("delete", "goldrushpipeline", "p1", "--wait=false")
    kubectl("patch", "goldrushpipeline", "p1", "--type=json", "-p",
            '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)


def test_destination_password_never_leaks(
    kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.admin("POST", f"pipelines/{pid}/destination-health",
              {"healthy": False, "last_error": f"auth failed for password {CANARY}"})
    sim.faults(echo_body_in_422={"route": "patch", "count": 1})
    kubectl.apply(pipeline_manifest("p1", description="trigger a rejected PATCH"))
    wait_reason(kubectl, "p1", "Stalled", "True", "InvalidSpec")
    wait_reason(kubectl, "p1", "DestinationHealthy", "False", "Unhealthy")
    outputs = [
        kubectl("get", "grp", "p1", "-o", "yaml").stdout,
        kubectl("get", "events", "-o", "yaml").stdout,
        kubectl("describe", "grp", "p1").stdout,
        operator.log,
    ]
    assert "[REDACTED]" in kubectl("get", "grp", "p1", "-o", "yaml").stdout
    for text in outputs:
        assert CANARY not in text
