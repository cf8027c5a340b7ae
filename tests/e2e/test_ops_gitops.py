"""E2E: what GitOps tools see. Flux's kstatus verdict on live objects in each phase, and no drift between the
applied manifest and the live object once the operator has reconciled it (`kubectl diff --server-side`).

kstatus is computed by the real `sigs.k8s.io/cli-utils` library (tests/support/kstatus, built once through the
Go module proxy and cached), fed the live object as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from identity import forbidden_lines
from pipelines import condition, get, pipeline_manifest, secret_manifest, wait_phase, wait_reason

from support import kstatus
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

# Deploys take long enough here to observe DEPLOYING from outside.
SIM_ARGS = ("--service-key", "dev-key=group_default", "--deploy-seconds", "4", "--stop-seconds", "0.5")


@pytest.fixture(scope="session")
def kstatus_bin() -> Path:
    try:
        return kstatus.ensure_binary()
    except kstatus.KstatusUnavailable as exc:
        pytest.fail(f"the Flux kstatus test needs its Go probe: {exc}", pytrace=False)


@pytest.fixture
def slow_sim() -> Iterator[SimProcess]:
    with SimProcess.start(*SIM_ARGS) as process:
        yield process


def kstatus_of(binary: Path, kubectl: Kubectl, name: str) -> tuple[str, dict[str, Any]]:
    obj = get(kubectl, name)
    return kstatus.compute(binary, obj)["status"], obj


def server_side_apply(kubectl: Kubectl, manifest: dict[str, Any]) -> None:
    kubectl("apply", "--server-side", "--field-manager=gitops", "-f", "-", input=json.dumps(manifest))


def diff(kubectl: Kubectl, manifest: dict[str, Any]) -> tuple[int, str]:
    proc = kubectl("diff", "--server-side", "--field-manager=gitops", "-f", "-", input=json.dumps(manifest),
                   check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_kstatus_and_no_gitops_drift_through_the_lifecycle(
    operator_identity: Path, namespace: str, kubectl: Kubectl, crd_installed: None, slow_sim: SimProcess,
    kstatus_bin: Path, tmp_path: Path,
) -> None:
    def start() -> OperatorProcess:  # as the default install's ServiceAccount (see conftest.py)
        return OperatorProcess.start(operator_identity, slow_sim.base_url, tmp_path / "operator.log",
                                     namespaces=[namespace])

    operator = start()
    try:
        secret = secret_manifest()
        manifest = pipeline_manifest("p1")
        server_side_apply(kubectl, secret)
        server_side_apply(kubectl, manifest)

        # Before the operator wrote anything and while the remote deploys: InProgress.
        state, obj = wait_for(
            lambda: (r := kstatus_of(kstatus_bin, kubectl, "p1"))[1].get("status", {}).get("phase") == "DEPLOYING"
            and r, 20, message="phase DEPLOYING")
        assert state == "InProgress", obj["status"]
        assert (condition(obj, "Reconciling") or {}).get("status") == "True"

        # Ready: Current; the live object equals the manifest as far as Git is concerned.
        obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
        assert kstatus.compute(kstatus_bin, obj)["status"] == "Current"
        code, out = diff(kubectl, manifest)
        assert code == 0, out
        assert diff(kubectl, secret)[0] == 0

        # observedGeneration lags (operator down, spec changed in Git): InProgress.
        operator.stop()
        manifest["spec"]["description"] = "changed in git"
        server_side_apply(kubectl, manifest)
        state, obj = kstatus_of(kstatus_bin, kubectl, "p1")
        assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 1
        assert state == "InProgress", obj["status"]

        # The operator catches up: Current again, still no drift.
        operator = start()
        wait_for(lambda: (o := get(kubectl, "p1"))["status"].get("observedGeneration") == 2
                 and (condition(o, "Ready") or {}).get("status") == "True", 30, message="generation 2 Ready")
        assert kstatus_of(kstatus_bin, kubectl, "p1")[0] == "Current"
        code, out = diff(kubectl, manifest)
        assert code == 0, out

        # Paused as asked: Ready=True (reason Paused), Current.
        manifest["spec"]["paused"] = True
        server_side_apply(kubectl, manifest)
        obj = wait_phase(kubectl, "p1", "PAUSED", ready="True")
        wait_for(lambda: kstatus_of(kstatus_bin, kubectl, "p1")[0] == "Current", 10, message="Current when paused")
        manifest["spec"]["paused"] = False
        server_side_apply(kubectl, manifest)
        wait_phase(kubectl, "p1", "RUNNING", ready="True", timeout=30)

        # Stalled (remote FAILED): Failed.
        pid = obj["status"]["pipelineId"]
        slow_sim.force_phase(pid, "FAILED", log="fatal: destination rejected the schema")
        manifest["spec"]["description"] = "poke"
        server_side_apply(kubectl, manifest)
        obj = wait_reason(kubectl, "p1", "Stalled", "True", "RemoteFailed")
        result = kstatus.compute(kstatus_bin, obj)
        assert result["status"] == "Failed", result
        code, out = diff(kubectl, manifest)
        assert code == 0, out
    finally:
        if operator.alive():
            operator.stop()
        kubectl("delete", "goldrushpipeline", "p1", "--wait=false", check=False)
        kubectl("patch", "goldrushpipeline", "p1", "--type=json", "-p",
                '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)
    denied = forbidden_lines(operator.log)
    assert not denied, f"the operator's requests were denied by RBAC: {denied}"
