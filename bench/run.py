"""Benchmarks of the operator against a real local control plane and the API simulator (issues 8 and 11).

    python -m bench.run [--quick] [--scenarios B1,B3,...] [--objects N] [--keep]

Runs the scenarios of bench/README.md in one session (one control plane, one simulator with 50 ms latency)
and writes `bench/results/<date>.json`, `bench/results/<date>.md` and `bench/results/latest.md`.
`--quick` uses 200 objects, a 2-minute idle window and a 1,000-object memory point instead of 10,000.
Shared helpers: `bench.common`; B1's floors: `bench.floor`; B11: `bench.detect`; B14: `bench.crash`;
B12, B13: `bench.ha`; B10 (on a control plane of its own, after the others): `bench.unrelated`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import env, floor, lagprobe, pollfloor
from bench.common import (
    DEFAULT_BUDGET_SHARE,
    DEFAULT_RATE_LIMIT,
    DEPLOY_SECONDS,
    GROUP_SIZE,
    LATENCY,
    NS,
    NS_B2,
    NS_SCALE,
    SCALE_CONCURRENCY,
    Ctx,
    api_since,
    keys_in,
    last_ready,
    populate,
    quiet,
    reconcile_results,
    rotate,
    snapshot,
    start_op,
    stop_op,
    wait_observed,
    wait_ready,
)
from bench.crash import b14
from bench.detect import b11
from bench.ha import b12, b13
from bench.kube import KubeClient, Watcher
from bench.unrelated import b10
from support.operator import jemalloc_env
from support.sim import SimProcess

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("B1", "B3", "B4", "B5", "B6", "B8", "B9", "B2", "B11", "B14", "B12", "B13", "B10")
WORKERS = 128             # GOLDRUSH_WORKERS default (the operator's concurrent passes)
LAG = "goldrush_event_loop_lag_seconds"
POLL_FLOOR_SECONDS = 120  # B3's floor probe: how long it sends the reads (quick: 30 s)
POLL_TICK_SECONDS = 2.0  # the operator's poll ticks at B3's settings (GOLDRUSH_POLL_FAST_SECONDS)
B2_SETTLE_SECONDS = 5.0  # B2: how long the operator runs before the applies begin


# ---------------------------------------------------------------------------------------------- scenarios


async def b4_zero(ctx: Ctx) -> None:
    await asyncio.sleep(10)
    assert ctx.op
    mem = env.proc_memory(ctx.op.proc.pid)
    ctx.details["B4"] = {"points": [{"objects": 0, **mem}]}
    ctx.add("B4", "RSS with 0 objects", mem["rss_mib"], "MiB", "<= 100", mem["rss_mib"] <= 100)


async def b1(ctx: Ctx, report: bool, report_b9_burst: bool) -> None:
    assert ctx.watcher
    assert ctx.op
    assert ctx.audit
    seq, audit0, cpu0 = await snapshot(ctx)
    lag0 = env.histogram(await asyncio.to_thread(env.scrape, ctx.op) or {}, LAG)
    probe = lagprobe.Probe()
    probe.start()
    keys = keys_in(NS, 0, ctx.n)
    t0 = await populate(ctx, NS, 0, ctx.n)
    created_by = time.time() - t0
    ok = await wait_ready(ctx, keys, 600)
    lag1 = env.histogram(await asyncio.to_thread(env.scrape, ctx.op) or {}, LAG)
    idle_lag = await asyncio.to_thread(probe.stop, t0, time.time())
    recs = [ctx.watcher.records[k] for k in keys]
    ready_times = [r.first_ready for r in recs if r.first_ready is not None]
    t_all = (max(ready_times) - t0) if ok else None
    t_end = max(ready_times) if ok else time.time()
    await quiet(ctx.sim)
    view = await api_since(ctx.sim, seq)
    # POSTs are counted until the API is quiet (a late duplicate would count); everything else, and the
    # floors' plans, only up to the last Ready (afterwards the operator polls at its read budget).
    burst = env.JournalView([e for e in view.entries if e["time"] <= t_end])
    posts = view.route("create", "POST")
    posts_ok = [e for e in posts if e["status"] in (200, 201)]
    first_post: dict[str, float] = {}
    for e in posts:
        name = (e.get("body") or {}).get("name", "")
        first_post.setdefault(name, e["time"])
    lat = [first_post[f"{NS}-{k[1]}"] - ctx.watcher.records[k].created for k in keys  # type: ignore[operator]
           if f"{NS}-{k[1]}" in first_post and ctx.watcher.records[k].created]
    audit = ctx.audit.summary(audit0)
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu0
    lag_p99, lag_n = env.quantile_bound(lag0, lag1, 0.99)
    lag_p50, _ = env.quantile_bound(lag0, lag1, 0.50)
    idle_p99, idle_n = env.quantile_bound({}, lagprobe.cumulative(idle_lag), 0.99)
    ctx.details["B1"] = {
        "objects": ctx.n, "all_ready": ok, "apply_seconds": round(created_by, 2),
        "api_requests_by_route": burst.by_route(), "api_requests": len(burst.entries),
        "api_requests_per_object": round(len(burst.entries) / ctx.n, 2),
        "api_requests_until_quiet_by_route": view.by_route(),
        "kubernetes": audit, "kubernetes_writes_per_object": round(audit["operator_writes"] / ctx.n, 2),
        "operator_cpu_seconds": round(cpu, 1),
        "ready_seconds_p50": env.pct([t - t0 for t in ready_times], 50),
        "memory_after": env.proc_memory(ctx.op.proc.pid),
        "event_loop_lag": {"samples": lag_n, "p50_bucket_bound_seconds": lag_p50,
                           "p99_bucket_bound_seconds": lag_p99,
                           "buckets_during_burst": {str(b): lag1[b] - lag0.get(b, 0.0) for b in sorted(lag1)}},
        "event_loop_lag_floor": {"samples": idle_n, "p99_bucket_bound_seconds": idle_p99,
                                 "p50_seconds": env.pct(idle_lag, 50), "p99_seconds": env.pct(idle_lag, 99),
                                 "max_seconds": round(max(idle_lag), 3) if idle_lag else None},
    }
    if report:
        ctx.add("B1", f"all {ctx.n} Ready after apply", round(t_all, 2) if t_all else "timeout", "s", "<= 20",
                bool(t_all is not None and t_all <= 20))
        ctx.add("B1", "POSTs (create)", len(posts), "", f"== {ctx.n}", len(posts) == ctx.n and len(posts_ok) == ctx.n)
        ctx.add("B1", "create -> first POST p50", env.pct(lat, 50), "s", "<= 2 (anchor)", (env.pct(lat, 50) or 99) <= 2)
        ctx.add("B1", "create -> first POST p99", env.pct(lat, 99), "s", "<= 15 (anchor)",
                (env.pct(lat, 99) or 99) <= 15)
        ctx.add("B1", f"event-loop lag p99 during the burst ({lag_n} samples; histogram bucket bound)",
                round(lag_p99 * 1000, 1) if lag_p99 is not None else "no samples", "ms", "<= 10",
                lag_p99 is not None and lag_p99 <= 0.010)
        ctx.add("B1", f"floor: event-loop lag p99 of an idle probe process on the same cores during the burst "
                f"({idle_n} samples; same bucket bounds)",
                round(idle_p99 * 1000, 1) if idle_p99 is not None else "no samples", "ms", "information", None)
        await b1_floors(ctx, keys, audit0, burst, t_all)
    if report_b9_burst:
        # Phase mirroring during the burst (information): remote RUNNING = POST arrival + latency + deploy time.
        post_at = dict(first_post)
        mirror = []
        for k in keys:
            r = ctx.watcher.records[k]
            t_post = post_at.get(f"{NS}-{k[1]}")
            seen = next((t for t, ph in r.phases if ph == "RUNNING"), None)
            if t_post and seen:
                mirror.append(seen - (t_post + LATENCY + DEPLOY_SECONDS))
        ctx.details["B9_burst"] = {"p50": env.pct(mirror, 50), "p99": env.pct(mirror, 99), "n": len(mirror)}
        ctx.add("B9", f"DEPLOYING->RUNNING mirrored, during the {ctx.n}-object burst, p99", env.pct(mirror, 99),
                "s", "information", None)


async def b1_floors(ctx: Ctx, keys: list[tuple[str, str]], audit0: int, view: env.JournalView,
                    t_all: float | None) -> None:
    """B1's floors (bench.floor), measured with the operator stopped; the operator is started again after."""
    assert ctx.kube
    assert ctx.sim
    names = {k[1] for k in keys}
    kplan, kinfo = floor.kube_plan(ctx, audit0, NS, names)
    status = (await ctx.kube.get_pipeline(NS, keys[0][1])).get("status") or {}
    id_to_name = {p["id"]: p["name"].removeprefix(f"{NS}-") for p in await asyncio.to_thread(ctx.sim.pipelines)
                  if str(p.get("name", "")).startswith(f"{NS}-")}
    aplan = floor.api_plan(view, id_to_name, names, f"{NS}-")
    stop_op(ctx)
    await asyncio.sleep(2)
    kube = await floor.kube_floor(ctx, kplan, ctx.n, status, WORKERS)
    api = await floor.api_floor(aplan, ctx.n, ctx.concurrency)
    ctx.op = start_op(ctx, ctx.sim)
    await wait_observed(ctx.op, ctx.n, 120)
    rate_floor = len(view.entries) / ctx.rate_limit if ctx.rate_limit else 0.0
    ctx.details["B1_floor"] = {"kubernetes": {**kube, **kinfo}, "api": {**api, "plan_objects_with_the_modal_"
                               "sequence": aplan["objects_with_the_modal_sequence"],
                               "plan_distinct_sequences": aplan["distinct_sequences"]},
                               "client_rate_limit_seconds": round(rate_floor, 2)}
    ctx.add("B1", f"floor: kube-apiserver, the same {kube['writes_per_object']} writes per object "
            f"({ctx.n} objects, {WORKERS} at a time)", kube["seconds"], "s", "information", None)
    ctx.add("B1", f"floor: API, the same {len(aplan['chain']) + aplan['lists'] / max(1, ctx.n):.2f} requests per "
            f"object ({ctx.concurrency} at a time, deploy time included)", api["seconds"], "s", "information", None)
    ctx.add("B1", f"floor: the operator's own rate limit ({len(view.entries)} requests at {ctx.rate_limit}/s)",
            round(rate_floor, 2), "s", "information", None)
    bound = max(kube["seconds"] or 0.0, api["seconds"] or 0.0)
    ctx.add("B1", "operator time / floor (the larger of the kube-apiserver and API floors)",
            round(t_all / bound, 2) if t_all and bound else "n/a", "x", "information", None)


