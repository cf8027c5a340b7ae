"""The kustomize tree under deploy/: rendered with the real `kubectl kustomize` and checked object by object.

`render(overlay)` is the one way to get the rendered objects; other suites (for example a server-side
dry-run apply against a test kube-apiserver) import it from here.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.kubectl import kubectl_binary

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS: dict[str, str] = {
    "base": "deploy/base",
    "namespaced": "deploy/overlays/namespaced",
    "cluster-wide": "deploy/overlays/cluster-wide",
    "single-namespace": "deploy/overlays/single-namespace",
    "sharded": "deploy/overlays/sharded",
}
CRD_FILE = "crds/goldrush.dev_goldrushpipelines.yaml"

OPERATOR_NAMESPACE = "goldrush-system"
SERVICE_ACCOUNT = "goldrush-operator"
TARGET_NAMESPACE = "goldrush-pipelines"
SERVED_NAMESPACES = ["team-a", "team-b"]  # the namespaced overlay's shipped list
UID = 65532
HEALTH_PORT = 8080
METRICS_PORT = 9090
SERVICE_KEY_DIR = "/var/run/secrets/goldrush"
SERVICE_KEY_FILE = f"{SERVICE_KEY_DIR}/service-key"
LIVENESS_ARG = f"--liveness=http://0.0.0.0:{HEALTH_PORT}/healthz"

# Every permission the operator may hold: (apiGroup, resource) -> verbs. Nothing else, anywhere.
# Exactly what the operator uses (tests/e2e/test_ops_rbac.py proves it with the kube-apiserver audit log).
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
WORKLOAD = {
    ("goldrush.dev", "goldrushpipelines"): {"list", "watch", "patch"},
    ("goldrush.dev", "goldrushpipelines/status"): {"patch"},
    ("goldrush.dev", "goldrushcredentials"): {"list", "watch"},
    ("goldrush.dev", "goldrushcredentials/status"): {"patch"},
    ("", "secrets"): {"get", "list", "watch"},
    ("", "configmaps"): {"get"},
    ("", "events"): {"create"},
}
NAMESPACE_WATCH = {("", "namespaces"): {"list", "watch"}}
# Leader election and sharding, in the operator's namespace only (Role goldrush-operator-leases).
LEASES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
LEASE_ROLE = "goldrush-operator-leases"
# In every mode: ClusterGoldRushCredentials (cluster-scoped) and, in the operator's namespace, their key Secrets.
CLUSTER_CREDENTIALS = {
    ("goldrush.dev", "clustergoldrushcredentials"): {"list", "watch"},
    ("goldrush.dev", "clustergoldrushcredentials/status"): {"patch"},
}
OPERATOR_NAMESPACE_ROLE = "goldrush-operator-credentials"
OPERATOR_NAMESPACE_SECRETS = {("", "secrets"): {"get", "list", "watch"}}
FORBIDDEN_VERBS = {"*", "delete", "deletecollection", "update", "escalate", "bind", "impersonate"}
# Volume types allowed by the Pod Security Standard "restricted".
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

Obj = dict[str, Any]


def render(overlay: str, root: Path = ROOT) -> list[Obj]:
    """Render `base`, `namespaced`, `cluster-wide`, `single-namespace` (or a directory) with `kubectl kustomize`."""
    path = root / OVERLAYS.get(overlay, overlay)
    if not (root / CRD_FILE).exists():
        raise AssertionError(f"{CRD_FILE} is missing: generate it with `goldrush-operator crd > {CRD_FILE}`")
    proc = subprocess.run(
        [kubectl_binary(), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed ({proc.returncode}):\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@functools.cache
def _rendered(overlay: str) -> str:
    return yaml.safe_dump_all(render(overlay))


def rendered(overlay: str) -> list[Obj]:
    """A fresh copy of the cached render (tests may mutate what they get)."""
    return list(yaml.safe_load_all(_rendered(overlay)))


def only(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(objects: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def operator_container(objects: list[Obj]) -> Obj:
    pod = only(objects, "Deployment", "goldrush-operator")["spec"]["template"]["spec"]
    containers: list[Obj] = pod["containers"]
    (container,) = containers
    assert container["name"] == "operator"
    return container


def permissions(objects: list[Obj], *kinds: str) -> dict[tuple[str, str], set[str]]:
    """All (apiGroup, resource) -> verbs granted by roles of the given kinds."""
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for role in of_kind(objects, *kinds):
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    granted[(group, resource)].update(rule["verbs"])
    return dict(granted)


ALL = list(OVERLAYS)


# --- every variant --------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_renders_the_expected_objects(overlay: str) -> None:
    objects = rendered(overlay)
    crd = only(objects, "CustomResourceDefinition", "goldrushpipelines.goldrush.dev")
    assert crd["spec"]["group"] == "goldrush.dev"
    assert crd["spec"]["names"]["plural"] == "goldrushpipelines"
    namespace = only(objects, "Namespace", OPERATOR_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    account = only(objects, "ServiceAccount", SERVICE_ACCOUNT)
    assert account["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert account["automountServiceAccountToken"] is False
    assert only(objects, "Deployment")["metadata"]["namespace"] == OPERATOR_NAMESPACE
    service = only(objects, "Service", "goldrush-operator-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}
    ]
    # kustomize's local-config inputs (the single-namespace target) never reach the cluster.
    assert not of_kind(objects, "ConfigMap")
    for obj in objects:
        if obj["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"].get("namespace"), (
                f"{obj['kind']} {obj['metadata']['name']} has no namespace"
            )


def workload_roles(objects: list[Obj]) -> list[Obj]:
    """The Roles of the served namespaces (every Role but the Lease and credentials Roles of the operator's)."""
    return [r for r in of_kind(objects, "Role") if r["metadata"]["name"] not in (LEASE_ROLE, OPERATOR_NAMESPACE_ROLE)]


@pytest.mark.parametrize("overlay", ALL)
def test_deployment_runs_replicas_with_a_rolling_update_and_a_disruption_budget(overlay: str) -> None:
    objects = rendered(overlay)
    deployment = only(objects, "Deployment", "goldrush-operator")
    assert deployment["spec"]["replicas"] == (3 if overlay == "sharded" else 2)
    # The new pod starts before the old one stops; the old one releases the Lease on SIGTERM.
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pdb = only(objects, "PodDisruptionBudget", "goldrush-operator")
    assert pdb["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    assert template["spec"]["automountServiceAccountToken"] is True


@pytest.mark.parametrize("overlay", ALL)
def test_pod_meets_restricted_pod_security(overlay: str) -> None:
    pod = only(rendered(overlay), "Deployment")["spec"]["template"]["spec"]
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == UID
    assert pod_security["runAsGroup"] == UID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key), key
    for volume in pod["volumes"]:
        types = set(volume) - {"name"}
        assert types <= RESTRICTED_VOLUME_TYPES, volume
    for container in pod["containers"] + pod.get("initContainers", []):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert isinstance(security["runAsUser"], int)
        assert security["runAsUser"] == UID
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security.get("privileged", False) is False
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "ports" not in container or all("hostPort" not in p for p in container["ports"])


@pytest.mark.parametrize("overlay", ALL)
def test_tmp_is_a_writable_empty_dir(overlay: str) -> None:
    objects = rendered(overlay)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in operator_container(objects)["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"])
    assert "emptyDir" in volume
    assert volume["emptyDir"].get("sizeLimit")
    assert not mounts["/tmp"].get("readOnly", False)


