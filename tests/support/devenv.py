"""`make dev` / `make dev-down`: the operator running for real on the local control plane.

`up` (after `make cluster-up`) starts the API simulator and the operator as background processes (PIDs and
ports in `<dir>/devenv.json`, logs in `<dir>/*.log`), installs the CRD, applies the samples (a Secret and
pipelines with postgres, kafka and webhook destinations) into namespace `goldrush-dev`, and shows
`kubectl get goldrushpipelines` until they are RUNNING (or PAUSED, as one sample asks). `down` stops both
processes by PID. Called by the Makefile only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.ctlplane import REPO, alive, free_port, stop_pids
from support.kubectl import Kubectl

NAMESPACE = "goldrush-dev"
SERVICE_KEY = "dev-key"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc.pid


def _wait_for_sim(log: Path, pid: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("goldrush-sim listening on "):
                return line.split("listening on ", 1)[1].strip()
        if not alive(pid):
            break
        time.sleep(0.1)
    raise RuntimeError(f"the simulator did not start; see {log}")


def up(directory: Path, sim_port: int) -> int:
    state_file = directory / "devenv.json"
    if state_file.exists():
        down(directory)
    kubeconfig = directory / "kubeconfig"
    if not kubeconfig.exists():
        print("no control plane: run `make cluster-up` first (make dev does)", file=sys.stderr)
        return 1
    kubectl = Kubectl(kubeconfig)
    state: dict[str, object] = {}

    sim_log = directory / "sim.log"
    sim_pid = _spawn([_bin("goldrush-sim"), "--host", "127.0.0.1", "--port", str(sim_port),
                      "--service-key", SERVICE_KEY, "--state-file", str(directory / "sim-state.json")], sim_log)
    state["sim_pid"] = sim_pid
    state_file.write_text(json.dumps(state))
    root = _wait_for_sim(sim_log, sim_pid)
    api_url = f"{root}/platform/pipeline-api/"

    kubectl("apply", "-k", str(REPO / "crds"))
    kubectl.wait_established(*(f"{plural}.goldrush.dev" for plural in
                               ("goldrushpipelines", "goldrushcredentials", "clustergoldrushcredentials")))
    if kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        kubectl("create", "namespace", NAMESPACE)

    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "GOLDRUSH_API_URL": api_url,
        "GOLDRUSH_SERVICE_KEY": SERVICE_KEY,
        "GOLDRUSH_POLL_SLOW_SECONDS": "60",
        "GOLDRUSH_METRICS_PORT": str(metrics_port),
        "GOLDRUSH_HEALTH_PORT": str(health_port),
        "PYTHONUNBUFFERED": "1",
    }
    op_log = directory / "operator.log"
    state.update(operator_pid=_spawn([_bin("goldrush-operator"), "run", "--all-namespaces"], op_log, env),
                 api_url=api_url, metrics_port=metrics_port, health_port=health_port)
    state_file.write_text(json.dumps(state))

    kubectl.in_namespace(NAMESPACE)("apply", "-k", str(REPO / "samples"))
    names = kubectl.in_namespace(NAMESPACE)("get", "goldrushpipelines", "-o", "name").stdout.split()
    deadline = time.monotonic() + 120
    ok = False
    while time.monotonic() < deadline:
        items = kubectl.in_namespace(NAMESPACE).json("get", "goldrushpipelines")["items"]
        ready = [
            i for i in items
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in i.get("status", {}).get("conditions", []))
        ]
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        print(kubectl.in_namespace(NAMESPACE)("get", "goldrushpipelines").stdout)
        if len(ready) == len(names) and names:
            ok = True
            break
        if not alive(int(state["operator_pid"])):  # type: ignore[call-overload]
            print(f"the operator exited; see {op_log}", file=sys.stderr)
            return 1
        time.sleep(2)
    print(f"""
goldrush-operator is running against the local GoldRush API simulator.

  export KUBECONFIG={kubeconfig}
  kubectl -n {NAMESPACE} get goldrushpipelines -o wide      # or: kubectl get grp -A
  kubectl -n {NAMESPACE} describe grp base-transfers-postgres
  kubectl -n {NAMESPACE} patch grp base-transfers-postgres --type=merge -p '{{"spec":{{"paused":true}}}}'
  GOLDRUSH_API_URL={api_url} GOLDRUSH_SERVICE_KEY={SERVICE_KEY} \\
    goldrush-operator describe base-transfers-postgres -n {NAMESPACE}

  simulator:  {api_url}  (service key {SERVICE_KEY}; admin API {root}/_sim/)
  metrics:    http://127.0.0.1:{metrics_port}/metrics    liveness: http://127.0.0.1:{health_port}/healthz
  logs:       {op_log}  {sim_log}

Stop everything with: make dev-down
""")
    return 0 if ok else 1


def down(directory: Path) -> int:
    state_file = directory / "devenv.json"
    if not state_file.exists():
        return 0
    state = json.loads(state_file.read_text())
    pids = [int(state[k]) for k in ("operator_pid", "sim_pid") if k in state]
    stop_pids(pids)
    state_file.unlink()
    print(f"stopped operator and simulator {sorted(pids)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devenv")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=REPO / ".dev")
    parser.add_argument("--sim-port", type=int, default=18080)
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if args.command == "up":
        return up(directory, args.sim_port)
    return down(directory)


if __name__ == "__main__":
    sys.exit(main())
