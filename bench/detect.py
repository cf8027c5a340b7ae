"""B11: how fast a remote FAILED reaches `status.phase` at the default polling settings on a 20 req/s key.

Called by `bench.run.session`. A fresh simulator limited to 20 requests/s; for each case (100 pipelines with
10 forced, then 10 pipelines with all 10 forced) an operator scoped to the case's namespace with
`GOLDRUSH_RATE_LIMIT=20` and every other polling setting at its default. After all objects are Ready the
objects settle (1.5 status-read intervals of the read budget plus 5 s, so that the first spread polls have
happened), then the driver forces the pipelines to FAILED through the admin API
(`POST /_sim/pipelines/{id}/phase`); latency = when the driver's watch first sees `status.phase: FAILED`
minus when the force was sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import env
from bench.common import Ctx, api_since, keys_in, populate, snapshot, stop_op, wait_ready
from support.sim import SimProcess

RATE = 20
BUDGET_SHARE = 0.1          # GOLDRUSH_POLL_BUDGET_SHARE default
SLOW = 900.0                # GOLDRUSH_POLL_SLOW_SECONDS default
FAST = 2.0                  # GOLDRUSH_POLL_FAST_SECONDS default
CASES = (("bench-b11-100", 100, 10, 60.0), ("bench-b11-10", 10, 10, 10.0))


def status_interval(n: int, rate: float = RATE, share: float = BUDGET_SHARE) -> float:
    """The status-read interval the README's read-budget rule gives for `n` stable pipelines."""
    budget = rate * share
    full = min(budget / 3, 2 * n / SLOW)
    return max(FAST, n / (budget - full))


async def one_case(ctx: Ctx, sim: SimProcess, ns: str, count: int, forced: int, target: float) -> dict[str, Any]:
    assert ctx.watcher
    assert ctx.op_kubeconfig
    settings = env.operator_env(GOLDRUSH_RATE_LIMIT=str(RATE), GOLDRUSH_MAX_CONCURRENCY="10")
    await ctx.kube.ensure_namespace(ns)  # type: ignore[union-attr]
    ctx.op = env.start_operator(ctx.op_kubeconfig, sim, ctx.log_path(), settings, [ns])
    try:
        keys = keys_in(ns, 0, count)
        await populate(ctx, ns, 0, count)
        ready = await wait_ready(ctx, keys, 300)
        interval = status_interval(count)
        settle = 1.5 * interval + 5
        seq, _, cpu0 = await snapshot(ctx, sim)
        t_settle = time.monotonic()
        await asyncio.sleep(settle)
        settle_s = time.monotonic() - t_settle
        view = await api_since(sim, seq)
        cpu = env.proc_cpu_seconds(ctx.op.proc.pid) - cpu0
        chosen = [keys[i * count // forced] for i in range(forced)]
        sent: dict[tuple[str, str], float] = {}
        for k in chosen:
            pid = ctx.watcher.records[k].pipeline_id
            if pid is None:
                continue
            sent[k] = time.time()
            await asyncio.to_thread(sim.force_phase, pid, "FAILED")

        def seen(k: tuple[str, str]) -> float | None:
            rec = ctx.watcher.records.get(k)  # type: ignore[union-attr]
            return next((t for t, ph in rec.phases if ph == "FAILED" and t >= sent[k]), None) if rec else None

        await ctx.watcher.wait(lambda: all(seen(k) is not None for k in sent), max(180.0, 3 * target))
        lat = [t - sent[k] for k in sent if (t := seen(k)) is not None]
        return {"namespace": ns, "objects": count, "all_ready": ready, "forced": len(sent), "detected": len(lat),
                "expected_status_interval_seconds": round(interval, 1), "settle_seconds": round(settle_s, 1),
                "reads_per_s_while_settling": round(len(view.reads()) / settle_s, 2),
                "writes_while_settling": len(view.writes()), "read_budget_per_s": RATE * BUDGET_SHARE,
                "api_requests_by_route_while_settling": view.by_route(),
                "operator_cpu_millicores_while_settling": round(cpu / settle_s * 1000, 1),
                "latencies": sorted(round(x, 3) for x in lat), "target_p99_seconds": target}
    finally:
        stop_op(ctx)


async def b11(ctx: Ctx) -> None:
    stop_op(ctx)
    with SimProcess.start("--service-key", "dev-key", "--latency-ms", "50", "--deploy-seconds", "2",
                          "--journal-size", "2000000", "--log-level", "warning", "--rate-limit-rps", str(RATE),
                          timeout=30) as sim:
        out = []
        for ns, count, forced, target in CASES:
            r = await one_case(ctx, sim, ns, count, forced, target)
            out.append(r)
            lat = r["latencies"]
            p99 = env.pct(lat, 99)
            complete = r["detected"] == r["forced"] == forced
            ctx.add("B11", f"remote FAILED -> status.phase, p99 ({forced} of {count} pipelines, 20 req/s key)",
                    p99 if complete else f"{p99} ({r['detected']} of {forced} seen)", "s", f"<= {target:g}",
                    complete and p99 is not None and p99 <= target)
            ctx.add("B11", f"remote FAILED -> status.phase, p50 ({count} pipelines)", env.pct(lat, 50), "s",
                    "information", None)
            ctx.add("B11", f"API reads while settled ({count} pipelines)", r["reads_per_s_while_settling"], "req/s",
                    f"information (read budget {r['read_budget_per_s']:g}/s)", None)
        ctx.details["B11"] = out
