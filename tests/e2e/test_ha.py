"""High availability: two or three operator processes with leader election on a real Lease, under faults.

Each test runs its replicas against the test's namespace with the Lease in that namespace too (short
timings: a lease of a few seconds), and checks invariants I1-I7 (docs/reliability.md) at the end; I6 (remote
writes per route exactly as intended, from the simulator's journal) is what proves "no duplicate POST" and
"no double write" across replicas.

- failover mid-create: SIGKILL of the leader during a burst of creates; the standby takes over and the
  crash-safe create journal (annotation before POST, lookup after) resolves the interrupted creates;
- rolling update: a new replica starts before an old one stops (SIGTERM: it releases the Lease, so a
  standby takes over long before the lease could expire); creates and spec changes run meanwhile;
- apiserver outage longer than the renew deadline: the holder stops writing (fencing: an out-of-band drift
  is NOT corrected while the apiserver is down, although the GoldRush API is reachable), and after recovery
  exactly one replica writes; deleting the objects then leaves no orphan and no double DELETE;
- sharding: three replicas split three shards; losing one moves its shards, adding one takes some back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from invariants import Invariants, committed_writes, last_seq
from pipelines import pipeline_manifest, secret_manifest, wait_phase
from test_ops_metrics import scrape, value

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

Start = Callable[..., OperatorProcess]

LEASE = "goldrush-operator"
FAST = {"GOLDRUSH_LEASE_DURATION_SECONDS": "6", "GOLDRUSH_LEASE_RENEW_DEADLINE_SECONDS": "4",
        "GOLDRUSH_LEASE_RETRY_PERIOD_SECONDS": "0.5"}


NAMES: dict[int, str] = {}  # operator process id -> its holder identity (POD_NAME)


def start_replica(start_operator: Start, inv: Invariants, namespace: str, name: str,
                  env: dict[str, str] | None = None) -> OperatorProcess:
    """One replica: leader election on, the Lease in the test's namespace, identity `name`."""
    proc = start_operator(env={
        "GOLDRUSH_LEADER_ELECTION": "true", "GOLDRUSH_LEASE_NAMESPACE": namespace, "POD_NAME": name,
        "GOLDRUSH_LOG_LEVEL": "DEBUG", **FAST, **(env or {}),
    }, args=["--verbose"])
    NAMES[proc.proc.pid] = name
    inv.watch(proc)
    return proc


def name_of(op: OperatorProcess) -> str:
    return NAMES[op.proc.pid]


def lease(kubectl: Kubectl, name: str = LEASE) -> dict[str, Any]:
    proc = kubectl("get", "lease", name, "-o", "json", check=False)
    if proc.returncode != 0:
        return {}
    spec: dict[str, Any] = json.loads(proc.stdout).get("spec") or {}
    return spec


def holder(kubectl: Kubectl, name: str = LEASE) -> str:
    return str(lease(kubectl, name).get("holderIdentity") or "")


def gauge(op: OperatorProcess, name: str) -> float | None:
    """One of the operator's gauges, or None while its metrics endpoint does not answer."""
    try:
        return value(scrape(op), name)
    except OSError:
        return None


def leader_metric(op: OperatorProcess) -> float | None:
    return gauge(op, "goldrush_leader")


def standby(op: OperatorProcess) -> bool:
    """The replica is up (its metrics answer) and does not write."""
    return leader_metric(op) == 0.0


def apply_many(kubectl: Kubectl, names: list[str], **spec: Any) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": [pipeline_manifest(n, **spec) for n in names]})


def api_writes(op: OperatorProcess) -> float:
    samples = scrape(op)
    return sum(value(samples, "goldrush_api_requests_total", method=m) for m in ("POST", "PATCH", "PUT", "DELETE"))


# ------------------------------------------------------------------------------------------ failover


