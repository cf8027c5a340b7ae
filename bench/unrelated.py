"""B10: thousands of large unrelated Secrets (Helm releases) next to pipelines that share a few Secrets.

Called by `bench.run.session`, after every other scenario. The operator runs cluster-wide here, so B10 has a
control plane of its own (the only pipelines in it are B10's) and a fresh simulator. Its audit policy also
records the operator's Secret reads (`env.SECRET_READS_RULE`), so the table can say which Secrets it read.

1. N pipelines (default 1,000; quick 100) in `bench-b10`, sharing 10 Secrets (`dest-<i mod 10>`), created
   with a cluster-wide operator and Ready; that operator is stopped.
2. Reference: a new operator (from here on its periodic reads are paid from the default read budget, 2 reads/s
   = 20 x 0.1, as a share of the benchmark's higher rate limit: the windows below measure the Secrets, not
   a fleet polled at 20 reads/s; writes keep the benchmark's rate); peak RSS (VmHWM) once every pipeline
   was observed (`goldrush_reconciles_total` reaches N) and SETTLE seconds more (the Secret metadata list
   included); stopped.
3. M Secrets (default 5,000; quick 500) of type `helm.sh/release.v1`, 100 KB each, in `bench-b10-helm`
   (CREATE_CONCURRENCY creates at a time), then the same restart and measurement: peak RSS within +10 %.
4. min(1,000, M) of them updated (a new 100 KB release payload, the way `helm upgrade` rewrites a release),
   UPDATE_CONCURRENCY at a time: operator CPU seconds from the first update until SETTLE seconds after the
   last (target <= 1 s in total); an idle window of the same length right after, as information.
5. `dest-0` rotated: Secret PATCH -> each of its N/10 pipelines' API PATCH (`common.rotate`, as B8), p99.
The operator's GETs of unrelated Secrets (audit log) over the whole scenario must be 0.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

from bench import env
from bench.common import (
    DEFAULT_BUDGET_SHARE,
    DEFAULT_RATE_LIMIT,
    Ctx,
    b64,
    keys_in,
    manifest,
    rotate,
    start_op,
    stop_op,
    wait_observed,
    wait_ready,
)
from bench.kube import KubeClient, Watcher

NS_PIPELINES = "bench-b10"
NS_HELM = "bench-b10-helm"
SHARED_SECRETS = 10
SECRET_BYTES = 100 * 1024     # decoded size of each unrelated Secret's `release` value
CREATE_CONCURRENCY = 64       # the driver's concurrent Secret creates and pipeline creates
UPDATE_CONCURRENCY = 32
UPDATES = 1000
SETTLE = 10.0                 # seconds after "all observed" (start-up) and after the last update
RSS_MARGIN = 0.10


def release_payload(seed: bytes, release: str, revision: int) -> str:
    """A Helm-like release value (base64 text, as Helm stores its gzipped JSON), SECRET_BYTES long, encoded
    once more for the Secret's `data`."""
    head = f"{release}.v{revision}:".encode()
    body = base64.b64encode(seed)[: SECRET_BYTES - len(head)]
    return base64.b64encode(head + body).decode()


def helm_secret(i: int, seed: bytes, revision: int = 1) -> dict[str, Any]:
    release = f"app-{i:05d}"
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": f"sh.helm.release.v1.{release}.v1",
                     "labels": {"owner": "helm", "name": release, "status": "deployed", "version": "1"}},
        "data": {"release": release_payload(seed, release, revision)},
    }


async def _gather_limited(count: int, limit: int, one: Any) -> None:
    sem = asyncio.Semaphore(limit)

    async def run(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(run(i) for i in range(count)))


