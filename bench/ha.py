"""B12 (failover) and B13 (sharding): several operator replicas with leader election on real Leases.

Called by `bench.run.session` on the session's control plane, each scenario with a fresh simulator. Every
replica is a real operator process with `GOLDRUSH_LEADER_ELECTION=true`, its Leases in the scenario's
namespace, the default lease timings (`LEASE`: 15 s duration, 10 s renew deadline, 2 s retry period) and
an identity of its own on both sides, so that every write can be attributed to the replica that sent it:
- Kubernetes: a client certificate per replica (`env.REPLICA_USERS`), audited like the operator;
- GoldRush API: a service key per replica, all in one key group (the simulator's journal records a hash of
  the key of every request), so every replica sees the same pipelines.

B12: two replicas, N objects (default 200) created at once; a thread SIGKILLs the leader as soon as N/2
creating POSTs were answered. Figures: time from the kill to the standby's first write (API or
Kubernetes), writes of the killed replica after the kill (audit log and journal), creating POSTs per
object name and remote pipelines per name, and whether every object became Ready.

B13: first one replica holding all K=3 shards, then three replicas (one shard each), each run on 3,000
objects (quick: 600) in a namespace of its own:
1. empty baseline RSS once the replica(s) hold their shards; N objects created; all Ready; RSS again;
2. a change round (every 10th object's description changed, every 30th paused), the same in both runs; in
   the sharded run it is applied right after a SIGKILL of the replica holding shard 0, so that the objects
   of the killed replica are reconciled by the others (time from the kill to the last of their writes);
3. API writes per object (POST, PATCH, PUT by object index, from the journal) compared between the runs,
   and the writes per replica (journal by key, audit log by user) over the sharded run;
4. the replicas restarted with every object in place: RSS once all are observed (the steady state, as B4
   measures it; the RSS right after the burst also holds the burst's transient peak) minus the empty baseline.
Every RSS is read once each process's RSS has stopped moving (`_stable_rss`), after a fixed wait.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import env
from bench.common import Ctx, api_since, keys_in, last_seq, populate, stop_op, wait_ready
from bench.crash import creates, kill_at
from goldrush_operator.lease import shard_of
from goldrush_sim.config import DEFAULT_GROUP
from goldrush_sim.journal import key_hash
from support.operator import OperatorProcess
from support.sim import SimProcess

NS_B12 = "bench-b12"
NS_B13_SINGLE = "bench-b13-single"
NS_B13 = "bench-b13"
LEASE = {"duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}  # the operator's defaults
SHARDS = 3
SETTLE = 10.0
WRITES = ("create", "patch", "put", "delete")


@dataclass
class Replica:
    """One operator replica and the identities its writes carry."""

    name: str          # POD_NAME, the Lease holder identity
    user: str          # its Kubernetes user (audit log)
    key: str           # its service key
    op: OperatorProcess

    @property
    def key_hash(self) -> str:
        return str(key_hash(self.key))


def start_sim(keys: list[str]) -> SimProcess:
    """A simulator that accepts `keys`, all in one group (the same pipelines for every replica)."""
    args: list[str] = []
    for key in keys:
        args += ["--service-key", f"{key}={DEFAULT_GROUP}"]
    return env.start_sim(*args)


def start_replica(ctx: Ctx, sim: SimProcess, index: int, name: str, namespace: str,
                  **overrides: str) -> Replica:
    """An operator replica scoped to `namespace`, with its Leases there, identity `name`, user and key `index`."""
    assert ctx.plane is not None
    user = env.REPLICA_USERS[index]
    kubeconfig = ctx.workdir / f"{user}.kubeconfig"
    if not kubeconfig.exists():
        ctx.plane.write_user_kubeconfig(kubeconfig, user, ["system:masters"])
    key = f"replica-key-{index}"
    settings = env.operator_env(
        GOLDRUSH_RATE_LIMIT=str(ctx.rate_limit), GOLDRUSH_MAX_CONCURRENCY=str(ctx.concurrency),
        GOLDRUSH_LEADER_ELECTION="true", GOLDRUSH_LEASE_NAMESPACE=namespace, POD_NAME=name,
        POD_NAMESPACE=namespace, GOLDRUSH_SERVICE_KEY=key, **overrides)
    op = env.start_operator(kubeconfig, sim, ctx.log_path(), settings, [namespace])
    return Replica(name, user, key, op)


def stop_replicas(replicas: list[Replica]) -> None:
    for r in replicas:
        if r.op.alive():
            r.op.stop()


async def lease_holder(ctx: Ctx, namespace: str, name: str) -> str:
    assert ctx.kube
    try:
        obj = await ctx.kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                                     ok=(200,), retries=0)
    except RuntimeError:
        return ""
    return str(((obj or {}).get("spec") or {}).get("holderIdentity") or "")


def gauge(op: OperatorProcess, name: str) -> float | None:
    m = env.scrape(op)
    if m is None or name not in m:
        return None
    return m[name]


async def until(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    """Poll `predicate` (sync or async) until truthy or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(step)
    return False


