"""Per-pipeline metrics: the series bookkeeping of metrics.py, the budget rule of `Cadence.metrics_interval`,
and the controller's decision of when a pass reads `GET /{id}/metrics/` (fake Kubernetes, MockTransport API).

What must hold: series appear with the labels `namespace`, `name`, `pipeline_id` and go when the object goes
(deleted, pipeline id changed, reconciliation paused); metrics reads are paid from the read budget, only on a
poll of a stable pipeline, never more often than the refresh interval, never instead of the status reads the
budget owes; a failing metrics read changes nothing else; none of it writes to Kubernetes or the API.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller.loop import Controller
from goldrush_operator.goldrush_api import GoldRushClient, PipelineMetrics, SharedState
from goldrush_operator.metrics import PHASES, PIPELINE_VALUES, PrometheusMetrics
from goldrush_operator.scheduler import FULL_CHECK_EXTRA_READS, Cadence, ReadBudget
from goldrush_operator.state import Store
from unit.test_controller import KEY, FakeApi, World, pipeline

KEY1 = ("team-a", "p1")


def samples(m: PrometheusMetrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of the metric family `name`: labels -> value."""
    out = {}
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[frozenset(s.labels.items())] = s.value
    return out


def labels(pipeline_id: str, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"namespace": "team-a", "name": "p1", "pipeline_id": pipeline_id, **extra}.items())


def values(rps: float = 100.0, height: int = 30_000_100) -> PipelineMetrics:
    return PipelineMetrics(records_per_second=rps, processing_delay_ms=1500, pending_records=25,
                           last_block_height=height, normalization_errors=0)


def pipeline_series(m: PrometheusMetrics) -> int:
    names = ["goldrush_pipeline_phase", "goldrush_pipeline_destination_healthy", *PIPELINE_VALUES]
    return sum(len(samples(m, n)) for n in names)


# ---------------------------------------------------------------------------------------------- bookkeeping


def test_phase_is_one_series_per_phase_with_the_current_one_at_1() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    m.pipeline_observed(KEY1, "pipe_1", "RUNNING", True)
    phase = samples(m, "goldrush_pipeline_phase")
    assert phase == {labels("pipe_1", phase=p): (1.0 if p == "RUNNING" else 0.0) for p in PHASES}
    assert samples(m, "goldrush_pipeline_destination_healthy") == {labels("pipe_1"): 1.0}
    m.pipeline_observed(KEY1, "pipe_1", "FAILED", False)
    phase = samples(m, "goldrush_pipeline_phase")
    assert [dict(k)["phase"] for k, v in phase.items() if v == 1] == ["FAILED"]
    assert samples(m, "goldrush_pipeline_destination_healthy") == {labels("pipe_1"): 0.0}
    # The fleet gauge counts the same observations.
    assert samples(m, "goldrush_pipelines")[frozenset({("phase", "FAILED")})] == 1
    assert samples(m, "goldrush_pipelines")[frozenset({("phase", "RUNNING")})] == 0


def test_an_unknown_phase_gets_its_own_series_until_the_phase_changes() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    m.pipeline_observed(KEY1, "pipe_1", "MIGRATING", None)
    assert samples(m, "goldrush_pipeline_phase")[labels("pipe_1", phase="MIGRATING")] == 1
    assert samples(m, "goldrush_pipeline_destination_healthy") == {}
    m.pipeline_observed(KEY1, "pipe_1", "RUNNING", None)
    assert labels("pipe_1", phase="MIGRATING") not in samples(m, "goldrush_pipeline_phase")
    assert len(samples(m, "goldrush_pipeline_phase")) == len(PHASES)


