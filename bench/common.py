"""What every benchmark scenario shares: the session context, the object manifest and small helpers.

Used by `bench.run` (the driver and scenarios B1-B9, B2) and by the scenario modules `bench.floor` (B1's
floors), `bench.detect` (B11), `bench.crash` (B14), `bench.ha` (B12, B13) and `bench.unrelated` (B10).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import env
from bench.kube import KubeClient, Watcher
from support.operator import OperatorProcess
from support.sim import SimProcess

NS = "bench"
NS_SCALE = "bench-scale"
NS_B2 = "bench-b2"
GROUP_SIZE = 100          # objects per shared Secret (B8 rotates one of them)
DEPLOY_SECONDS = 2.0
LATENCY = 0.05
CREATE_CONCURRENCY = 32   # the driver's concurrent creates in B1 (and in B1's Kubernetes floor)
SCALE_CONCURRENCY = 64    # the driver's concurrent creates for the B4 scale point

DEFAULT_RATE_LIMIT = 20   # GOLDRUSH_RATE_LIMIT default (B3)
DEFAULT_BUDGET_SHARE = 0.1  # GOLDRUSH_POLL_BUDGET_SHARE default


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
    scale_points: list[int]
    rate_limit: int
    concurrency: int
    workdir: Path
    b14_objects: int = 500
    b10_objects: int = 1000
    b10_secrets: int = 5000
    b12_objects: int = 200
    b13_objects: int = 3000
    plane: Any = None
    audit: env.Audit | None = None
    sim: SimProcess | None = None
    kube: KubeClient | None = None
    watcher: Watcher | None = None
    op: OperatorProcess | None = None
    op_kubeconfig: Path | None = None
    floor_kubeconfig: Path | None = None
    op_count: int = 0
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, sid: str, metric: str, value: Any, unit: str, target: str, ok: bool | None) -> None:
        self.rows.append(Row(sid, metric, value, unit, target, ok))
        flag = "" if ok is None else (" PASS" if ok else " FAIL")
        print(f"  {sid} {metric}: {value} {unit} (target {target}){flag}", flush=True)

    def log_path(self) -> Path:
        """A fresh operator log file in the work directory."""
        self.op_count += 1
        return self.workdir / f"operator-{self.op_count}.log"


def keys_in(ns: str, start: int, count: int) -> list[tuple[str, str]]:
    return [(ns, f"p-{i:05d}") for i in range(start, start + count)]


def start_op(ctx: Ctx, sim: SimProcess, namespaces: list[str] | None = None, **env_overrides: str) -> OperatorProcess:
    """The operator with the benchmark settings (`env.operator_env`, `--rate-limit`, `--concurrency`)."""
    overrides = {"GOLDRUSH_RATE_LIMIT": str(ctx.rate_limit), "GOLDRUSH_MAX_CONCURRENCY": str(ctx.concurrency),
                 **env_overrides}
    assert ctx.op_kubeconfig is not None
    return env.start_operator(ctx.op_kubeconfig, sim, ctx.log_path(), env.operator_env(**overrides), namespaces)


def stop_op(ctx: Ctx) -> None:
    if ctx.op is not None and ctx.op.alive():
        ctx.op.stop()
    ctx.op = None


async def ensure_secrets(ctx: Ctx, ns: str, start: int, count: int) -> None:
    """The namespace and the Secrets `dest-<g>` (one per GROUP_SIZE objects) the objects refer to."""
    assert ctx.kube
    await ctx.kube.ensure_namespace(ns)
    for g in sorted({i // GROUP_SIZE for i in range(start, start + count)}):
        with contextlib.suppress(RuntimeError):  # already there
            await ctx.kube.create_secret(ns, {"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"name": f"dest-{g}"},
                                              "data": {"password": b64(f"initial-{g}")}})


async def populate(ctx: Ctx, ns: str, start: int, count: int, kube: KubeClient | None = None) -> float:
    """Create the Secrets and `count` objects at once (through `kube`, default the session's client, which
    sends CREATE_CONCURRENCY requests at a time); returns the time of the first create."""
    assert ctx.watcher
    client = kube or ctx.kube
    assert client
    await ensure_secrets(ctx, ns, start, count)
    t0 = time.time()

    async def one(ns_name: tuple[str, str], index: int) -> None:
        rec = ctx.watcher.record(ns_name)  # type: ignore[union-attr]
        rec.created = time.time()
        await client.create_pipeline(ns, manifest(ns_name[1], f"dest-{index // GROUP_SIZE}"))

    await asyncio.gather(*(one(k, start + j) for j, k in enumerate(keys_in(ns, start, count))))
    return t0


async def wait_ready(ctx: Ctx, keys: list[tuple[str, str]], timeout: float) -> bool:
    """Wait until all `keys` are Ready (checked every 0.25 s; the watcher records the exact times)."""
    w = ctx.watcher
    assert w is not None
    deadline = time.monotonic() + timeout
    pending = list(keys)
    while True:
        pending = [k for k in pending if w.records.get(k) is None or not w.records[k].ready]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.25)


def last_ready(ctx: Ctx, keys: list[tuple[str, str]]) -> float | None:
    """When the last of `keys` became Ready (latest transition to True), None if one is not Ready."""
    assert ctx.watcher
    out = 0.0
    for k in keys:
        rec = ctx.watcher.records.get(k)
        if rec is None or not rec.ready:
            return None
        out = max(out, max(t for t, ready in rec.readiness if ready))
    return out


async def quiet(sim: SimProcess | None, seconds: float = 3.0, limit: float = 90.0) -> None:
    """Wait until the simulator saw no request for `seconds` (at most `limit`)."""
    assert sim
    deadline = time.monotonic() + limit
    last = -1
    still = time.monotonic()
    while time.monotonic() < deadline:
        total = (await asyncio.to_thread(sim.counters))["total"]
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


async def snapshot(ctx: Ctx, sim: SimProcess | None = None) -> tuple[int, int, float]:
    """(journal seq of `sim` (default the session's), audit offset, operator CPU seconds) right now."""
    sim = sim or ctx.sim
    assert sim
    assert ctx.audit
    seq = await asyncio.to_thread(last_seq, sim)
    cpu = env.proc_cpu_seconds(ctx.op.proc.pid) if ctx.op else 0.0
    return seq, ctx.audit.mark(), cpu


def last_seq(sim: SimProcess) -> int:
    """Highest journal seq so far (cheap: ask only for entries after a recent guess)."""
    guess = max(0, sim.counters()["total"] - 5)
    entries = sim.journal(guess)
    while entries:
        guess = entries[-1]["seq"]
        entries = sim.journal(guess)
    return guess


async def api_since(sim: SimProcess | None, seq: int) -> env.JournalView:
    assert sim
    view, _ = await asyncio.to_thread(env.journal, sim, seq)
    return view


async def rotate(ctx: Ctx, ns: str, secret: str, ids: set[str],
                 timeout: float = 60.0) -> tuple[float, dict[str, float]]:
    """Rotate `secret` (a new `password`) and wait until every pipeline of `ids` got its API PATCH.

    Returns (when the Secret PATCH was sent, {pipeline id: arrival of its first PATCH at the simulator});
    used by B8 and B10: latency = arrival - sent."""
    assert ctx.kube
    seq = await asyncio.to_thread(last_seq, ctx.sim)  # type: ignore[arg-type]
    t0 = time.time()
    await ctx.kube.replace_secret_data(ns, secret, {"password": b64(f"rotated-{secret}-{t0:.3f}")})
    patches: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ids <= patches.keys():
        view = await api_since(ctx.sim, seq)
        for e in view.route("patch", "PATCH"):
            pid = e["path"].rstrip("/").rsplit("/", 1)[-1]
            patches.setdefault(pid, e["time"])
        await asyncio.sleep(0.5)
    return t0, patches
