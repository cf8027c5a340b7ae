"""B3's CPU floor: what the same reads cost a process that does nothing else.

    python -m bench.pollfloor BASE_URL RATE SECONDS TICK PATH...   # service key on stdin; prints CPU seconds

A separate Python process with one asyncio loop and one `httpx.AsyncClient` (the operator's HTTP library,
keep-alive on) sends `GET BASE_URL + PATH` for the given paths in their order (from the first again if they
run out) at `RATE` requests a second for `SECONDS`, and prints the CPU seconds (user + system) it spent in
that paced phase: its imports and start-up are not counted. Each request is due on its own even schedule;
with `TICK` > 0 it goes out at the next multiple of `TICK` on the monotonic clock, together with the others
due by then, as the operator sends its budget-paid polls (`controller.timing.on_tick`); with `TICK` 0 it
goes out at its own time. No bookkeeping, no Kubernetes, no status: that is the part of B3's idle CPU that
the reads themselves cost on this machine. `run` starts it from `bench.run.b3_b6` right after B3's idle
window, at the rate the operator read during the window, replaying the reads it sent (status and full reads
alike): once on the operator's ticks (the floor) and once evenly paced (what the ticks save). It runs in the
measured operator's Python environment (`env.probe_command`): the same httpx.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time

import httpx


async def _paced(base_url: str, key: str, rate: float, seconds: float, tick: float, paths: list[str]) -> float:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as client:
        await client.get(paths[0])  # the connection is open before the clock starts, as in the operator
        tasks: set[asyncio.Task[httpx.Response]] = set()
        cpu0, t0 = time.process_time(), time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            due = t0 + i / rate
            if tick > 0:
                due = math.ceil(due / tick) * tick
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.ensure_future(client.get(paths[i % len(paths)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        return time.process_time() - cpu0


def run(base_url: str, key: str, rate: float, seconds: float, tick: float, paths: list[str]) -> float:
    """Millicores the probe process spent sending the reads (the driver's side of the command above)."""
    if rate <= 0 or not paths:
        return 0.0
    from bench import env  # not at the top: the probe itself runs without the bench driver's imports

    out = subprocess.run([*env.probe_command("bench.pollfloor"), base_url, f"{rate:.6f}", f"{seconds:g}",
                          f"{tick:g}", *paths], input=key, capture_output=True, text=True, check=True,
                         timeout=seconds + 120, cwd=env.REPO).stdout
    return float(out.strip()) / seconds * 1000


if __name__ == "__main__":
    url, rate_arg, seconds_arg, tick_arg, *read_paths = sys.argv[1:]
    cpu = asyncio.run(_paced(url, sys.stdin.read().strip(), float(rate_arg), float(seconds_arg), float(tick_arg),
                             read_paths))
    print(f"{cpu:.6f}")
