"""The alert rules and the Grafana dashboard of deploy/monitoring, judged with Prometheus' and Grafana's own code.

- `promtool check rules` on the rule groups of prometheusrule.yaml, and `promtool test rules` with
  alerts_test.yaml, whose series make every alert fire and then resolve (checked here too);
- the dashboard decoded strictly with Grafana's schema types (tests/support/grafana, grafana-foundation-sdk),
  and every query of it parsed by promtool (as a recording rule);
- every metric an alert or panel reads is one the operator exports (operator/goldrush_operator/metrics.py)
  or one of the per-pipeline metrics whose names design.md fixes.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import gotools
from unit.test_deploy_manifests import ROOT

pytestmark = pytest.mark.unit

MONITORING = ROOT / "deploy" / "monitoring"
RULE = MONITORING / "prometheusrule.yaml"
RULE_TESTS = MONITORING / "alerts_test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
# Per-pipeline series (design.md section 7) and the planned health/lag gauges: the names are contracts.
PIPELINE_METRICS = {
    "goldrush_pipeline_records_per_second",
    "goldrush_pipeline_processing_delay_ms",
    "goldrush_pipeline_pending_records",
    "goldrush_pipeline_last_block_height",
    "goldrush_pipeline_phase",
    "goldrush_pipeline_destination_healthy",
    "goldrush_event_loop_lag_seconds",
}
PIPELINE_LABELS = {"namespace", "name", "pipeline_id"}
METRIC = re.compile(r"\b(goldrush_[a-z0-9_]+)\b")
SUFFIXES = ("_bucket", "_count", "_sum")


def tool(name: str) -> Path:
    try:
        return gotools.ensure(name)
    except gotools.ToolUnavailable as exc:
        pytest.fail(f"{name} is needed to check deploy/monitoring: {exc}", pytrace=False)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("promtool")), *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=cwd)


@functools.cache
def operator_metrics() -> frozenset[str]:
    """Metric names declared in metrics.py (read as text: the names are string literals there)."""
    source = (ROOT / "operator" / "goldrush_operator" / "metrics.py").read_text()
    return frozenset(re.findall(r'"(goldrush_[a-z0-9_]+)"', source))


def known_metrics() -> set[str]:
    return set(operator_metrics()) | PIPELINE_METRICS


def metric_names(expr: str) -> set[str]:
    names = set()
    for name in METRIC.findall(expr):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in known_metrics():
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def rule_groups() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(RULE.read_text())["spec"]
    return spec


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    result = []
    for panel in dashboard()["panels"]:
        result.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return result


# ------------------------------------------------------------------------------------------------ alerts


def test_promtool_check_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups()))
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in proc.stdout, proc.stdout


def test_promtool_test_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    (tmp_path / "alerts_test.yaml").write_text(RULE_TESTS.read_text())
    proc = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """The unit tests are sensitive: a rule with a wrong threshold makes them fail."""
    groups = rule_groups()
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "GoldRushPipelineProcessingDelayHigh":
                rule["expr"] = rule["expr"].replace("300000", "900000")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    (tmp_path / "alerts_test.yaml").write_text(RULE_TESTS.read_text())
    proc = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert proc.returncode != 0
    assert "GoldRushPipelineProcessingDelayHigh" in proc.stdout + proc.stderr


def test_every_alert_fires_and_then_resolves_in_the_unit_tests() -> None:
    cases: dict[str, list[tuple[str, bool]]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append((case["eval_time"], bool(case["exp_alerts"])))
    for rule in alerts():
        name = rule["alert"]
        timeline = sorted(cases.get(name, []), key=lambda c: int(c[0].removesuffix("m")))
        states = [firing for _, firing in timeline]
        assert True in states, f"{name}: no test case where it fires"
        assert False in states[states.index(True):], f"{name}: no test case where it resolves after firing"
        assert states[0] is False, f"{name}: no test case before it fires (the `for:` window)"


def test_alerts_read_known_metrics_and_say_what_to_do() -> None:
    for rule in alerts():
        names = metric_names(rule["expr"])
        # The one rule on Prometheus' own `up` series watches the shipped ServiceMonitor's job.
        assert names or 'up{job="goldrush-operator-metrics"}' in rule["expr"], rule["alert"]
        assert names <= known_metrics(), f"{rule['alert']}: unknown metrics {names - known_metrics()}"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]


def test_the_issue_s_alerts_are_all_there() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alerts()}
    assert 'phase="FAILED"' in exprs["GoldRushPipelineFailed"]
    assert "RUNNING|PAUSED" in exprs["GoldRushPipelineNotReady"]
    assert "goldrush_pipeline_processing_delay_ms" in exprs["GoldRushPipelineProcessingDelayHigh"]
    assert "goldrush_pipeline_destination_healthy" in exprs["GoldRushPipelineDestinationUnhealthy"]
    assert "goldrush_api_rate_limited_total" in exprs["GoldRushApiRateLimited"]
    assert "goldrush_reconciles_total" in exprs["GoldRushOperatorNotReconciling"]


# --------------------------------------------------------------------------------------------- dashboard


def test_dashboard_matches_grafana_s_schema() -> None:
    proc = subprocess.run([str(tool("grafana-dashboard-check")), str(DASHBOARD)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"ok {DASHBOARD}: {len(panels())} panels"


def test_dashboard_schema_check_rejects_a_broken_panel(tmp_path: Path) -> None:
    broken = dashboard()
    broken["panels"][1]["options"]["displayMod"] = "basic"
    broken["panels"][2]["targets"][0]["legend"] = "typo of legendFormat"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = subprocess.run([str(tool("grafana-dashboard-check")), str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert "unexpected field 'displayMod'" in proc.stdout
    assert "unexpected field 'legend'" in proc.stdout


def test_every_dashboard_query_is_valid_promql_on_known_metrics(tmp_path: Path) -> None:
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    records = []
    for i, panel in enumerate(panels()):
        for target in panel["targets"]:
            expr = target["expr"]
            for used in re.findall(r"\$(\w+)", expr):
                assert used in variables or used.startswith("__"), f"{panel['title']}: undefined ${used}"
            names = metric_names(expr)
            assert names and names <= known_metrics(), f"{panel['title']}: {names - known_metrics()}"
            concrete = expr.replace("$__rate_interval", "5m").replace("$namespace", "team-a")
            concrete = concrete.replace("$pipeline", "p1")
            records.append({"record": f"dashboard:panel_{i}_{target['refId']}", "expr": concrete})
    rules = tmp_path / "queries.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_covers_the_fleet_and_one_pipeline() -> None:
    board = dashboard()
    assert board["uid"] == "goldrush-operator"
    ids = [p["id"] for p in board["panels"]] + [p["id"] for p in panels() if p not in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "goldrush_pipeline_phase" in variables["pipeline"]["definition"]
    queries = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for metric in ("goldrush_pipelines", "goldrush_pipeline_records_per_second",
                   "goldrush_pipeline_processing_delay_ms", "goldrush_pipeline_pending_records",
                   "goldrush_api_requests_total",
                   "goldrush_api_rate_limited_total", "goldrush_reconcile_duration_seconds_bucket"):
        assert metric in queries, metric
    drill_down = [p for p in panels() if any('name="$pipeline"' in t["expr"] for t in p["targets"])]
    assert len(drill_down) >= 4, "one pipeline's drill-down"
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_per_pipeline_series_keep_their_namespace_label() -> None:
    """The ServiceMonitor honours the pipeline's `namespace` label instead of renaming it exported_namespace."""
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    assert all(endpoint["honorLabels"] is True for endpoint in monitor["spec"]["endpoints"])
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "goldrush-operator", "app.kubernetes.io/component": "metrics"}
