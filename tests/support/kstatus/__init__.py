"""Runs the kstatus probe (main.go here): Flux's view of an object's readiness.

The probe is a tiny Go program on top of `sigs.k8s.io/cli-utils/pkg/kstatus/status`, the library Flux
(kustomize-controller health checks) and cli-utils based tools use. `support.gotools` builds it once through
the Go module proxy and caches it under `~/.cache/goldrush-operator/kstatus-<cli-utils version>/` (or
`$GOLDRUSH_CACHE_DIR`); a change to main.go, go.mod or go.sum rebuilds it.

Callers: `tests/e2e/test_ops_gitops.py`, `support.verdicts`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support import gotools

# Raised when the probe cannot be built here (no Go toolchain, no module proxy, build failure).
KstatusUnavailable = gotools.ToolUnavailable


def cli_utils_version() -> str:
    return gotools.probe_version("kstatus")


def cache_dir() -> Path:
    return gotools.probe_path("kstatus").parent


def ensure_binary(timeout: float = 600) -> Path:
    """The cached probe binary, built first if missing or stale."""
    return gotools.ensure_probe("kstatus", timeout=timeout)


def compute(binary: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """kstatus of `obj`: `{"status": "Current" | "InProgress" | "Failed" | ..., "message", "conditions"}`."""
    proc = subprocess.run([str(binary)], input=json.dumps(obj), capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kstatus probe failed: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
