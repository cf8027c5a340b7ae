"""B14: SIGKILL of the operator in the middle of a create burst, then a restart.

Called by `bench.run.session`. A fresh simulator (same flags as the session's, no rate limit) and the
operator with the benchmark settings, scoped to one namespace per run:
1. reference: N objects (default 500) created at once, uninterrupted; time from the first create to the last
   Ready;
2. interrupted: N objects created at once in another namespace; a thread polls the simulator's counters every
   10 ms and sends SIGKILL to the operator as soon as N/2 creating POSTs (answered 201) were journalled; a new
   operator is started at once. Figures: remote pipelines per object name (duplicates, missing), and the time
   from the restart (the new process's start) until every object is Ready.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

from bench import env
from bench.common import Ctx, api_since, keys_in, last_ready, last_seq, populate, start_op, stop_op, wait_ready
from support.operator import OperatorProcess

NS_REF = "bench-b14-ref"
NS_KILL = "bench-b14"


def creates(admin_url: str) -> int:
    """Creating POSTs answered 201 so far (the simulator's counters); also used by `bench.ha`."""
    with urllib.request.urlopen(admin_url + "counters", timeout=5) as r:  # noqa: S310 - the local simulator
        return int(json.loads(r.read())["by_route_status"].get("create 201", 0))


def kill_at(op: OperatorProcess, admin_url: str, threshold: int, stop: threading.Event,
            out: dict[str, Any]) -> None:
    """Poll the simulator's create counter; SIGKILL the operator once it reaches `threshold` (`killed_at`:
    just before the signal, so that whatever arrives later was sent before it). Also used by `bench.ha`."""
    while not stop.is_set():
        n = creates(admin_url)
        if n >= threshold:
            out["killed_at"] = time.time()
            op.kill()
            out["creates_seen_before_kill"] = n
            out["creates_right_after_kill"] = creates(admin_url)
            return
        time.sleep(0.01)


async def b14(ctx: Ctx) -> None:
    assert ctx.watcher
    stop_op(ctx)
    n = ctx.b14_objects
    threshold = n // 2
    sim = await asyncio.to_thread(env.start_sim)
    try:
        # 1. the uninterrupted burst
        await ctx.kube.ensure_namespace(NS_REF)  # type: ignore[union-attr]
        ctx.op = start_op(ctx, sim, [NS_REF])
        ref_keys = keys_in(NS_REF, 0, n)
        t0 = await populate(ctx, NS_REF, 0, n)
        ok = await wait_ready(ctx, ref_keys, 600)
        t_ref = (last_ready(ctx, ref_keys) or 0) - t0 if ok else None
        stop_op(ctx)
        base = await asyncio.to_thread(creates, sim.admin_url)

        # 2. the interrupted burst
        await ctx.kube.ensure_namespace(NS_KILL)  # type: ignore[union-attr]
        ctx.op = start_op(ctx, sim, [NS_KILL])
        kill: dict[str, Any] = {}
        stop = threading.Event()
        killer = threading.Thread(target=kill_at, args=(ctx.op, sim.admin_url, base + threshold, stop, kill),
                                  daemon=True)
        killer.start()
        keys = keys_in(NS_KILL, 0, n)
        t1 = await populate(ctx, NS_KILL, 0, n)
        while killer.is_alive() and time.time() - t1 < 300:
            await asyncio.sleep(0.05)
        stop.set()
        if "killed_at" not in kill:
            ctx.add("B14", "SIGKILL after half of the creates", "not reached", "", f"{threshold} POSTs", False)
            return
        ready_at_kill = sum(1 for k in keys if ctx.watcher.records.get(k) and ctx.watcher.records[k].ready)
        seq = await asyncio.to_thread(last_seq, sim)
        t_restart = time.time()
        ctx.op = start_op(ctx, sim, [NS_KILL])
        ok = await wait_ready(ctx, keys, 600)
        t_after = (last_ready(ctx, keys) or 0) - t_restart if ok else None
        await asyncio.sleep(5)  # let late (duplicate) creates arrive before counting
        names = Counter(p["name"] for p in await asyncio.to_thread(sim.pipelines)
                        if str(p.get("name", "")).startswith(f"{NS_KILL}-"))
        duplicates = sum(c - 1 for c in names.values() if c > 1)
        missing = sum(1 for k in keys if names.get(f"{NS_KILL}-{k[1]}", 0) == 0)
        posts = await asyncio.to_thread(creates, sim.admin_url)
        after = [e for e in (await api_since(sim, seq)).entries if e["time"] >= t_restart]
        first_req = min((e["time"] for e in after), default=None)
        first_post = min((e["time"] for e in after if e["route"] == "create"), default=None)
        readied = sorted((max(t for t, r in ctx.watcher.records[k].readiness if r) - t_restart, k[1]) for k in keys
                         if ctx.watcher.records.get(k) and ctx.watcher.records[k].ready
                         and max(t for t, r in ctx.watcher.records[k].readiness if r) > t_restart)
        slowest = [{"name": name, "ready_after_restart_seconds": round(t, 2), "phases_after_restart": [
            (round(pt - t_restart, 2), ph) for pt, ph in ctx.watcher.records[(NS_KILL, name)].phases
            if pt > t_restart]} for t, name in readied[-5:]]
        ctx.details["B14"] = {
            "objects": n, "kill_threshold_creates": threshold, "reference_all_ready_seconds":
            round(t_ref, 2) if t_ref is not None else None,
            "creates_seen_before_kill": kill["creates_seen_before_kill"] - base,
            "creates_right_after_kill": kill["creates_right_after_kill"] - base,
            "ready_at_kill": ready_at_kill, "kill_after_first_create_seconds": round(kill["killed_at"] - t1, 2),
            "restart_to_all_ready_seconds": round(t_after, 2) if t_after is not None else None,
            "creating_posts_total": posts - base, "duplicates": duplicates, "missing": missing,
            "pipelines_with_more_than_one_remote": sorted(k for k, c in names.items() if c > 1)[:20],
            "after_restart": {
                "first_api_request_seconds": round(first_req - t_restart, 2) if first_req else None,
                "first_create_post_seconds": round(first_post - t_restart, 2) if first_post else None,
                "api_requests_by_route": env.JournalView(after).by_route(),
                "objects_ready_after_restart": len(readied),
                "ready_p50_seconds": env.pct([t for t, _ in readied], 50), "slowest": slowest,
            },
        }
        ctx.add("B14", f"duplicates after SIGKILL at {kill['creates_seen_before_kill'] - base} of {n} creates",
                duplicates, "", "== 0", duplicates == 0 and missing == 0)
        ctx.add("B14", f"all {n} Ready after the restart", round(t_after, 2) if t_after is not None else "timeout",
                "s", "<= 30", t_after is not None and t_after <= 30)
        ctx.add("B14", f"uninterrupted burst: all {n} Ready", round(t_ref, 2) if t_ref is not None else "timeout",
                "s", "information", None)
        ctx.add("B14", "creating POSTs in total (both operator processes)", posts - base, "", "information", None)
    finally:
        stop_op(ctx)
        await asyncio.to_thread(sim.stop)
