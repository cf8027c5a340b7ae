"""E2E: `helm install` then `helm upgrade` of charts/goldrush-operator on a real kube-apiserver.

A private control plane (no kubelet, so pods never run: the install must succeed, not become Ready) gets
the chart installed with a namespace list and every monitoring toggle on, then upgraded with another
namespace and the production-like settings. The live objects are read back after each step, the
operator's ServiceAccount is asked `kubectl auth can-i` what it may do, and `helm uninstall` leaves the
CRD (and so every pipeline) in place.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from planes import running_plane

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from unit.test_helm_chart import CHART, helm_binary

RELEASE = "goldrush-operator"
NAMESPACE = "goldrush-system"
SA = f"system:serviceaccount:{NAMESPACE}:goldrush-operator"
MONITORING_CRDS = Path(__file__).parent / "testdata" / "monitoring-crds.yaml"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_plane(tmp_path_factory.mktemp("helm-plane")) as plane:
        yield plane


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm_binary()), "--kubeconfig", str(plane.kubeconfig), *args],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
    return proc


def can_i(k: Kubectl, verb: str, resource: str, namespace: str | None) -> bool:
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    proc = k("auth", "can-i", verb, resource, *scope, f"--as={SA}", "--as-group=system:serviceaccounts",
             check=False)
    return proc.stdout.strip() == "yes"


def env_of(k: Kubectl) -> dict[str, str]:
    deployment = k.json("get", "deployment", "goldrush-operator", "-n", NAMESPACE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def release_status(plane: ControlPlane) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(helm(plane, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    return status


def test_helm_install_then_upgrade(plane: ControlPlane, tmp_path: Path) -> None:
    k = Kubectl(plane.kubeconfig)
    k("apply", "-f", str(MONITORING_CRDS))
    k.wait_established("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
    for ns in ("team-a", "team-b"):
        k("create", "namespace", ns)

    # --- install: one served namespace, every monitoring object on -------------------------------------
    helm(plane, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace", "--wait=false",
         "--set-json", 'watch.namespaces=["team-a"]', "--set", "serviceMonitor.enabled=true",
         "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
    status = release_status(plane)
    assert status["info"]["status"] == "deployed" and status["version"] == 1

    k.wait_established("goldrushpipelines.goldrush.dev")
    crd = k.json("get", "crd", "goldrushpipelines.goldrush.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    for kind, name in (("serviceaccount", "goldrush-operator"), ("service", "goldrush-operator-metrics"),
                       ("networkpolicy", "goldrush-operator"), ("servicemonitor", "goldrush-operator"),
                       ("prometheusrule", "goldrush-operator"), ("configmap", "goldrush-operator-dashboard")):
        assert k.json("get", kind, name, "-n", NAMESPACE)["metadata"]["name"] == name
    rule = k.json("get", "prometheusrule", "goldrush-operator", "-n", NAMESPACE)
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} >= {"GoldRushPipelineFailed"}
    assert env_of(k)["GOLDRUSH_NAMESPACES"] == "team-a"
    assert can_i(k, "watch", "secrets", "team-a")
    assert not can_i(k, "get", "secrets", "team-b")
    assert not can_i(k, "list", "secrets", None)
    # Its own namespace holds the key Secrets of ClusterGoldRushCredentials (and nothing it may not read).
    assert can_i(k, "get", "secrets", NAMESPACE)
    assert not can_i(k, "create", "secrets", NAMESPACE) and not can_i(k, "delete", "secrets", NAMESPACE)
    assert can_i(k, "patch", "goldrushpipelines.goldrush.dev", "team-a")
    assert not can_i(k, "delete", "goldrushpipelines.goldrush.dev", "team-a")

    # A pipeline created now must survive everything below.
    k.in_namespace("team-a").apply({
        "apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushPipeline", "metadata": {"name": "kept"},
        "spec": {"project": "p", "topic": "base.mainnet.ref.block.transfers",
                 "destination": {"type": "webhook", "config": {"url": "https://example.com/hook"}},
                 "execution": {"mode": "unbounded"}},
    })

    # --- upgrade: a second namespace and production-like settings -----------------------------------------
    helm(plane, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait=false", "--reuse-values",
         "--set-json", 'watch.namespaces=["team-a","team-b"]', "--set", "podDisruptionBudget.enabled=true",
         "--set-json", 'extraEnv=[{"name":"GOLDRUSH_RATE_LIMIT","value":"10"}]')
    status = release_status(plane)
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    env = env_of(k)
    assert env["GOLDRUSH_NAMESPACES"] == "team-a,team-b"
    assert env["GOLDRUSH_RATE_LIMIT"] == "10"
    assert can_i(k, "get", "secrets", "team-b")
    assert k.json("get", "poddisruptionbudget", "goldrush-operator", "-n", NAMESPACE)["spec"]["maxUnavailable"] == 1
    assert k.json("get", "goldrushpipeline", "kept", "-n", "team-a")["metadata"]["name"] == "kept"

    # --- upgrade back to one namespace: the team-b Role goes with it --------------------------------------
    helm(plane, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait=false", "--reuse-values",
         "--set-json", 'watch.namespaces=["team-a"]')
    assert k("get", "role", "goldrush-operator", "-n", "team-b", check=False).returncode != 0
    assert not can_i(k, "get", "secrets", "team-b")

    # --- uninstall: the operator goes, the CRD and the pipelines stay -------------------------------------
    helm(plane, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait=false")
    assert k("get", "deployment", "goldrush-operator", "-n", NAMESPACE, check=False).returncode != 0
    assert k("get", "clusterrole", "goldrush-operator-crds", check=False).returncode != 0
    assert k.json("get", "crd", "goldrushpipelines.goldrush.dev")["metadata"]["name"]
    assert k.json("get", "goldrushpipeline", "kept", "-n", "team-a")["metadata"]["name"] == "kept"
