"""E2E: per-pipeline metrics on the operator's `/metrics`, from the simulator's values, with no Kubernetes write.

A private kube-apiserver with an audit log of the operator's own identity (a client certificate for
`goldrush-operator-e2e`), the operator with a 2 s metrics refresh (`GOLDRUSH_PIPELINE_METRICS_SECONDS=2`)
and 3 RUNNING pipelines whose `/metrics/` fields the simulator holds at distinct values:
- every gauge of every pipeline shows the simulator's value (read through `/_sim/pipelines/{id}/metrics`),
  labelled `namespace`, `name`, `pipeline_id`; `goldrush_pipeline_phase` is 1 for RUNNING only and
  `goldrush_pipeline_destination_healthy` matches what the status says;
- a change of the simulator's values shows up at a later scrape (the next refresh);
- while that happens the operator sends no Kubernetes write (audit log) and no API write (journal), but does
  read the metrics of every pipeline;
- a deleted object's series disappear, the others stay;
- `goldrush-operator describe` prints the metrics table with trend arrows.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pipelines import get, pipeline_manifest, secret_manifest, wait_phase, writes
from planes import running_plane
from test_ops_metrics import Samples, scrape, scrape_until

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess, operator_executable
from support.sim import SimProcess

USER = "goldrush-operator-e2e"
REPO = Path(__file__).resolve().parents[2]
REFRESH = 2  # GOLDRUSH_PIPELINE_METRICS_SECONDS for this test
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
GAUGES = {  # gauge -> field of the /metrics/ answer
    "goldrush_pipeline_records_per_second": "records_per_second",
    "goldrush_pipeline_processing_delay_ms": "processing_delay_ms",
    "goldrush_pipeline_pending_records": "pending_records",
    "goldrush_pipeline_last_block_height": "last_block_height",
    "goldrush_pipeline_normalization_errors": "normalization_errors",
}
PER_PIPELINE = ("goldrush_pipeline_phase", "goldrush_pipeline_destination_healthy", *GAUGES)
NAMES = ("m1", "m2", "m3")


@pytest.fixture(scope="module")
def audited_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("metrics-plane")
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": [USER]}, {"level": "None"}],
    }))
    with running_plane(workdir / "plane", [
        f"--audit-policy-file={policy}", f"--audit-log-path={workdir / 'plane' / 'audit.log'}",
        "--audit-log-format=json", "--audit-log-mode=blocking",
    ]) as plane:
        admin = Kubectl(plane.kubeconfig)
        admin("apply", "-f", str(REPO / "crds" / "goldrush.dev_goldrushpipelines.yaml"))
        admin.wait_established("goldrushpipelines.goldrush.dev")
        yield plane


def series(samples: Samples, metric: str, /, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    want = set(labels.items())
    return {ls: v for (n, ls), v in samples.items() if n == metric and want <= ls}


def one(samples: Samples, metric: str, /, **labels: str) -> float | None:
    found = series(samples, metric, **labels)
    assert len(found) <= 1, found
    return next(iter(found.values()), None)


def shows(samples: Samples, ns: str, name: str, pid: str, values: dict[str, float]) -> bool:
    """Every value gauge of the pipeline equals the simulator's answer."""
    return all(one(samples, gauge, namespace=ns, name=name, pipeline_id=pid) == values[field]
               for gauge, field in GAUGES.items())


def operator_writes(plane: ControlPlane, since: int) -> list[tuple[str, str]]:
    """(verb, URI) of every write by the operator's identity in the audit log after byte offset `since`."""
    data = plane.audit_log.read_bytes()[since:]
    entries = [json.loads(line) for line in data.splitlines() if line.strip()]
    return [(e["verb"], e.get("requestURI", "")) for e in entries
            if e.get("user", {}).get("username") == USER and e["verb"] in WRITE_VERBS]


def audit_offset(plane: ControlPlane) -> int:
    return plane.audit_log.stat().st_size if plane.audit_log.exists() else 0


