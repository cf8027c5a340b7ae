"""E2E: the shipped RBAC is enough and no more.

A private kube-apiserver with an audit log (requests of the operator's ServiceAccount only) gets an overlay
installed for real (`kubectl apply` of the rendered kustomize output). The operator then runs with a client
certificate for `system:serviceaccount:goldrush-system:goldrush-operator` and drives a full lifecycle (create
-> RUNNING, description change -> one PATCH, Secret rotation, pause, delete; then a GoldRushCredentials and a
ClusterGoldRushCredentials, each used by one pipeline until it is deleted). The audit log proves:
- every request the operator made was allowed (no 403 anywhere, in the audit log or the operator's output);
- with leader election on (as the Deployment runs it) the Lease verbs get, create and update are used in
  the operator's namespace, and no Lease access is granted anywhere else;
- every (apiGroup, resource, verb) the overlay grants was used, except a short list of grants whose code path
  this lifecycle does not reach, each with its reason (`UNEXERCISED`).
Single-namespace mode runs first, then the namespaced overlay (the default install) and cluster-wide mode,
each after the previous one's RBAC is removed, on the same plane.
The rest of the e2e tier runs every operator under the namespaced overlay's RBAC (conftest.py, identity.py),
which proves the grants enough in every scenario; this file proves that they are no more than needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from identity import SA_USER, can_i, forbidden_lines, write_operator_kubeconfig
from pipelines import condition, pipeline_manifest, secret_manifest, wait_phase, writes
from planes import running_plane

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess
from unit.test_deploy_manifests import permissions, render

TARGET = "goldrush-pipelines"  # the single-namespace overlay's default target
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
ROLE_KINDS = ("ClusterRole", "Role")

# Grants this lifecycle does not exercise, with the code path that needs them. Anything granted, unused and
# not listed here fails the test as excess privilege.
UNEXERCISED: dict[tuple[str, str, str], str] = {}

ABI = [{"type": "event", "name": "Transfer", "anonymous": False, "inputs": [
    {"name": "from", "type": "address", "indexed": True},
    {"name": "to", "type": "address", "indexed": True},
    {"name": "value", "type": "uint256", "indexed": False},
]}]

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": [SA_USER]},
        {"level": "None"},
    ],
}


@pytest.fixture(scope="module")
def audited_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("audited-plane")
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    with running_plane(workdir / "plane", [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={workdir / 'plane' / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
    ]) as plane:
        yield plane


@pytest.fixture(scope="module")
def admin(audited_plane: ControlPlane) -> Kubectl:
    return Kubectl(audited_plane.kubeconfig)


@pytest.fixture(scope="module")
def sa_kubeconfig(audited_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sa") / "kubeconfig"
    return write_operator_kubeconfig(audited_plane, path)


# ----------------------------------------------------------------------------------------------- helpers


def audit_entries(plane: ControlPlane, since: int) -> tuple[list[dict[str, Any]], int]:
    """Audit events of the operator's identity after byte offset `since`, and the new offset."""
    data = plane.audit_log.read_bytes() if plane.audit_log.exists() else b""
    entries = [json.loads(line) for line in data[since:].splitlines() if line.strip()]
    return [e for e in entries if e.get("user", {}).get("username") == SA_USER], len(data)


