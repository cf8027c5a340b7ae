"""Reliability: Secret rotation, drift, out-of-band delete and the pause-reconciliation control, with
invariants I1-I7 (docs/reliability.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from invariants import Invariants, committed_writes, last_seq, start_debug
from pipelines import condition, events, get, pipeline_manifest, secret_manifest, wait_phase, wait_reason

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

Start = Callable[..., OperatorProcess]
NEW_CANARY = "canary-R0tated-4d2a61e0"


@pytest.mark.slow
def test_secret_rotation_reaches_20_objects_with_one_patch_each(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start
) -> None:
    inv = Invariants(kubectl, sim)
    start_debug(start_operator, inv)
    kubectl.apply(secret_manifest())
    names = [f"p{i:02d}" for i in range(20)]
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": [pipeline_manifest(n) for n in names]})
    before = inv.check(writes={"create": 20}, timeout=90, quiet=1)
    old_hashes = {o["metadata"]["name"]: o["status"]["secrets"][0]["hash"] for o in before["objects"]}

    # An update that does not change the value (a label, a re-apply) sends nothing.
    seq = last_seq(sim)
    kubectl("label", "secret", "dest", "rotation=none")
    kubectl.apply(secret_manifest())
    time.sleep(3)
    assert committed_writes(sim, seq) == {}

    # A new value: exactly one PATCH per referencing object, within seconds.
    seq = last_seq(sim)
    started = time.monotonic()
    kubectl.apply(secret_manifest(data={"password": NEW_CANARY}))
    wait_for(lambda: committed_writes(sim, seq)["patch"] >= 20, 20, message="20 PATCHes")
    elapsed = time.monotonic() - started
    patches = [e for e in sim.journal(seq) if e["route"] == "patch"]
    assert len({e["path"] for e in patches}) == 20
    assert all(set(e["body"]) == {"destination_config"} for e in patches)
    after = inv.check(writes={"patch": 20}, since=seq, timeout=30)
    new_hashes = {o["metadata"]["name"]: o["status"]["secrets"][0]["hash"] for o in after["objects"]}
    assert all(new_hashes[n] != old_hashes[n] for n in names)
    rotated = [e for e in events(kubectl) if e["reason"] == "SecretRotated"]
    assert len(rotated) == 20 and all("dest" in e["message"] for e in rotated)
    Invariants(kubectl, sim, canary=NEW_CANARY, operators=inv.operators).assert_no_leak()
    assert elapsed < 15, f"rotation took {elapsed:.1f}s"


def test_out_of_band_change_is_corrected_on_demand_and_on_the_slow_poll(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start
) -> None:
    inv = Invariants(kubectl, sim)
    start_debug(start_operator, inv, env={"GOLDRUSH_POLL_SLOW_SECONDS": "4"})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]

    # On demand: the reconcile-requested-at token triggers a full check at once and is echoed.
    sim.admin("PATCH", f"pipelines/{pid}", {"description": "changed out of band"})
    kubectl("annotate", "grp", "p1", "goldrush.dev/reconcile-requested-at=token-1")
    wait_for(lambda: get(kubectl, "p1")["status"].get("lastHandledReconcileAt") == "token-1", 10,
             message="token echoed")
    wait_for(lambda: sim.admin("GET", f"pipelines/{pid}")["description"] == "e2e pipeline", 10,
             message="drift corrected")
    drift = [e for e in events(kubectl) if e["reason"] == "DriftCorrected"]
    assert len(drift) == 1 and "description" in drift[0]["message"]

    # On the slow poll (4 s here), without any trigger; the Flux token works as well.
    sim.admin("PATCH", f"pipelines/{pid}", {"destination_config": {
        "type": "postgres", "url": "postgresql://evil.example.com/x", "user": "pipeline", "password": "x"}})
    wait_for(lambda: "db.example.com" in sim.admin("GET", f"pipelines/{pid}")["destination_config"]["url"], 15,
             message="drift corrected on the slow poll")
    kubectl("annotate", "grp", "p1", "reconcile.fluxcd.io/requestedAt=flux-2")
    wait_for(lambda: get(kubectl, "p1")["status"].get("lastHandledReconcileAt") == "flux-2", 10,
             message="flux token echoed")
    inv.check(writes={"create": 1, "patch": 2}, timeout=20)
    drift = [e for e in events(kubectl) if e["reason"] == "DriftCorrected"]
    messages = sorted(e["message"] for e in drift)
    assert len(drift) == 2
    assert any("destination_config" in m for m in messages) and any("description" in m for m in messages)


def test_out_of_band_delete_is_recreated_once(kubectl: Kubectl, sim: SimProcess, start_operator: Start) -> None:
    inv = Invariants(kubectl, sim)
    start_debug(start_operator, inv, env={"GOLDRUSH_POLL_SLOW_SECONDS": "4"})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.admin("DELETE", f"pipelines/{pid}")
    wait_for(lambda: (get(kubectl, "p1")["status"].get("pipelineId") or pid) != pid, 20, message="recreated")
    result = inv.check(writes={"create": 2}, timeout=30, quiet=5)
    assert result["objects"][0]["status"]["pipelineId"] != pid
    assert [e["reason"] for e in events(kubectl)].count("RemoteDeleted") == 1


def test_pause_reconciliation_stops_all_writes(kubectl: Kubectl, sim: SimProcess, start_operator: Start) -> None:
    inv = Invariants(kubectl, sim)
    start_debug(start_operator, inv, env={"GOLDRUSH_POLL_SLOW_SECONDS": "3"})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]
    kubectl("annotate", "grp", "p1", "goldrush.dev/pause-reconciliation=true")
    wait_reason(kubectl, "p1", "Ready", "False", "ReconcilePaused")
    seq = last_seq(sim)
    kubectl.apply(pipeline_manifest("p1", description="while paused"))
    sim.admin("PATCH", f"pipelines/{pid}", {"description": "drift while paused"})
    kubectl.apply(secret_manifest(data={"password": "canary-Pa55w0rd-7f3e9b1c-v2"}))
    obj = wait_for(lambda: (o := get(kubectl, "p1"))["status"].get("observedGeneration") == 2 and o, 10,
                   message="observedGeneration advanced while paused")
    assert (condition(obj, "Synced") or {}).get("reason") == "ReconcilePaused"
    time.sleep(7)  # two slow polls
    assert sim.journal(seq) == [], "no API call at all while paused"

    kubectl("annotate", "grp", "p1", "goldrush.dev/pause-reconciliation-")
    inv.check(writes={"patch": 1}, since=seq, timeout=30)
