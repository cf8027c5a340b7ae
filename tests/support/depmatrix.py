"""Runs the unit and sim tiers against the lowest and the newest dependency versions that pyproject allows.

`make test-deps` (run by `make test`) calls `python -m support.depmatrix`. For each resolution (uv's
`lowest-direct`: every direct runtime dependency at its declared floor; `highest`: the newest allowed) it
creates a throwaway virtual environment, installs the operator, the simulator and the pinned dev tools
there, prints the resolved runtime versions, and runs `pytest tests/unit tests/sim`. Both resolutions run
concurrently; uv's package cache keeps repeated runs fast.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESOLUTIONS = ("lowest-direct", "highest")


def _uv() -> str:
    local = Path(sys.executable).parent / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: install the dev dependencies (make venv)")
    return found


def _runtime_names() -> list[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d.split(">")[0].split("<")[0].split("=")[0].strip() for d in deps]


def run(resolution: str, workdir: Path, pytest_args: list[str]) -> tuple[str, int, str]:
    """Create the venv for `resolution`, install, run the tiers; returns (resolution, exit code, log)."""
    venv = workdir / resolution
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    log: list[str] = []

    def step(*cmd: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=env,
                              cwd=REPO, timeout=1200, **kwargs)  # type: ignore[call-overload]
        log.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        return proc  # type: ignore[no-any-return]

    uv = _uv()
    for cmd in (
        (uv, "venv", "--quiet", "--python", sys.executable, str(venv)),
        (uv, "pip", "install", "--quiet", "--python", str(python), "--resolution", resolution,
         "-e", ".[dev]", "-e", "./operator"),
    ):
        if step(*cmd).returncode != 0:
            return resolution, 1, "\n".join(log)
    versions = step(uv, "pip", "freeze", "--python", str(python)).stdout.splitlines()
    wanted = {n.lower().replace("_", "-") for n in _runtime_names()}
    log.append("resolved: " + ", ".join(v for v in versions if v.split("==")[0].lower() in wanted))
    test_env = {**env, "PYTHONPATH": f"{REPO / 'operator'}:{REPO / 'tests'}"}
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args],
        capture_output=True, text=True, check=False, env=test_env, cwd=REPO, timeout=1800,
    )
    log.append(proc.stdout[-6000:] + proc.stderr[-2000:])
    return resolution, proc.returncode, "\n".join(log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="unit + sim tiers on the lowest and newest dependencies")
    parser.add_argument("pytest_args", nargs="*", default=["tests/unit", "tests/sim"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="goldrush-deps-") as tmp, ThreadPoolExecutor(len(RESOLUTIONS)) as pool:
        results = list(pool.map(lambda r: run(r, Path(tmp), args.pytest_args), RESOLUTIONS))
    failed = 0
    for resolution, code, log in results:
        status = "ok" if code == 0 else f"FAILED ({code})"
        print(f"[deps] {resolution}: {status}", file=sys.stderr)
        resolved = [line for line in log.splitlines() if line.startswith("resolved: ")]
        print("\n".join(resolved), file=sys.stderr)
        if code != 0:
            failed += 1
            print(log, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