async def _restart_peak(ctx: Ctx, label: str) -> dict[str, Any]:
    """Start a cluster-wide operator, wait until all B10 pipelines are observed and SETTLE s, read VmHWM."""
    stop_op(ctx)
    assert ctx.sim
    assert ctx.audit
    mark = ctx.audit.mark()
    share = DEFAULT_RATE_LIMIT * DEFAULT_BUDGET_SHARE / ctx.rate_limit if ctx.rate_limit else DEFAULT_BUDGET_SHARE
    ctx.op = start_op(ctx, ctx.sim, GOLDRUSH_POLL_BUDGET_SHARE=f"{share:g}")
    observed, _ = await wait_observed(ctx.op, ctx.b10_objects, 180)
    await asyncio.sleep(SETTLE)
    mem = env.proc_memory(ctx.op.proc.pid)
    return {"run": label, "observed_seconds": round(observed, 2) if observed is not None else None, **mem,
            "operator_secret_reads": ctx.audit.secret_reads(mark)}


async def b10(ctx: Ctx) -> None:
    """The whole scenario on its own control plane (see the module docstring)."""
    n, m = ctx.b10_objects, ctx.b10_secrets
    updates = min(UPDATES, m)
    workdir = ctx.workdir / "b10"
    plane = await asyncio.to_thread(env.start_control_plane, workdir, True)
    ctx.plane = plane
    ctx.audit = env.Audit(plane.workdir / "audit.log")
    ctx.op_kubeconfig = plane.write_user_kubeconfig(workdir / "operator.kubeconfig", env.OPERATOR_USER,
                                                    ["system:masters"])
    ctx.sim = await asyncio.to_thread(env.start_sim)
    audit_start = ctx.audit.mark()
    details: dict[str, Any] = {"pipelines": n, "shared_secrets": SHARED_SECRETS, "unrelated_secrets": m,
                               "unrelated_secret_bytes": SECRET_BYTES, "updates": updates}
    ctx.details["B10"] = details
    try:
        async with KubeClient(plane.url, plane.ssl_context(), concurrency=CREATE_CONCURRENCY) as kube:
            ctx.kube = kube
            ctx.watcher = Watcher(kube)
            await ctx.watcher.start()
            try:
                await _run(ctx, kube, n, m, updates, details, audit_start)
            finally:
                await ctx.watcher.stop()
                stop_op(ctx)
    finally:
        ctx.sim.stop()
        ctx.sim = None
        plane.stop()