@pytest.mark.parametrize("overlay", ALL)
def test_service_key_is_a_mounted_file_not_an_env_var(overlay: str) -> None:
    objects = rendered(overlay)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    env = {e["name"]: e for e in container["env"]}
    assert env["GOLDRUSH_SERVICE_KEY_FILE"] == {
        "name": "GOLDRUSH_SERVICE_KEY_FILE",
        "value": SERVICE_KEY_FILE,
    }
    assert "GOLDRUSH_SERVICE_KEY" not in env
    for item in container["env"]:
        # Only the downward API (the pod's own name and namespace, for the Lease): secrets are files.
        assert set(item.get("valueFrom", {})) <= {"fieldRef"}, f"{item['name']}: secrets are files, never env vars"
    assert "envFrom" not in container
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == SERVICE_KEY_DIR)
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees the rotated key"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "goldrush-service-key"
    assert volume["secret"]["items"] == [{"key": "service-key", "path": "service-key"}]
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == UID


@pytest.mark.parametrize("overlay", ALL)
def test_container_env_ports_probes_and_resources(overlay: str) -> None:
    container = operator_container(rendered(overlay))
    name, _, tag = container["image"].rpartition(":")
    assert name.endswith("goldrush-operator"), container["image"]
    assert tag, container["image"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOLDRUSH_API_URL"].endswith("/platform/pipeline-api/")
    assert env["GOLDRUSH_METRICS_PORT"] == str(METRICS_PORT)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": HEALTH_PORT, "metrics": METRICS_PORT}
    assert container["args"][:2] == ["--standalone", LIVENESS_ARG]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz", probe
        assert ports.get(http["port"], http["port"]) == HEALTH_PORT, probe
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert set(resources[section]) == {"cpu", "memory", "ephemeral-storage"}, section


@pytest.mark.parametrize("overlay", ALL)
def test_rbac_has_no_wildcards_and_no_writes_beyond_the_contract(overlay: str) -> None:
    objects = rendered(overlay)
    for role in of_kind(objects, "Role", "ClusterRole"):
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: wildcard in {field}"
            forbidden = FORBIDDEN_VERBS - ({"update"} if role["metadata"]["name"] == LEASE_ROLE else set())
            assert not set(rule["verbs"]) & forbidden, rule
            assert "nonResourceURLs" not in rule
            assert not any(
                r.endswith("/*") or r in {"pods/exec", "serviceaccounts/token"} for r in rule["resources"]
            )


@pytest.mark.parametrize("overlay", ALL)
def test_bindings_bind_the_operator_account_to_rendered_roles(overlay: str) -> None:
    objects = rendered(overlay)
    roles = {
        (r["kind"], r["metadata"]["name"], r["metadata"].get("namespace"))
        for r in of_kind(objects, "Role", "ClusterRole")
    }
    bindings = of_kind(objects, "RoleBinding", "ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], ref["name"], namespace) in roles, f"{binding['metadata']['name']} -> {ref}"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ]


# --- per variant ----------------------------------------------------------------------------------------


def test_every_mode_reads_secrets_of_its_own_namespace_only_through_one_role() -> None:
    for overlay in ALL:
        objects = rendered(overlay)
        role = only(objects, "Role", OPERATOR_NAMESPACE_ROLE)
        assert role["metadata"]["namespace"] == OPERATOR_NAMESPACE, overlay
        assert permissions([role], "Role") == OPERATOR_NAMESPACE_SECRETS, overlay
        binding = only(objects, "RoleBinding", OPERATOR_NAMESPACE_ROLE)
        assert binding["metadata"]["namespace"] == OPERATOR_NAMESPACE, overlay


def test_base_grants_only_crd_read_and_leases_in_its_namespace() -> None:
    objects = rendered("base")
    assert permissions(objects, "ClusterRole") == {**CRD_READ, **CLUSTER_CREDENTIALS}
    assert not workload_roles(objects)
    assert operator_container(objects)["args"] == ["--standalone", LIVENESS_ARG]


@pytest.mark.parametrize("overlay", ALL)
def test_leases_are_granted_only_in_the_operators_namespace(overlay: str) -> None:
    objects = rendered(overlay)
    role = only(objects, "Role", LEASE_ROLE)
    assert role["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert permissions([role], "Role") == LEASES
    binding = only(objects, "RoleBinding", LEASE_ROLE)
    assert binding["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEASE_ROLE}
    for other in of_kind(objects, "Role", "ClusterRole"):
        if other is not role:
            assert ("coordination.k8s.io", "leases") not in permissions([other], other["kind"])
    env = {e["name"]: e for e in operator_container(objects)["env"]}
    assert env["GOLDRUSH_LEADER_ELECTION"]["value"] == "true"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    shards = env.get("GOLDRUSH_SHARDS", {}).get("value", "1")
    assert shards == ("3" if overlay == "sharded" else "1")


def test_cluster_wide_permissions_and_flags() -> None:
    objects = rendered("cluster-wide")
    assert not workload_roles(objects)
    assert permissions(objects, "ClusterRole") == {**CRD_READ, **WORKLOAD, **NAMESPACE_WATCH, **CLUSTER_CREDENTIALS}
    # Secrets have a ClusterRole of their own, so they can be re-bound per namespace.
    secrets_role = only(objects, "ClusterRole", "goldrush-operator-secrets")
    assert permissions([secrets_role], "ClusterRole") == {("", "secrets"): {"get", "list", "watch"}}
    assert ("", "secrets") not in permissions(
        [only(objects, "ClusterRole", "goldrush-operator")], "ClusterRole"
    )
    args = operator_container(objects)["args"]
    assert args == ["--standalone", LIVENESS_ARG, "--all-namespaces"]


def test_single_namespace_permissions_and_flags() -> None:
    objects = rendered("single-namespace")
    role = only(objects, "Role", "goldrush-operator")
    assert role["metadata"]["namespace"] == TARGET_NAMESPACE
    assert only(objects, "RoleBinding", "goldrush-operator")["metadata"]["namespace"] == TARGET_NAMESPACE
    assert permissions(workload_roles(objects), "Role") == WORKLOAD
    cluster = permissions(objects, "ClusterRole")
    assert cluster == {**CRD_READ, **NAMESPACE_WATCH, **CLUSTER_CREDENTIALS}
    assert not any(resource == "secrets" for _, resource in cluster), "no cluster-wide access to Secrets"
    assert not any(resource.startswith("goldrushpipelines") for _, resource in cluster)
    args = operator_container(objects)["args"]
    assert args == ["--standalone", LIVENESS_ARG, f"--namespace={TARGET_NAMESPACE}"]
    assert "--all-namespaces" not in args


@pytest.mark.parametrize("overlay", ["namespaced", "sharded"])
def test_namespaced_grants_only_inside_the_listed_namespaces(overlay: str) -> None:
    objects = rendered(overlay)
    roles = workload_roles(objects)
    assert sorted(r["metadata"]["namespace"] for r in roles) == SERVED_NAMESPACES
    for role in roles:
        assert permissions([role], "Role") == WORKLOAD, role["metadata"]["namespace"]
    own = (LEASE_ROLE, OPERATOR_NAMESPACE_ROLE)
    bindings = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["name"] not in own]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == SERVED_NAMESPACES
    cluster = permissions(objects, "ClusterRole")
    assert cluster == {**CRD_READ, **NAMESPACE_WATCH, **CLUSTER_CREDENTIALS}
    assert not any(resource == "secrets" for _, resource in cluster), "no cluster-wide access to Secrets"
    container = operator_container(objects)
    assert container["args"] == ["--standalone", LIVENESS_ARG], "the namespace list comes from the env"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOLDRUSH_NAMESPACES"] == ",".join(SERVED_NAMESPACES)


def test_namespaced_list_follows_the_served_entries(tmp_path: Path) -> None:
    """Adding a namespace is one more served/<ns> directory plus the name in namespaces.yaml."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copytree(ROOT / "crds", tmp_path / "crds")
    overlay = tmp_path / OVERLAYS["namespaced"]
    shutil.copytree(overlay / "served" / "team-a", overlay / "served" / "team-c")
    served = overlay / "served" / "team-c" / "kustomization.yaml"
    served.write_text(served.read_text().replace("namespace: team-a", "namespace: team-c"))
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace(
        "  - served/team-b\n", "  - served/team-b\n  - served/team-c\n"))
    listing = overlay / "namespaces.yaml"
    listing.write_text(listing.read_text().replace("namespaces: team-a,team-b", "namespaces: team-a,team-b,team-c"))
    objects = render("namespaced", root=tmp_path)
    assert sorted(r["metadata"]["namespace"] for r in workload_roles(objects)) == ["team-a", "team-b", "team-c"]
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["GOLDRUSH_NAMESPACES"] == "team-a,team-b,team-c"
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == OPERATOR_NAMESPACE


def test_cluster_wide_says_what_it_grants() -> None:
    text = (ROOT / "deploy/overlays/cluster-wide/rbac.yaml").read_text()
    assert "EVERY Secret in EVERY" in text
    assert "deploy/overlays/namespaced" in text


@pytest.mark.parametrize("overlay", ALL)
def test_network_policy_limits_both_directions(overlay: str) -> None:
    objects = rendered(overlay)
    policy = only(objects, "NetworkPolicy", "goldrush-operator")["spec"]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    ports = {p["name"]: p["containerPort"] for p in operator_container(objects)["ports"]}
    assert {ports[p["port"]] for p in ingress["ports"]} == {HEALTH_PORT, METRICS_PORT}
    dns, tls = policy["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert "to" not in tls  # the GoldRush API has no fixed addresses
    assert {(p["port"], p["protocol"]) for p in tls["ports"]} == {(443, "TCP"), (6443, "TCP")}


def test_single_namespace_target_is_one_value(tmp_path: Path) -> None:
    """Changing data.namespace in target.yaml moves the Role, the RoleBinding and the flag together."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copytree(ROOT / "crds", tmp_path / "crds")
    target = tmp_path / OVERLAYS["single-namespace"] / "target.yaml"
    text = target.read_text()
    assert f"namespace: {TARGET_NAMESPACE}\n" in text
    target.write_text(text.replace(f"namespace: {TARGET_NAMESPACE}\n", "namespace: tenant-a\n"))
    objects = render("single-namespace", root=tmp_path)
    assert only(objects, "Role", "goldrush-operator")["metadata"]["namespace"] == "tenant-a"
    assert only(objects, "RoleBinding", "goldrush-operator")["metadata"]["namespace"] == "tenant-a"
    assert operator_container(objects)["args"][-1] == "--namespace=tenant-a"
    assert TARGET_NAMESPACE not in yaml.safe_dump_all(objects)


def test_image_entrypoint_matches_deployment_args() -> None:
    """The Deployment only passes flags: the image's ENTRYPOINT must be `goldrush-operator run`."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["goldrush-operator", "run"]' in dockerfile
    assert "command" not in operator_container(rendered("cluster-wide"))