async def b8_b9(ctx: Ctx, do_b8: bool, do_b9: bool) -> None:
    assert ctx.watcher
    assert ctx.kube
    assert ctx.sim
    await quiet(ctx.sim)
    group = keys_in(NS, 0, GROUP_SIZE)
    ids = {ctx.watcher.records[k].pipeline_id: k for k in group}
    seq, audit0, _ = await snapshot(ctx)
    t0, patches = await rotate(ctx, NS, "dest-0", set(ids))  # type: ignore[arg-type]

    # B9: each rotated pipeline redeploys (DEPLOYING for DEPLOY_SECONDS): when does status say RUNNING again?
    def mirrored() -> list[float]:
        out = []
        for pid, t_patch in patches.items():
            rec = ctx.watcher.records.get(ids.get(pid)) if pid in ids else None  # type: ignore[union-attr, arg-type]
            if rec is None:
                continue
            remote_running = t_patch + LATENCY + DEPLOY_SECONDS
            seen = next((t for t, ph in rec.phases if ph == "RUNNING" and t > t_patch), None)
            if seen is not None:
                out.append(seen - remote_running)
            elif rec.phase == "RUNNING" and time.time() > remote_running + 5:
                # The operator's first status read after its PATCH already found RUNNING again (the
                # status never showed DEPLOYING): nothing was left to mirror.
                out.append(0.0)
        return out

    await ctx.watcher.wait(lambda: len(mirrored()) >= len(patches), 60)
    await asyncio.sleep(5)
    await quiet(ctx.sim)
    view = await api_since(ctx.sim, seq)
    all_patches = view.route("patch", "PATCH")
    lat = [t - t0 for t in patches.values()]
    ctx.details["B8"] = {"objects_sharing_secret": len(ids), "patch_latency_p50": env.pct(lat, 50),
                         "api_requests_by_route": view.by_route(), "kubernetes": ctx.audit.summary(audit0)}  # type: ignore[union-attr]
    if do_b8:
        ctx.add("B8", f"rotation -> PATCH p99 ({len(ids)} objects)", env.pct(lat, 99) if len(patches) == len(ids)
                else f"timeout ({len(patches)} of {len(ids)})", "s", "<= 5", (env.pct(lat, 99) or 99) <= 5
                and len(patches) == len(ids))
        ctx.add("B8", "PATCHes", len(all_patches), "", f"== {len(ids)}", len(all_patches) == len(ids))
    m = mirrored()
    ctx.details["B9"] = {"objects": len(m), "p50": env.pct(m, 50), "p99": env.pct(m, 99), "max": env.pct(m, 100)}
    if do_b9:
        ctx.add("B9", f"DEPLOYING->RUNNING reflected in status, p50 ({len(m)} redeploys)", env.pct(m, 50), "s",
                "<= 5 (anchor)", (env.pct(m, 50) or 99) <= 5)
        ctx.add("B9", f"DEPLOYING->RUNNING reflected in status, p99 ({len(m)} redeploys)", env.pct(m, 99), "s",
                "<= 5", len(m) == len(patches) and (env.pct(m, 99) or 99) <= 5)