def used_permissions(entries: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of every request in `entries`."""
    used = set()
    for e in entries:
        ref = e.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # non-resource URLs (discovery): allowed to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, e["verb"]))
    return used


def granted_permissions(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in permissions(objects, *ROLE_KINDS).items() for v in verbs}


def install(admin: Kubectl, overlay: str) -> list[dict[str, Any]]:
    """Apply the rendered overlay for real (CRD, Namespace, ServiceAccount, RBAC, Deployment, Service)."""
    objects = render(overlay)
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    admin.apply({"apiVersion": "v1", "kind": "List", "items": namespaces})
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    admin.apply({"apiVersion": "v1", "kind": "List", "items": crds})
    admin.wait_established(*(f"{plural}.goldrush.dev" for plural in
                             ("goldrushpipelines", "goldrushcredentials", "clustergoldrushcredentials")))
    admin.apply({"apiVersion": "v1", "kind": "List", "items": objects})
    return objects


def uninstall_rbac(admin: Kubectl, objects: list[dict[str, Any]]) -> None:
    rbac = [o for o in objects if o["kind"] in RBAC_KINDS]
    admin("delete", "--ignore-not-found", "--wait=true", "-f", "-",
          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))


def lifecycle(kubectl: Kubectl, sim: SimProcess) -> None:
    """create -> RUNNING, one PATCH on a spec change, Secret rotation -> one PATCH, pause, delete."""
    ns = kubectl.namespace
    kubectl.apply(secret_manifest())
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "abi"},
                   "data": {"abi.json": json.dumps(ABI)}})
    manifest = pipeline_manifest("p1", topic="base.mainnet.ref.block.logs",
                                 abi={"configMapRef": {"name": "abi", "key": "abi.json"}})
    kubectl.apply(manifest)
    obj = wait_phase(kubectl, "p1", "RUNNING", ready="True")
    pid = obj["status"]["pipelineId"]
    creates = [w for w in writes(sim, "create") if w["body"]["name"] == f"{ns}-p1"]
    assert len(creates) == 1 and creates[0]["body"]["abi_file"], creates

    manifest["spec"]["description"] = "changed under least privilege"
    kubectl.apply(manifest)
    wait_for(lambda: [w for w in writes(sim, "patch") if pid in w["path"]], 30, message="the PATCH")
    wait_for(lambda: get_generation_observed(kubectl, 2), 30, message="observedGeneration 2")

    secret = secret_manifest(data={"password": "rotated-value-1"})
    kubectl.apply(secret)
    wait_for(lambda: len([w for w in writes(sim, "patch") if pid in w["path"]]) == 2, 30,
             message="the PATCH after the Secret rotation")

    kubectl("patch", "goldrushpipeline", "p1", "--type=merge", "-p", '{"spec":{"paused":true}}')
    obj = wait_phase(kubectl, "p1", "PAUSED", ready="True")
    assert condition(obj, "Ready")["reason"] == "Paused"  # type: ignore[index]

    kubectl("delete", "goldrushpipeline", "p1", "--timeout=40s")
    assert [w for w in writes(sim, "delete") if pid in w["path"]]
    assert all(p["id"] != pid for p in sim.pipelines())


def credentials_lifecycle(kubectl: Kubectl, admin: Kubectl) -> None:
    """A GoldRushCredentials and a ClusterGoldRushCredentials (key Secret in the operator's namespace) are
    checked (status written) and each used by one pipeline, which is then deleted with that key."""
    ns = kubectl.namespace
    cluster_name = f"shared-{ns}"
    kubectl.apply(secret_manifest("team-key", {"key": "dev-key"}))
    kubectl.apply({"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushCredentials", "metadata": {"name": "team"},
                   "spec": {"serviceKeySecretRef": {"name": "team-key", "key": "key"}}})
    admin.in_namespace("goldrush-system").apply(secret_manifest("shared-key", {"key": "dev-key"}))
    admin.apply({"apiVersion": "goldrush.dev/v1alpha1", "kind": "ClusterGoldRushCredentials",
                 "metadata": {"name": cluster_name},
                 "spec": {"serviceKeySecretRef": {"name": "shared-key", "key": "key"},
                          "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}})
    try:
        for name, kind, ref in (("p2", "GoldRushCredentials", "team"),
                                ("p3", "ClusterGoldRushCredentials", cluster_name)):
            kubectl.apply(pipeline_manifest(name, credentialsRef={"kind": kind, "name": ref}))
            wait_phase(kubectl, name, "RUNNING", ready="True")
        for resource, name in (("goldrushcredentials", "team"), ("clustergoldrushcredentials", cluster_name)):
            wait_for(lambda r=resource, n=name: (condition(kubectl.json("get", r, n), "Ready") or {}).get("reason")
                     == "KeyValid", 60, message=f"{resource}/{name} Ready")
        kubectl("delete", "goldrushpipeline", "p2", "p3", "--timeout=40s")
    finally:
        admin("delete", "clustergoldrushcredentials", cluster_name, "--ignore-not-found", check=False)


def get_generation_observed(kubectl: Kubectl, generation: int) -> bool:
    obj = kubectl.json("get", "goldrushpipeline", "p1")
    return bool(obj["status"].get("observedGeneration") == generation
                and (condition(obj, "Ready") or {}).get("status") == "True")


def run_overlay(
    overlay: str, namespace: str, namespaces: list[str] | None,
    audited_plane: ControlPlane, admin: Kubectl, sa_kubeconfig: Path, sim: SimProcess, log: Path,
    extra_checks: Callable[[], None],
) -> None:
    admin("create", "namespace", namespace, check=False)  # the installation guide creates it first
    objects = install(admin, overlay)
    try:
        extra_checks()
        # Leader election as in the Deployment: the Lease in the operator's namespace, created afresh so
        # that get, create and update (renewals, the release on stop) are all exercised.
        admin("delete", "lease", "goldrush-operator", "--namespace", "goldrush-system", "--ignore-not-found")
        _, offset = audit_entries(audited_plane, 0)
        proc = OperatorProcess.start(sa_kubeconfig, sim.base_url, log, namespaces=namespaces, env={
            "GOLDRUSH_LEADER_ELECTION": "true", "POD_NAMESPACE": "goldrush-system",
            "POD_NAME": "goldrush-operator-0"})
        try:
            lifecycle(admin.in_namespace(namespace), sim)
            credentials_lifecycle(admin.in_namespace(namespace), admin)
        finally:
            proc.stop()
        entries, _ = audit_entries(audited_plane, offset)
    finally:
        uninstall_rbac(admin, objects)

    assert not forbidden_lines(log.read_text(errors="replace")), log.read_text(errors="replace")[-4000:]
    denied = [(e["verb"], e.get("requestURI"), e["responseStatus"].get("code")) for e in entries
              if e.get("responseStatus", {}).get("code") == 403]
    assert not denied, f"requests denied by RBAC: {denied}"

    used = used_permissions(entries)
    granted = granted_permissions(objects)
    assert used <= granted, f"used but not granted: {sorted(used - granted)}"
    lease_namespaces = {(e.get("objectRef") or {}).get("namespace") for e in entries
                        if (e.get("objectRef") or {}).get("resource") == "leases"}
    assert lease_namespaces == {"goldrush-system"}, lease_namespaces
    unused = granted - used - set(UNEXERCISED)
    assert not unused, f"granted but never used by the operator (excess privilege): {sorted(unused)}"


# ------------------------------------------------------------------------------------------------- tests


def test_single_namespace_rbac_is_sufficient_and_minimal(
    audited_plane: ControlPlane, admin: Kubectl, sa_kubeconfig: Path, sim: SimProcess, tmp_path: Path
) -> None:
    def no_cluster_wide_secrets() -> None:
        assert can_i(admin, "get", "secrets", TARGET)
        assert not can_i(admin, "list", "secrets", None)
        assert not can_i(admin, "get", "secrets", "default")
        assert not can_i(admin, "get", "goldrushpipelines.goldrush.dev", "default")
        assert not can_i(admin, "delete", "goldrushpipelines.goldrush.dev", TARGET)

    run_overlay("single-namespace", TARGET, [TARGET], audited_plane, admin, sa_kubeconfig, sim,
                tmp_path / "operator.log", no_cluster_wide_secrets)


def test_namespaced_rbac_is_sufficient_and_minimal(
    audited_plane: ControlPlane, admin: Kubectl, sa_kubeconfig: Path, sim: SimProcess, tmp_path: Path
) -> None:
    """The default install: Roles in the listed namespaces (team-a, team-b) and nothing cluster-wide."""
    admin("create", "namespace", "team-b", check=False)  # both listed namespaces exist before the install

    def only_listed_namespaces() -> None:
        for ns in ("team-a", "team-b"):
            assert can_i(admin, "watch", "secrets", ns)
        assert not can_i(admin, "list", "secrets", None)
        assert not can_i(admin, "get", "secrets", "default")
        assert can_i(admin, "get", "secrets", "goldrush-system")  # key Secrets of ClusterGoldRushCredentials
        assert not can_i(admin, "get", "secrets", "kube-system")
        assert not can_i(admin, "list", "goldrushpipelines.goldrush.dev", None)
        assert not can_i(admin, "list", "goldrushcredentials.goldrush.dev", None)
        assert not can_i(admin, "delete", "goldrushpipelines.goldrush.dev", "team-a")

    run_overlay("namespaced", "team-a", ["team-a", "team-b"], audited_plane, admin, sa_kubeconfig, sim,
                tmp_path / "operator.log", only_listed_namespaces)


def test_cluster_wide_rbac_is_sufficient_and_minimal(
    audited_plane: ControlPlane, admin: Kubectl, sa_kubeconfig: Path, sim: SimProcess, tmp_path: Path
) -> None:
    def checks() -> None:
        assert can_i(admin, "list", "goldrushpipelines.goldrush.dev", None)
        assert not can_i(admin, "update", "goldrushpipelines.goldrush.dev", None)
        assert not can_i(admin, "delete", "secrets", None)
        assert can_i(admin, "list", "namespaces", None)  # labels for spec.namespaceSelector
        assert not can_i(admin, "update", "clustergoldrushcredentials.goldrush.dev", None)

    run_overlay("cluster-wide", "tenant-a", None, audited_plane, admin, sa_kubeconfig, sim,
                tmp_path / "operator.log", checks)
