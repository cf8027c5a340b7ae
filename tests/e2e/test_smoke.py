"""Smoke tests of the real control plane: CRDs, custom objects via kubectl and the kubernetes client, kopf, and
the identity the tier's operators run as (the default install's ServiceAccount, narrowed to the test's
namespace; a request it is denied shows in the log check every operator test ends with)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from identity import forbidden_lines
from kubernetes import client, config

from support.ctlplane import ControlPlane, stop_pids
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

HERE = Path(__file__).parent


def install_widgets(kubeconfig: Path) -> None:
    k = Kubectl(kubeconfig)
    k("apply", "-f", str(HERE / "testdata" / "widgets-crd.yaml"))
    k.wait_established("widgets.smoke.goldrush.dev")


def test_version_and_namespaces(control_plane: ControlPlane, kubeconfig: Path) -> None:
    k = Kubectl(kubeconfig)
    version = k.json("version")
    assert version["serverVersion"]["gitVersion"].startswith("v1.3")
    names = {n["metadata"]["name"] for n in k.json("get", "namespaces")["items"]}
    assert {"default", "kube-system"} <= names


def test_rbac_is_enforced(control_plane: ControlPlane, tmp_path: Path, namespace: str) -> None:
    nobody = control_plane.write_user_kubeconfig(tmp_path / "nobody", "nobody", [])
    proc = Kubectl(nobody, namespace)("get", "secrets", check=False)
    assert proc.returncode != 0
    assert "forbidden" in proc.stderr.lower()


def test_operator_identity_reads_secrets_only_in_its_namespaces(operator_identity: Path, namespace: str) -> None:
    as_operator = Kubectl(operator_identity, namespace)
    assert as_operator("get", "secrets").returncode == 0
    for args in (("get", "secrets", "-n", "default"), ("get", "secrets", "--all-namespaces"),
                 ("get", "configmaps"), ("delete", "secret", "anything")):
        proc = as_operator(*args, check=False)
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (args, proc.stderr)


def test_a_denied_request_shows_in_the_operator_log_check(
    operator_kubeconfig: Path, kubeconfig: Path, sim: SimProcess, crd_installed: None, tmp_path: Path
) -> None:
    """The check every operator test ends with sees a real denial: a namespace without the operator's Role."""
    unbound = f"unbound-{uuid.uuid4().hex[:10]}"
    Kubectl(kubeconfig)("create", "namespace", unbound)
    proc = OperatorProcess.start(operator_kubeconfig, sim.base_url, tmp_path / "operator.log", namespaces=[unbound])
    try:
        wait_for(lambda: forbidden_lines(proc.log), 30, message="a denied request in the operator log")
    finally:
        proc.stop()


def test_custom_object_with_kubectl_and_client(kubeconfig: Path, kubectl: Kubectl, namespace: str) -> None:
    install_widgets(kubeconfig)
    kubectl.apply({"apiVersion": "smoke.goldrush.dev/v1", "kind": "Widget",
                   "metadata": {"name": "w1"}, "spec": {"size": 3}})
    assert kubectl.json("get", "widget", "w1")["spec"]["size"] == 3
    bad = kubectl(
        "apply", "-f", "-", check=False,
        input='{"apiVersion":"smoke.goldrush.dev/v1","kind":"Widget","metadata":{"name":"w2"},"spec":{"size":0}}')
    assert bad.returncode != 0 and "spec.size" in bad.stderr

    api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
    obj = api.get_namespaced_custom_object("smoke.goldrush.dev", "v1", namespace, "widgets", "w1")
    assert obj["spec"]["size"] == 3
    api.create_namespaced_custom_object(
        "smoke.goldrush.dev", "v1", namespace, "widgets",
        {"apiVersion": "smoke.goldrush.dev/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {"size": 5}},
    )
    names = [o["metadata"]["name"] for o in kubectl.json("get", "widgets")["items"]]
    assert names == ["w1", "w3"]


def test_kopf_operator_reacts(kubeconfig: Path, kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    # A bare kopf operator on a test-only CRD, not the GoldRush operator: it runs as the admin because the
    # operator's RBAC grants nothing on widgets.
    install_widgets(kubeconfig)
    log = open(tmp_path / "kopf.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={namespace}",
         str(HERE / "smoke_operator.py")],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1)
        kubectl.apply({"apiVersion": "smoke.goldrush.dev/v1", "kind": "Widget",
                       "metadata": {"name": "seen"}, "spec": {"size": 7}})
        deadline = time.monotonic() + 30
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            status = kubectl.json("get", "widget", "seen").get("status") or {}
            if status.get("seen"):
                break
            assert proc.poll() is None, (tmp_path / "kopf.log").read_text()
            time.sleep(0.3)
        assert status == {"seen": True, "size": 7}, (tmp_path / "kopf.log").read_text()
    finally:
        stop_pids([proc.pid])
        log.close()
