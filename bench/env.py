"""The benchmark environment: control plane with an audit log, simulator, operator processes, measurements.

- Kubernetes writes are counted from the kube-apiserver audit log (level Metadata for every write by the
  operator's own identity, user `goldrush-operator` in `system:masters`, and for every Event write by anyone;
  B12/B13's replica users `goldrush-replica-<i>` likewise, with the request body of their pipeline patches, so
  that finalizer-only patches can be told apart: `Audit.writes_by`).
- GoldRush API calls are counted from the simulator's journal and counters.
- Memory is VmRSS / VmHWM of the operator process from `/proc/<pid>/status`.
- Event-loop lag comes from the operator's `goldrush_event_loop_lag_seconds` histogram (`histogram`,
  `quantile_bound`).
The identity `goldrush-floor` (B1's Kubernetes floor, `bench.floor`) is audited like the operator, so that
its writes cost the kube-apiserver the same, but is not counted as the operator.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import platform
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.ctlplane import ControlPlane, ensure_binaries
from support.kubectl import Kubectl
from support.operator import OperatorProcess
from support.sim import SimProcess

REPO = Path(__file__).resolve().parents[1]
OPERATOR_USER = "goldrush-operator"
FLOOR_USER = "goldrush-floor"
REPLICA_USERS = tuple(f"goldrush-replica-{i}" for i in range(4))  # B12/B13: one identity per replica

AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Request
  users: {json.dumps(list(REPLICA_USERS))}
  resources: [{{group: "goldrush.dev", resources: ["goldrushpipelines"]}}]
  verbs: ["patch", "update"]
- level: Metadata
  users: {json.dumps([OPERATOR_USER, FLOOR_USER, *REPLICA_USERS])}
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: Metadata
  resources: [{{group: "", resources: ["events"]}}, {{group: "events.k8s.io", resources: ["events"]}}]
  verbs: ["create", "update", "patch"]
- level: None
"""

# B10 only (its own control plane): the operator's reads of Secrets, to show which Secrets it read by name.
SECRET_READS_RULE = """\
- level: Metadata
  users: ["goldrush-operator"]
  resources: [{group: "", resources: ["secrets"]}]
  verbs: ["get", "list", "watch"]
"""
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


def start_control_plane(workdir: Path, audit_secret_reads: bool = False) -> ControlPlane:
    """A control plane with the audit policy above (plus `SECRET_READS_RULE` when `audit_secret_reads`)."""
    paths = ensure_binaries()
    policy = workdir / "audit-policy.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    text = AUDIT_POLICY
    if audit_secret_reads:
        text = text.replace("- level: None\n", SECRET_READS_RULE + "- level: None\n")
    policy.write_text(text)
    plane = ControlPlane(
        workdir / "ctlplane", paths["KUBE_APISERVER"], paths["ETCD"],
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={workdir / 'ctlplane' / 'audit.log'}",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
            # Benchmarks create thousands of objects quickly: do not let the server's own APF queueing
            # dominate the measurement (defaults are sized for real clusters).
            "--max-requests-inflight=800",
            "--max-mutating-requests-inflight=400",
            # Server-side sharded lists and watches (alpha): B13's replicas then watch only their shards. It
            # changes nothing for an operator without shards (no shard selector is sent).
            "--feature-gates=ShardedListAndWatch=true",
        ],
    )
    plane.start()
    Kubectl(plane.kubeconfig)("apply", "-k", str(REPO / "crds"))
    Kubectl(plane.kubeconfig).wait_established(
        *(f"{plural}.goldrush.dev" for plural in ("goldrushpipelines", "goldrushcredentials",
                                                  "clustergoldrushcredentials")), timeout=60)
    return plane


