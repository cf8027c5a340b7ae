"""E2E: `make dev` / `make dev-down` bring the whole local setup up and leave no process behind.

Runs the same commands as the Makefile on a private control plane in a temporary directory (an operator
watching all namespaces must not share the session's cluster with the other tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.ctlplane import REPO, alive

PY = sys.executable


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'operator'}:{REPO / 'tests'}"}
    return subprocess.run([PY, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_dev_up_and_down_leave_nothing_running(tmp_path: Path) -> None:
    from support.ctlplane import free_port

    directory = tmp_path / "dev"
    pids: list[int] = []
    try:
        up = _run("support.ctlplane", "up", "--dir", str(directory))
        assert up.returncode == 0, up.stderr
        pids += list(json.loads((directory / "state.json").read_text())["pids"].values())
        dev = _run("support.devenv", "up", "--dir", str(directory), "--sim-port", str(free_port()))
        assert dev.returncode == 0, dev.stdout + dev.stderr
        state = json.loads((directory / "devenv.json").read_text())
        pids += [state["operator_pid"], state["sim_pid"]]
        assert all(alive(p) for p in pids)
        table = dev.stdout
        for name in ("base-transfers-postgres", "eth-logs-kafka", "base-swaps-webhook"):
            assert name in table
        assert "make dev-down" in dev.stdout and "KUBECONFIG=" in dev.stdout
    finally:
        down = _run("support.devenv", "down", "--dir", str(directory))
        plane = _run("support.ctlplane", "down", "--dir", str(directory))
    assert down.returncode == 0 and plane.returncode == 0
    assert pids and not [p for p in pids if alive(p)]
