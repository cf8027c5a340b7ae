"""Start and drive a `goldrush-sim` subprocess from tests (sim, client and e2e suites).

`SimProcess.start(*extra_args)` runs the `goldrush-sim` script of the current virtualenv
(the bin directory of `sys.executable`) with `--port 0`, waits for its
`goldrush-sim listening on http://HOST:PORT` line and exposes `base_url`, `admin_url`,
`service_key` and `pid`. Small synchronous helpers wrap the `/_sim/` admin API; `stop()`
sends SIGTERM, then SIGKILL. Use as a context manager to always stop the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

READY_PREFIX = "goldrush-sim listening on "


class SimStartError(RuntimeError):
    """The simulator did not report readiness; the message holds its output."""


class SimAdminError(RuntimeError):
    """An admin call answered with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"admin call failed with HTTP {status}: {body}")
        self.status = status
        self.body = body


def sim_executable() -> Path:
    """The `goldrush-sim` console script next to the running interpreter."""
    return Path(sys.executable).parent / "goldrush-sim"


class SimProcess:
    """A running simulator subprocess."""

    def __init__(self, proc: subprocess.Popen[str], root_url: str, service_key: str, stderr_path: Path) -> None:
        self.proc = proc
        self.root_url = root_url.rstrip("/")
        self.base_url = self.root_url + "/platform/pipeline-api/"
        self.admin_url = self.root_url + "/_sim/"
        self.service_key = service_key
        self.pid = proc.pid
        self.port = int(self.root_url.rsplit(":", 1)[1])
        self.stderr_path = stderr_path
        self._http = httpx.Client(timeout=10.0)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, *extra_args: str, timeout: float = 15.0, env: dict[str, str] | None = None) -> SimProcess:
        """Spawn `goldrush-sim --port 0 *extra_args`; raise `SimStartError` with its output on failure."""
        args = [str(sim_executable()), "--port", "0", *extra_args]
        service_key = "dev-key"
        for index, arg in enumerate(args):
            spec = None
            if arg == "--service-key" and index + 1 < len(args):
                spec = args[index + 1]
            elif arg.startswith("--service-key="):
                spec = arg.removeprefix("--service-key=")
            if spec is not None:
                key, sep, group = spec.rpartition("=")
                service_key = key if sep and key and group else spec
                break
        err_fd, err_name = tempfile.mkstemp(prefix="goldrush-sim-", suffix=".stderr")
        stderr_path = Path(err_name)
        with os.fdopen(err_fd, "w") as err:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **(env or {})},
            )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline() if proc.stdout else ""))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        line = lines[0].strip() if lines else ""
        if not line.startswith(READY_PREFIX):
            proc.kill()
            try:
                rest, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                rest = ""
            stderr = stderr_path.read_text(errors="replace")
            stderr_path.unlink(missing_ok=True)
            raise SimStartError(
                f"goldrush-sim did not become ready within {timeout}s (exit code {proc.returncode}).\n"
                f"command: {' '.join(args)}\nstdout: {line}{rest or ''}\nstderr:\n{stderr}"
            )
        return cls(proc, line[len(READY_PREFIX) :], service_key, stderr_path)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._http.close()
        return self.proc.returncode

    def stderr(self) -> str:
        """Everything the simulator logged so far."""
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self.stderr_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ Pipeline API

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for the Pipeline API authenticated with `key` (default the service key)."""
        headers = {"Authorization": f"Bearer {key or self.service_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def api(self, method: str, path: str = "", json: Any = None, key: str | None = None) -> httpx.Response:
        """One Pipeline API request; `path` is relative to `base_url` (e.g. `pipe_x/status/`)."""
        headers = {"Authorization": f"Bearer {key or self.service_key}"}
        return self._http.request(method, self.base_url + path.lstrip("/"), json=json, headers=headers)

    def wait_phase(self, pipeline_id: str, phase: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll `/status/` until the runtime phase equals `phase`; returns the status data."""
        deadline = time.monotonic() + timeout
        data: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.api("GET", f"{pipeline_id}/status/")
            if response.status_code == 200:
                data = response.json()["data"]
                if data["status"] == phase:
                    return data
            time.sleep(0.05)
        raise AssertionError(f"pipeline {pipeline_id} did not reach {phase} in {timeout}s (last: {data})")

    # ------------------------------------------------------------ admin API

    def admin_response(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """Raw admin request; `path` like `faults`, `/_sim/faults` or `pipelines/pipe_x/phase`."""
        path = path.lstrip("/").removeprefix("_sim/")
        return self._http.request(method, self.admin_url + path, json=json)

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Admin request returning the parsed JSON answer; raises `SimAdminError` on HTTP errors."""
        response = self.admin_response(method, path, json)
        if response.status_code >= 400:
            raise SimAdminError(response.status_code, response.text)
        return response.json() if response.content else None

    def reset(self) -> None:
        self.admin("POST", "reset")

    def faults(self, **kw: Any) -> dict[str, Any]:
        """Merge faults (`POST /_sim/faults`); with no arguments just read them."""
        if not kw:
            return dict(self.admin("GET", "faults"))
        return dict(self.admin("POST", "faults", kw))

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def counters(self) -> dict[str, Any]:
        return dict(self.admin("GET", "counters"))

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"journal?since={since}")["entries"])

    def pipelines(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "pipelines")["items"])

    def seed(self, **fields: Any) -> dict[str, Any]:
        """Seed a pipeline out of band (`POST /_sim/pipelines`, default group `group_foreign`)."""
        return dict(self.admin("POST", "pipelines", fields))

    def force_phase(self, pipeline_id: str, phase: str, log: str | None = None) -> dict[str, Any]:
        return dict(self.admin("POST", f"pipelines/{pipeline_id}/phase", {"phase": phase, "log": log}))

    def set_metrics(self, pipeline_id: str, **values: float) -> dict[str, Any]:
        """Hold `/metrics/` fields (`POST /_sim/pipelines/{id}/metrics`); answers the metrics as served."""
        return dict(self.admin("POST", f"pipelines/{pipeline_id}/metrics", values))

    def metrics(self, pipeline_id: str) -> dict[str, Any]:
        """What `GET /{id}/metrics/` answers now (`GET /_sim/pipelines/{id}/metrics`: not journalled)."""
        return dict(self.admin("GET", f"pipelines/{pipeline_id}/metrics"))


def example_pipeline(**overrides: Any) -> dict[str, Any]:
    """A valid create body (Postgres, unbounded) with `overrides` applied on top."""
    body: dict[str, Any] = {
        "name": "From Base Swap to Postgres",
        "project": "pipeline-api-hr-1wk-unbounded",
        "description": "Base swaps, unbounded",
        "topic": "base.mainnet.ref.block.swap.v3",
        "destination_type": "postgres",
        "destination_config": {
            "type": "postgres",
            "url": "postgresql://db.example.com:5432/analytics",
            "user": "pipeline",
            "password": "s3cret",
        },
        "transforms": {"swaps": "SELECT chain_name, block_height, tx_hash FROM swaps WHERE protocol = 'uniswap_v3'"},
        "execution_mode": "unbounded",
        "execution_start_from": "44745000",
    }
    body.update(overrides)
    return body
