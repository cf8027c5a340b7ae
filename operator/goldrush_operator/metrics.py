"""Prometheus metrics (`prometheus-client`), served on `GOLDRUSH_METRICS_PORT` by `cli.run`.

The controller reports through the `controller.ports.Metrics` protocol, the loop-lag monitor through
`loop_lag`; the API client through its `on_request`
hook (`PrometheusMetrics.on_request`).

Per-pipeline series (labels `namespace`, `name`, `pipeline_id`): `goldrush_pipeline_phase` (one series per
phase, 1 for the current one) and `goldrush_pipeline_destination_healthy` from what the status polls
observe; the `GET /{id}/metrics/` gauges from the controller's metrics reads. `PipelineSeries` keeps one
small immutable row per object and renders the series at scrape time (a prometheus-client collector), so a
pipeline costs a few hundred bytes instead of a dozen gauge children; a new pipeline id replaces the row and
`forget` (deleted, or no longer managed) removes it with all its series.
"""

from __future__ import annotations

from collections import Counter as _Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from goldrush_operator.goldrush_api import PipelineMetrics

PHASES = ("PENDING", "DEPLOYING", "RUNNING", "PAUSED", "FAILED", "STOPPING", "STOPPED")
PIPELINE_LABELS = ("namespace", "name", "pipeline_id")
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Bounds (seconds) of `goldrush_event_loop_lag_seconds`; the benchmark's idle probe reports with the same."""
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


@dataclass(frozen=True, slots=True)
class _Row:
    labels: Labels
    phase: str | None = None
    healthy: bool | None = None
    values: tuple[float | None, ...] = ()  # in PIPELINE_VALUES order; () before the first metrics read


class PipelineSeries(Collector):
    """One row per object, rendered as the per-pipeline gauge families when Prometheus scrapes.

    Rows are replaced, never changed in place, and `collect` iterates over a copy: the scrape runs in the
    HTTP server's thread while the controller updates rows on the event loop.
    """

    def __init__(self) -> None:
        self.rows: dict[Key, _Row] = {}
        # Which objects this replica reconciles now (`election.Election.admits`; None: all). A standby, or a
        # replica that lost a shard, keeps rows it may own again later but exports none of them.
        self.visible: Callable[[Key], bool] | None = None

    def _row(self, key: Key, pipeline_id: str | None) -> _Row:
        labels = (key[0], key[1], pipeline_id or "")
        row = self.rows.get(key)
        if row is None or row.labels != labels:
            return _Row(labels)  # another remote pipeline: nothing of the old one's series stays
        return row

    def observed(self, key: Key, pipeline_id: str | None, phase: str | None, healthy: bool | None) -> None:
        """A pass's view: the current phase (None: unknown, the last one stays) and the destination health."""
        row = self._row(key, pipeline_id)
        self.rows[key] = replace(row, phase=phase or row.phase, healthy=healthy)

    def measured(self, key: Key, pipeline_id: str, metrics: PipelineMetrics | None) -> None:
        """The answer of `GET /{id}/metrics/` (None: the pipeline has none; its value series go)."""
        row = self._row(key, pipeline_id)
        values = tuple(None if metrics is None or (v := getattr(metrics, attr)) is None else float(v)
                       for attr, _ in PIPELINE_VALUES.values())
        self.rows[key] = replace(row, values=values)

    def forget(self, key: Key) -> None:
        """Remove every series of the object."""
        self.rows.pop(key, None)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, list[GaugeMetricFamily]]:
        return (
            GaugeMetricFamily("goldrush_pipeline_phase", "1 for the pipeline's current remote phase, else 0.",
                              labels=[*PIPELINE_LABELS, "phase"]),
            GaugeMetricFamily("goldrush_pipeline_destination_healthy",
                              "1 when the latest destination probe succeeded, else 0.", labels=PIPELINE_LABELS),
            [GaugeMetricFamily(name, text + " From GET /{id}/metrics/.", labels=PIPELINE_LABELS)
             for name, (_, text) in PIPELINE_VALUES.items()],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        phase, healthy, values = self._families()
        yield phase
        yield healthy
        yield from values

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phase, healthy, values = self._families()
        visible = self.visible
        for key, row in list(self.rows.items()):
            if visible is not None and not visible(key):
                continue
            labels = list(row.labels)
            if row.phase is not None:
                for name in PHASES if row.phase in PHASES else (*PHASES, row.phase):
                    phase.add_metric([*labels, name], 1.0 if name == row.phase else 0.0)
            if row.healthy is not None:
                healthy.add_metric(labels, 1.0 if row.healthy else 0.0)
            for family, value in zip(values, row.values, strict=False):
                if value is not None:
                    family.add_metric(labels, value)
        yield phase
        yield healthy
        yield from values


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
            "goldrush_event_loop_lag_seconds",
            "How late the event loop wakes up (sampled every 0.1 s while busy, on the poll ticks while idle).",
            buckets=LOOP_LAG_BUCKETS, registry=r,
        )
        self.pipeline_metrics_refresh = Gauge(
            "goldrush_pipeline_metrics_refresh_seconds",
            "Seconds between two metrics reads of one pipeline at the current object count (0: no reads).",
            registry=r,
        )
        self.pipelines = PipelineSeries()
        r.register(self.pipelines)
        self._phase_of: dict[tuple[str, str], str] = {}
        self._phase_counts: _Counter[str] = _Counter()
        for name in PHASES:
            self.phases.labels(name).set(0)
        # High availability (`election.Election` reports through `leadership`).
        self.leader = Gauge("goldrush_leader", "1 while this replica holds the Lease (or at least one shard's "
                            "Lease) and may write; 0 on a standby or after it stopped writing.", registry=r)
        self.shards_owned = Gauge("goldrush_shards_owned", "Shard Leases this replica holds and reconciles.",
                                  registry=r)
        self.watched = Gauge("goldrush_watched_pipelines", "GoldRushPipelines this replica's watch delivers and "
                             "keeps a record of (all of them, or those of its shards with a server-side "
                             "sharded watch).", registry=r)

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

    def leadership(self, leader: bool, shards_owned: int) -> None:
        self.leader.set(1 if leader else 0)
        self.shards_owned.set(shards_owned)

    def became_ready(self, seconds: float) -> None:
        self.time_to_ready.observe(max(0.0, seconds))