async def b3_b6(ctx: Ctx, total: int, do_b3: bool, do_b6: bool) -> None:
    """Restart at the operator's default settings (20 req/s, share 0.1, slow poll 900 s) and stay idle."""
    assert ctx.sim
    assert ctx.kube
    assert ctx.audit
    assert ctx.watcher
    stop_op(ctx)
    ctx.op = start_op(ctx, ctx.sim, GOLDRUSH_RATE_LIMIT=str(DEFAULT_RATE_LIMIT), GOLDRUSH_MAX_CONCURRENCY="10",
                      GOLDRUSH_POLL_SLOW_SECONDS="900", GOLDRUSH_POLL_FAST_SECONDS=f"{POLL_TICK_SECONDS:g}")
    await wait_observed(ctx.op, total, 120)
    await asyncio.sleep(10 if ctx.quick else 30)
    seq, audit0, cpu0 = await snapshot(ctx)
    t0 = time.monotonic()
    await asyncio.sleep(ctx.idle_seconds)
    window = time.monotonic() - t0
    view = await api_since(ctx.sim, seq)
    audit = ctx.audit.summary(audit0)
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu0
    reads = len(view.reads())
    rate = reads / window
    budget = DEFAULT_RATE_LIMIT * DEFAULT_BUDGET_SHARE
    per_h = reads / total * 3600 / window
    millicores = cpu / window * 1000
    # The floor, right after the window: the same reads at the same rate from a process doing nothing else,
    # on the operator's ticks; then evenly paced, for what the ticks save.
    floor_seconds = 30 if ctx.quick else POLL_FLOOR_SECONDS
    paths = [e["path"] for e in view.reads()]  # the window's reads in their order, so the same mix of routes
    floor_mc = even_mc = 0.0
    if do_b3:
        floor_mc = await asyncio.to_thread(pollfloor.run, ctx.sim.root_url, ctx.sim.service_key, rate,
                                           floor_seconds, POLL_TICK_SECONDS, paths)
        even_mc = await asyncio.to_thread(pollfloor.run, ctx.sim.root_url, ctx.sim.service_key, rate,
                                          floor_seconds / 2, 0.0, paths)
    ctx.details["B3"] = {
        "objects": total, "window_seconds": round(window, 1), "settings": "defaults (GOLDRUSH_RATE_LIMIT 20, "
        "GOLDRUSH_POLL_BUDGET_SHARE 0.1, GOLDRUSH_POLL_SLOW_SECONDS 900, GOLDRUSH_POLL_FAST_SECONDS 2)",
        "api_requests_by_route": view.by_route(), "reads": reads, "writes": len(view.writes()),
        "read_rate_per_s": round(rate, 3), "read_budget_per_s": budget,
        "reads_per_object_per_hour": round(per_h, 2),
        "kubernetes": audit, "operator_cpu_millicores": round(millicores, 1),
        "peak_api_rate_per_s": view.peak_rate(),
        "floor_reads_only_millicores": round(floor_mc, 1), "floor_seconds": floor_seconds,
        "floor_tick_seconds": POLL_TICK_SECONDS, "reads_evenly_paced_millicores": round(even_mc, 1),
    }
    if do_b3:
        ctx.add("B3", f"API writes in {window:.0f} s idle ({total} objects, default settings)", len(view.writes()),
                "", "== 0", len(view.writes()) == 0)
        ctx.add("B3", f"API read rate over the idle window ({reads} reads)", round(rate, 3), "req/s",
                f"<= {budget:g} (read budget: {DEFAULT_RATE_LIMIT} x {DEFAULT_BUDGET_SHARE:g})", rate <= budget)
        ctx.add("B3", "API reads/object/hour", round(per_h, 2), "/h", "information", None)
        ctx.add("B3", "Kubernetes writes by the operator", audit["operator_writes"], "", "== 0",
                audit["operator_writes"] == 0)
        ctx.add("B3", "Events", audit["events"], "", "== 0", audit["events"] == 0)
        ctx.add("B3", "operator CPU while idle", round(millicores, 1), "millicores", "<= 10", millicores <= 10)
        ctx.add("B3", f"floor: CPU of a process sending only the same reads at the same rate with httpx, on the "
                f"operator's {POLL_TICK_SECONDS:g} s ticks ({floor_seconds} s, after the window)", round(floor_mc, 1),
                "millicores", "information", None)
        ctx.add("B3", f"the same reads evenly paced, not on ticks ({floor_seconds / 2:g} s, after the floor)",
                round(even_mc, 1), "millicores", "information", None)
    if not do_b6:
        return
    # ---- B6: 20 spec changes on different objects, one at a time, under this load.
    changes = 20
    targets = keys_in(NS, GROUP_SIZE, changes) if ctx.n >= GROUP_SIZE + changes else keys_in(NS, 0, changes)
    meta_only = keys_in(NS, ctx.n - 5, 5)
    ids = {ctx.watcher.records[k].pipeline_id: k for k in targets}
    meta_ids = {ctx.watcher.records[k].pipeline_id for k in meta_only}
    seq, audit0, _ = await snapshot(ctx)
    sent: dict[tuple[str, str], float] = {}
    for i, k in enumerate(targets):
        sent[k] = time.time()
        await ctx.kube.patch_pipeline(k[0], k[1], {"spec": {"description": f"changed {i} at {sent[k]:.3f}"}})
        await asyncio.sleep(1.0)
    for k in meta_only:
        await ctx.kube.patch_pipeline(k[0], k[1], {"metadata": {"labels": {"bench/touched": "yes"}}})
    await asyncio.sleep(8)
    view = await api_since(ctx.sim, seq)
    first: dict[str, float] = {}
    per_id: dict[str, int] = {}
    for e in view.route("patch", "PATCH"):
        pid = e["path"].rstrip("/").rsplit("/", 1)[-1]
        first.setdefault(pid, e["time"])
        per_id[pid] = per_id.get(pid, 0) + 1
    lat = [first[pid] - sent[k] for pid, k in ids.items() if pid in first]
    writes = view.writes()
    meta_writes = [e for e in writes if any(str(mid) in e["path"] for mid in meta_ids)]
    exactly_one = all(per_id.get(pid, 0) == 1 for pid in ids) and len(writes) == changes
    ctx.details["B6"] = {"changes": changes, "patched": len(lat), "latencies": [round(x, 3) for x in lat],
                         "writes_by_route": env.JournalView(writes).by_route(),
                         "metadata_only_edits": len(meta_only), "writes_for_metadata_only_edits": len(meta_writes),
                         "kubernetes": ctx.audit.summary(audit0)}
    ctx.add("B6", f"spec change -> PATCH p50 ({changes} changes)", env.pct(lat, 50), "s", "<= 1",
            len(lat) == changes and (env.pct(lat, 50) or 99) <= 1)
    ctx.add("B6", f"spec change -> PATCH p99 ({changes} changes)", env.pct(lat, 99), "s", "<= 5",
            len(lat) == changes and (env.pct(lat, 99) or 99) <= 5)
    ctx.add("B6", "API writes per spec change", f"{len(writes)} for {changes}", "", "exactly 1 PATCH each",
            exactly_one)
    ctx.add("B6", "API writes for metadata-only edits", len(meta_writes), "", "== 0 (anchor)", len(meta_writes) == 0)