@pytest.mark.slow
def test_sigkill_of_the_leader_mid_burst_no_duplicate_and_all_ready(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str
) -> None:
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    # The leader never gives up on a create by itself; 4 requests in flight keep the burst slow enough for the kill to
    # land mid-burst on any machine.
    env = {"GOLDRUSH_REQUEST_TIMEOUT_SECONDS": "60", "GOLDRUSH_MAX_CONCURRENCY": "4"}
    a = start_replica(start_operator, inv, namespace, "replica-a", env)
    wait_for(lambda: holder(kubectl) == "replica-a", 60, message="replica-a holding the Lease")
    b = start_replica(start_operator, inv, namespace, "replica-b", env)
    wait_for(lambda: standby(b), 60, message="replica-b up as a standby")
    # Slow answers, and two creates that commit but whose answers never reach the leader: the kill lands
    # while those are interrupted (committed remotely, id not recorded yet).
    sim.faults(latency_ms=300, delay_after_commit={"route": "create", "method": "POST", "count": 2, "seconds": 120})
    names = [f"p{i:02d}" for i in range(30)]
    apply_many(kubectl, names)
    wait_for(lambda: committed_writes(sim)["create"] >= 6, 90, interval=0.1, message="the first creates")
    assert api_writes(b) == 0, "the standby wrote to the API"
    a.kill()
    assert committed_writes(sim)["create"] < len(names), "the kill came too late to prove anything"
    sim.clear_faults()
    wait_for(lambda: holder(kubectl) == "replica-b", 60, message="replica-b taking the Lease over")
    inv.check(writes={"create": len(names)}, timeout=180, quiet=3)
    assert "acquired Lease" in b.log
    # The interrupted creates were resolved by the new leader from the create journal, not created again.
    assert b.log.count("created by an interrupted attempt") >= 2, b.log[-3000:]
    assert leader_metric(b) == 1.0
    assert lease(kubectl)["leaseTransitions"] >= 1


# ------------------------------------------------------------------------------------------ rolling update


@pytest.mark.slow
def test_rolling_update_new_replica_first_then_graceful_stop_zero_double_writes(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str
) -> None:
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    # A lease far longer than the test's waits: only a release can hand it over in time.
    slow_lease = {"GOLDRUSH_LEASE_DURATION_SECONDS": "120", "GOLDRUSH_LEASE_RENEW_DEADLINE_SECONDS": "60",
                  "GOLDRUSH_LEASE_RETRY_PERIOD_SECONDS": "0.5"}
    old = [start_replica(start_operator, inv, namespace, n, slow_lease) for n in ("old-a", "old-b")]
    wait_for(lambda: holder(kubectl) in ("old-a", "old-b"), 60, message="an old replica holding the Lease")
    first = [f"p{i:02d}" for i in range(8)]
    apply_many(kubectl, first)
    for n in first:
        wait_phase(kubectl, n, "RUNNING", ready="True", timeout=90)

    sim.faults(latency_ms=150)
    new: list[OperatorProcess] = []
    second = [f"q{i:02d}" for i in range(8)]
    leader_first = sorted(old, key=lambda o: name_of(o) != holder(kubectl))
    for step, old_replica in enumerate(leader_first):  # like a Deployment with maxSurge 1, maxUnavailable 0
        replica = start_replica(start_operator, inv, namespace, f"new-{step}", slow_lease)
        wait_for(lambda r=replica: standby(r), 60, message=f"new-{step} up")  # type: ignore[misc]
        new.append(replica)
        if step == 0:  # work in flight while the leader is replaced
            apply_many(kubectl, second)
            apply_many(kubectl, first, description="changed during the rollout")
        was_holder = holder(kubectl) == name_of(old_replica)
        old_replica.stop()  # SIGTERM
        if was_holder:
            assert "released Lease" in old_replica.log
            wait_for(lambda r=old_replica: holder(kubectl) not in ("", name_of(r)), 30,  # type: ignore[misc]
                     message="a standby taking the released Lease (long before it could expire)")
    sim.clear_faults()
    assert holder(kubectl) in ("new-0", "new-1")
    summary = inv.check(writes={"create": 16, "patch": 8}, timeout=180, quiet=3)
    patched = [e["path"] for e in sim.journal() if e["method"] == "PATCH" and 200 <= int(e["status"]) < 300]
    assert len(patched) == len(set(patched)) == 8, patched  # one PATCH per changed object, never two
    assert summary is not None
    assert sum(1 for r in new if leader_metric(r) == 1.0) == 1


# ------------------------------------------------------------------------------------------ apiserver outage


