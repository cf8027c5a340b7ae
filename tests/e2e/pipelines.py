"""Helpers for the operator e2e tests: manifests, status/condition readers, simulator journal queries."""

from __future__ import annotations

import base64
import copy
from typing import Any

from support.kubectl import Kubectl
from support.operator import wait_for
from support.sim import SimProcess

CANARY = "canary-Pa55w0rd-7f3e9b1c"


def secret_manifest(name: str = "dest", data: dict[str, str] | None = None) -> dict[str, Any]:
    values = data if data is not None else {"password": CANARY}
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def pipeline_manifest(name: str = "p1", **spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "e2e-project",
        "description": "e2e pipeline",
        "topic": "base.mainnet.ref.block.transfers",
        "destination": {
            "type": "postgres",
            "config": {"url": "postgresql://db.example.com:5432/analytics", "user": "pipeline"},
            "secretRefs": {"password": {"name": "dest", "key": "password"}},
        },
        "execution": {"mode": "unbounded", "startFrom": "44745000"},
    }
    spec.update(copy.deepcopy(spec_overrides))
    return {"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushPipeline",
            "metadata": {"name": name}, "spec": spec}


def get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "goldrushpipeline", name)
    return result


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def wait_phase(
    kubectl: Kubectl, name: str, phase: str, ready: str | None = None, timeout: float = 40
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kubectl, name)
        status = obj.get("status") or {}
        if status.get("phase") != phase:
            return None
        if ready is not None and (condition(obj, "Ready") or {}).get("status") != ready:
            return None
        return obj

    result: dict[str, Any] = wait_for(check, timeout, message=f"{name} phase {phase} ready={ready}")
    return result


def wait_reason(
    kubectl: Kubectl, name: str, ctype: str, status: str, reason: str, timeout: float = 40
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kubectl, name)
        c = condition(obj, ctype) or {}
        return obj if (c.get("status"), c.get("reason")) == (status, reason) else None

    result: dict[str, Any] = wait_for(check, timeout, message=f"{name} {ctype}={status} reason {reason}")
    return result


def writes(sim: SimProcess, route: str | None = None) -> list[dict[str, Any]]:
    """Journal entries of API writes (POST, PATCH, PUT, DELETE), optionally one route."""
    return [
        e for e in sim.journal()
        if e["method"] in ("POST", "PATCH", "PUT", "DELETE") and (route is None or e["route"] == route)
    ]


def events(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", "events")["items"]
    return items