async def _run(ctx: Ctx, kube: KubeClient, n: int, m: int, updates: int, details: dict[str, Any],
               audit_start: int) -> None:
    assert ctx.watcher
    assert ctx.audit
    # 1. the pipelines and their 10 Secrets, created with the operator running; all Ready.
    for ns in (NS_PIPELINES, NS_HELM):
        await kube.ensure_namespace(ns)
    for g in range(SHARED_SECRETS):
        await kube.create_secret(NS_PIPELINES, {"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": f"dest-{g}"}, "data": {"password": b64(f"initial-{g}")}})
    ctx.op = start_op(ctx, ctx.sim)  # type: ignore[arg-type]
    keys = keys_in(NS_PIPELINES, 0, n)

    async def create(i: int) -> None:
        ctx.watcher.record(keys[i]).created = time.time()  # type: ignore[union-attr]
        await kube.create_pipeline(NS_PIPELINES, manifest(keys[i][1], f"dest-{i % SHARED_SECRETS}"))

    t0 = time.time()
    await _gather_limited(n, CREATE_CONCURRENCY, create)
    ok = await wait_ready(ctx, keys, 600 if not ctx.quick else 300)
    details["pipelines_ready_seconds"] = round(time.time() - t0, 1)
    if not ok:
        ctx.add("B10", f"{n} pipelines Ready", "timeout", "", "all Ready", False)
        return

    # 2. reference start-up without the unrelated Secrets.
    ref = await _restart_peak(ctx, "without unrelated Secrets")
    stop_op(ctx)

    # 3. the unrelated Secrets, then the same start-up.
    seed = os.urandom(SECRET_BYTES)
    t1 = time.time()
    await _gather_limited(m, CREATE_CONCURRENCY, lambda i: kube.create_secret(NS_HELM, helm_secret(i, seed)))
    details["unrelated_secrets_create_seconds"] = round(time.time() - t1, 1)
    with_secrets = await _restart_peak(ctx, f"with {m} unrelated Secrets")
    details["startup"] = [ref, with_secrets]
    ratio = with_secrets["peak_rss_mib"] / ref["peak_rss_mib"] if ref["peak_rss_mib"] else 0.0
    ctx.add("B10", f"start-up peak RSS (VmHWM), {n} pipelines, without unrelated Secrets", ref["peak_rss_mib"],
            "MiB", "information", None)
    ctx.add("B10", f"start-up peak RSS (VmHWM), {n} pipelines + {m} unrelated Secrets of "
            f"{SECRET_BYTES // 1024} KB", with_secrets["peak_rss_mib"], "MiB",
            f"<= {ref['peak_rss_mib'] * (1 + RSS_MARGIN):.1f} (+{RSS_MARGIN:.0%})", ratio <= 1 + RSS_MARGIN)
    observed = with_secrets["observed_seconds"]
    ctx.add("B10", "every pipeline observed after the restart, from process start",
            observed if observed is not None else "timeout", "s", "information", None)

    # 4. CPU while unrelated Secrets are updated (then an idle window of the same length, as information).
    assert ctx.op
    cpu0 = env.proc_cpu_seconds(ctx.op.proc.pid)
    t2 = time.monotonic()

    async def update(i: int) -> None:
        body = helm_secret(i, seed, revision=2)
        await kube.patch_secret(NS_HELM, body["metadata"]["name"], {"data": body["data"],
                                                                    "metadata": {"labels": {"version": "2"}}})

    await _gather_limited(updates, UPDATE_CONCURRENCY, update)
    update_seconds = time.monotonic() - t2
    await asyncio.sleep(SETTLE)
    window = time.monotonic() - t2
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu0
    cpu_idle0 = env.proc_cpu_seconds(ctx.op.proc.pid)
    await asyncio.sleep(window)
    cpu_idle = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu_idle0
    details["updates_window"] = {"update_seconds": round(update_seconds, 1), "window_seconds": round(window, 1),
                                 "operator_cpu_seconds": round(cpu, 2),
                                 "operator_cpu_seconds_idle_same_length": round(cpu_idle, 2)}
    ctx.add("B10", f"operator CPU while {updates} unrelated Secrets are updated ({update_seconds:.1f} s of "
            f"updates + {SETTLE:g} s)", round(cpu, 2), "s", "<= 1", cpu <= 1)
    ctx.add("B10", f"operator CPU idle, the same {window:.0f} s right after (the updates' share: "
            f"{max(0.0, cpu - cpu_idle):.2f} s)", round(cpu_idle, 2), "s", "information", None)

    # 5. rotation of a referenced Secret -> PATCH of each of its pipelines.
    group = [k for i, k in enumerate(keys) if i % SHARED_SECRETS == 0]
    ids = {ctx.watcher.records[k].pipeline_id for k in group}
    sent, patches = await rotate(ctx, NS_PIPELINES, "dest-0", {i for i in ids if i})
    lat = [t - sent for pid, t in patches.items() if pid in ids]
    details["rotation"] = {"objects_sharing_secret": len(group), "patch_latency_p50": env.pct(lat, 50),
                           "patch_latency_p99": env.pct(lat, 99)}
    complete = len(lat) == len(group)
    ctx.add("B10", f"rotation -> PATCH p99 ({len(group)} objects, {m} unrelated Secrets)",
            env.pct(lat, 99) if complete else f"timeout ({len(lat)} of {len(group)})", "s", "<= 5",
            complete and (env.pct(lat, 99) or 99) <= 5)

    # Over the whole scenario: the operator never read an unrelated Secret by name.
    reads = ctx.audit.secret_reads(audit_start)
    details["operator_secret_reads"] = reads
    unrelated_gets = sum(c for k, c in reads.items() if k.startswith(f"get {NS_HELM}/"))
    ctx.add("B10", "operator GETs of unrelated Secrets (audit log)", unrelated_gets, "", "== 0",
            unrelated_gets == 0)
