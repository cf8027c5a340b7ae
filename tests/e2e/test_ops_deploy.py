"""E2E: the kube-apiserver accepts every rendered manifest of deploy/ (server-side dry-run).

`kubectl apply --dry-run=server` runs the full admission chain (schema validation, defaulting, RBAC object
checks, Pod Security admission warnings for the Deployment) without persisting anything. Namespaces are
created for real first, because a namespaced dry-run needs its namespace to exist; the CRD is installed for
real by the `crd_installed` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.kubectl import Kubectl
from unit.test_deploy_manifests import OVERLAYS, render


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_server_side_dry_run_accepts_every_manifest(overlay: str, kubeconfig: Path, crd_installed: None) -> None:
    k = Kubectl(kubeconfig)
    objects = render(overlay)
    assert objects
    # The NetworkPolicy (ingress from the monitoring namespace, egress to DNS and TCP 443/6443) is among them.
    assert any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "goldrush-operator" for o in objects)
    namespaces = {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    namespaces |= {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    for name in sorted(namespaces):
        ns = next((o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == name),
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        k.apply(ns)

    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    proc = k("apply", "--dry-run=server", "-f", "-", input=document, check=False)
    assert proc.returncode == 0, proc.stderr
    # Pod Security admission warns (the Namespace has warn=restricted) if the pod template would violate it.
    assert "PodSecurity" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == len(objects), proc.stdout
    assert all(line.endswith("(server dry run)") for line in lines), proc.stdout
    for obj in objects:
        name = obj["metadata"]["name"]
        assert any(f"/{name} " in line for line in lines), f"{obj['kind']} {name} missing from:\n{proc.stdout}"

    # Server-side apply, the way Flux and Argo CD (ServerSideApply=true) send manifests, is accepted too
    # (--force-conflicts: the test session installed the CRD with a client-side apply first).
    proc = k("apply", "--server-side", "--force-conflicts", "--dry-run=server", "--field-manager=gitops", "-f", "-",
             input=document, check=False)
    assert proc.returncode == 0, proc.stderr