@pytest.mark.slow
def test_apiserver_outage_longer_than_the_renew_deadline_fences_the_holder(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str, control_plane: ControlPlane
) -> None:
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    env = {"GOLDRUSH_POLL_SLOW_SECONDS": "2"}  # full configuration checks (drift corrections) every ~2 s
    a = start_replica(start_operator, inv, namespace, "replica-a", env)
    wait_for(lambda: holder(kubectl) == "replica-a", 60, message="replica-a holding the Lease")
    b = start_replica(start_operator, inv, namespace, "replica-b", env)
    wait_for(lambda: standby(b), 60, message="replica-b up as a standby")
    names = [f"p{i}" for i in range(4)]
    apply_many(kubectl, names)
    ids = [wait_phase(kubectl, n, "RUNNING", ready="True", timeout=90)["status"]["pipelineId"] for n in names]

    control_plane.stop_apiserver()
    try:
        wait_for(lambda: "could not renew Lease" in a.log, 30, message="replica-a fencing itself")
        assert leader_metric(a) == 0.0 and leader_metric(b) == 0.0
        # Drift made out of band while the apiserver is down: the GoldRush API is reachable, but nobody
        # may correct it (the holder is fenced, the standby has no Lease).
        for pid in ids:
            assert sim.api("PATCH", f"{pid}/", {"description": "drifted while the apiserver was down"}).is_success
        seq = last_seq(sim)
        time.sleep(8)  # several full-check cadences, and past the lease duration (6 s)
        assert committed_writes(sim, since=seq).total() == 0, "a replica wrote while it held no valid Lease"
    finally:
        control_plane.start_apiserver()

    # After recovery exactly one writer, and it corrects every drift once.
    wait_for(lambda: [leader_metric(a), leader_metric(b)].count(1.0) == 1, 60, message="one leader again")
    wait_for(lambda: committed_writes(sim, since=seq)["patch"] >= len(ids), 60, message="the drift corrections")
    inv.check(writes={"create": len(names), "patch": 2 * len(ids)}, timeout=120, quiet=3)
    for _ in range(5):
        assert [leader_metric(a), leader_metric(b)].count(1.0) == 1
        time.sleep(0.5)

    # Deletion with both replicas up: the holder deletes each remote once and removes the finalizer; the
    # standby runs no pass (its deletion passes are parked like every other) and sends nothing.
    kubectl("delete", "goldrushpipelines", "--all", "--timeout=60s")
    inv.mark_deleted(*names)
    inv.check(writes={"create": len(names), "patch": 2 * len(ids), "delete": len(ids)}, timeout=60, quiet=3)
    a.stop()
    b.stop()
    for op in (a, b):
        assert "Traceback" not in op.log, op.log[-3000:]


# ------------------------------------------------------------------------------------------ sharding


def shard_holders(kubectl: Kubectl, shards: int) -> list[str]:
    return [holder(kubectl, f"{LEASE}-shard-{i}") for i in range(shards)]


def shards_owned(op: OperatorProcess) -> float | None:
    return gauge(op, "goldrush_shards_owned")


@pytest.mark.slow
def test_shards_rebalance_on_replica_loss_and_add(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str
) -> None:
    """On an apiserver without server-side sharded watches (the default): every replica watches every object."""

    def every_replica_watches_every_object(replicas: dict[str, OperatorProcess], names: list[str]) -> None:
        for op in replicas.values():
            assert "sharded watch: client-side" in op.log
            wait_for(lambda op=op: watched(op) == len(names), 30, message="every object watched")

    shards_rebalance(kubectl, sim, start_operator, namespace, every_replica_watches_every_object)