def test_values_are_set_and_a_missing_field_removes_its_series() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    m.pipeline_metrics(KEY1, "pipe_1", values(rps=42.5))
    assert samples(m, "goldrush_pipeline_records_per_second") == {labels("pipe_1"): 42.5}
    assert samples(m, "goldrush_pipeline_processing_delay_ms") == {labels("pipe_1"): 1500}
    assert samples(m, "goldrush_pipeline_pending_records") == {labels("pipe_1"): 25}
    assert samples(m, "goldrush_pipeline_last_block_height") == {labels("pipe_1"): 30_000_100}
    assert samples(m, "goldrush_pipeline_normalization_errors") == {labels("pipe_1"): 0}
    m.pipeline_metrics(KEY1, "pipe_1", PipelineMetrics(records_per_second=7.0))
    assert samples(m, "goldrush_pipeline_records_per_second") == {labels("pipe_1"): 7.0}
    assert samples(m, "goldrush_pipeline_pending_records") == {}
    m.pipeline_metrics(KEY1, "pipe_1", None)  # the API has no metrics for it (404)
    assert all(samples(m, name) == {} for name in PIPELINE_VALUES)


def test_a_new_pipeline_id_replaces_every_series_of_the_old_one() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    m.pipeline_observed(KEY1, "pipe_1", "RUNNING", True)
    m.pipeline_metrics(KEY1, "pipe_1", values())
    m.pipeline_observed(KEY1, "pipe_2", "DEPLOYING", None)
    for name in ["goldrush_pipeline_phase", "goldrush_pipeline_destination_healthy", *PIPELINE_VALUES]:
        assert all(dict(k)["pipeline_id"] != "pipe_1" for k in samples(m, name)), name
    assert samples(m, "goldrush_pipeline_phase")[labels("pipe_2", phase="DEPLOYING")] == 1
    # Before the remote pipeline exists the phase is labelled with an empty pipeline_id.
    m.pipeline_observed(("team-a", "p9"), None, "PENDING", None)
    assert any(dict(k) == {"namespace": "team-a", "name": "p9", "pipeline_id": "", "phase": "PENDING"}
               for k in samples(m, "goldrush_pipeline_phase"))


def test_forget_removes_every_series_of_that_object_only() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    other = ("team-b", "p1")
    for key, pid in ((KEY1, "pipe_1"), (other, "pipe_2")):
        m.pipeline_observed(key, pid, "RUNNING", True)
        m.pipeline_metrics(key, pid, values())
    per_object = len(PHASES) + 1 + len(PIPELINE_VALUES)
    assert pipeline_series(m) == 2 * per_object
    m.forget(KEY1)
    assert pipeline_series(m) == per_object
    assert all(dict(k)["namespace"] == "team-b" for k in samples(m, "goldrush_pipeline_phase"))
    assert samples(m, "goldrush_pipelines")[frozenset({("phase", "RUNNING")})] == 1
    m.phase_changed(other, None)  # what the finalizer reports after a delete
    assert pipeline_series(m) == 0
    assert samples(m, "goldrush_pipelines")[frozenset({("phase", "RUNNING")})] == 0
    m.forget(other)  # twice is harmless


# ---------------------------------------------------------------------------------------------- cadence


@pytest.mark.parametrize(("objects", "metrics_every", "status_every"), [
    (1, 60.0, 2.0), (10, 60.0, 5.52), (50, 225.0, 30.0), (100, None, 56.25), (1000, None, 750.0),
])
def test_metrics_reads_get_only_what_the_status_reads_do_not_need(
    objects: int, metrics_every: float | None, status_every: float
) -> None:
    cadence = Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=2.0, metrics=60.0)
    got = cadence.metrics_interval(objects)
    assert got == (None if metrics_every is None else pytest.approx(metrics_every, rel=1e-3))
    status, full = cadence.intervals(objects)
    assert status == pytest.approx(status_every, rel=1e-3)
    # Metrics never slow the status reads beyond half their slowest cadence (FAILED shows well within it).
    without = Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=2.0).intervals(objects)[0]
    assert status <= max(without, 30.0) + 1e-9
    # All reads together never exceed the budget.
    reads = objects / status + FULL_CHECK_EXTRA_READS * objects / full + (objects / got if got else 0.0)
    assert reads <= 2.0 + 1e-9


