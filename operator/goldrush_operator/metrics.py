"""Prometheus metrics (`prometheus-client`), served on `GOLDRUSH_METRICS_PORT` by `cli.run`.

The controller reports through the `controller.ports.Metrics` protocol, the loop-lag monitor through
`loop_lag`; the API client through its `on_request`
hook (`PrometheusMetrics.on_request`).
"""

from __future__ import annotations

from collections import Counter as _Counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class PrometheusMetrics:
    """All operator metrics in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("goldrush_reconciles_total", "Reconcile passes by result.", ["result"], registry=r)
        self.reconcile_seconds = Histogram(
            "goldrush_reconcile_duration_seconds", "Duration of one reconcile pass.", registry=r
        )
        self.api_requests = Counter(
            "goldrush_api_requests_total", "GoldRush API requests by endpoint, method and outcome.",
            ["endpoint", "method", "status"], registry=r,
        )
        self.rate_limited = Counter("goldrush_api_rate_limited_total", "429 answers from the GoldRush API.", registry=r)
        self.phases = Gauge("goldrush_pipelines", "Pipelines by remote phase.", ["phase"], registry=r)
        self.time_to_ready = Histogram(
            "goldrush_time_to_ready_seconds", "Seconds from remote create to Ready.",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600), registry=r,
        )
        self.drift = Counter("goldrush_drift_corrections_total", "Out-of-band changes corrected.", registry=r)
        self.rotations = Counter("goldrush_secret_rotations_total", "Secret rotations applied.", registry=r)
        self.loop_lag_seconds = Histogram(
            "goldrush_event_loop_lag_seconds", "How late the event loop wakes up (sampled every 0.1 s).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r,
        )
        self._phase_of: dict[tuple[str, str], str] = {}
        # High availability (`election.Election` reports through `leadership`).
        self.leader = Gauge("goldrush_leader", "1 while this replica holds the Lease (or at least one shard's "
                            "Lease) and may write; 0 on a standby or after it stopped writing.", registry=r)
        self.shards_owned = Gauge("goldrush_shards_owned", "Shard Leases this replica holds and reconciles.",
                                  registry=r)

    def serve(self, port: int) -> None:
        """Start the HTTP endpoint (a daemon thread)."""
        start_http_server(port, registry=self.registry)

    def on_request(self, method: str, route: str, outcome: str) -> None:
        self.api_requests.labels(route, method, outcome).inc()
        if outcome == "429":
            self.rate_limited.inc()

    def reconcile_done(self, result: str, seconds: float) -> None:
        self.reconciles.labels(result).inc()
        self.reconcile_seconds.observe(seconds)

    def phase_changed(self, key: tuple[str, str], phase: str | None) -> None:
        if phase is None:
            self._phase_of.pop(key, None)
        else:
            self._phase_of[key] = phase
        counts = _Counter(self._phase_of.values())
        for name in ("PENDING", "DEPLOYING", "RUNNING", "PAUSED", "FAILED", "STOPPING", "STOPPED"):
            self.phases.labels(name).set(counts.get(name, 0))

    def loop_lag(self, seconds: float) -> None:
        self.loop_lag_seconds.observe(seconds)

    def drift_corrected(self) -> None:
        self.drift.inc()

    def secret_rotated(self) -> None:
        self.rotations.inc()

    def leadership(self, leader: bool, shards_owned: int) -> None:
        self.leader.set(1 if leader else 0)
        self.shards_owned.set(shards_owned)

    def became_ready(self, seconds: float) -> None:
        self.time_to_ready.observe(max(0.0, seconds))