async def b5(ctx: Ctx, total: int, do_b5: bool) -> None:
    assert ctx.sim
    assert ctx.audit
    stop_op(ctx)
    await asyncio.sleep(1)
    seq, audit0, _ = await snapshot(ctx)
    window = 30.0 if ctx.quick else 60.0
    t_start = time.monotonic()
    ctx.op = start_op(ctx, ctx.sim)
    observed, metrics = await wait_observed(ctx.op, total, window)
    rest = window - (time.monotonic() - t_start)
    if rest > 0:
        await asyncio.sleep(rest)
    view = await api_since(ctx.sim, seq)
    audit = ctx.audit.summary(audit0)
    peak = view.peak_rate(1.0)
    final = await asyncio.to_thread(env.scrape, ctx.op) or metrics
    ctx.details["B5"] = {"objects": total, "window_seconds": window, "observed_seconds": observed,
                         "reconcile_results": reconcile_results(final), "api_requests_by_route": view.by_route(),
                         "peak_api_rate_per_s": peak, "rate_limit_setting": ctx.rate_limit,
                         "kubernetes": audit, "memory": env.proc_memory(ctx.op.proc.pid)}
    if do_b5:
        ctx.add("B5", f"API writes after restart ({total} objects, {window:.0f} s)", len(view.writes()), "", "== 0",
                len(view.writes()) == 0)
        ctx.add("B5", "Kubernetes writes by the operator", audit["operator_writes"], "", "== 0",
                audit["operator_writes"] == 0)
        ctx.add("B5", "every object observed (first reconcile pass done), from process start",
                round(observed, 2) if observed is not None else "timeout", "s", "<= 10",
                observed is not None and observed <= 10)
        ctx.add("B5", "peak API request rate (1 s window)", peak, "req/s", f"<= {ctx.rate_limit} (rate limit)",
                peak <= ctx.rate_limit)
        ctx.add("B5", f"API reads in the first {window:.0f} s", len(view.reads()), "", "information", None)


