"""Runs the Argo CD health probe (main.go here): Argo CD's own verdict on an object.

The probe is a small Go program on top of Argo CD's `util/lua` and `util/settings` and gitops-engine's
`pkg/health` (github.com/argoproj/argo-cd/v3): it registers a Lua health script in an argocd-cm ConfigMap
under `resource.customizations.health.<group>_<kind>`, reads it back through Argo CD's settings manager and
calls `health.GetResourceHealth` as the application controller does, so the script runs in Argo CD's own
gopher-lua sandbox. `support.gotools` builds it once through the Go module proxy and caches it under
`~/.cache/goldrush-operator/argocd-health-<argo-cd version>/` (or `$GOLDRUSH_CACHE_DIR`); a change to main.go,
go.mod or go.sum rebuilds it.

Callers: `tests/unit/test_argocd_health.py`, `support.verdicts`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support import gotools

HEALTH_LUA = Path(__file__).resolve().parents[3] / "deploy" / "argocd" / "health.lua"

# Raised when the probe cannot be built here (no Go toolchain, no module proxy, build failure).
ArgoCDUnavailable = gotools.ToolUnavailable


def argo_cd_version() -> str:
    return gotools.probe_version("argocd-health")


def ensure_binary(timeout: float = 2400) -> Path:
    """The cached probe binary, built first if missing or stale (a cold build takes minutes)."""
    return gotools.ensure_probe("argocd-health", timeout=timeout)


def compute_many(binary: Path, objects: list[dict[str, Any]], script: Path = HEALTH_LUA) -> list[dict[str, str]]:
    """Argo CD's health of each object under `script`, in order, from one probe process.

    Each result is `{"status", "message", "error"}`: `status` is one of Healthy, Progressing, Degraded,
    Suspended, Missing, Unknown (or "" when Argo CD has no verdict); `error` is non-empty when the script
    failed, and then `status` is Unknown, as Argo CD shows it.
    """
    if not objects:
        return []
    stdin = "".join(json.dumps(obj) + "\n" for obj in objects)
    proc = subprocess.run([str(binary), str(script)], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"Argo CD health probe failed: {proc.stderr}")
    results: list[dict[str, str]] = [json.loads(line) for line in proc.stdout.splitlines()]
    if len(results) != len(objects):
        raise AssertionError(f"Argo CD health probe judged {len(results)} of {len(objects)} objects")
    return results


def compute(binary: Path, obj: dict[str, Any], script: Path = HEALTH_LUA) -> dict[str, str]:
    """Argo CD's health of `obj` under `script` (see `compute_many`)."""
    return compute_many(binary, [obj], script)[0]