class Audit:
    """Reads the audit log incrementally; `mark()` returns an offset, `writes(since)` counts after it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def entries(self, since: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(since)
            data = fh.read()
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def summary(self, since: int) -> dict[str, Any]:
        """Writes by the operator (by verb and resource) and Event writes (any user) since the mark."""
        by: Counter[str] = Counter()
        events = 0
        operator_writes = 0
        for e in self.entries(since):
            if e.get("stage") != "ResponseComplete":
                continue
            ref = e.get("objectRef") or {}
            resource = ref.get("resource", "?") + (("/" + ref["subresource"]) if ref.get("subresource") else "")
            user = (e.get("user") or {}).get("username")
            if resource == "events":
                events += 1
            if user == OPERATOR_USER and e.get("verb") in WRITE_VERBS:
                operator_writes += 1
                by[f"{e.get('verb')} {resource}"] += 1
        return {"operator_writes": operator_writes, "events": events, "by_verb_resource": dict(by)}

    def writes_by(self, since: int) -> list[tuple[str, float, str]]:
        """Every audited write since the mark as (user, time the apiserver received it as epoch seconds,
        "<verb> <resource>"); a pipeline patch whose body (level Request) touches nothing but
        `metadata.finalizers` is "finalizer goldrushpipelines" (the finalizer added alone)."""
        out = []
        for e in self.entries(since):
            if e.get("stage") != "ResponseComplete" or e.get("verb") not in WRITE_VERBS:
                continue
            ref = e.get("objectRef") or {}
            resource = ref.get("resource", "?") + (("/" + ref["subresource"]) if ref.get("subresource") else "")
            stamp = e.get("requestReceivedTimestamp") or e.get("stageTimestamp")
            when = dt.datetime.fromisoformat(stamp).timestamp() if stamp else 0.0
            verb = "finalizer" if _finalizer_only(e.get("requestObject")) else e["verb"]
            out.append(((e.get("user") or {}).get("username", "?"), when, f"{verb} {resource}"))
        return out

    def secret_reads(self, since: int) -> dict[str, int]:
        """The operator's Secret reads since the mark (needs `SECRET_READS_RULE`), as
        {"<verb> <namespace or *>[/<name>]": count}; a LIST or WATCH has no name, a GET has one."""
        by: Counter[str] = Counter()
        for e in self.entries(since):
            if e.get("stage") != "ResponseComplete" or (e.get("user") or {}).get("username") != OPERATOR_USER:
                continue
            ref = e.get("objectRef") or {}
            if ref.get("resource") != "secrets" or e.get("verb") not in ("get", "list", "watch"):
                continue
            where = ref.get("namespace") or "*"
            by[f"{e['verb']} {where}" + (f"/{ref['name']}" if ref.get("name") else "")] += 1
        return dict(sorted(by.items()))


def _finalizer_only(body: Any) -> bool:
    """Whether a patch body (JSON patch or merge patch) changes only `metadata.finalizers`."""
    if isinstance(body, list):
        paths = {op.get("path") for op in body if isinstance(op, dict) and op.get("op") != "test"}
        return bool(paths) and all(str(p).startswith("/metadata/finalizers") for p in paths)
    if not isinstance(body, dict) or set(body) != {"metadata"}:
        return False
    meta = body["metadata"]
    return isinstance(meta, dict) and set(meta) - {"resourceVersion"} == {"finalizers"}


def ssl_context_for(kubeconfig: Path, workdir: Path) -> ssl.SSLContext:
    """A TLS context presenting the client certificate of a kubeconfig written by `write_user_kubeconfig`."""
    cfg = json.loads(kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    user = cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    cert_file = workdir / (kubeconfig.stem + ".crt")
    key_file = workdir / (kubeconfig.stem + ".key")
    cert_file.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key_file.write_bytes(base64.b64decode(user["client-key-data"]))
    key_file.chmod(0o600)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def start_sim(*extra: str) -> SimProcess:
    return SimProcess.start("--service-key", "dev-key", "--latency-ms", "50", "--deploy-seconds", "2",
                            "--journal-size", "2000000", "--log-level", "warning", *extra, timeout=30)


# Set by `bench.run --allocator`: the allocator variables every measured operator process starts with.
ALLOCATOR_ENV: dict[str, str] = {}

# The operator as the image ships it: a virtual environment holding only requirements.lock's pins and the
# package (`make bench` builds it). The development environment also holds the tools' libraries, and some
# of them change what the operator loads (httpx imports its command-line client's `rich` and `pygments`
# when they are installed: about 3 MiB). Set by `bench.run --operator-env`; None: the development one.
RUNTIME_EXECUTABLE = REPO / ".venv-runtime" / "bin" / "goldrush-operator"
OPERATOR_EXECUTABLE: str | None = None


def probe_command(module: str) -> list[str]:
    """`python -m MODULE` in the measured operator's environment (the floors' probes, `bench.lagprobe` and
    `bench.pollfloor`: the same interpreter and library versions as the process they are the floor of)."""
    python = str(Path(OPERATOR_EXECUTABLE).parent / "python") if OPERATOR_EXECUTABLE else sys.executable
    return [python, "-m", module]


def operator_env(**overrides: str) -> dict[str, str]:
    env = {
        **ALLOCATOR_ENV,
        "GOLDRUSH_POLL_FAST_SECONDS": "2",
        "GOLDRUSH_POLL_SLOW_SECONDS": "900",
        "GOLDRUSH_RATE_LIMIT": "200",
        "GOLDRUSH_MAX_CONCURRENCY": "50",
        "GOLDRUSH_REQUEST_TIMEOUT_SECONDS": "30",
        "GOLDRUSH_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def start_operator(kubeconfig: Path, sim: SimProcess, log: Path, env: dict[str, str],
                   namespaces: list[str] | None = None) -> OperatorProcess:
    op = OperatorProcess.start(kubeconfig, sim.base_url, log, namespaces=namespaces, env=env,
                               executable=OPERATOR_EXECUTABLE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not op.alive():
            raise RuntimeError("operator exited at start:\n" + op.log[-3000:])
        if scrape(op) is not None:
            return op
        time.sleep(0.1)
    raise RuntimeError("operator metrics endpoint did not come up")


def scrape(op: OperatorProcess) -> dict[str, float] | None:
    """Prometheus text metrics as {'name{labels}': value}, or None when not reachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def histogram(metrics: dict[str, float], name: str) -> dict[float, float]:
    """The cumulative bucket counts of a Prometheus histogram: {upper bound: count} (+Inf as math.inf)."""
    out: dict[float, float] = {}
    for key, value in metrics.items():
        if key.startswith(name + "_bucket{") and 'le="' in key:
            bound = key.split('le="', 1)[1].split('"', 1)[0]
            out[math.inf if bound == "+Inf" else float(bound)] = value
    return out