async def b4_points(ctx: Ctx, total: int) -> None:
    assert ctx.op
    assert ctx.watcher
    await asyncio.sleep(15)
    mem = env.proc_memory(ctx.op.proc.pid)
    ctx.details.setdefault("B4", {"points": []})["points"].append({"objects": total, **mem})
    target = 150 if total <= 1000 else 400
    ctx.add("B4", f"RSS with {total} RUNNING objects", mem["rss_mib"], "MiB",
            f"<= {target}" + ("" if total == 1000 else " (target is for 1,000)" if total < 1000 else ""),
            mem["rss_mib"] <= target)
    have = total
    base = mem
    for point in ctx.scale_points:
        if point <= have:
            continue
        add = point - have
        t0 = time.time()
        assert ctx.plane
        async with KubeClient(ctx.plane.url, ctx.plane.ssl_context(), concurrency=SCALE_CONCURRENCY) as fast:
            await populate(ctx, NS_SCALE, have - ctx.n, add, kube=fast)
        created = time.time() - t0
        keys = keys_in(NS_SCALE, have - ctx.n, add)
        ok = await wait_ready(ctx, keys, 300 if ctx.quick else 3600)
        ready = sum(1 for k in keys if ctx.watcher.records.get(k) and ctx.watcher.records[k].ready)
        elapsed = (last_ready(ctx, keys) or time.time()) - t0
        await asyncio.sleep(30)
        mem = env.proc_memory(ctx.op.proc.pid)
        reached = have + ready
        ctx.details["B4"]["points"].append({"objects": reached, "created": point, "all_ready": ok,
                                            "seconds_to_create": round(created, 1),
                                            "seconds_to_ready": round(elapsed, 1), **mem})
        marginal = (mem["rss_mib"] - base["rss_mib"]) * 1024 / max(1, reached - have)
        average = (mem["rss_mib"] - ctx.details["B4"]["points"][0]["rss_mib"]) * 1024 / max(1, reached)
        ctx.add("B4", f"RSS with {reached} RUNNING objects, measured" + ("" if ok else f" (of {point}; timeout)"),
                mem["rss_mib"], "MiB", "<= 250" + ("" if point >= 10000 else " (target is for 10,000)"),
                mem["rss_mib"] <= 250 and reached >= 10000 if point >= 10000 else None)
        ctx.add("B4", f"marginal memory per object ({have} -> {reached} objects)", round(marginal, 1), "KiB",
                "<= 15", marginal <= 15)
        ctx.add("B4", f"memory per object over the 0-object RSS ({reached} objects)", round(average, 1), "KiB",
                "information", None)
        ctx.add("B4", f"time to create {add} more objects and see them Ready ({SCALE_CONCURRENCY} creates at a "
                "time)", round(elapsed, 1), "s", "information", None)
        ctx.details["B4"]["scale_create_rate_per_s"] = round(add / elapsed, 1)
        have, base = reached, mem


