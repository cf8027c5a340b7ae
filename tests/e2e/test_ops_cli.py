"""E2E: `goldrush-operator logs` and `describe`, the commands for people, against the live setup (the test
kube-apiserver through KUBECONFIG, the simulator through GOLDRUSH_API_URL, the operator's key through
GOLDRUSH_SERVICE_KEY, the object's own `serviceKeySecretRef` or its `credentialsRef`). Also: the operator logs
text by default.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pipelines import CANARY, pipeline_manifest, secret_manifest, wait_phase

from support.kubectl import Kubectl
from support.operator import OperatorProcess, operator_executable
from support.sim import SimProcess


def cli(
    kubeconfig: Path, sim: SimProcess, *args: str, key: str | None = "dev-key"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDRUSH_")}
    env.update(KUBECONFIG=str(kubeconfig), GOLDRUSH_API_URL=sim.base_url)
    if key is not None:
        env["GOLDRUSH_SERVICE_KEY"] = key
    return subprocess.run([operator_executable(), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_logs_and_describe_show_the_live_pipeline(
    kubeconfig: Path, kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    ns = kubectl.namespace
    assert ns is not None
    kubectl.apply(secret_manifest())
    kubectl.apply(pipeline_manifest("p1"))
    pid = wait_phase(kubectl, "p1", "RUNNING", ready="True")["status"]["pipelineId"]

    proc = cli(kubeconfig, sim, "logs", "p1", "-n", ns)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("==> ") and proc.stdout.count("==> ") >= 1, proc.stdout
    remote_logs = sim.api("GET", f"{pid}/logs/").json()["data"]["pods"]
    for pod in remote_logs:
        assert f"==> {pod['pod']} <==" in proc.stdout
        assert pod["logs"].strip().splitlines()[0] in proc.stdout  # later lines change as the worker runs

    sim.admin("POST", f"pipelines/{pid}/destination-health",
              {"healthy": False, "last_error": "connection refused by db.example.com:5432"})
    proc = cli(kubeconfig, sim, "describe", "p1", "--namespace", ns)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"Name:         {ns}/p1" in out
    assert f"Pipeline:     {pid}" in out
    assert "Phase:        RUNNING" in out
    assert "Replicas:     1/1 ready" in out
    assert "Destination:  unhealthy (connection refused by db.example.com:5432)" in out
    assert "Metrics:" in out
    metrics = sim.api("GET", f"{pid}/metrics/").json()["data"]
    assert any(field in out for field in metrics if field != "uid"), out

    # What the API returns can carry the destination's password (a failing probe's DSN, a worker's error):
    # both commands print it scrubbed, as the operator writes it.
    dsn = f"postgresql://pipeline:{CANARY}@db.example.com:5432/analytics"
    sim.admin("POST", f"pipelines/{pid}/destination-health", {"healthy": False, "last_error": f"{dsn}: refused"})
    proc = cli(kubeconfig, sim, "describe", "p1", "-n", ns)
    assert proc.returncode == 0, proc.stderr
    assert "Destination:  unhealthy (postgresql://pipeline:[REDACTED]@db.example.com" in proc.stdout, proc.stdout
    sim.admin("POST", f"pipelines/{pid}/phase", {"phase": "FAILED", "log": f"ERROR cannot write to {dsn}"})
    proc = cli(kubeconfig, sim, "logs", "p1", "-n", ns)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR cannot write to postgresql://pipeline:[REDACTED]@" in proc.stdout, proc.stdout
    assert CANARY not in proc.stdout + proc.stderr

    # Clear errors: a missing object, no key at all, no usable kubeconfig, no remote pipeline yet.
    proc = cli(kubeconfig, sim, "describe", "nope", "-n", ns)
    assert proc.returncode == 1 and f"GoldRushPipeline {ns}/nope not found" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    proc = cli(kubeconfig, sim, "logs", "p1", "-n", ns, key=None)
    assert proc.returncode == 1 and "no service key" in proc.stderr, proc.stderr
    proc = cli(Path(os.devnull), sim, "describe", "p1", "-n", ns)
    assert proc.returncode == 1 and "cannot load the Kubernetes configuration" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    kubectl.apply(pipeline_manifest("waiting", destination={
        "type": "postgres", "config": {"url": "postgresql://db.example.com:5432/a", "user": "u"},
        "secretRefs": {"password": {"name": "absent", "key": "password"}},
    }))
    proc = cli(kubeconfig, sim, "logs", "waiting", "-n", ns)
    assert proc.returncode == 1 and "has no remote pipeline yet" in proc.stderr, proc.stderr

    # The operator logs text unless GOLDRUSH_LOG_FORMAT=json.
    first = operator.log.splitlines()[0]
    assert "starting goldrush-operator" in first
    try:
        json.loads(first)
        raise AssertionError(f"default log format is not text: {first}")
    except ValueError:
        pass


def test_cli_uses_the_objects_own_service_key(
    kubeconfig: Path, kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    ns = kubectl.namespace
    assert ns is not None
    # A pipeline owned by another API key (another group in the simulator): the operator's key cannot see it.
    kubectl.apply(secret_manifest())
    kubectl.apply(secret_manifest("svc", {"token": "other-key"}))
    kubectl.apply(pipeline_manifest("p2", serviceKeySecretRef={"name": "svc", "key": "token"}))
    pid = wait_phase(kubectl, "p2", "RUNNING", ready="True")["status"]["pipelineId"]
    assert sim.api("GET", f"{pid}/status/", key="dev-key").status_code == 404

    proc = cli(kubeconfig, sim, "describe", "p2", "-n", ns, key="dev-key")
    assert proc.returncode == 0, proc.stderr
    assert f"Pipeline:     {pid}" in proc.stdout and "Phase:        RUNNING" in proc.stdout
    assert "other-key" not in proc.stdout + proc.stderr

    # The key Secret disappears: a clear error, no fallback to the operator's key.
    kubectl("delete", "secret", "svc")
    proc = cli(kubeconfig, sim, "logs", "p2", "-n", ns)
    assert proc.returncode == 1, proc.stdout
    assert "service key Secret 'svc' key 'token' not found" in proc.stderr, proc.stderr


def test_cli_uses_the_key_of_the_objects_credentials(
    kubeconfig: Path, kubectl: Kubectl, sim: SimProcess, operator: OperatorProcess
) -> None:
    ns = kubectl.namespace
    assert ns is not None
    kubectl.apply(secret_manifest())
    kubectl.apply(secret_manifest("team-key", {"key": "other-key"}))
    kubectl.apply({"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushCredentials", "metadata": {"name": "team"},
                   "spec": {"serviceKeySecretRef": {"name": "team-key", "key": "key"}}})
    kubectl.apply(pipeline_manifest("p3", credentialsRef={"kind": "GoldRushCredentials", "name": "team"}))
    pid = wait_phase(kubectl, "p3", "RUNNING", ready="True")["status"]["pipelineId"]
    assert sim.api("GET", f"{pid}/status/", key="dev-key").status_code == 404

    proc = cli(kubeconfig, sim, "describe", "p3", "-n", ns, key="dev-key")
    assert proc.returncode == 0, proc.stderr
    assert f"Pipeline:     {pid}" in proc.stdout and "other-key" not in proc.stdout + proc.stderr

    kubectl("delete", "goldrushcredentials", "team")
    proc = cli(kubeconfig, sim, "logs", "p3", "-n", ns)
    assert proc.returncode == 1 and "GoldRushCredentials 'team' not found" in proc.stderr, proc.stderr
