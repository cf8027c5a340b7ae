"""E2E: onboarding with `kubectl goldrush import` (issue 15). 25 pipelines made out of band (over the
simulator's HTTP API, with the operator's key) are imported through real kubectl and the `kubectl-goldrush`
plugin on PATH, the Secrets are created with the values the pipelines hold, and `kubectl apply` adopts every
one with zero API writes (journal), all Ready; then one spec change gives exactly one PATCH of that field."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from invariants import Invariants, last_seq, start_debug
from pipelines import CANARY, get, pipeline_manifest

from support.kubectl import Kubectl, kubectl_binary
from support.operator import wait_for
from support.sim import SimProcess

ABI = {"abi": [{"type": "event", "name": "Swap", "anonymous": False, "inputs": []}]}


def _destination(i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(type, destination_config as sent, {secret field: value}) for the i-th pipeline."""
    secret = f"{CANARY}-{i}"
    kind = ("postgres", "clickhouse", "kafka", "object_storage", "sqs", "webhook")[i % 6]
    if kind in ("postgres", "clickhouse"):
        url = "postgresql://db.example.com:5432/a" if kind == "postgres" else "clickhouse://ch.example.com:8123/a"
        return kind, {"type": kind, "url": url, "user": f"u{i}", "password": secret}, {"password": secret}
    if kind == "kafka":
        return kind, {"type": kind, "bootstrap_servers": "k1.example.com:9092", "output_topic": f"out-{i}",
                      "sasl": {"mechanism": "SCRAM-SHA-512", "username": "k", "password": secret}}, \
            {"sasl.password": secret}
    if kind == "object_storage":
        return kind, {"type": kind, "provider": "s3", "bucket": f"b{i}", "region": "us-east-1",
                      "format": "parquet", "partition_by": ["day"], "access_key_id": "AKIA",
                      "secret_access_key": secret}, {"secret_access_key": secret}
    if kind == "sqs":
        return kind, {"type": kind, "queue_url": "https://sqs.example.com/q", "region": "us-east-1",
                      "access_key_id": "AKIA", "batch_size": 10, "secret_access_key": secret}, \
            {"secret_access_key": secret}
    return kind, {"type": kind, "url": "https://hook.example.com/in", "method": "POST",
                  "retry": {"max_attempts": 4, "backoff_ms": 50},
                  "headers": {"Authorization": f"Bearer {secret}", "X-Team": secret}}, \
        {"headers.Authorization": f"Bearer {secret}", "headers.X-Team": secret}


def make_out_of_band(sim: SimProcess, namespace: str, count: int = 25) -> dict[str, dict[str, str]]:
    """Create `count` varied pipelines straight on the API; returns {pipeline id: {secret field: value}}."""
    secrets: dict[str, dict[str, str]] = {}
    for i in range(count):
        kind, config, values = _destination(i)
        # Names: some as the operator would name them, some free text, two that slug to the same name.
        name = f"{namespace}-legacy-{i}" if i % 3 == 0 else {1: "Shared Name", 2: "shared-name"}.get(
            i, f"Legacy Pipeline {i}")
        body: dict[str, Any] = {
            "name": name, "project": f"onboard-{i % 4}", "description": f"made in the UI #{i}" if i % 2 else "",
            "topic": "base.mainnet.ref.block.logs" if kind == "clickhouse" else "base.mainnet.ref.block.transfers",
            "destination_type": kind, "destination_config": config, "execution_mode": "unbounded",
            "execution_start_from": str(44_000_000 + i) if i % 2 else "",
            "status": "paused" if i % 5 == 4 else "running",
        }
        if kind == "postgres":
            body["transforms"] = {"transfers": "SELECT block_height, tx_hash FROM transfers"}
        if kind == "clickhouse":
            body.update(abi_file=ABI, abi_contract_addresses=["0xabc"], abi_unmatched="raw")
        response = sim.api("POST", "", json=body)
        assert response.status_code in (200, 201), response.text
        secrets[response.json()["data"]["id"]] = values
    return secrets