def names_by_id(sim: SimProcess, prefix: str) -> dict[str, str]:
    return {p["id"]: p["name"] for p in sim.pipelines() if str(p.get("name", "")).startswith(prefix)}


def writes_per_object(entries: list[dict[str, Any]], ids: dict[str, str], prefix: str) -> dict[str, Counter[str]]:
    """{object name: Counter of its API writes by route} from journal entries (answered < 300 or not)."""
    out: dict[str, Counter[str]] = {}
    for e in entries:
        if e["route"] not in WRITES:
            continue
        if e["route"] == "create":
            name = str((e.get("body") or {}).get("name", ""))
        else:
            name = ids.get(e["path"].rstrip("/").rsplit("/", 1)[-1], "")
        if name.startswith(prefix):
            out.setdefault(name.removeprefix(prefix), Counter())[e["route"]] += 1
    return out


# ------------------------------------------------------------------------------------------------- B12


async def b12(ctx: Ctx) -> None:
    assert ctx.kube
    assert ctx.audit
    stop_op(ctx)
    n = ctx.b12_objects
    sim = await asyncio.to_thread(start_sim, ["replica-key-0", "replica-key-1"])
    replicas: list[Replica] = []
    try:
        await ctx.kube.ensure_namespace(NS_B12)
        a = start_replica(ctx, sim, 0, "replica-a", NS_B12)
        replicas.append(a)
        led = await until(lambda: lease_holder(ctx, NS_B12, "goldrush-operator"), 60)
        b = start_replica(ctx, sim, 1, "replica-b", NS_B12)
        replicas.append(b)
        await until(lambda: gauge(b.op, "goldrush_leader") == 0.0, 30)
        await asyncio.sleep(3)
        leader_name = await lease_holder(ctx, NS_B12, "goldrush-operator")
        if not led or leader_name not in ("replica-a", "replica-b"):
            ctx.add("B12", "a leader elected", leader_name or "none", "", "replica-a or replica-b", False)
            return
        leader, standby = (a, b) if leader_name == "replica-a" else (b, a)
        seq0 = await asyncio.to_thread(last_seq, sim)
        mark0 = ctx.audit.mark()
        base = await asyncio.to_thread(creates, sim.admin_url)
        kill: dict[str, Any] = {}
        stop = threading.Event()
        killer = threading.Thread(target=kill_at, args=(leader.op, sim.admin_url, base + n // 2, stop, kill),
                                  daemon=True)
        killer.start()
        keys = keys_in(NS_B12, 0, n)
        t0 = await populate(ctx, NS_B12, 0, n)
        while killer.is_alive() and time.time() - t0 < 300:
            await asyncio.sleep(0.05)
        stop.set()
        if "killed_at" not in kill:
            ctx.add("B12", "SIGKILL of the leader after half of the creates", "not reached", "", f"{n // 2} POSTs",
                    False)
            return
        t_kill = kill["killed_at"]
        ok = await wait_ready(ctx, keys, 300)
        t_ready = max((ctx.watcher.records[k].first_ready or 0.0) for k in keys) if ok else None  # type: ignore[union-attr]
        await asyncio.sleep(5)  # late (duplicate) creates would arrive now
        entries = (await api_since(sim, seq0)).entries
        audit = ctx.audit.writes_by(mark0)
        prefix = f"{NS_B12}-"
        ids = await asyncio.to_thread(names_by_id, sim, prefix)
        per_object = writes_per_object(entries, ids, prefix)
        remote = Counter(ids.values())
        duplicates = sum(max(0, c["create"] - 1) for c in per_object.values())
        twins = sum(c - 1 for c in remote.values() if c > 1)
        missing = sum(1 for k in keys if remote.get(f"{prefix}{k[1]}", 0) == 0)
        standby_api = [e["time"] for e in entries if e.get("key") == standby.key_hash and e["route"] in WRITES]
        standby_kube = [w[1] for w in audit if w[0] == standby.user and w[1] > t_kill and _counted(w)]
        first = min([*standby_api, *standby_kube], default=None)
        # A SIGKILLed process sends nothing; what arrives after the kill was sent before it (in the sockets
        # while the apiserver or the simulator was busy). The target is that none of it arrives once the
        # standby writes: the two never write at the same time.
        killed_api = [e["time"] for e in entries if e.get("key") == leader.key_hash and e["time"] > t_kill
                      and e["route"] in WRITES]
        killed_kube = [w[1] for w in audit if w[0] == leader.user and w[1] > t_kill]
        overlap = [t for t in [*killed_api, *killed_kube] if first is None or t >= first]
        drained = max([*killed_api, *killed_kube], default=None)
        resume = round(first - t_kill, 2) if first is not None else None
        bound = LEASE["duration"] + 5
        ctx.details["B12"] = {
            "objects": n, "lease": LEASE, "killed": leader.name, "creates_before_kill": kill["creates_seen_before_kill"]
            - base, "kill_after_first_create_seconds": round(t_kill - t0, 2),
            "standby_first_api_write_seconds": round(min(standby_api) - t_kill, 2) if standby_api else None,
            "standby_first_kubernetes_write_seconds": round(min(standby_kube) - t_kill, 2) if standby_kube else None,
            "kill_to_all_ready_seconds": round(t_ready - t_kill, 2) if t_ready else None,
            "creating_posts": sum(c["create"] for c in per_object.values()), "duplicate_posts": duplicates,
            "remote_twins": twins, "missing": missing,
            "writes_by_killed_arriving_after_kill": {"api": len(killed_api), "kubernetes": len(killed_kube),
                                                     "last_arrival_after_kill_seconds":
                                                     round(drained - t_kill, 2) if drained else None},
            "writes_by_killed_arriving_after_standby_first_write": len(overlap),
            "new_holder": await lease_holder(ctx, NS_B12, "goldrush-operator"),
            "api_writes_by_replica": dict(Counter(
                next((r.name for r in replicas if r.key_hash == e.get("key")), "?")
                for e in entries if e["route"] in WRITES)),
            "kubernetes_writes_by_replica": {r.name: dict(Counter(w[2] for w in audit if w[0] == r.user))
                                             for r in replicas},
            "kubernetes_writes_by_standby_before_kill": dict(Counter(w[2] for w in audit if w[0] == standby.user
                                                                     and w[1] <= t_kill)),
        }
        ctx.add("B12", f"SIGKILL of the leader at {kill['creates_seen_before_kill'] - base} of {n} creates: "
                "standby's first write after the kill", resume if resume is not None else "none", "s",
                f"<= {bound:g} (lease duration + 5)", resume is not None and resume <= bound)
        ctx.add("B12", "duplicate POSTs (creating POSTs beyond one per object)", duplicates, "", "== 0",
                duplicates == 0 and twins == 0 and missing == 0)
        ctx.add("B12", "writes by the killed replica arriving once the standby writes (API + Kubernetes)",
                len(overlap), "", "== 0", not overlap)
        ctx.add("B12", "writes by the killed replica arriving after the kill (sent before it, in flight)",
                len(killed_api) + len(killed_kube), "", "information", None)
        ctx.add("B12", f"all {n} Ready: kill -> last Ready", round(t_ready - t_kill, 2) if t_ready else "timeout",
                "s", "all Ready", ok)
    finally:
        stop_replicas(replicas)
        await asyncio.to_thread(sim.stop)


# ------------------------------------------------------------------------------------------------- B13


async def _owned(replicas: list[Replica], each: int, timeout: float) -> bool:
    def check() -> bool:
        return all(gauge(r.op, "goldrush_shards_owned") == each for r in replicas)

    return await until(check, timeout, 0.5)


async def _change_round(ctx: Ctx, namespace: str, n: int) -> tuple[list[int], list[int]]:
    """Every 10th object's description changed and every 30th (offset 5) paused; returns both index lists."""
    assert ctx.kube
    described = list(range(0, n, 10))
    paused = list(range(5, n, 30))
    sem = asyncio.Semaphore(32)

    async def patch(i: int, body: dict[str, Any]) -> None:
        async with sem:
            await ctx.kube.patch_pipeline(namespace, f"p-{i:05d}", {"spec": body})  # type: ignore[union-attr]

    await asyncio.gather(*(patch(i, {"description": f"changed {i}"}) for i in described),
                         *(patch(i, {"paused": True}) for i in paused))
    return described, paused


async def _wait_writes(sim: SimProcess, seq: int, prefix: str, ids: dict[str, str], want: dict[str, Counter[str]],
                       timeout: float) -> tuple[bool, list[dict[str, Any]]]:
    """Wait until the journal since `seq` holds at least `want` (per object, per route; `ids`: pipeline id
    -> name, every object's pipeline exists already)."""
    deadline = time.monotonic() + timeout
    entries: list[dict[str, Any]] = []
    while True:
        entries = (await api_since(sim, seq)).entries
        have = writes_per_object(entries, ids, prefix)
        if all(have.get(name, Counter())[r] >= c for name, w in want.items() for r, c in w.items()):
            return True, entries
        if time.monotonic() >= deadline:
            return False, entries
        await asyncio.sleep(0.5)


def _counted(write: tuple[str, float, str]) -> bool:
    """A Kubernetes write that counts as the replica's work: every write but a Lease renewal (the finalizer
    is the operator's own, written under the Lease gate like everything else)."""
    return not write[2].endswith(" leases")


def _rss(r: Replica) -> float:
    return env.proc_memory(r.op.proc.pid)["rss_mib"]


STABLE_SAMPLES = 5       # RSS read once each replica's last 5 samples, 1 s apart, ...
STABLE_MIB = 0.5         # ... lie within 0.5 MiB of each other
STABLE_TIMEOUT = 60.0    # at most this long; then the last sample, flagged not stable


async def _stable_rss(replicas: list[Replica]) -> tuple[dict[str, float], float, bool]:
    """Each replica's RSS once it has stopped moving: (RSS by replica, seconds waited, whether all were stable).

    A replica still finishing its start-up passes reads above where it settles; a fixed wait cannot tell the
    two apart. In the runs of finding 35 every process was already stable at the first reading: the
    replicas' spread is not a late decline."""
    started = time.monotonic()
    samples: dict[str, list[float]] = {r.name: [] for r in replicas}
    while True:
        for r in replicas:
            samples[r.name] = (samples[r.name] + [_rss(r)])[-STABLE_SAMPLES:]
        stable = all(len(v) == STABLE_SAMPLES and max(v) - min(v) <= STABLE_MIB for v in samples.values())
        waited = time.monotonic() - started
        if stable or waited >= STABLE_TIMEOUT:
            return {k: v[-1] for k, v in samples.items()}, round(waited, 1), stable
        await asyncio.sleep(1.0)


async def _run_b13(ctx: Ctx, sim: SimProcess, namespace: str, replicas_wanted: int,
                   kill: bool) -> dict[str, Any]:
    """One B13 run: replicas up and owning their shards, N objects Ready, the change round (after a kill)."""
    assert ctx.kube
    assert ctx.audit
    assert ctx.watcher
    n = ctx.b13_objects
    prefix = f"{namespace}-"
    await ctx.kube.ensure_namespace(namespace)
    replicas = [start_replica(ctx, sim, i, f"replica-{i}", namespace, GOLDRUSH_SHARDS=str(SHARDS))
                for i in range(replicas_wanted)]
    out: dict[str, Any] = {"replicas": replicas_wanted}
    try:
        out["shards_settled"] = await _owned(replicas, SHARDS // replicas_wanted, 120)
        await asyncio.sleep(5)
        base, out["rss_empty_wait_seconds"], out["rss_empty_stable"] = await _stable_rss(replicas)
        seq0 = await asyncio.to_thread(last_seq, sim)
        mark0 = ctx.audit.mark()
        keys = keys_in(namespace, 0, n)
        t0 = await populate(ctx, namespace, 0, n)
        ready = await wait_ready(ctx, keys, 900)
        out["all_ready"] = ready
        if not ready:
            late = [k for k in keys if not ctx.watcher.records[k].ready][:5]
            out["not_ready"] = {k[1]: ((await ctx.kube.get_pipeline(*k)).get("status") or {}) for k in late}
        out["ready_seconds"] = round(max((ctx.watcher.records[k].first_ready or 0.0) for k in keys) - t0, 2) \
            if ready else None
        await asyncio.sleep(SETTLE)
        held, out["rss_holding_wait_seconds"], out["rss_holding_stable"] = await _stable_rss(replicas)
        out["rss_empty_mib"] = base
        out["rss_holding_mib"] = held
        out["rss_added_mib"] = {k: round(held[k] - base[k], 1) for k in base}

        # which objects each replica holds (shard Leases), for the kill
        holders = {s: await lease_holder(ctx, namespace, f"goldrush-operator-shard-{s}") for s in range(SHARDS)}
        out["shard_holders"] = holders
        victim = next((r for r in replicas if r.name == holders.get(0)), None) if kill else None
        seq1 = await asyncio.to_thread(last_seq, sim)
        t_kill = time.time()
        if victim is not None:
            victim.op.kill()
            out["killed"] = victim.name
        described, paused = await _change_round(ctx, namespace, n)
        want = {f"p-{i:05d}": Counter({"patch": 1}) for i in described}
        for i in paused:
            want.setdefault(f"p-{i:05d}", Counter())["put"] += 1
        ids = await asyncio.to_thread(names_by_id, sim, prefix)  # every object has its pipeline by now
        done, _ = await _wait_writes(sim, seq1, prefix, ids, want, 180)
        out["change_round_done"] = done
        await asyncio.sleep(SETTLE)
        entries = (await api_since(sim, seq0)).entries
        out["writes_per_object"] = {k: dict(v) for k, v in writes_per_object(entries, ids, prefix).items()}
        after = writes_per_object([e for e in entries if e["seq"] > seq1], ids, prefix)
        if victim is not None:
            victim_shards = {s for s, h in holders.items() if h == victim.name}
            moved = {k[1] for k in keys if ctx.watcher.records[k].uid
                     and shard_of(str(ctx.watcher.records[k].uid), SHARDS) in victim_shards}
            first_by_name: dict[str, float] = {}
            for e in entries:
                if e["seq"] <= seq1 or e["route"] not in ("patch", "put"):
                    continue
                name = ids.get(e["path"].rstrip("/").rsplit("/", 1)[-1], "").removeprefix(prefix)
                if name in moved and name in after:
                    first_by_name.setdefault(name, e["time"])
            out["moved_objects_changed"] = len(first_by_name)
            out["moved_objects_expected"] = len(moved & set(want))
            out["kill_to_last_moved_write_seconds"] = round(max(first_by_name.values()) - t_kill, 2) \
                if first_by_name else None
            others = [e["time"] for e in entries if e["seq"] > seq1 and e["route"] in WRITES
                      and e.get("key") != victim.key_hash and ids.get(e["path"].rstrip("/").rsplit("/", 1)[-1],
                                                                      "").removeprefix(prefix) in moved]
            taken = min(others, default=None)
            late = [e["time"] for e in entries if e.get("key") == victim.key_hash and e["time"] > t_kill
                    and e["route"] in WRITES]
            out["writes_by_killed_arriving_after_kill"] = len(late)
            out["writes_by_killed_arriving_after_takeover"] = sum(1 for t in late if taken is None or t >= taken)
        audit = ctx.audit.writes_by(mark0)
        # Steady state (as B4 measures): the replicas restarted with every object in place; RSS once each
        # holds its shards, every object was observed (`goldrush_reconciles_total`) and SETTLE s more.
        stop_replicas(replicas)
        replicas[:] = [start_replica(ctx, sim, i, f"replica-{i}", namespace, GOLDRUSH_SHARDS=str(SHARDS))
                       for i in range(replicas_wanted)]
        out["restart_shards_settled"] = await _owned(replicas, SHARDS // replicas_wanted, 120)

        def observed() -> bool:
            return sum(env.metric_sum(env.scrape(r.op) or {}, "goldrush_reconciles_total") for r in replicas) >= n

        out["restart_all_observed"] = await until(observed, 180, 0.5)
        out["watch_mode"] = sorted({m for r in replicas for m in ("server-side", "client-side")
                                    if f"sharded watch: {m}" in r.op.log_path.read_text(errors="replace")})
        await asyncio.sleep(SETTLE)
        steady, out["rss_steady_wait_seconds"], out["rss_steady_stable"] = await _stable_rss(replicas)
        out["rss_after_restart_mib"] = steady
        out["rss_steady_added_mib"] = {k: round(steady[k] - base[k], 1) for k in base}
        out["api_writes_by_replica"] = {r.name: sum(1 for e in entries if e.get("key") == r.key_hash
                                                    and e["route"] in WRITES and e["seq"] <= seq1)
                                        for r in replicas}
        out["kubernetes_writes_by_replica"] = {r.name: sum(1 for w in audit if w[0] == r.user and w[1] <= t_kill
                                                           and _counted(w))
                                               for r in replicas}
        out["kubernetes_writes_by_replica_and_verb"] = {
            r.name: dict(Counter(w[2] for w in audit if w[0] == r.user and w[1] <= t_kill)) for r in replicas}
        return out
    finally:
        stop_replicas(replicas)


def _even(counts: dict[str, int]) -> float | None:
    """max / min of the per-replica counts (1.0 is a perfect split)."""
    vals = list(counts.values())
    return round(max(vals) / min(vals), 2) if vals and min(vals) > 0 else None


async def b13(ctx: Ctx) -> None:
    assert ctx.kube
    stop_op(ctx)
    n = ctx.b13_objects
    sim = await asyncio.to_thread(start_sim, [f"replica-key-{i}" for i in range(SHARDS)])
    try:
        single = await _run_b13(ctx, sim, NS_B13_SINGLE, 1, kill=False)
        sharded = await _run_b13(ctx, sim, NS_B13, SHARDS, kill=True)
    finally:
        await asyncio.to_thread(sim.stop)
    same = single["writes_per_object"] == sharded["writes_per_object"]
    diff = sorted(k for k in set(single["writes_per_object"]) | set(sharded["writes_per_object"])
                  if single["writes_per_object"].get(k) != sharded["writes_per_object"].get(k))
    ctx.details["B13"] = {
        "objects": n, "shards": SHARDS, "lease": LEASE,
        "single": {k: v for k, v in single.items() if k != "writes_per_object"},
        "sharded": {k: v for k, v in sharded.items() if k != "writes_per_object"},
        "objects_whose_writes_differ": diff[:20], "objects_whose_writes_differ_count": len(diff),
        "writes_per_object_single": dict(Counter(json.dumps(v, sort_keys=True)
                                                 for v in single["writes_per_object"].values())),
    }
    for label, field in (("after the create burst", "rss_added_mib"),
                         ("restarted, holding them", "rss_steady_added_mib")):
        single_added = single[field].get("replica-0", 0.0)
        worst = max(sharded[field].values()) if sharded[field] else None
        share = round(worst / single_added, 2) if worst is not None and single_added > 0 else None
        steady = field == "rss_steady_added_mib"
        ctx.add("B13", f"single replica, all {n} objects, {label}: RSS added above its empty baseline",
                round(single_added, 1), "MiB", "information", None)
        wait = "rss_steady" if steady else "rss_holding"
        read = ("each RSS read once stable, " + ", ".join(
            f"{run['replicas']} replica(s) {run[wait + '_wait_seconds']} s" if run[wait + "_stable"]
            else f"{run['replicas']} replica(s) still moving after {run[wait + '_wait_seconds']} s"
            for run in (single, sharded)))
        ctx.add("B13", f"{SHARDS} replicas, {label}: the largest RSS added above its own empty baseline / the "
                f"single replica's (MiB added per replica {sharded[field]}; {read})",
                share if share is not None else "n/a",
                "x", "<= 0.4" if steady else "information", (share is not None and share <= 0.4) if steady else None)
    ctx.add("B13", "sharded watch of the replicas (server-side: the apiserver's ShardedListAndWatch, on in this "
            "benchmark's control plane; client-side: every replica watches every object)",
            ",".join(sharded.get("watch_mode") or ["n/a"]), "", "information", None)
    api_even = _even(sharded["api_writes_by_replica"])
    kube_even = _even(sharded["kubernetes_writes_by_replica"])
    ctx.add("B13", f"API writes per replica, largest / smallest {sharded['api_writes_by_replica']}",
            api_even if api_even is not None else "n/a", "x", "<= 1.3 (~even)",
            api_even is not None and api_even <= 1.3)
    ctx.add("B13", f"Kubernetes writes per replica, largest / smallest {sharded['kubernetes_writes_by_replica']}",
            kube_even if kube_even is not None else "n/a", "x", "<= 1.3 (~even)",
            kube_even is not None and kube_even <= 1.3)
    bound = LEASE["duration"] + 10
    moved = sharded.get("kill_to_last_moved_write_seconds")
    ctx.add("B13", f"SIGKILL of one replica: its changed objects ({sharded.get('moved_objects_changed')} of "
            f"{sharded.get('moved_objects_expected')}) written by the others, kill -> last write",
            moved if moved is not None else "none", "s", f"<= {bound:g} (lease duration + 10)",
            moved is not None and moved <= bound
            and sharded.get("moved_objects_changed") == sharded.get("moved_objects_expected"))
    ctx.add("B13", "objects whose API writes (POST, PATCH, PUT) differ from the single-replica run", len(diff), "",
            "== 0", same and single["all_ready"] and sharded["all_ready"] and bool(sharded["change_round_done"]))
    ctx.add("B13", "API writes by the killed replica arriving once another replica writes its objects",
            sharded.get("writes_by_killed_arriving_after_takeover"), "", "== 0",
            sharded.get("writes_by_killed_arriving_after_takeover") == 0)
