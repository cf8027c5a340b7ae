"""Prometheus metrics (`prometheus-client`), served on `GOLDRUSH_METRICS_PORT` by `cli.run`.

The controller reports through the `controller.ports.Metrics` protocol, the loop-lag monitor through
`loop_lag`; the API client through its `on_request`
hook (`PrometheusMetrics.on_request`).

Per-pipeline series (labels `namespace`, `name`, `pipeline_id`): `goldrush_pipeline_phase` (one series per
phase, 1 for the current one) and `goldrush_pipeline_destination_healthy` from what the status polls
observe; the `GET /{id}/metrics/` gauges from the controller's metrics reads. `PipelineSeries` keeps, per
object, which series exist, so that a new pipeline id replaces the old series and `forget` (deleted, or no
longer managed) removes all of them.
"""

from __future__ import annotations

from collections import Counter as _Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from goldrush_operator.goldrush_api import PipelineMetrics

PHASES = ("PENDING", "DEPLOYING", "RUNNING", "PAUSED", "FAILED", "STOPPING", "STOPPED")
PIPELINE_LABELS = ("namespace", "name", "pipeline_id")
# Gauge name -> (field of the /metrics/ answer, help text).
PIPELINE_VALUES = {
    "goldrush_pipeline_records_per_second": ("records_per_second", "Records per second the worker processes."),
    "goldrush_pipeline_processing_delay_ms": ("processing_delay_ms", "Processing delay of the worker in ms."),
    "goldrush_pipeline_pending_records": ("pending_records", "Records waiting to be processed."),
    "goldrush_pipeline_last_block_height": ("last_block_height", "Height of the last block processed."),
    "goldrush_pipeline_normalization_errors": (
        "normalization_errors", "Normalization errors since the worker started (resets on a redeploy)."),
}
Key = tuple[str, str]
Labels = tuple[str, str, str]


@dataclass
class _Series:
    labels: Labels
    phases: frozenset[str] = frozenset()  # phase label values that have a series
    healthy: bool | None = None
    values: frozenset[str] = frozenset()  # PIPELINE_VALUES names that have a series


@dataclass
class PipelineSeries:
    """Which per-pipeline series exist for each object; sets and removes them on the gauges."""

    phase: Gauge
    healthy: Gauge
    values: dict[str, Gauge]
    series: dict[Key, _Series] = field(default_factory=dict)

    def _for(self, key: Key, pipeline_id: str | None) -> _Series:
        labels = (key[0], key[1], pipeline_id or "")
        current = self.series.get(key)
        if current is not None and current.labels != labels:
            self.forget(key)  # another remote pipeline: its old series go
            current = None
        if current is None:
            current = self.series[key] = _Series(labels)
        return current

    def observed(self, key: Key, pipeline_id: str | None, phase: str | None, healthy: bool | None) -> None:
        """A pass's view: the current phase (1, every other phase 0) and the destination health."""
        s = self._for(key, pipeline_id)
        if phase is not None:
            names = frozenset(PHASES) | {phase}
            for gone in s.phases - names:
                self.phase.remove(*s.labels, gone)
            for name in names:
                self.phase.labels(*s.labels, name).set(1 if name == phase else 0)
            s.phases = names
        if healthy is None:
            if s.healthy is not None:
                self.healthy.remove(*s.labels)
        else:
            self.healthy.labels(*s.labels).set(1 if healthy else 0)
        s.healthy = healthy

    def measured(self, key: Key, pipeline_id: str, metrics: PipelineMetrics | None) -> None:
        """The answer of `GET /{id}/metrics/` (None: the pipeline has none; its value series go)."""
        s = self._for(key, pipeline_id)
        present = set()
        for name, (attr, _) in PIPELINE_VALUES.items():
            value = getattr(metrics, attr) if metrics is not None else None
            if value is None:
                if name in s.values:
                    self.values[name].remove(*s.labels)
            else:
                self.values[name].labels(*s.labels).set(float(value))
                present.add(name)
        s.values = frozenset(present)

    def forget(self, key: Key) -> None:
        """Remove every series of the object."""
        s = self.series.pop(key, None)
        if s is None:
            return
        for name in s.phases:
            self.phase.remove(*s.labels, name)
        if s.healthy is not None:
            self.healthy.remove(*s.labels)
        for name in s.values:
            self.values[name].remove(*s.labels)


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
        self.pipeline_metrics_refresh = Gauge(
            "goldrush_pipeline_metrics_refresh_seconds",
            "Seconds between two metrics reads of one pipeline at the current object count (0: no reads).",
            registry=r,
        )
        self.pipelines = PipelineSeries(
            phase=Gauge("goldrush_pipeline_phase", "1 for the pipeline's current remote phase, else 0.",
                        [*PIPELINE_LABELS, "phase"], registry=r),
            healthy=Gauge("goldrush_pipeline_destination_healthy",
                          "1 when the latest destination probe succeeded, else 0.", PIPELINE_LABELS, registry=r),
            values={name: Gauge(name, text + " From GET /{id}/metrics/.", PIPELINE_LABELS, registry=r)
                    for name, (_, text) in PIPELINE_VALUES.items()},
        )
        self._phase_of: dict[tuple[str, str], str] = {}
        self._phase_counts: _Counter[str] = _Counter()
        for name in PHASES:
            self.phases.labels(name).set(0)

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
            self.forget(key)
        else:
            self._count_phase(key, phase)

    def _count_phase(self, key: tuple[str, str], phase: str | None) -> None:
        old = self._phase_of.pop(key, None) if phase is None else self._phase_of.get(key)
        if old == phase:
            return
        if old is not None:
            self._phase_counts[old] -= 1
            self.phases.labels(old).set(self._phase_counts[old])
        if phase is not None:
            self._phase_of[key] = phase
            self._phase_counts[phase] += 1
            self.phases.labels(phase).set(self._phase_counts[phase])

    def pipeline_observed(
        self, key: tuple[str, str], pipeline_id: str | None, phase: str | None, destination_healthy: bool | None
    ) -> None:
        if phase is not None:
            self._count_phase(key, phase)
        self.pipelines.observed(key, pipeline_id, phase, destination_healthy)

    def pipeline_metrics(self, key: tuple[str, str], pipeline_id: str, metrics: PipelineMetrics | None) -> None:
        self.pipelines.measured(key, pipeline_id, metrics)

    def metrics_refresh(self, seconds: float | None) -> None:
        self.pipeline_metrics_refresh.set(seconds or 0.0)

    def forget(self, key: tuple[str, str]) -> None:
        self._count_phase(key, None)
        self.pipelines.forget(key)

    def loop_lag(self, seconds: float) -> None:
        self.loop_lag_seconds.observe(seconds)

    def drift_corrected(self) -> None:
        self.drift.inc()

    def secret_rotated(self) -> None:
        self.rotations.inc()

    def became_ready(self, seconds: float) -> None:
        self.time_to_ready.observe(max(0.0, seconds))
