"""B1's event-loop lag floor: how late an idle event loop wakes up on the same cores during the burst.

    python -m bench.lagprobe            # prints one lag sample (seconds) per line until stopped

A separate Python process whose event loop does nothing but the operator's own lag probe
(`scheduler.LoopLag`, every 0.1 s): how much later than asked a short sleep returns. What it sees is the
machine's share of the loop lag (the process not being scheduled while the kube-apiserver, etcd, the
simulator, the driver and the operator share the cores), not work of its own. `Probe` runs it from
`bench.run.b1` around the burst; the operator's lag is read from its `goldrush_event_loop_lag_seconds`
histogram, and both are reported with the same bucket bounds (`metrics.LOOP_LAG_BUCKETS`). It runs in the
measured operator's Python environment (`env.probe_command`).
"""

from __future__ import annotations

import asyncio
import subprocess
import time

from goldrush_operator.metrics import LOOP_LAG_BUCKETS
from goldrush_operator.scheduler import LoopLag

INTERVAL = 0.1  # seconds between samples, as the operator's probe while its loop is busy


def _print(lag: float) -> None:
    print(f"{time.time():.3f} {lag:.6f}", flush=True)


class Probe:
    """The probe process: `start()` before the burst, `stop(since, until)` the samples taken in between."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        from bench import env  # not at the top: the probe itself runs without the bench driver's imports
        self._proc = subprocess.Popen(env.probe_command("bench.lagprobe"), stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, cwd=env.REPO)

    def stop(self, since: float, until: float) -> list[float]:
        """Stop the probe; its lag samples taken between the wall-clock times `since` and `until`."""
        assert self._proc is not None
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        samples = []
        for line in out.splitlines():
            at, _, lag = line.partition(" ")
            if lag and since <= float(at) <= until:
                samples.append(float(lag))
        return samples


def cumulative(samples: list[float]) -> dict[float, float]:
    """The samples as a Prometheus-style cumulative histogram (`le` bound -> count) with the operator's buckets."""
    counts = {b: float(sum(1 for s in samples if s <= b)) for b in LOOP_LAG_BUCKETS}
    counts[float("inf")] = float(len(samples))
    return counts


if __name__ == "__main__":
    # The operator's own probe, sampling every INTERVAL whether or not the loop is busy; until SIGTERM.
    asyncio.run(LoopLag(_print, interval=INTERVAL, idle_interval=INTERVAL).run())
