"""The operator's identity in the e2e tier: the default install's ServiceAccount under its narrowed RBAC.

The RBAC is the one `deploy/overlays/namespaced` ships (rendered with `kubectl kustomize`, never copied):
its ClusterRoles and ClusterRoleBindings (list/watch of CRDs and of Namespace names) are installed once per
control plane, and its Role + RoleBinding (the same in every served namespace) are bound in each namespace a
test serves, the way the overlay binds them in team-a and team-b. The Roles of the operator's own namespace
(Leases, the key Secrets of ClusterGoldRushCredentials) are bound in the namespace a test gives the operator
as its own (`POD_NAMESPACE`, `GOLDRUSH_LEASE_NAMESPACE`). Nothing else is granted: Secrets are
readable only in the namespaces the operator serves.

Used by tests/e2e/conftest.py (the operators the tier starts), the tests that start an operator themselves
(test_health_snapshots.py, test_ops_gitops.py), test_smoke.py (the identity really is narrowed) and
test_ops_rbac.py (the same user and groups on its audited plane).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.ctlplane import ControlPlane
from support.kubectl import Kubectl
from support.operator import wait_for
from unit.test_deploy_manifests import render

SA_USER = "system:serviceaccount:goldrush-system:goldrush-operator"
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:goldrush-system", "system:authenticated"]
CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding")
OPERATOR_NAMESPACE = "goldrush-system"  # where the overlay puts the operator's own Roles
NAMESPACE_KINDS = ("Role", "RoleBinding")
OVERLAY = "namespaced"

# A request the apiserver denied, as kopf (APIForbiddenError), the kubernetes client ("(403)\nReason:
# Forbidden") and the operator's adapter ("Kubernetes API 403 Forbidden") log it. The simulator answers 403
# only to regular API keys, which no test of the tier configures.
FORBIDDEN = re.compile(r"forbidden|\(403\)|status 403|: 403\b", re.IGNORECASE)

Obj = dict[str, Any]


def _without_namespace(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    del obj["metadata"]["namespace"]
    return obj


# The text log's timestamp (local time, as `logging` writes it).
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
DEBUG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG ")
# The GoldRush API's own 403 (a regular API key held by a credentials object) is not an RBAC denial.
GOLDRUSH_API_403 = re.compile(r"GoldRush API (?:refused|rejected) the (?:service )?key \(403\)")
# A denial is logged a moment after the apiserver answered it (the operator's event loop may be busy).
LOG_DELAY_SECONDS = 2.0


def _logged_at(line: str) -> float | None:
    match = TIMESTAMP.match(line)
    if not match:
        return None
    return time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000


def forbidden_lines(log: str, unready: Iterable[tuple[float, float]] = ()) -> list[str]:
    """The lines of an operator log that show a request denied by RBAC.

    Denials logged while the apiserver was restarting (`unready`: the plane's `(stopped, ready)` windows) are
    left out: a restarted kube-apiserver serves requests before its RBAC caches are filled and denies them
    until it is ready. That cannot hide a missing grant: a request the RBAC does not allow is denied again
    on every retry, after the apiserver is ready too.
    """
    windows = list(unready)

    def excused(line: str) -> bool:
        at = _logged_at(line)
        return at is not None and any(start <= at <= ready + LOG_DELAY_SECONDS for start, ready in windows)

    # A denial is logged at WARNING or above (the adapter's retry, kopf's failed request); DEBUG lines are body
    # dumps, which may quote an earlier (excused) denial kept in a condition message.
    return [line for line in log.splitlines()
            if FORBIDDEN.search(line) and not excused(line) and not DEBUG_LINE.match(line)
            and not GOLDRUSH_API_403.search(line)]


def write_operator_kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """A kubeconfig with a client certificate for the operator's ServiceAccount user and groups."""
    return plane.write_user_kubeconfig(path, SA_USER, SA_GROUPS)


def can_i(admin: Kubectl, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` for the operator's identity (`namespace=None`: across all namespaces)."""
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    proc = admin("auth", "can-i", verb, resource, *scope, f"--as={SA_USER}",
                 *[f"--as-group={g}" for g in SA_GROUPS], check=False)
    return proc.stdout.strip() == "yes"


@dataclass(frozen=True)
class NamespacedRBAC:
    """The namespaced overlay's RBAC split into its cluster part and its per-namespace part."""

    cluster: list[Obj]
    per_namespace: list[Obj]  # Role + RoleBinding without a namespace
    own: list[Obj]  # the Roles + RoleBindings of the operator's own namespace (Leases, credentials' key Secrets)

    @classmethod
    def rendered(cls) -> NamespacedRBAC:
        objects = render(OVERLAY)
        cluster = [o for o in objects if o["kind"] in CLUSTER_KINDS]
        by_namespace: dict[str, list[Obj]] = {}
        own: list[Obj] = []
        for obj in (o for o in objects if o["kind"] in NAMESPACE_KINDS):
            if obj["metadata"]["namespace"] == OPERATOR_NAMESPACE:
                own.append(_without_namespace(obj))
                continue
            by_namespace.setdefault(obj["metadata"]["namespace"], []).append(_without_namespace(obj))
        assert by_namespace, f"the {OVERLAY} overlay binds no Role"
        (first, template), *others = sorted(by_namespace.items())
        for namespace, objs in others:  # every served namespace gets the same objects
            assert objs == template, f"the {OVERLAY} overlay's RBAC in {namespace} differs from {first}'s"
        return cls(cluster, template, own)

    def install_cluster_scope(self, admin: Kubectl) -> None:
        admin.apply({"apiVersion": "v1", "kind": "List", "items": self.cluster})

    def for_namespace(self, namespace: str) -> list[Obj]:
        """The Role and RoleBinding the overlay puts in a served namespace, for `namespace`."""
        objects = copy.deepcopy(self.per_namespace)
        for obj in objects:
            obj["metadata"]["namespace"] = namespace
        return objects

    def serve_as_operator_namespace(self, admin: Kubectl, namespace: str) -> None:
        """Bind the Roles the overlay puts in the operator's own namespace (Leases, the key Secrets of
        ClusterGoldRushCredentials) in `namespace`, which a test uses as the operator's namespace."""
        objects = copy.deepcopy(self.own)
        for obj in objects:
            obj["metadata"]["namespace"] = namespace
        admin.apply({"apiVersion": "v1", "kind": "List", "items": objects})

    def serve(self, admin: Kubectl, namespace: str) -> None:
        """Bind the Role in an existing `namespace`."""
        admin.apply({"apiVersion": "v1", "kind": "List", "items": self.for_namespace(namespace)})


def wait_until_bound(admin: Kubectl, namespace: str) -> None:
    """Wait until the apiserver's authorizer lets the operator watch Secrets in `namespace` (RBAC is cached)."""
    wait_for(lambda: can_i(admin, "watch", "secrets", namespace), 20, interval=0.2,
             message=f"the operator's Role to take effect in {namespace}")