def describe(kubeconfig: Path, sim: SimProcess, name: str, ns: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDRUSH_")}
    env.update(KUBECONFIG=str(kubeconfig), GOLDRUSH_API_URL=sim.base_url, GOLDRUSH_SERVICE_KEY="dev-key",
               PYTHONIOENCODING="utf-8")
    return subprocess.run([operator_executable(), "describe", name, "-n", ns, "--trend-seconds", "1.5"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_pipeline_metrics_follow_the_api_without_kubernetes_writes(
    audited_plane: ControlPlane, sim: SimProcess, tmp_path: Path
) -> None:
    ns = "metrics-e2e"
    admin = Kubectl(audited_plane.kubeconfig)
    admin("create", "namespace", ns)
    kubectl = admin.in_namespace(ns)
    operator_config = audited_plane.write_user_kubeconfig(tmp_path / "operator.kubeconfig", USER, ["system:masters"])
    operator = OperatorProcess.start(operator_config, sim.base_url, tmp_path / "operator.log", namespaces=[ns],
                                     env={"GOLDRUSH_PIPELINE_METRICS_SECONDS": str(REFRESH)})
    try:
        _run(audited_plane, kubectl, sim, operator, ns)
    finally:
        operator.stop()


def _run(plane: ControlPlane, kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess, ns: str) -> None:
    kubectl.apply(secret_manifest())
    for name in NAMES:
        kubectl.apply(pipeline_manifest(name))
    ids = {name: wait_phase(kubectl, name, "RUNNING", ready="True")["status"]["pipelineId"] for name in NAMES}
    # Distinct values per pipeline, held by the simulator (its own block height would move every 2 s).
    for i, name in enumerate(NAMES, start=1):
        sim.set_metrics(ids[name], records_per_second=10.5 * i, processing_delay_ms=100.0 * i, pending_records=i,
                        last_block_height=44_745_000 + i, normalization_errors=i - 1)
    values = {name: sim.metrics(ids[name]) for name in NAMES}

    # 1. The simulator's values on /metrics, per pipeline, with the labels; phase and destination health.
    m = scrape_until(operator, lambda s: all(shows(s, ns, n, ids[n], values[n]) for n in NAMES), 30,
                     "the simulator's metrics of 3 pipelines on /metrics")
    for name in NAMES:
        labels = {"namespace": ns, "name": name, "pipeline_id": ids[name]}
        phases = series(m, "goldrush_pipeline_phase", **labels)
        assert {dict(k)["phase"]: v for k, v in phases.items() if v == 1} == {"RUNNING": 1.0}, phases
        assert len(phases) >= 7  # one series per phase
        healthy = (get(kubectl, name)["status"].get("destinationHealth") or {}).get("healthy")
        assert isinstance(healthy, bool)
        assert one(m, "goldrush_pipeline_destination_healthy", **labels) == (1.0 if healthy else 0.0)
    assert one(m, "goldrush_pipeline_metrics_refresh_seconds") == REFRESH

    # 2. Idle: a change of the API's values is followed at a later refresh, with no write anywhere.
    time.sleep(REFRESH)
    offset = audit_offset(plane)
    status_uri = f"/apis/goldrush.dev/v1alpha1/namespaces/{ns}/goldrushpipelines/m1/status"
    seen = [(verb, uri.split("?")[0]) for verb, uri in operator_writes(plane, 0)]
    assert ("patch", status_uri) in seen, "the audit log sees the operator's writes"
    seq = sim.journal()[-1]["seq"]
    changed = sim.set_metrics(ids["m1"], records_per_second=77.5, processing_delay_ms=4321.0, pending_records=99)
    scrape_until(operator, lambda s: shows(s, ns, "m1", ids["m1"], changed), 20, "the changed metrics of m1")
    time.sleep(2 * REFRESH)  # at least one more refresh of every pipeline
    m = scrape(operator)
    for name in ("m2", "m3"):
        assert shows(m, ns, name, ids[name], values[name])
    idle = [e for e in sim.journal() if e["seq"] > seq]
    assert not [e for e in idle if e["method"] != "GET"], "API writes while idle"
    read = {e["path"].strip("/").split("/")[-2] for e in idle if e["route"] == "metrics"}
    assert read == set(ids.values()), "every pipeline's metrics are read while idle"
    assert operator_writes(plane, offset) == [], "Kubernetes writes while idle"

    # 3. A deleted object's series disappear; the others stay.
    kubectl("delete", "goldrushpipeline", "m2", "--timeout=40s")
    m = scrape_until(operator, lambda s: not any(series(s, g, name="m2") for g in PER_PIPELINE), 20,
                     "no series of the deleted m2")
    assert not any(series(m, g, pipeline_id=ids["m2"]) for g in PER_PIPELINE)
    for name in ("m1", "m3"):
        assert one(m, "goldrush_pipeline_phase", name=name, phase="RUNNING") == 1
        assert one(m, "goldrush_pipeline_records_per_second", name=name) is not None
    assert writes(sim, "delete")

    # 4. describe: the metrics as a table, trend arrows over two samples.
    proc = describe(plane.kubeconfig, sim, "m1", ns)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr  # no progress line when stderr is not a terminal
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert rows["FIELD"] == ["VALUE", "TREND"], proc.stdout
    assert rows["records_per_second"] == ["77.5", "→"]  # held by the simulator: unchanged
    assert rows["pending_records"] == ["99", "→"]
    assert rows["records_consumed"][1] == "↑", proc.stdout  # not held: grows while RUNNING