async def b2(ctx: Ctx) -> None:
    """A fresh simulator limited to 20 requests/s (429 + Retry-After); the operator's own limit set to 20."""
    assert ctx.kube
    assert ctx.watcher
    stop_op(ctx)
    with SimProcess.start("--service-key", "dev-key", "--latency-ms", "50", "--deploy-seconds", "2",
                          "--journal-size", "2000000", "--log-level", "warning", "--rate-limit-rps", "20",
                          timeout=30) as sim:
        settings = env.operator_env(GOLDRUSH_RATE_LIMIT="20", GOLDRUSH_MAX_CONCURRENCY="10")
        assert ctx.op_kubeconfig
        await ctx.kube.ensure_namespace(NS_B2)
        op = env.start_operator(ctx.op_kubeconfig, sim, ctx.log_path(), settings,
                                [NS_B2])
        ctx.op = op
        try:
            # The applies go to a running operator, as a user's do (and B1's): its start-up (imports, kopf's
            # first LIST and watch) is not part of the figure. Until 2026-12-08 it was (finding 49).
            await asyncio.sleep(B2_SETTLE_SECONDS)
            keys = keys_in(NS_B2, 0, ctx.n)
            t0 = await populate(ctx, NS_B2, 0, ctx.n)
            timeout = 900 if not ctx.quick else 300
            ok = await wait_ready(ctx, keys, timeout)
            ready_times = [ctx.watcher.records[k].first_ready for k in keys if ctx.watcher.records[k].first_ready]
            t_ready = max(ready_times) - t0 if ok else None
            entries = await asyncio.to_thread(sim.journal, 0)
            view = env.JournalView(entries)
            creates = [e for e in view.route("create", "POST") if e["status"] in (200, 201)]
            t_posts = (max(e["time"] for e in creates) - t0) if len(creates) >= ctx.n else None
            counters = await asyncio.to_thread(sim.counters)
            total = counters["total"]
            n429 = counters["statuses"].get("429", 0)
            share = n429 / total if total else 0.0
            ctx.details["B2"] = {"objects": ctx.n, "all_ready": ok, "api_requests": total,
                                 "api_requests_by_route": view.by_route(), "statuses": counters["statuses"],
                                 "early_retries": counters["early_retries"],
                                 "floor_seconds_all_requests": round(total / 20, 1),
                                 "creates_ok": len(creates)}
            if creates:
                # What shared the 20/s with the POSTs until the last one: the floor of this figure is the first
                # POST's offset plus these requests / 20.
                last = max(e["time"] for e in creates)
                ctx.details["B2"]["first_post_seconds"] = round(min(e["time"] for e in creates) - t0, 2)
                ctx.details["B2"]["requests_until_last_post_by_route"] = env.JournalView(
                    [e for e in entries if e["time"] <= last]).by_route()
            ctx.add("B2", f"all {ctx.n} creates (POST 201) done", round(t_posts, 1) if t_posts else "timeout", "s",
                    f"<= 55 (floor {ctx.n / 20:g})", t_posts is not None and t_posts <= 55)
            ctx.add("B2", f"all {ctx.n} Ready", round(t_ready, 1) if t_ready else "timeout", "s",
                    "information (floor = requests / 20)", None)
            ctx.add("B2", "API requests per object", round(total / ctx.n, 2), "", "information", None)
            ctx.add("B2", "early retries (before Retry-After)", counters["early_retries"], "", "== 0",
                    counters["early_retries"] == 0)
            ctx.add("B2", "429 share of requests", f"{share * 100:.2f}%", "", "<= 5%", share <= 0.05)
            posts = view.route("create", "POST")
            ctx.add("B2", "POSTs that created a pipeline", len(creates), "", f"== {ctx.n}", len(creates) == ctx.n)
            ctx.add("B2", "POSTs answered 429 (retried after Retry-After)", len(posts) - len(creates), "",
                    "information", None)
        finally:
            stop_op(ctx)


