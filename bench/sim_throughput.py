"""Throughput benchmark of the GoldRush API simulator (`goldrush-sim`).

Starts the simulator as a subprocess on a free loopback port (pinned to one CPU core when
the platform allows it), creates N pipelines through the Pipeline API, then drives a mix of
`GET /{id}/` and `GET /{id}/status/` requests with an aiohttp client for a bounded time and
request count, and prints the achieved requests per second. Exit status 1 when below
`--min-rps` (default 1000), so it can gate CI.

Usage: python bench/sim_throughput.py [--seconds 10] [--pipelines 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

READY = "goldrush-sim listening on "
KEY = "bench-key"


def start_sim(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "goldrush-sim"
    args = [str(exe), "--port", "0", "--service-key", KEY, "--log-level", "warning", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(20)
    if not lines or not lines[0].startswith(READY):
        proc.kill()
        raise SystemExit(f"simulator did not start: {lines}")
    return proc, lines[0][len(READY) :].strip()


def pin(pid: int, cpu: int) -> bool:
    """Pin a process to one CPU (Linux); returns False where unsupported."""
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None or cpu >= (os.cpu_count() or 1):
        return False
    try:
        setter(pid, {cpu})
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds used by a process so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_body(index: int) -> dict[str, object]:
    return {
        "name": f"bench-{index}",
        "project": "bench",
        "topic": "base.mainnet.ref.block.swaps",
        "destination_type": "postgres",
        "destination_config": {
            "type": "postgres",
            "url": "postgresql://db.example.com:5432/bench",
            "user": "bench",
            "password": f"secret-{index}",
        },
        "execution_mode": "unbounded",
        "execution_start_from": "44745000",
    }


async def seed(session: aiohttp.ClientSession, base: str, count: int) -> list[str]:
    ids: list[str] = []
    semaphore = asyncio.Semaphore(32)

    async def one(index: int) -> None:
        async with semaphore, session.post(base, json=pipeline_body(index)) as response:
            if response.status != 201:
                raise SystemExit(f"seeding failed: HTTP {response.status} {await response.text()}")
            ids.append((await response.json())["data"]["id"])

    await asyncio.gather(*(one(i) for i in range(count)))
    return ids


async def drive(
    session: aiohttp.ClientSession,
    base: str,
    ids: list[str],
    seconds: float,
    max_requests: int,
    concurrency: int,
) -> tuple[int, int, float]:
    started_count = 0
    done = 0
    errors = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(1)

    async def worker() -> None:
        nonlocal started_count, done, errors
        while started_count < max_requests and time.monotonic() < deadline:
            pid = rng.choice(ids)
            url = f"{base}{pid}/" if started_count % 2 else f"{base}{pid}/status/"
            started_count += 1
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors, time.monotonic() - started


async def run(args: argparse.Namespace, root: str, sim_pid: int) -> float:
    base = root + "/platform/pipeline-api/"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        t0 = time.monotonic()
        ids = await seed(session, base, args.pipelines)
        print(f"seeded {len(ids)} pipelines in {time.monotonic() - t0:.2f}s")
        await drive(session, base, ids, 1.0, args.max_requests, args.concurrency)  # warm-up
        cpu_before = cpu_seconds(sim_pid)
        done, errors, elapsed = await drive(session, base, ids, args.seconds, args.max_requests, args.concurrency)
        cpu_after = cpu_seconds(sim_pid)
    rps = done / elapsed
    print(f"{done} requests in {elapsed:.2f}s, {errors} errors: {rps:.0f} req/s")
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        used = cpu_after - cpu_before
        print(f"simulator CPU time {used:.2f}s: {done / used:.0f} requests per CPU-second")
    return rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--min-rps", type=float, default=1000.0)
    args = parser.parse_args()
    proc, root = start_sim([])
    try:
        pinned = pin(proc.pid, 0)
        if pinned:
            pin(os.getpid(), 1)
        print(f"simulator pid {proc.pid} at {root} ({'pinned to CPU 0' if pinned else 'not pinned'})")
        rps = asyncio.run(run(args, root, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0 if rps >= args.min_rps else 1


if __name__ == "__main__":
    raise SystemExit(main())