def test_metrics_interval_off_and_unlimited() -> None:
    assert Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=2.0, metrics=0.0).metrics_interval(5) is None
    assert Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=2.0).intervals(10) == pytest.approx((5.056, 900.0),
                                                                                                   rel=1e-3)
    # No budget (no rate limit configured): the configured refresh as it is.
    assert Cadence(fast=2.0, status_max=60.0, slow=900.0, budget=0.0, metrics=30.0).metrics_interval(5000) == 30.0


def test_metrics_setting_reads_the_environment() -> None:
    assert Settings.from_env({}).pipeline_metrics_seconds == 60.0
    assert Settings.from_env({"GOLDRUSH_PIPELINE_METRICS_SECONDS": "0"}).pipeline_metrics_seconds == 0.0
    assert Settings.from_env({"GOLDRUSH_PIPELINE_METRICS_SECONDS": "15"}).pipeline_metrics_seconds == 15.0
    with pytest.raises(ValueError, match="GOLDRUSH_PIPELINE_METRICS_SECONDS"):
        Settings.from_env({"GOLDRUSH_PIPELINE_METRICS_SECONDS": "-1"})


# ---------------------------------------------------------------------------------------------- controller


class MetricsApi(FakeApi):
    """FakeApi that also answers `/metrics/` (values per pipeline id, default the simulator's)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, dict[str, Any]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/platform/pipeline-api/").strip("/").split("/")
        if len(parts) == 2 and parts[1] == "metrics" and (request.method, "metrics") not in self.fail:
            self.journal.append(("GET", "metrics"))
            if parts[0] not in self.pipelines:
                return httpx.Response(404, json={"data": None, "error": True, "error_message": "not found"})
            data = self.values.get(parts[0], {"records_per_second": 100.0, "processing_delay_ms": 1500})
            return self._ok(data)
        return super().handler(request)


def attach(world: World, metrics_seconds: float = 60.0, rate_limit: float = 20.0, sink: bool = True
           ) -> PrometheusMetrics:
    """A controller with a Prometheus sink (or none) for `world`, replacing the one it has."""
    settings = Settings(service_key=KEY, poll_fast_seconds=2.0, poll_slow_seconds=900.0, rate_limit=rate_limit,
                        pipeline_metrics_seconds=metrics_seconds)
    shared = SharedState()

    def client_for(key: str) -> GoldRushClient:
        return GoldRushClient("http://goldrush.test/platform/pipeline-api/", key, rate_limit=0,
                              transport=httpx.MockTransport(world.api.handler), shared=shared, max_retries=0)

    m = PrometheusMetrics(CollectorRegistry())
    world.controller = Controller(settings, world.kube, world.store, client_for, ServiceKeySource(settings),
                                  m if sink else None, clock=lambda: world.now)
    return m


def metrics_world(**kwargs: Any) -> tuple[World, PrometheusMetrics]:
    world = World()
    world.api = MetricsApi()
    return world, attach(world, **kwargs)


def obj_labels(pid: str) -> frozenset[tuple[str, str]]:
    return frozenset({"namespace": "ns", "name": "p1", "pipeline_id": pid}.items())


async def running(world: World) -> str:
    world.apply(pipeline())
    await world.run()
    pid: str = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    world.now += 2
    await world.run()
    return pid


async def test_a_budgeted_poll_reads_the_metrics_once_per_interval_and_writes_nothing() -> None:
    world, m = metrics_world()
    pid = await running(world)
    # Creating and deploying: no metrics read (writes and fast polls are not paid from the budget).
    assert ("GET", "metrics") not in world.api.journal
    assert samples(m, "goldrush_pipeline_phase")[obj_labels(pid) | {("phase", "RUNNING")}] == 1
    assert samples(m, "goldrush_pipeline_destination_healthy") == {obj_labels(pid): 1}
    status_writes, api_writes = world.kube.status_writes, world.api.writes()
    world.api.values[pid] = {"records_per_second": 12.5, "processing_delay_ms": 900, "pending_records": 3,
                             "last_block_height": 44_745_010, "normalization_errors": 2}
    world.now += 10
    await world.run()
    assert world.api.journal.count(("GET", "metrics")) == 1
    assert samples(m, "goldrush_pipeline_records_per_second") == {obj_labels(pid): 12.5}
    assert samples(m, "goldrush_pipeline_last_block_height") == {obj_labels(pid): 44_745_010}
    assert samples(m, "goldrush_pipeline_normalization_errors") == {obj_labels(pid): 2}
    assert samples(m, "goldrush_pipeline_metrics_refresh_seconds") == {frozenset(): 60.0}
    # Polls inside the interval read the status only.
    world.api.values[pid] = {"records_per_second": 50.0}
    for _ in range(5):
        world.now += 5
        await world.run()
    assert world.api.journal.count(("GET", "metrics")) == 1
    assert samples(m, "goldrush_pipeline_records_per_second") == {obj_labels(pid): 12.5}
    world.now += 40  # 65 s after the read
    await world.run()
    assert world.api.journal.count(("GET", "metrics")) == 2
    assert samples(m, "goldrush_pipeline_records_per_second") == {obj_labels(pid): 50.0}
    assert samples(m, "goldrush_pipeline_pending_records") == {}  # no longer in the answer
    assert world.kube.status_writes == status_writes and world.api.writes() == api_writes


async def test_metrics_reads_are_booked_in_the_read_budget() -> None:
    world, _ = metrics_world(rate_limit=10.0)  # budget 1 read/s
    await running(world)
    world.controller.timing.budget = ReadBudget(1.0, burst=0, clock=lambda: world.now)  # no burst: every read waits
    # Poll ticks of half a second (the fast poll): every wait below ends on a tick, so it is the budget's own.
    world.controller.timing.settings = dataclasses.replace(world.controller.settings, poll_fast_seconds=0.5)
    world.now += 10
    sent = len(world.api.journal)
    delay = await world.run()
    assert delay == pytest.approx(1.0)  # the status read's wait; the metrics read is booked behind it
    assert len(world.api.journal) == sent
    world.now += delay
    await world.run()  # the paid poll carries the metrics read
    assert world.api.journal[sent:] == [("GET", "status"), ("GET", "metrics")]
    # Both reads were booked: a poll planned right now waits for 2 reads, not 1.
    assert await world.run() == pytest.approx(2.0)
    world.now += 2
    await world.run()
    world.now += 5
    delay = await world.run()
    assert delay == pytest.approx(1.0)  # inside the refresh interval: the status read only
    world.now += delay
    await world.run()
    assert world.api.journal[sent + 2:] == [("GET", "status"), ("GET", "status")]


async def test_no_metrics_reads_when_off_or_nobody_exports_them() -> None:
    for world, _ in (metrics_world(metrics_seconds=0), metrics_world(sink=False)):
        await running(world)
        for _ in range(5):
            world.now += 100
            await world.run()
        assert ("GET", "metrics") not in world.api.journal


async def test_a_failing_metrics_read_changes_nothing_else() -> None:
    world, m = metrics_world()
    pid = await running(world)
    status = copy.deepcopy(world.obj()["status"])
    world.api.fail[("GET", "metrics")] = 500
    world.now += 10
    delay = await world.run()
    assert delay is not None and delay <= 60
    assert world.obj()["status"] == status
    assert samples(m, "goldrush_pipeline_records_per_second") == {}
    assert samples(m, "goldrush_reconciles_total")[frozenset({("result", "ok")})] >= 1
    # The next refresh reads again.
    del world.api.fail[("GET", "metrics")]
    world.now += 70
    await world.run()
    assert samples(m, "goldrush_pipeline_records_per_second") == {obj_labels(pid): 100.0}
    # 404: the pipeline has no metrics; its value series go, the phase stays.
    world.api.fail[("GET", "metrics")] = 404
    world.now += 70
    await world.run()
    assert samples(m, "goldrush_pipeline_records_per_second") == {}
    assert samples(m, "goldrush_pipeline_phase")[obj_labels(pid) | {("phase", "RUNNING")}] == 1
    assert world.obj()["status"] == status


async def test_series_go_when_reconciliation_is_paused_and_when_the_object_is_deleted() -> None:
    world, m = metrics_world()
    await running(world)
    world.now += 10
    await world.run()
    assert pipeline_series(m) > 0
    world.obj()["metadata"]["annotations"]["goldrush.dev/pause-reconciliation"] = "true"
    world.sync()
    await world.run()
    assert pipeline_series(m) == 0
    del world.obj()["metadata"]["annotations"]["goldrush.dev/pause-reconciliation"]
    world.sync()
    world.now += 100
    await world.run()
    assert pipeline_series(m) > 0
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    await world.controller.finalizer.delete(body)
    assert pipeline_series(m) == 0
    assert sum(samples(m, "goldrush_pipelines").values()) == 0
    # An object that leaves the watch without the finalizer (DELETED event) loses its series too.
    world2, m2 = metrics_world()
    await running(world2)
    world2.controller.forget(("ns", "p1"))
    assert pipeline_series(m2) == 0


async def test_after_a_restart_the_phase_is_exported_before_any_read() -> None:
    world, _ = metrics_world()
    pid = await running(world)
    world.store = Store()  # a new process: no memory, the object's status is authoritative
    m = attach(world)
    world.sync()
    sent = len(world.api.journal)
    await world.run()
    assert len(world.api.journal) == sent  # the first pass after a restart is deferred
    assert samples(m, "goldrush_pipeline_phase")[obj_labels(pid) | {("phase", "RUNNING")}] == 1
    assert samples(m, "goldrush_pipeline_destination_healthy") == {obj_labels(pid): 1}
    assert samples(m, "goldrush_pipelines")[frozenset({("phase", "RUNNING")})] == 1


async def test_an_object_that_leaves_the_watch_during_a_pass_keeps_no_series() -> None:
    world, m = metrics_world()
    await running(world)
    world.now += 10
    original_get = world.store.get

    def gone_after_start(key: tuple[str, str]) -> Any:
        """The pass gets the record; then the DELETED event (no finalizer) drops it from the store."""
        world.store.get = original_get  # type: ignore[method-assign]
        found = original_get(key)
        world.store.forget(key)
        world.controller.forget(key)
        return found

    world.store.get = gone_after_start  # type: ignore[method-assign]
    await world.controller.run_pass(("ns", "p1"))
    assert ("GET", "status") in world.api.journal[-2:]  # the pass did run to its end
    assert pipeline_series(m) == 0


def test_a_replica_exports_only_the_series_of_the_objects_it_reconciles() -> None:
    m = PrometheusMetrics(CollectorRegistry())
    mine, theirs = ("ns", "a"), ("ns", "b")
    m.pipeline_observed(mine, "pipe_a", "RUNNING", True)
    m.pipeline_observed(theirs, "pipe_b", "RUNNING", True)
    assert {dict(k)["name"] for k in samples(m, "goldrush_pipeline_destination_healthy")} == {"a", "b"}
    m.pipelines.visible = lambda key: key == mine  # e.g. a shard moved to another replica
    assert {dict(k)["name"] for k in samples(m, "goldrush_pipeline_destination_healthy")} == {"a"}
    m.pipelines.visible = lambda key: False  # a standby
    assert pipeline_series(m) == 0


def test_the_metrics_endpoint_serves_the_registry_over_http() -> None:
    """`serve` starts prometheus_client's WSGI app on the port (a daemon thread) and answers a scrape."""
    import socket
    import urllib.request

    from goldrush_operator.metrics import PrometheusMetrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = PrometheusMetrics()
    metrics.reconcile_done("ok", 0.01)
    metrics.serve(port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'goldrush_reconciles_total{result="ok"} 1.0' in body
