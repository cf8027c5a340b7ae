"""Builds and runs the kstatus probe (main.go here): Flux's view of an object's readiness.

The probe is a tiny Go program on top of `sigs.k8s.io/cli-utils/pkg/kstatus/status`, the library Flux
(kustomize-controller health checks) and cli-utils based tools use. It is built once through the Go module
proxy and cached under `~/.cache/goldrush-operator/kstatus-<cli-utils version>/` (or `$GOLDRUSH_CACHE_DIR`);
a change to main.go, go.mod or go.sum rebuilds it.

Callers: `tests/e2e/test_ops_kstatus.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent
SOURCE_FILES = ("main.go", "go.mod", "go.sum")


class KstatusUnavailable(RuntimeError):
    """The probe cannot be built here (no Go toolchain or no module proxy)."""


def cli_utils_version() -> str:
    match = re.search(r"sigs\.k8s\.io/cli-utils (v\S+)", (SOURCE / "go.mod").read_text())
    if not match:
        raise KstatusUnavailable("go.mod does not require sigs.k8s.io/cli-utils")
    return match.group(1)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir() -> Path:
    root = Path(os.environ.get("GOLDRUSH_CACHE_DIR") or Path.home() / ".cache" / "goldrush-operator")
    return root / f"kstatus-{cli_utils_version()}"


def ensure_binary(timeout: float = 600) -> Path:
    """The cached probe binary, built first if missing or stale."""
    directory = cache_dir()
    binary, stamp = directory / "kstatus", directory / "source.sha256"
    fingerprint = _fingerprint()
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return binary
    go = shutil.which("go")
    if go is None:
        raise KstatusUnavailable("the Go toolchain (go) is not installed; it builds the kstatus probe")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        # Private Go caches, removed with the temporary directory: only the binary is kept.
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -modcacherw",
               "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
               "GOMODCACHE": str(Path(tmp) / "mod"), "GOCACHE": str(Path(tmp) / "cache")}
        out = Path(tmp) / "kstatus"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(out), "."], cwd=SOURCE, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise KstatusUnavailable(f"go build of the kstatus probe failed:\n{proc.stderr[-4000:]}")
        out.replace(binary)  # atomic: a concurrent run sees the old binary or the new one
    stamp.write_text(fingerprint + "\n")
    return binary


def compute(binary: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """kstatus of `obj`: `{"status": "Current" | "InProgress" | "Failed" | ..., "message", "conditions"}`."""
    proc = subprocess.run([str(binary)], input=json.dumps(obj), capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kstatus probe failed: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
