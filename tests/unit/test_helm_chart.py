"""The Helm chart charts/goldrush-operator, judged with the real `helm` binary (built by tests/support/gotools).

- `helm lint --strict` and `helm template` for the default values and every documented values set in
  `charts/goldrush-operator/ci/` (the chart-testing convention);
- values.schema.json rejects what the chart cannot honour;
- the chart renders the same objects as the kustomize tree for the same choices (helm-only labels and
  annotations aside), so the two installs cannot drift apart;
- the chart's copies of the CRD and of the monitoring files equal their sources (`make chart-files`).

`helm_template(...)` is the one way to render the chart; tests/e2e/test_ops_helm.py imports it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import gotools
from unit.test_deploy_manifests import ROOT, of_kind, only, operator_container, permissions, render

pytestmark = pytest.mark.unit

CHART = ROOT / "charts" / "goldrush-operator"
VALUE_SETS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE_NAMESPACE = "goldrush-system"
KUBE_VERSION = "1.36.0"  # the test control plane's version
# Labels and annotations only Helm puts on objects; everything else must equal the kustomize output.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version"}
HELM_ANNOTATIONS = {"helm.sh/resource-policy"}
# Pairs of (chart values, kustomize directory) that describe the same install.
EQUIVALENT = {
    "namespaces": (["ci/namespaces-values.yaml"], "deploy/overlays/namespaced"),
    "cluster-wide": (["ci/cluster-wide-values.yaml"], "deploy/overlays/cluster-wide"),
}
# Files the chart carries as copies (Helm cannot read files outside the chart directory).
COPIES = {
    "files/goldrush.dev_goldrushpipelines.yaml": "crds/goldrush.dev_goldrushpipelines.yaml",
    "files/goldrush.dev_goldrushcredentials.yaml": "crds/goldrush.dev_goldrushcredentials.yaml",
    "files/goldrush.dev_clustergoldrushcredentials.yaml": "crds/goldrush.dev_clustergoldrushcredentials.yaml",
    "files/prometheusrule.yaml": "deploy/monitoring/prometheusrule.yaml",
    "files/grafana-dashboard.json": "deploy/monitoring/grafana-dashboard.json",
}

Obj = dict[str, Any]


@functools.cache
def helm_binary() -> Path:
    try:
        return gotools.ensure("helm")
    except gotools.ToolUnavailable as exc:
        pytest.fail(f"helm is needed to test the chart: {exc}", pytrace=False)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


def value_args(values: list[str], sets: list[str] | None = None) -> list[str]:
    args = [arg for v in values for arg in ("-f", str(CHART / v))]
    return args + [arg for s in sets or [] for arg in ("--set", s)]


def helm_template(values: list[str] | None = None, sets: list[str] | None = None) -> list[Obj]:
    """Objects of `helm template` with the given values files (relative to the chart) and --set values."""
    proc = helm("template", "goldrush-operator", str(CHART), "--namespace", RELEASE_NAMESPACE,
                "--kube-version", KUBE_VERSION, *value_args(values or [], sets))
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def normalized(objects: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    """Objects by (kind, namespace, name) with Helm's own labels and annotations removed."""
    result = {}
    for obj in objects:
        meta = obj["metadata"]
        for field, drop in (("labels", HELM_LABELS), ("annotations", HELM_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in drop}
            if kept:
                meta[field] = kept
            else:
                meta.pop(field, None)
        result[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return result


# --------------------------------------------------------------------------------------------- lint / render


@pytest.mark.parametrize("values", [None, *VALUE_SETS])
def test_helm_lint_strict(values: str | None) -> None:
    proc = helm("lint", "--strict", "--kube-version", KUBE_VERSION, "--namespace", RELEASE_NAMESPACE,
                str(CHART), *value_args([f"ci/{values}"] if values else []))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout, proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("values", [None, *VALUE_SETS])
def test_template_renders_a_complete_install(values: str | None) -> None:
    objects = helm_template([f"ci/{values}"] if values else None)
    only(objects, "CustomResourceDefinition", "goldrushpipelines.goldrush.dev")
    only(objects, "ServiceAccount", "goldrush-operator")
    only(objects, "NetworkPolicy", "goldrush-operator")
    deployment = only(objects, "Deployment", "goldrush-operator")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert deployment["spec"]["replicas"] == 2
    lease_role = only(objects, "Role", "goldrush-operator-leases")
    assert lease_role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert permissions([lease_role], "Role") == {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
    for obj in objects:
        if obj["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role",
                               "RoleBinding"}:
            assert obj["metadata"]["namespace"] == RELEASE_NAMESPACE, obj["metadata"]
    # Every binding names the operator's ServiceAccount in the release namespace.
    for binding in of_kind(objects, "RoleBinding", "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "goldrush-operator", "namespace": RELEASE_NAMESPACE}
        ]


def test_default_values_are_least_privilege() -> None:
    objects = helm_template()
    assert not any(resource == "secrets" for _, resource in permissions(objects, "ClusterRole"))
    role, own, leases = sorted(of_kind(objects, "Role"), key=lambda r: r["metadata"]["name"])
    assert role["metadata"]["namespace"] == "goldrush-pipelines"
    # The key Secrets of ClusterGoldRushCredentials: the operator's own namespace only.
    assert own["metadata"] == {**own["metadata"], "name": "goldrush-operator-credentials",
                               "namespace": RELEASE_NAMESPACE}
    assert leases["metadata"]["name"] == "goldrush-operator-leases"
    assert leases["metadata"]["namespace"] == RELEASE_NAMESPACE
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["GOLDRUSH_NAMESPACES"] == "goldrush-pipelines"
    assert env["GOLDRUSH_LEADER_ELECTION"] == "true" and "GOLDRUSH_SHARDS" not in env
    assert not of_kind(objects, "ServiceMonitor", "PrometheusRule", "ConfigMap")
    assert only(objects, "PodDisruptionBudget", "goldrush-operator")["spec"]["maxUnavailable"] == 1


def test_ha_values_reach_the_pod() -> None:
    objects = helm_template(sets=["replicas=3", "shards=3", "leaderElection.leaseDurationSeconds=20",
                                  "leaderElection.renewDeadlineSeconds=12", "leaderElection.retryPeriodSeconds=3"])
    assert only(objects, "Deployment")["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    timings = [env[f"GOLDRUSH_LEASE_{t}_SECONDS"] for t in ("DURATION", "RENEW_DEADLINE", "RETRY_PERIOD")]
    assert (env["GOLDRUSH_SHARDS"], timings) == ("3", ["20", "12", "3"])


def test_without_leader_election_one_recreated_replica_and_no_lease_access() -> None:
    objects = helm_template(sets=["leaderElection.enabled=false", "replicas=1"])
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    assert ("coordination.k8s.io", "leases") not in permissions(objects, "Role")
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["GOLDRUSH_LEADER_ELECTION"] == "false"
    for sets in (["leaderElection.enabled=false"], ["leaderElection.enabled=false", "replicas=1", "shards=2"]):
        proc = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION, *value_args([], sets), check=False)
        assert proc.returncode != 0 and "need leaderElection.enabled=true" in proc.stderr, proc.stderr


def test_cluster_wide_grants_secrets_cluster_wide_and_says_so() -> None:
    objects = helm_template(["ci/cluster-wide-values.yaml"])
    assert permissions(objects, "ClusterRole")[("", "secrets")] == {"get", "list", "watch"}
    # The only Roles are the credentials and Lease Roles in the release namespace.
    assert sorted(r["metadata"]["name"] for r in of_kind(objects, "Role", "RoleBinding")) == [
        "goldrush-operator-credentials", "goldrush-operator-credentials",
        "goldrush-operator-leases", "goldrush-operator-leases"]
    assert operator_container(objects)["args"][-1] == "--all-namespaces"
    assert "EVERY Secret in EVERY namespace" in (CHART / "templates" / "rbac.yaml").read_text()
    assert "EVERY Secret" in (CHART / "values.yaml").read_text()


def test_production_values_reach_the_pod() -> None:
    objects = helm_template(["ci/production-values.yaml"])
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    container = operator_container(objects)
    assert container["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOLDRUSH_RATE_LIMIT"] == "10"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    pdb = only(objects, "PodDisruptionBudget", "goldrush-operator")
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize(("sets", "message"), [
    (["replicas=-1"], "/replicas"),
    (["shards=0"], "/shards"),
    (["watch.namespaces=null"], "namespaces"),
    (["watch.namespaces[0]=Not_A_Namespace"], "/watch/namespaces/0"),
    (["unknownKey=1"], "additional properties 'unknownKey'"),
    (["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["extraEnv[0].name=GOLDRUSH_SERVICE_KEY", "extraEnv[0].value=x"], "/extraEnv/0/name"),
    (["apiUrl=ftp://nowhere"], "/apiUrl"),
])
def test_schema_rejects_what_the_chart_cannot_honour(sets: list[str], message: str) -> None:
    proc = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION, *value_args([], sets), check=False)
    assert proc.returncode != 0, proc.stdout
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


def test_empty_namespace_list_without_cluster_wide_is_refused() -> None:
    proc = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION,
                "--set-json", "watch.namespaces=[]", check=False)
    assert proc.returncode != 0
    assert "minItems" in proc.stderr or "watch.namespaces is empty" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------- chart == kustomize


@pytest.mark.parametrize("choice", list(EQUIVALENT))
def test_chart_and_kustomize_render_the_same_objects(choice: str) -> None:
    values, overlay = EQUIVALENT[choice]
    chart = normalized(helm_template(values))
    # The chart installs into the release namespace (`helm install --create-namespace`) and does not own
    # it, so the kustomize tree's Namespace object is the one thing without a counterpart.
    kustomize = normalized([o for o in render(overlay) if o["kind"] != "Namespace"])
    assert sorted(chart) == sorted(kustomize)
    for key, obj in kustomize.items():
        assert chart[key] == obj, f"{key} differs between the chart and {overlay}"


def test_chart_monitoring_equals_deploy_monitoring() -> None:
    chart = normalized(helm_template(sets=["serviceMonitor.enabled=true", "prometheusRule.enabled=true",
                                           "grafanaDashboard.enabled=true"]))
    kustomize = normalized(render("deploy/monitoring"))
    assert sorted(kustomize) == sorted(k for k in chart if k[0] in {"ServiceMonitor", "PrometheusRule", "ConfigMap"})
    for key, obj in kustomize.items():
        assert chart[key] == obj, f"{key} differs between the chart and deploy/monitoring"


@pytest.mark.parametrize(("copy", "source"), list(COPIES.items()))
def test_chart_copies_equal_their_sources(copy: str, source: str) -> None:
    assert (CHART / copy).read_bytes() == (ROOT / source).read_bytes(), (
        f"charts/goldrush-operator/{copy} differs from {source}: run `make chart-files`"
    )