def kubectl_goldrush(kubeconfig: Path, sim: SimProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl goldrush ...` through the real kubectl, which finds `kubectl-goldrush` on PATH."""
    bindir = str(Path(kubectl_binary()).parent)
    plugin_dir = str(Path(sys.executable).parent)  # the venv's console scripts: kubectl-goldrush
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDRUSH_")}
    env.update(PATH=os.pathsep.join([plugin_dir, bindir, env.get("PATH", "")]),
               GOLDRUSH_API_URL=sim.base_url, GOLDRUSH_SERVICE_KEY="dev-key")
    return subprocess.run([kubectl_binary(), "goldrush", *args, f"--kubeconfig={kubeconfig}"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def secret_manifests(docs: list[dict[str, Any]], values: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The Secrets the import asks for, filled with the values the remote pipelines hold."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] != "GoldRushPipeline":
            continue
        pid = doc["metadata"]["annotations"]["goldrush.dev/pipeline-id"]
        for field, ref in (doc["spec"]["destination"].get("secretRefs") or {}).items():
            secret = out.setdefault(ref["name"], {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                                  "metadata": {"name": ref["name"]}, "data": {}})
            secret["data"][ref["key"]] = base64.b64encode(values[pid][field].encode()).decode()
    return list(out.values())


def test_import_then_apply_adopts_25_pipelines_with_zero_writes(
    kubeconfig: Path, kubectl: Kubectl, sim: SimProcess, start_operator: Any, tmp_path: Path
) -> None:
    ns = kubectl.namespace
    assert ns is not None
    inv = Invariants(kubectl, sim)
    start_debug(start_operator, inv)
    values = make_out_of_band(sim, ns)

    out = tmp_path / "imported"
    proc = kubectl_goldrush(kubeconfig, sim, "import", "-n", ns, "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "imported 25 pipelines" in proc.stderr
    texts = [p.read_text() for p in sorted(out.glob("*.yaml"))]
    docs = [d for text in texts for d in yaml.safe_load_all(text)]
    pipelines = [d for d in docs if d["kind"] == "GoldRushPipeline"]
    assert len(pipelines) == 25 and len(texts) == 25
    assert {d["metadata"]["annotations"]["goldrush.dev/pipeline-id"] for d in pipelines} == set(values)
    names = {d["metadata"]["name"] for d in pipelines}
    assert len(names) == 25 and "legacy-3" in names  # `<namespace>-<name>` maps back to <name>
    assert sum(n.startswith("shared-name-") for n in names) == 2  # same slug: both get a hash suffix
    assert sum(d["kind"] == "ConfigMap" for d in docs) == 4  # the clickhouse pipelines' ABI
    inv.assert_no_leak(extra=[*texts, proc.stderr])

    mark = last_seq(sim)
    for secret in secret_manifests(docs, values):
        kubectl.apply(secret)
    kubectl("apply", "-f", str(out))
    result = inv.check(writes={}, since=mark, timeout=120, quiet=4)
    assert len(result["objects"]) == 25
    for obj in result["objects"]:
        assert obj["status"]["pipelineId"] == obj["metadata"]["annotations"]["goldrush.dev/pipeline-id"]
    writes = [e for e in sim.journal(mark) if e["method"] != "GET"]
    assert writes == []

    # The live view through the plugin, namespace from kubectl's own flag.
    name = sorted(d["metadata"]["name"] for d in pipelines if not d["spec"].get("paused"))[0]
    proc = kubectl_goldrush(kubeconfig, sim, "describe", name, "-n", ns)
    assert proc.returncode == 0, proc.stderr
    assert f"Name:         {ns}/{name}" in proc.stdout

    # Importing again leaves out what is now managed.
    proc = kubectl_goldrush(kubeconfig, sim, "import", "-n", ns)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert "left out 25 already managed" in proc.stderr

    # A name already taken in the namespace by an object of another pipeline is refused, not re-pointed.
    kubectl.apply(pipeline_manifest("lonely", destination={
        "type": "postgres", "config": {"url": "postgresql://db.example.com:5432/a", "user": "u"},
        "secretRefs": {"password": {"name": "absent", "key": "password"}}}))
    lonely = sim.api("POST", "", json={"name": "Lonely", "project": "onboard-0", "destination_type": "postgres",
                                       "topic": "base.mainnet.ref.block.transfers", "execution_mode": "unbounded",
                                       "destination_config": {"type": "postgres", "url": "postgresql://x/y"}})
    proc = kubectl_goldrush(kubeconfig, sim, "import", "-n", ns)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert f"skipped {lonely.json()['data']['id']} 'Lonely'" in proc.stderr
    assert f"a GoldRushPipeline {ns}/lonely already exists for another pipeline" in proc.stderr
    kubectl("delete", "goldrushpipeline", "lonely", "--timeout=60s")

    # One spec change: exactly one PATCH, of that field.
    mark = last_seq(sim)
    generation = get(kubectl, name)["metadata"]["generation"]
    kubectl("patch", "goldrushpipeline", name, "--type=merge", "-p", '{"spec":{"description":"changed by a PR"}}')
    wait_for(lambda: get(kubectl, name)["status"].get("observedGeneration") == generation + 1, 30,
             message="the change reconciled")
    inv.check(writes={"patch": 1}, since=mark, timeout=60, quiet=4)
    (patch,) = [e for e in sim.journal(mark) if e["method"] != "GET"]
    assert patch["method"] == "PATCH" and sorted(patch["body"]) == ["description"]