@pytest.mark.slow
def test_objects_of_one_remote_name_in_different_shards_leave_one_pipeline_per_name(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str
) -> None:
    """Pairs of objects naming one remote pipeline (`spec.pipelineName`), applied at once to three sharded
    replicas: a pair split over two replicas races (each replica's listing may predate the other's POST, and
    the in-process claim covers one process only). The name rule holds across replicas: per name exactly one
    remote pipeline, held by one object of the pair; the other stalls NameConflict (a twin its replica created
    is deleted by that replica), and nothing else is written."""
    inv = Invariants(kubectl, sim)  # replicas are watched for leaked secrets and crashes
    kubectl.apply(secret_manifest())
    for n in ("r0", "r1", "r2"):
        start_replica(start_operator, inv, namespace, n, {"GOLDRUSH_SHARDS": "3"})
    wait_for(lambda: set(shard_holders(kubectl, 3)) == {"r0", "r1", "r2"}, 90, message="one shard per replica")
    pairs = 6
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": [
        pipeline_manifest(f"{side}{i}", pipelineName=f"shared-{i}") for i in range(pairs) for side in "ab"]})

    def outcome(obj: dict[str, Any]) -> str | None:
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        stalled, ready = conditions.get("Stalled", {}), conditions.get("Ready", {})
        if stalled.get("status") == "True" and stalled.get("reason") == "NameConflict":
            return "conflict"
        if ready.get("status") == "True" and obj["status"].get("phase") == "RUNNING":
            return "running"
        return None

    def settled() -> dict[str, dict[str, Any]] | None:
        """Per pair one object running and one stalled NameConflict (two that yielded at once retry)."""
        objs = {o["metadata"]["name"]: o for o in kubectl.json("get", "goldrushpipelines")["items"]}
        if len(objs) != 2 * pairs:
            return None
        for i in range(pairs):
            if sorted(str(outcome(objs[f"{side}{i}"])) for side in "ab") != ["conflict", "running"]:
                return None
        return objs

    objs = wait_for(settled, 150, message="per pair one object running and one stalled NameConflict")
    writes = committed_writes(sim)
    time.sleep(6)  # quiet: no create, delete or status flip follows
    assert committed_writes(sim) == writes and settled() is not None
    remote = sim.pipelines()
    for i in range(pairs):
        named = [r["id"] for r in remote if r["name"] == f"shared-{i}"]
        winner = next(objs[f"{side}{i}"] for side in "ab" if outcome(objs[f"{side}{i}"]) == "running")
        assert named == [winner["status"]["pipelineId"]], (named, winner["metadata"]["name"])
    assert len(remote) == pairs
    assert writes["create"] - writes["delete"] == pairs and not writes["patch"] and not writes["put"], writes
    for name, obj in objs.items():
        if outcome(obj) == "conflict":
            assert "pipelineId" not in obj["status"], name
            assert "goldrush.dev/pipeline-id" not in obj["metadata"].get("annotations", {}), name


def watched(op: OperatorProcess) -> float | None:
    return gauge(op, "goldrush_watched_pipelines")


def shards_rebalance(
    kubectl: Kubectl, sim: SimProcess, start_operator: Start, namespace: str,
    settled: Callable[[dict[str, OperatorProcess], list[str]], None] = lambda _replicas, _names: None,
) -> None:
    """Three replicas split three shards; one is lost, one added; every object is written once per change by
    exactly one replica. `settled(replicas, names)` runs after each round's writes are checked."""
    inv = Invariants(kubectl, sim)
    kubectl.apply(secret_manifest())
    env = {"GOLDRUSH_SHARDS": "3"}
    replicas = {n: start_replica(start_operator, inv, namespace, n, env) for n in ("r0", "r1", "r2")}

    def spread(live: set[str]) -> bool:
        holders = shard_holders(kubectl, 3)
        return set(holders) == live if len(live) == 3 else (set(holders) <= live and "" not in holders)

    wait_for(lambda: spread({"r0", "r1", "r2"}), 90, message="one shard per replica")
    names = [f"p{i:02d}" for i in range(12)]
    apply_many(kubectl, names)
    inv.check(writes={"create": len(names)}, timeout=150, quiet=2)
    assert all(shards_owned(r) == 1.0 for r in replicas.values())
    settled(replicas, names)

    lost = holder(kubectl, f"{LEASE}-shard-0")
    replicas.pop(lost).kill()  # no release: its Leases expire
    wait_for(lambda: spread(set(replicas)), 60, message="the lost replica's shard taken over")
    apply_many(kubectl, names, description="after the loss")  # every object, whatever its shard
    inv.check(writes={"create": len(names), "patch": len(names)}, timeout=150, quiet=2)
    settled(replicas, names)

    replicas["r3"] = start_replica(start_operator, inv, namespace, "r3", env)
    wait_for(lambda: spread(set(replicas)), 90, message="the added replica taking a shard")
    apply_many(kubectl, names, description="after the add")
    inv.check(writes={"create": len(names), "patch": 2 * len(names)}, timeout=150, quiet=2)
    assert sorted(shards_owned(r) for r in replicas.values()) == [1.0, 1.0, 1.0]
    settled(replicas, names)
