"""Third-party judges of the shipped manifests: checkov (policy checks) and kube-score (best practice).

Both look at what a cluster would receive: every kustomize overlay and deploy/monitoring rendered with
`kubectl kustomize`, and the Helm chart rendered with `helm template` for its default values and every
values set in charts/goldrush-operator/ci/; checkov also reads the Dockerfile. Every finding must be in
the checked-in baseline with its reason (deploy/checkov-baseline.yaml, deploy/kube-score-baseline.yaml),
and every baseline entry must still be found: a new finding or a stale entry fails the test.

checkov lives in a virtual environment of its own (.venv-checkov, from pyproject's `checkov` extra: its
pins clash with pytest's); `make lint` and `make test` create it. kube-score is built by gotools.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import gotools
from unit.test_deploy_manifests import ROOT, render
from unit.test_helm_chart import VALUE_SETS, helm_template

pytestmark = pytest.mark.unit

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_BASELINE = ROOT / "deploy" / "checkov-baseline.yaml"
KUBE_SCORE_BASELINE = ROOT / "deploy" / "kube-score-baseline.yaml"
KUSTOMIZE_SOURCES = {
    "namespaced": "deploy/overlays/namespaced",
    "cluster-wide": "deploy/overlays/cluster-wide",
    "single-namespace": "deploy/overlays/single-namespace",
    "sharded": "deploy/overlays/sharded",
    "monitoring": "deploy/monitoring",
}
ALL_MONITORING = ["serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true"]


@functools.cache
def rendered_sources() -> dict[str, str]:
    """source name -> rendered YAML of everything a user can install from this repository."""
    sources = {name: yaml.safe_dump_all(render(path)) for name, path in KUSTOMIZE_SOURCES.items()}
    sources["chart"] = yaml.safe_dump_all(helm_template(sets=ALL_MONITORING))
    for values in VALUE_SETS:
        sources[f"chart-{values.removesuffix('-values.yaml')}"] = yaml.safe_dump_all(
            helm_template([f"ci/{values}"], ALL_MONITORING))
    return sources


def write_sources(directory: Path) -> None:
    for name, text in rendered_sources().items():
        (directory / f"{name}.yaml").write_text(text)


def load_baseline(path: Path) -> dict[tuple[str, str], str]:
    entries = yaml.safe_load(path.read_text())["accepted"]
    baseline = {}
    for entry in entries:
        assert entry.get("reason", "").strip(), f"{path.name}: {entry} has no reason"
        key = (entry["check"], entry["resource"])
        assert key not in baseline, f"{path.name}: duplicate entry {key}"
        baseline[key] = entry["reason"]
    return baseline


def compare(found: dict[tuple[str, str], set[str]], baseline: dict[tuple[str, str], str], tool: str) -> None:
    new = {key: sorted(where) for key, where in found.items() if key not in baseline}
    stale = sorted(set(baseline) - set(found))
    assert not new, f"{tool} findings that are neither fixed nor in the baseline: {new}"
    assert not stale, f"{tool} baseline entries that no longer occur (remove them): {stale}"


# ---------------------------------------------------------------------------------------------- checkov


def run_checkov(tmp_path: Path) -> dict[tuple[str, str], set[str]]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: run `make lint` (it installs checkov)", pytrace=False)
    write_sources(tmp_path)
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    # No network: no policy download, no guideline lookup, no telemetry.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
           "LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [str(CHECKOV), "--directory", str(tmp_path), "--framework", "kubernetes", "dockerfile",
         "--skip-download", "--output", "json", "--compact", "--quiet"],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path,
    )
    assert proc.returncode in (0, 1), f"checkov failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    reports: Any = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    frameworks = {r["check_type"] for r in reports}
    assert {"kubernetes", "dockerfile"} <= frameworks or proc.returncode == 0, frameworks
    found: dict[tuple[str, str], set[str]] = {}
    passed = 0
    for report in reports:
        passed += report["summary"]["passed"]
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for failure in report["results"]["failed_checks"]:
            resource = "Dockerfile" if report["check_type"] == "dockerfile" else failure["resource"]
            found.setdefault((failure["check_id"], resource), set()).add(failure["file_path"].strip("/"))
    assert passed > 100, f"checkov ran only {passed} passing checks: did it read the files?"
    return found


def test_checkov_findings_match_the_baseline(tmp_path: Path) -> None:
    compare(run_checkov(tmp_path), load_baseline(CHECKOV_BASELINE), "checkov")


# ------------------------------------------------------------------------------------------- kube-score


@functools.cache
def kube_score() -> Path:
    try:
        return gotools.ensure("kube-score")
    except gotools.ToolUnavailable as exc:
        pytest.fail(f"kube-score is needed to judge the manifests: {exc}", pytrace=False)


def test_kube_score_findings_match_the_baseline(tmp_path: Path) -> None:
    write_sources(tmp_path)
    found: dict[tuple[str, str], set[str]] = {}
    scored = 0
    for name in rendered_sources():
        proc = subprocess.run([str(kube_score()), "score", "--output-format", "json", str(tmp_path / f"{name}.yaml")],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode in (0, 1), f"kube-score failed on {name}:\n{proc.stderr}"
        for obj in json.loads(proc.stdout) or []:  # null: nothing kube-score knows (monitoring CRs only)
            for check in obj["checks"] or []:
                scored += 1
                if check["skipped"] or check["grade"] >= 10:
                    continue
                key = (check["check"]["id"], obj["object_name"])
                found.setdefault(key, set()).add(name)
    assert scored > 100, f"kube-score ran only {scored} checks"
    compare(found, load_baseline(KUBE_SCORE_BASELINE), "kube-score")


def test_network_policy_is_recognised_by_kube_score(tmp_path: Path) -> None:
    """kube-score's own pod-networkpolicy check sees the shipped policy as covering the operator pod."""
    write_sources(tmp_path)
    proc = subprocess.run([str(kube_score()), "score", "--output-format", "json", str(tmp_path / "namespaced.yaml")],
                          capture_output=True, text=True, timeout=120, check=False)
    checks = {(o["object_name"], c["check"]["id"]): c for o in json.loads(proc.stdout) for c in o["checks"] or []}
    deployment = "Deployment/apps/v1/goldrush-system/goldrush-operator"
    assert checks[(deployment, "pod-networkpolicy")]["grade"] == 10
    policy = "NetworkPolicy/networking.k8s.io/v1/goldrush-system/goldrush-operator"
    assert checks[(policy, "networkpolicy-targets-pod")]["grade"] == 10
