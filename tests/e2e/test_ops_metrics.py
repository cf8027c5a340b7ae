"""E2E: the operator's Prometheus metrics move with a real lifecycle, and its JSON logs are one object per line.

The lifecycle: create under two 429 answers -> Ready, an out-of-band change corrected after an on-demand reconcile
request, a Secret rotation, pause, delete. `/metrics` is scraped between the steps.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pipelines import get, pipeline_manifest, secret_manifest, wait_phase, writes
from prometheus_client.parser import text_string_to_metric_families

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(operator: OperatorProcess) -> Samples:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def scrape_until(
    operator: OperatorProcess, predicate: Callable[[Samples], bool], timeout: float, message: str
) -> Samples:
    def check() -> Samples | None:
        samples = scrape(operator)
        return samples if predicate(samples) else None

    result: Samples = wait_for(check, timeout, message=message)
    return result


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls) in samples if n == name and label in dict(ls)}


def test_metrics_move_with_the_lifecycle_and_json_logs(
    kubectl: Kubectl, sim: SimProcess, start_operator: object, tmp_path: Path
) -> None:
    assert callable(start_operator)
    operator: OperatorProcess = start_operator(env={"GOLDRUSH_LOG_FORMAT": "json"})
    ns = kubectl.namespace
    m = wait_for(lambda: _try_scrape(operator), 20, message="the metrics endpoint")
    for family in ("goldrush_reconciles_total", "goldrush_api_requests_total"):
        assert value(m, family) == 0  # families exist before anything happened (no samples yet is fine)

    # Create under rate limiting: two 429s, honoured, then the create goes through.
    sim.faults(rate_limit={"count": 2, "retry_after": 1})
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    pid = obj["status"]["pipelineId"]
    m = scrape_until(operator, lambda s: value(s, "goldrush_pipelines", phase="RUNNING") == 1, 10, "RUNNING gauge")
    assert value(m, "goldrush_api_rate_limited_total") == 2
    assert value(m, "goldrush_api_requests_total", status="429") == 2
    assert value(m, "goldrush_api_requests_total", endpoint="create", method="POST") >= 1
    assert {"create", "status"} <= label_values(m, "goldrush_api_requests_total", "endpoint"), m
    assert any(s.startswith("2") for s in label_values(m, "goldrush_api_requests_total", "status"))
    assert value(m, "goldrush_reconciles_total") >= 2
    assert len(label_values(m, "goldrush_reconciles_total", "result")) >= 1
    assert value(m, "goldrush_reconcile_duration_seconds_count") == value(m, "goldrush_reconciles_total")
    assert value(m, "goldrush_reconcile_duration_seconds_sum") > 0
    assert value(m, "goldrush_time_to_ready_seconds_count") == 1
    assert 0 < value(m, "goldrush_time_to_ready_seconds_sum") < 30
    assert value(m, "goldrush_pipelines", phase="PENDING") == 0
    assert value(m, "goldrush_drift_corrections_total") == 0
    assert value(m, "goldrush_secret_rotations_total") == 0
    reconciles_before = value(m, "goldrush_reconciles_total")

    # Drift: an out-of-band change, noticed at once on an on-demand reconcile request.
    sim.admin("PATCH", f"pipelines/{pid}", {"description": "changed behind the operator's back"})
    token = str(time.time())
    kubectl("annotate", "--overwrite", "goldrushpipeline", "p1", f"goldrush.dev/reconcile-requested-at={token}")
    # The pass is counted when it ends, just after the drift correction.
    m = scrape_until(operator, lambda s: value(s, "goldrush_drift_corrections_total") == 1
                     and value(s, "goldrush_reconciles_total") > reconciles_before, 20, "a drift correction")
    wait_for(lambda: get(kubectl, "p1")["status"].get("lastHandledReconcileAt") == token, 10,
             message="the reconcile request echoed in status")
    assert [w["body"] for w in writes(sim, "patch")] == [{"description": "e2e pipeline"}]
    assert value(m, "goldrush_api_requests_total", endpoint="patch", method="PATCH") >= 1

    # Secret rotation.
    kubectl.apply(secret_manifest(data={"password": "rotated-password-2"}))
    m = scrape_until(operator, lambda s: value(s, "goldrush_secret_rotations_total") == 1, 20, "a secret rotation")
    assert value(m, "goldrush_drift_corrections_total") == 1

    # Pause, then delete: the phase gauge follows.
    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":true}}')
    wait_phase(kubectl, "p1", "PAUSED", ready="True")
    m = scrape_until(operator, lambda s: value(s, "goldrush_pipelines", phase="PAUSED") == 1, 10, "PAUSED gauge")
    assert value(m, "goldrush_pipelines", phase="RUNNING") == 0
    kubectl("delete", "goldrushpipeline", "p1", "--timeout=30s")
    m = scrape_until(operator, lambda s: value(s, "goldrush_pipelines") == 0, 10, "no pipelines in the phase gauge")
    assert value(m, "goldrush_api_requests_total", endpoint="delete", method="DELETE") >= 1

    # Logs: every line is one JSON object; records about the object carry namespace, name and pipeline id.
    operator.stop()
    lines = [line for line in operator.log.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)  # every line parses
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    about = [r for r in records if r.get("namespace") == ns]
    assert about, "no log record names the object"
    assert all(r["name"] == "p1" for r in about), about
    # The rate-limited create and the drift correction are logged while the object is being reconciled.
    assert any(r.get("pipeline_id") == pid for r in about), about
    retries = [r for r in records if "RateLimited" in r["message"]]
    assert retries and all(r.get("namespace") == ns and r.get("name") == "p1" for r in retries), retries


def _try_scrape(operator: OperatorProcess) -> Samples | None:
    try:
        return scrape(operator)
    except OSError:
        return None