# ---------------------------------------------------------------------------------------------- driver


async def session(ctx: Ctx, selected: set[str]) -> None:
    """The scenarios on the session's control plane, then B10 on one of its own (`bench.unrelated`)."""
    if selected - {"B10"}:
        await main_session(ctx, selected)
    if "B10" in selected:
        await b10(ctx)


async def main_session(ctx: Ctx, selected: set[str]) -> None:
    ctx.plane = await asyncio.to_thread(env.start_control_plane, ctx.workdir)
    ctx.audit = env.Audit(ctx.plane.workdir / "audit.log")
    ctx.op_kubeconfig = ctx.plane.write_user_kubeconfig(ctx.workdir / "operator.kubeconfig", env.OPERATOR_USER,
                                                       ["system:masters"])
    ctx.floor_kubeconfig = ctx.plane.write_user_kubeconfig(ctx.workdir / "floor.kubeconfig", env.FLOOR_USER,
                                                          ["system:masters"])
    ctx.sim = await asyncio.to_thread(env.start_sim)
    async with KubeClient(ctx.plane.url, ctx.plane.ssl_context()) as kube:
        ctx.kube = kube
        ctx.watcher = Watcher(kube)
        await ctx.watcher.start()
        try:
            main = selected & {"B1", "B3", "B4", "B5", "B6", "B8", "B9"}
            if main:
                ctx.op = start_op(ctx, ctx.sim)
                if "B4" in selected:
                    await b4_zero(ctx)
                await b1(ctx, "B1" in selected, "B9" in selected)
                total = ctx.n
                if selected & {"B8", "B9"}:
                    await b8_b9(ctx, "B8" in selected, "B9" in selected)
                if selected & {"B3", "B6"}:
                    await b3_b6(ctx, total, "B3" in selected, "B6" in selected)
                if selected & {"B5", "B4"}:
                    await b5(ctx, total, "B5" in selected)
                if "B4" in selected:
                    await b4_points(ctx, total)
                stop_op(ctx)
            ctx.sim.stop()
            ctx.sim = None
            if "B2" in selected:
                await b2(ctx)
            if "B11" in selected:
                await b11(ctx)
            if "B14" in selected:
                await b14(ctx)
            if "B12" in selected:
                await b12(ctx)
            if "B13" in selected:
                await b13(ctx)
        finally:
            await ctx.watcher.stop()
            stop_op(ctx)
            if ctx.sim is not None:
                ctx.sim.stop()
            ctx.plane.stop()


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# Benchmark results {result['date']} ({'quick' if result['quick'] else 'full'})",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']}, Python {m['python']}, {m['os']}; "
        f"load average at start {m['load_average_at_start']}.",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in result["settings"].items()) + ".",
        "",
        "| id | figure | value | target | result |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        verdict = "-" if r["ok"] is None else ("pass" if r["ok"] else "**FAIL**")
        value = f"{r['value']} {r['unit']}".strip()
        lines.append(f"| {r['id']} | {r['metric']} | {value} | {r['target']} | {verdict} |")
    if result.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    lines += ["", "Details (API requests by route, Kubernetes writes by verb/resource, memory points) are in the "
              "JSON file of the same name.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the operator benchmarks (bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="200 objects, 2-minute idle window")
    parser.add_argument("--scenarios", default=",".join(ALL), help="comma list, e.g. B1,B3")
    parser.add_argument("--objects", type=int, default=None,
                        help="override the object count (B1-B9, B2; B14 and B10's pipelines use it too, "
                        "default 500 and 1000, quick 100)")
    parser.add_argument("--unrelated-secrets", type=int, default=None,
                        help="B10's unrelated 100 KB Secrets (default 5000, quick 500)")
    parser.add_argument("--b13-objects", type=int, default=None, help="B13's objects per run (default 3000, "
                        "quick 600)")
    parser.add_argument("--idle-seconds", type=float, default=None)
    parser.add_argument("--scale", default=None,
                        help="B4 scale points beyond N, comma list (default 10000, quick 1000)")
    parser.add_argument("--rate-limit", type=int, default=200, help="operator GOLDRUSH_RATE_LIMIT (not B2)")
    parser.add_argument("--concurrency", type=int, default=50, help="operator GOLDRUSH_MAX_CONCURRENCY (not B2)")
    parser.add_argument("--allocator", choices=["jemalloc", "default"], default="jemalloc",
                        help="the measured operator's allocator: jemalloc for every allocation, as the image "
                        "runs it (LD_PRELOAD of libjemalloc.so.2, PYTHONMALLOC=malloc, "
                        "MALLOC_CONF=tcache:false,background_thread:true,dirty_decay_ms:1000; the default), or "
                        "Python's own (pymalloc and glibc)")
    parser.add_argument("--operator-env", choices=["runtime", "development"], default="runtime",
                        help="the measured operator's Python environment: runtime (the image's: requirements.lock "
                        "and the package only, built by `make bench` in .venv-runtime; the default) or "
                        "development (.venv, with the tools' libraries)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    selected = {s.strip().upper() for s in args.scenarios.split(",") if s.strip()}
    unknown = selected - set(ALL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    n = args.objects or (200 if args.quick else 1000)
    env.ALLOCATOR_ENV.clear()
    if args.allocator == "jemalloc":
        env.ALLOCATOR_ENV.update(jemalloc_env())
    env.OPERATOR_EXECUTABLE = None
    if args.operator_env == "runtime":
        if not env.RUNTIME_EXECUTABLE.exists():
            parser.error("the runtime environment is missing: `make bench` builds it (.venv-runtime), or pass "
                         "--operator-env development")
        env.OPERATOR_EXECUTABLE = str(env.RUNTIME_EXECUTABLE)
    scale = [int(x) for x in args.scale.split(",")] if args.scale else ([1000] if args.quick else [10000])
    workdir = Path(tempfile.mkdtemp(prefix="goldrush-bench-"))
    ctx = Ctx(quick=args.quick, n=n, idle_seconds=args.idle_seconds or (120.0 if args.quick else 600.0),
              scale_points=scale, rate_limit=args.rate_limit, concurrency=args.concurrency, workdir=workdir,
              b14_objects=args.objects or 500, b10_objects=args.objects or (100 if args.quick else 1000),
              b10_secrets=args.unrelated_secrets or (500 if args.quick else 5000),
              b12_objects=100 if args.quick else 200, b13_objects=args.b13_objects or (600 if args.quick else 3000))
    machine = env.machine()
    started = dt.datetime.now(dt.UTC)
    print(f"benchmarks ({'quick' if args.quick else 'full'}, {n} objects): {', '.join(sorted(selected))}", flush=True)
    error = None
    try:
        asyncio.run(session(ctx, selected))
    except Exception:  # report what was measured, then fail
        error = traceback.format_exc()
        print(error, file=sys.stderr)
        for log in sorted(workdir.glob("operator-*.log")):
            print(f"--- tail of {log.name}", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    result = {
        "date": started.strftime("%Y-%m-%dT%H:%MZ"),
        "quick": args.quick,
        "duration_seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds()),
        "machine": machine,
        "settings": {
            "objects": n, "simulator latency": "50 ms", "simulator deploy time": f"{DEPLOY_SECONDS:g} s",
            "GOLDRUSH_RATE_LIMIT": f"{args.rate_limit}/s (B2, B3, B6, B11: 20/s)",
            "GOLDRUSH_MAX_CONCURRENCY": f"{args.concurrency} (B2, B3, B6, B11: 10)",
            "GOLDRUSH_POLL_FAST_SECONDS": "2", "GOLDRUSH_POLL_SLOW_SECONDS": "900",
            "GOLDRUSH_POLL_BUDGET_SHARE": "0.1", "GOLDRUSH_POLL_STATUS_MAX_SECONDS": "60",
            "GOLDRUSH_WORKERS": str(WORKERS), "operator allocator": args.allocator,
            "operator environment": ("runtime (requirements.lock and the package only)"
                                     if args.operator_env == "runtime" else "development (.venv)"),
            "B3 idle window": f"{ctx.idle_seconds:g} s",
            "B4 scale points": ", ".join(str(p) for p in scale), "B14 objects": ctx.b14_objects,
            "B10 pipelines / unrelated Secrets": f"{ctx.b10_objects} / {ctx.b10_secrets}",
            "B12 objects": ctx.b12_objects, "B13 objects per run": ctx.b13_objects,
            "B12/B13 leases": "15 s duration, 10 s renew deadline, 2 s retry period (defaults)",
        },
        "rows": [r.__dict__ for r in ctx.rows],
        "details": ctx.details,
        "notes": ctx.notes + [
            "Timings are wall-clock on a shared machine: the operator, kube-apiserver, etcd, the simulator "
            "and this driver share the cores listed above (and other workloads may run; see the load "
            "average)."] + ([f"run aborted: {error.strip().splitlines()[-1]}"] if error else []),
    }
    (workdir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        stem = started.strftime("%Y-%m-%dT%H%MZ") + ("-quick" if args.quick else "")
        (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        md = render(result)
        (RESULTS / f"{stem}.md").write_text(md)
        (RESULTS / "latest.md").write_text(md)
        print(f"wrote bench/results/{stem}.json, {stem}.md and latest.md")
    print(render(result))
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [r for r in ctx.rows if r.ok is False]
    return 1 if error or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