def quantile_bound(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float | None, int]:
    """(upper bound of the bucket holding quantile `q` of the observations between two scrapes, their count).

    The value is conservative: the true quantile is at most the bound (None when nothing was observed)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None, 0
    for b, c in zip(bounds, counts, strict=True):
        if c >= q * total:
            return b, int(total)
    return math.inf, int(total)


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    return {"rss_mib": round(out.get("VmRSS", 0), 1), "peak_rss_mib": round(out.get("VmHWM", 0), 1)}


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_gib = round(int(m.group(1)) / 1024 / 1024, 1) if m else 0.0
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_at_start": [round(x, 2) for x in load],
    }


@dataclass
class JournalView:
    """The simulator journal as a list, with helpers."""

    entries: list[dict[str, Any]]

    def writes(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["method"] in WRITE_METHODS]

    def reads(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["method"] == "GET"]

    def route(self, route: str, method: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["route"] == route and (method is None or e["method"] == method)]

    def by_route(self) -> dict[str, int]:
        c: Counter[str] = Counter(f"{e['method']} {e['route']}" for e in self.entries)
        return dict(sorted(c.items()))

    def peak_rate(self, window: float = 1.0) -> float:
        """Most requests that arrived within any `window` seconds (sliding), divided by `window`."""
        times = sorted(e["time"] for e in self.entries)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - window:
                j += 1
            best = max(best, i - j + 1)
        return best / window


def journal(sim: SimProcess, since: int) -> tuple[JournalView, int]:
    entries = sim.journal(since)
    last = entries[-1]["seq"] if entries else since
    return JournalView(entries), last


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))  # nearest-rank
    return round(s[k], 3)
