"""Smoke tests of the real control plane: CRDs, custom objects via kubectl and the kubernetes client, kopf."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

from support.ctlplane import ControlPlane, stop_pids
from support.kubectl import Kubectl

HERE = Path(__file__).parent


def install_widgets(kubeconfig: Path) -> None:
    k = Kubectl(kubeconfig)
    k("apply", "-f", str(HERE / "testdata" / "widgets-crd.yaml"))
    k("wait", "--for=condition=Established", "crd/widgets.smoke.goldrush.dev", "--timeout=30s")


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
