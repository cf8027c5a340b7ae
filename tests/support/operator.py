"""Runs the real operator (`goldrush-operator run`) as a separate process for e2e tests and benchmarks.

Its log (stdout + stderr) goes to a file so tests can assert on it (e.g. that no secret leaks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from support.ctlplane import free_port, stop_pids


def operator_executable() -> str:
    return str(Path(sys.executable).parent / "goldrush-operator")


def jemalloc_env() -> dict[str, str]:
    """The allocator variables the image sets (Dockerfile), pointing at Debian's libjemalloc.so.2 here.

    `make test` and `make bench` install the package libjemalloc2 when it is missing.
    """
    found = sorted(Path("/usr/lib").glob("*/libjemalloc.so.2"))
    if not found:
        raise RuntimeError("libjemalloc.so.2 is missing: `make test` installs it (Debian package libjemalloc2)")
    return {"LD_PRELOAD": str(found[0]), "PYTHONMALLOC": "malloc",
            "MALLOC_CONF": "tcache:false,background_thread:true,dirty_decay_ms:1000"}


class OperatorProcess:
    """One operator process; `stop()` (SIGTERM, then SIGKILL) or `kill()` (SIGKILL at once)."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, metrics_port: int, health_port: int) -> None:
        self.proc = proc
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.health_port = health_port

    @classmethod
    def start(
        cls,
        kubeconfig: Path,
        api_url: str,
        log_path: Path,
        *,
        namespaces: list[str] | None = None,
        service_key: str | None = "dev-key",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        executable: str | None = None,
    ) -> OperatorProcess:
        metrics_port, health_port = free_port(), free_port()
        full_env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "GOLDRUSH_API_URL": api_url,
            "GOLDRUSH_POLL_FAST_SECONDS": "0.5",
            "GOLDRUSH_POLL_SLOW_SECONDS": "30",
            "GOLDRUSH_RATE_LIMIT": "200",
            "GOLDRUSH_MAX_CONCURRENCY": "20",
            "GOLDRUSH_METRICS_PORT": str(metrics_port),
            "GOLDRUSH_HEALTH_PORT": str(health_port),
            "GOLDRUSH_REQUEST_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
        full_env.pop("GOLDRUSH_SERVICE_KEY", None)
        if service_key:
            full_env["GOLDRUSH_SERVICE_KEY"] = service_key
        full_env.update(env or {})
        cmd = [executable or operator_executable(), "run", *(args or [])]
        for ns in namespaces or []:
            cmd += ["--namespace", ns]
        if not namespaces:
            cmd.append("--all-namespaces")
        log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return cls(proc, log_path, metrics_port, health_port)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        stop_pids([self.proc.pid])
        self.proc.wait(5)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.25, message: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns a truthy value; return it, or fail with `message`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")
