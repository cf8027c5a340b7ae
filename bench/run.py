"""Benchmarks of the operator against a real local control plane and the API simulator (issue 8).

    python -m bench.run [--quick] [--scenarios B1,B3,...] [--objects N] [--keep]

Runs the scenarios of bench/README.md in one session (one control plane, one simulator with 50 ms latency)
and writes `bench/results/<date>.json`, `bench/results/<date>.md` and `bench/results/latest.md`.
`--quick` uses 200 objects, a 2-minute idle window and a 1,000-object memory point instead of 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import env
from bench.kube import KubeClient, Watcher
from support.operator import OperatorProcess
from support.sim import SimProcess

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("B1", "B3", "B4", "B5", "B6", "B8", "B9", "B2")
NS = "bench"
NS_SCALE = "bench-scale"
NS_B2 = "bench-b2"
GROUP_SIZE = 100          # objects per shared Secret (B8 rotates one of them)
DEPLOY_SECONDS = 2.0
LATENCY = 0.05


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def manifest(name: str, secret: str, description: str = "benchmark pipeline") -> dict[str, Any]:
    return {
        "apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushPipeline",
        "metadata": {"name": name},
        "spec": {
            "project": "bench",
            "description": description,
            "topic": "base.mainnet.ref.block.transfers",
            "destination": {
                "type": "postgres",
                "config": {"url": "postgresql://db.example.com:5432/analytics", "user": "pipeline"},
                "secretRefs": {"password": {"name": secret, "key": "password"}},
            },
            "execution": {"mode": "unbounded", "startFrom": "44745000"},
        },
    }


@dataclass
class Row:
    id: str
    metric: str
    value: Any
    unit: str
    target: str
    ok: bool | None


@dataclass
class Ctx:
    quick: bool
    n: int
    idle_seconds: float
    slow_short: float
    scale_points: list[int]
    rate_limit: int
    concurrency: int
    workdir: Path
    plane: Any = None
    audit: env.Audit | None = None
    sim: SimProcess | None = None
    kube: KubeClient | None = None
    watcher: Watcher | None = None
    op: OperatorProcess | None = None
    op_kubeconfig: Path | None = None
    op_count: int = 0
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, sid: str, metric: str, value: Any, unit: str, target: str, ok: bool | None) -> None:
        self.rows.append(Row(sid, metric, value, unit, target, ok))
        flag = "" if ok is None else (" PASS" if ok else " FAIL")
        print(f"  {sid} {metric}: {value} {unit} (target {target}){flag}", flush=True)


def keys_in(ns: str, start: int, count: int) -> list[tuple[str, str]]:
    return [(ns, f"p-{i:05d}") for i in range(start, start + count)]


# ---------------------------------------------------------------------------------------------- helpers


def start_op(ctx: Ctx, sim: SimProcess, namespaces: list[str] | None = None, **env_overrides: str) -> OperatorProcess:
    ctx.op_count += 1
    log = ctx.workdir / f"operator-{ctx.op_count}.log"
    settings = env.operator_env(GOLDRUSH_RATE_LIMIT=str(ctx.rate_limit),
                                GOLDRUSH_MAX_CONCURRENCY=str(ctx.concurrency), **env_overrides)
    assert ctx.op_kubeconfig is not None
    return env.start_operator(ctx.op_kubeconfig, sim, log, settings, namespaces)


def stop_op(ctx: Ctx) -> None:
    if ctx.op is not None and ctx.op.alive():
        ctx.op.stop()
    ctx.op = None


async def populate(ctx: Ctx, ns: str, start: int, count: int) -> float:
    """Create the Secrets (one per GROUP_SIZE objects) and `count` objects; returns the start time."""
    assert ctx.kube
    assert ctx.watcher
    await ctx.kube.ensure_namespace(ns)
    groups = sorted({i // GROUP_SIZE for i in range(start, start + count)})
    for g in groups:
        with contextlib.suppress(RuntimeError):  # already there
            await ctx.kube.create_secret(ns, {"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"name": f"dest-{g}"},
                                              "data": {"password": b64(f"initial-{g}")}})
    t0 = time.time()

    async def one(ns_name: tuple[str, str], index: int) -> None:
        rec = ctx.watcher.record(ns_name)  # type: ignore[union-attr]
        rec.created = time.time()
        await ctx.kube.create_pipeline(ns, manifest(ns_name[1], f"dest-{index // GROUP_SIZE}"))  # type: ignore[union-attr]

    await asyncio.gather(*(one(k, start + j) for j, k in enumerate(keys_in(ns, start, count))))
    return t0


async def wait_ready(ctx: Ctx, keys: list[tuple[str, str]], timeout: float) -> bool:
    w = ctx.watcher
    assert w is not None

    def done() -> bool:
        return all(w.records.get(k) is not None and w.records[k].ready for k in keys)

    return await w.wait(done, timeout)


async def quiet(ctx: Ctx, seconds: float = 3.0, limit: float = 90.0) -> None:
    """Wait until the simulator saw no request for `seconds` (at most `limit`)."""
    assert ctx.sim
    deadline = time.monotonic() + limit
    last = -1
    still = time.monotonic()
    while time.monotonic() < deadline:
        total = (await asyncio.to_thread(ctx.sim.counters))["total"]
        if total != last:
            last, still = total, time.monotonic()
        elif time.monotonic() - still >= seconds:
            return
        await asyncio.sleep(0.5)


async def wait_observed(op: OperatorProcess, count: int, timeout: float) -> tuple[float | None, dict[str, float]]:
    """Time until `goldrush_reconciles_total` (all results) reaches `count`, polled every 0.1 s."""
    t0 = time.monotonic()
    last: dict[str, float] = {}
    while time.monotonic() - t0 < timeout:
        m = await asyncio.to_thread(env.scrape, op)
        if m is not None:
            last = m
            if env.metric_sum(m, "goldrush_reconciles_total") >= count:
                return time.monotonic() - t0, m
        await asyncio.sleep(0.1)
    return None, last


def reconcile_results(m: dict[str, float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in m.items():
        if k.startswith("goldrush_reconciles_total{"):
            out[k.split('result="', 1)[1].split('"', 1)[0]] = int(v)
    return out


async def snapshot(ctx: Ctx) -> tuple[int, int, float]:
    """(journal seq, audit offset, operator CPU seconds) right now."""
    assert ctx.sim
    assert ctx.audit
    counters = await asyncio.to_thread(ctx.sim.counters)
    seq = await asyncio.to_thread(last_seq, ctx.sim, counters["total"])
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) if ctx.op else 0.0
    return seq, ctx.audit.mark(), cpu


def last_seq(sim: SimProcess, total_hint: int) -> int:
    """Highest journal seq so far (cheap: ask only for entries after a recent guess)."""
    guess = max(0, total_hint - 5)
    entries = sim.journal(guess)
    while entries:
        guess = entries[-1]["seq"]
        entries = sim.journal(guess)
    return guess


async def api_since(ctx: Ctx, seq: int) -> env.JournalView:
    assert ctx.sim
    view, _ = await asyncio.to_thread(env.journal, ctx.sim, seq)
    return view


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
    keys = keys_in(NS, 0, ctx.n)
    t0 = await populate(ctx, NS, 0, ctx.n)
    created_by = time.time() - t0
    ok = await wait_ready(ctx, keys, 300)
    recs = [ctx.watcher.records[k] for k in keys]
    ready_times = [r.first_ready for r in recs if r.first_ready is not None]
    t_all = (max(ready_times) - t0) if ok else None
    await quiet(ctx)
    view = await api_since(ctx, seq)
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
    ctx.details["B1"] = {
        "objects": ctx.n, "all_ready": ok, "apply_seconds": round(created_by, 2),
        "api_requests_by_route": view.by_route(), "api_requests": len(view.entries),
        "api_requests_per_object": round(len(view.entries) / ctx.n, 2),
        "kubernetes": audit, "kubernetes_writes_per_object": round(audit["operator_writes"] / ctx.n, 2),
        "operator_cpu_seconds": round(cpu, 1),
        "ready_seconds_p50": env.pct([t - t0 for t in ready_times], 50),
        "memory_after": env.proc_memory(ctx.op.proc.pid),
    }
    if report:
        ctx.add("B1", f"all {ctx.n} Ready after apply", round(t_all, 2) if t_all else "timeout", "s", "<= 30",
                bool(t_all is not None and t_all <= 30))
        ctx.add("B1", "POSTs (create)", len(posts), "", f"== {ctx.n}", len(posts) == ctx.n and len(posts_ok) == ctx.n)
        ctx.add("B1", "create -> first POST p50", env.pct(lat, 50), "s", "<= 2 (anchor)", (env.pct(lat, 50) or 99) <= 2)
        ctx.add("B1", "create -> first POST p99", env.pct(lat, 99), "s", "<= 15 (anchor)",
                (env.pct(lat, 99) or 99) <= 15)
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


async def b8_b9(ctx: Ctx, do_b8: bool, do_b9: bool) -> None:
    assert ctx.watcher
    assert ctx.kube
    assert ctx.sim
    await quiet(ctx)
    group = keys_in(NS, 0, GROUP_SIZE)
    ids = {ctx.watcher.records[k].pipeline_id: k for k in group}
    seq, audit0, _ = await snapshot(ctx)
    t0 = time.time()
    await ctx.kube.replace_secret_data(NS, "dest-0", {"password": b64("rotated-0")})
    patches: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(patches) < len(ids):
        view = await api_since(ctx, seq)
        for e in view.route("patch", "PATCH"):
            pid = e["path"].rstrip("/").rsplit("/", 1)[-1]
            patches.setdefault(pid, e["time"])
        await asyncio.sleep(0.5)

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
    await quiet(ctx)
    view = await api_since(ctx, seq)
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
    """Restart with a shortened slow interval so the idle window spans several poll cycles."""
    assert ctx.sim
    assert ctx.kube
    assert ctx.audit
    assert ctx.watcher
    stop_op(ctx)
    slow = ctx.slow_short
    ctx.op = start_op(ctx, ctx.sim, GOLDRUSH_POLL_SLOW_SECONDS=str(slow))
    await wait_observed(ctx.op, total, 120)
    await asyncio.sleep(2)
    seq, audit0, cpu0 = await snapshot(ctx)
    t0 = time.monotonic()
    await asyncio.sleep(ctx.idle_seconds)
    window = time.monotonic() - t0
    view = await api_since(ctx, seq)
    audit = ctx.audit.summary(audit0)
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu0
    reads = len(view.reads())
    per_h = reads / total * 3600 / window
    extrapolated = per_h * slow / 900
    ctx.details["B3"] = {
        "objects": total, "window_seconds": round(window, 1), "slow_poll_seconds_during_window": slow,
        "api_requests_by_route": view.by_route(), "reads": reads, "writes": len(view.writes()),
        "reads_per_object_per_hour_at_window_interval": round(per_h, 2),
        "reads_per_object_per_hour_at_900s": round(extrapolated, 2),
        "kubernetes": audit, "operator_cpu_millicores": round(cpu / window * 1000, 1),
        "peak_api_rate_per_s": view.peak_rate(),
    }
    if do_b3:
        ctx.add("B3", f"API writes in {window:.0f} s idle ({total} objects)", len(view.writes()), "", "== 0",
                len(view.writes()) == 0)
        ctx.add("B3", f"API reads/object/hour (measured at slow poll {slow:.0f} s)", round(per_h, 2), "/h",
                "information", None)
        ctx.add("B3", "API reads/object/hour at the default 900 s slow poll (extrapolated)", round(extrapolated, 2),
                "/h", "<= 12", extrapolated <= 12)
        ctx.add("B3", "Kubernetes writes by the operator", audit["operator_writes"], "", "== 0",
                audit["operator_writes"] == 0)
        ctx.add("B3", "Events", audit["events"], "", "== 0", audit["events"] == 0)
        ctx.add("B3", "operator CPU while idle", round(cpu / window * 1000, 1), "millicores", "<= 20 (anchor)",
                cpu / window * 1000 <= 20)
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
    view = await api_since(ctx, seq)
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
    view = await api_since(ctx, seq)
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
    for point in ctx.scale_points:
        if point <= have:
            continue
        add = point - have
        t0 = time.time()
        await populate(ctx, NS_SCALE, have - ctx.n, add)
        keys = keys_in(NS_SCALE, have - ctx.n, add)
        timeout = 1500 if not ctx.quick else 300
        ok = await wait_ready(ctx, keys, timeout)
        ready = sum(1 for k in keys if ctx.watcher.records.get(k) and ctx.watcher.records[k].ready)
        elapsed = time.time() - t0
        await quiet(ctx, 5, 120)
        await asyncio.sleep(20)
        mem = env.proc_memory(ctx.op.proc.pid)
        reached = have + ready
        ctx.details["B4"]["points"].append({"objects": reached, "created": point, "all_ready": ok,
                                            "seconds_to_ready": round(elapsed, 1), **mem})
        per_obj = (mem["rss_mib"] - ctx.details["B4"]["points"][0]["rss_mib"]) * 1024 / max(1, reached)
        ctx.add("B4", f"RSS with {reached} RUNNING objects" + ("" if ok else f" (of {point}; timeout)"),
                mem["rss_mib"], "MiB", "<= 400" if point >= 10000 else "<= 400 at 10,000 (extrapolate)",
                mem["rss_mib"] <= 400 if point >= 10000 else None)
        ctx.add("B4", "marginal memory per object", round(per_obj, 1), "KiB", "<= 30 (anchor)", per_obj <= 30)
        if point < 10000:
            est = ctx.details["B4"]["points"][0]["rss_mib"] + per_obj * 10000 / 1024
            ctx.add("B4", "RSS at 10,000 objects (linear extrapolation)", round(est, 1), "MiB", "<= 400",
                    est <= 400)
        ctx.details["B4"]["scale_create_rate_per_s"] = round(add / elapsed, 1)
        have = reached


async def b2(ctx: Ctx) -> None:
    """A fresh simulator limited to 20 requests/s (429 + Retry-After); the operator's own limit set to 20."""
    assert ctx.kube
    assert ctx.watcher
    stop_op(ctx)
    with SimProcess.start("--service-key", "dev-key", "--latency-ms", "50", "--deploy-seconds", "2",
                          "--journal-size", "2000000", "--log-level", "warning", "--rate-limit-rps", "20",
                          timeout=30) as sim:
        ctx.op_count += 1
        settings = env.operator_env(GOLDRUSH_RATE_LIMIT="20", GOLDRUSH_MAX_CONCURRENCY="10")
        assert ctx.op_kubeconfig
        await ctx.kube.ensure_namespace(NS_B2)
        op = env.start_operator(ctx.op_kubeconfig, sim, ctx.workdir / f"operator-{ctx.op_count}.log", settings,
                                [NS_B2])
        ctx.op = op
        try:
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
            ctx.add("B2", f"all {ctx.n} creates (POST 201) done", round(t_posts, 1) if t_posts else "timeout", "s",
                    "<= 60", t_posts is not None and t_posts <= 60)
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
    ctx.plane = await asyncio.to_thread(env.start_control_plane, ctx.workdir)
    ctx.audit = env.Audit(ctx.plane.workdir / "audit.log")
    ctx.op_kubeconfig = ctx.plane.write_user_kubeconfig(ctx.workdir / "operator.kubeconfig", env.OPERATOR_USER,
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
            if "B2" in selected:
                ctx.sim.stop()
                ctx.sim = None
                await b2(ctx)
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
    parser.add_argument("--objects", type=int, default=None, help="override the object count")
    parser.add_argument("--idle-seconds", type=float, default=None)
    parser.add_argument("--scale", default=None,
                        help="B4 scale points beyond N, comma list (default 5000, quick 1000); 10000 takes long")
    parser.add_argument("--rate-limit", type=int, default=200, help="operator GOLDRUSH_RATE_LIMIT (not B2)")
    parser.add_argument("--concurrency", type=int, default=50, help="operator GOLDRUSH_MAX_CONCURRENCY (not B2)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    selected = {s.strip().upper() for s in args.scenarios.split(",") if s.strip()}
    unknown = selected - set(ALL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    n = args.objects or (200 if args.quick else 1000)
    scale = [int(x) for x in args.scale.split(",")] if args.scale else ([1000] if args.quick else [5000])
    workdir = Path(tempfile.mkdtemp(prefix="goldrush-bench-"))
    ctx = Ctx(quick=args.quick, n=n, idle_seconds=args.idle_seconds or (120.0 if args.quick else 600.0),
              slow_short=30.0 if args.quick else 120.0, scale_points=scale, rate_limit=args.rate_limit,
              concurrency=args.concurrency, workdir=workdir)
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
            "GOLDRUSH_RATE_LIMIT": f"{args.rate_limit}/s (B2: 20/s)",
            "GOLDRUSH_MAX_CONCURRENCY": f"{args.concurrency} (B2: 10)",
            "GOLDRUSH_POLL_FAST_SECONDS": "2", "GOLDRUSH_POLL_SLOW_SECONDS": f"900 (B3 window: {ctx.slow_short:g})",
            "B3 idle window": f"{ctx.idle_seconds:g} s",
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
