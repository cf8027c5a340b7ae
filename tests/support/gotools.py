"""Builds and caches the ecosystem's own Go programs that the tests judge our artefacts with.

Two kinds, one build mechanism (`_install`: `go install` with private Go module and build caches in a
temporary directory that is deleted right after the build, so only the binary stays on disk; `main` builds
what is missing two at a time with one shared temporary cache, deleted when all are built):

- tools (`TOOLS`): `go install <package>@<version>` from the Go module proxy, cached under
  `~/.cache/goldrush-operator/tools/<name>-<version>/` (or `$GOLDRUSH_CACHE_DIR/tools/...`);
- probes (`PROBES`): small Go programs kept in this repository (`tests/support/<dir>/`: main.go, go.mod,
  go.sum) on top of an ecosystem library, cached under `~/.cache/goldrush-operator/<name>-<version>/`, where
  the version is that of the library in go.mod; a change to main.go, go.mod or go.sum rebuilds the probe.

Callers: test fixtures (`ensure("helm")`, `ensure_probe("kstatus")` through `support.kstatus` and
`support.argocd`), `support.manifestlint` (`make lint`), and `make ensure-tools` (`python -m support.gotools`),
which `make test` runs first, before the lint, so that a cold CI run builds each program exactly once and all
of them in one pool with one shared Go cache.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Tool:
    """A Go program installed by `go install <package>@<version>`; `binary` is the installed file name."""

    package: str
    version: str
    binary: str
    ldflags: str = ""
    tags: str = ""  # Go build tags (comma-separated); part of the cache directory's name


@dataclass(frozen=True)
class Probe:
    """A Go program whose source is `tests/support/<directory>/`, built against the modules its go.sum pins.

    `library` is the module whose version (read from go.mod) names the cache directory.
    """

    directory: str
    library: str
    binary: str
    ldflags: str = ""

    @property
    def source(self) -> Path:
        return SUPPORT / self.directory


# One row per tool; the version is the single place to bump it.
TOOLS: dict[str, Tool] = {
    # Validates manifests against JSON schemas (CRDs-catalog layout); judges schemas/ and samples/.
    "kubeconform": Tool("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0", "kubeconform"),
    # Validates manifests the way the apiserver does (structural schema, CEL) from local CRD files.
    "kubectl-validate": Tool("sigs.k8s.io/kubectl-validate", "v0.0.4", "kubectl-validate"),
    # The chart's own tool: lint, template, install and upgrade (tests/unit/test_helm_chart.py,
    # tests/e2e/test_ops_helm.py).
    "helm": Tool("helm.sh/helm/v3/cmd/helm", "v3.22.0", "helm",
                 ldflags="-X helm.sh/helm/v3/internal/version.version=v3.22.0"),
    # Best-practice checks of the rendered kustomize overlays and chart (tests/unit/test_deploy_lint.py).
    "kube-score": Tool("github.com/zegl/kube-score/cmd/kube-score", "v1.20.0", "kube-score"),
    # `promtool check rules` / `promtool test rules` for the shipped PrometheusRule (tests/unit/test_monitoring.py).
    # remove_all_sd (Prometheus >= 3.10) leaves out the service-discovery plugins (cloud SDKs, client-go),
    # which promtool's rule commands never use: most of the build time of a full promtool.
    "promtool": Tool("github.com/prometheus/prometheus/cmd/promtool", "v0.316.0", "promtool", tags="remove_all_sd"),
}

# One row per probe; bump its library in the probe's go.mod (then `go mod tidy` there).
PROBES: dict[str, Probe] = {
    "kstatus": Probe("kstatus", "sigs.k8s.io/cli-utils", "kstatus"),
    # Stripped (-s -w): Argo CD's util/lua pulls in most of Argo CD; the symbol tables would double the file.
    "argocd-health": Probe("argocd", "github.com/argoproj/argo-cd/v3", "argocd-health", ldflags="-s -w"),
    # Strict decoding of the Grafana dashboard with Grafana's own schema types (tests/unit/test_monitoring.py).
    "grafana-dashboard-check": Probe("grafana", "github.com/grafana/grafana-foundation-sdk/go",
                                     "grafana-dashboard-check"),
}
PROBE_SOURCES = ("main.go", "go.mod", "go.sum")
# Set by main() for the builds of one run: a directory for the Go module and build caches they share.
SHARED_GO_CACHE_ENV = "GOLDRUSH_GO_BUILD_CACHE"
# Two builds at a time: each is parallel in compiling, but downloading and linking leave a core idle.
PARALLEL_BUILDS = 2
# The order `main` starts the builds in: the longest first (argocd-health builds most of Argo CD; a cold
# pool of all eight took about 13 minutes on 2 cores), and kstatus a little after kubectl-validate, whose
# Kubernetes libraries (k8s.io/* v0.30.1) it shares through the shared build cache. A name missing here
# goes last.
BUILD_ORDER = ("argocd-health", "helm", "promtool", "kubectl-validate", "kube-score", "kstatus",
               "grafana-dashboard-check", "kubeconform")


class ToolUnavailable(RuntimeError):
    """The program cannot be built here (no Go toolchain, module refused, or build failure)."""


def cache_base() -> Path:
    return Path(os.environ.get("GOLDRUSH_CACHE_DIR") or Path.home() / ".cache" / "goldrush-operator")


def cache_root() -> Path:
    return cache_base() / "tools"


def path_of(name: str) -> Path:
    tool = TOOLS[name]
    version = tool.version + ("-" + tool.tags.replace(",", "-") if tool.tags else "")
    return cache_root() / f"{name}-{version}" / tool.binary


def probe_version(name: str) -> str:
    """The version of the probe's library, as its go.mod requires it."""
    probe = PROBES[name]
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(probe.library)} (v\S+)", (probe.source / "go.mod").read_text(),
                      re.MULTILINE)
    if not match:
        raise ToolUnavailable(f"{probe.directory}/go.mod does not require {probe.library}")
    return match.group(1)


def probe_path(name: str) -> Path:
    return cache_base() / f"{name}-{probe_version(name)}" / PROBES[name].binary


def _fingerprint(probe: Probe) -> str:
    digest = hashlib.sha256()
    for file in PROBE_SOURCES:
        digest.update(file.encode() + b"\0" + (probe.source / file).read_bytes() + b"\0")
    return digest.hexdigest()


def _install(target: str, installed: str, binary: Path, *, what: str, cwd: Path | None = None, ldflags: str = "",
             tags: str = "", timeout: float) -> None:
    """`go install <target>` (a `package@version`, or `.` in `cwd`), with private Go caches; keep only the binary.

    `installed` is the file name go install gives the program; it is moved to `binary` atomically, so a
    concurrent run sees the old file or the new one, never half a file.
    """
    go = shutil.which("go")
    if go is None:
        raise ToolUnavailable(f"the Go toolchain (go) is not installed; it builds {what}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    # A caller building several programs (main) shares one module and build cache between them, so that the
    # standard library and common modules are compiled once; it deletes that directory when all are built.
    shared = os.environ.get(SHARED_GO_CACHE_ENV)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        caches = Path(shared) if shared else Path(tmp)
        # -modcacherw: the module cache must be deletable with the temporary directory.
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-modcacherw -buildvcs=false",
               "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"), "GOBIN": str(Path(tmp) / "bin"),
               "GOMODCACHE": str(caches / "mod"), "GOCACHE": str(caches / "cache"), "GOPATH": str(caches)}
        command = [go, "install", "-trimpath"]
        if ldflags:
            command.append(f"-ldflags={ldflags}")
        if tags:
            command.append(f"-tags={tags}")
        command.append(target)
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if proc.returncode != 0:
            raise ToolUnavailable(f"go install {target} ({what}) failed:\n{proc.stderr[-4000:]}")
        (Path(tmp) / "bin" / installed).replace(binary)


def ensure(name: str, timeout: float = 1800) -> Path:
    """The cached binary of tool (or probe) `name`, built first when missing."""
    if name in PROBES:
        return ensure_probe(name)
    if name not in TOOLS:
        raise ToolUnavailable(f"unknown tool {name!r}; known: {', '.join(sorted(TOOLS))}")
    tool, binary = TOOLS[name], path_of(name)
    if not binary.exists():
        with _build_lock(binary):
            if not binary.exists():  # another process may have built it while we waited
                _install(f"{tool.package}@{tool.version}", tool.binary, binary, what=name, ldflags=tool.ldflags,
                         tags=tool.tags, timeout=timeout)
    return binary


@contextlib.contextmanager
def _build_lock(binary: Path) -> Iterator[None]:
    """Hold an exclusive lock on the program's cache directory: concurrent test runs build it once."""
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_probe(name: str, timeout: float = 2400) -> Path:
    """The cached binary of probe `name`, built first when missing or older than its source."""
    if name not in PROBES:
        raise ToolUnavailable(f"unknown probe {name!r}; known: {', '.join(sorted(PROBES))}")
    probe, binary = PROBES[name], probe_path(name)
    stamp, fingerprint = binary.parent / "source.sha256", _fingerprint(PROBES[name])
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return binary
    with _build_lock(binary):
        if not (binary.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint):
            _build_probe(name, probe, binary, timeout)
            stamp.write_text(fingerprint + "\n")
    return binary


def _build_probe(name: str, probe: Probe, binary: Path, timeout: float) -> None:
    module = re.search(r"^module\s+(\S+)", (probe.source / "go.mod").read_text(), re.MULTILINE)
    if not module:
        raise ToolUnavailable(f"{probe.directory}/go.mod has no module line")
    # go install names a module-root main package after the last element of its module path.
    _install(".", module.group(1).rsplit("/", 1)[-1], binary, what=f"the {name} probe", cwd=probe.source,
             ldflags=probe.ldflags,
             timeout=timeout)


def _is_cached(name: str) -> bool:
    if name in TOOLS:
        return path_of(name).exists()
    stamp = probe_path(name).parent / "source.sha256"
    return probe_path(name).exists() and stamp.exists() and stamp.read_text().strip() == _fingerprint(PROBES[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the cached Go tools and probes the tests use")
    parser.add_argument("names", nargs="*", help="tool or probe names (default: all)")
    args = parser.parse_args(argv)
    names = args.names or [*sorted(TOOLS), *sorted(PROBES)]
    for name in names:
        if name not in TOOLS and name not in PROBES:
            parser.error(f"unknown tool or probe {name!r}")
    missing = sorted((name for name in names if not _is_cached(name)),
                     key=lambda name: BUILD_ORDER.index(name) if name in BUILD_ORDER else len(BUILD_ORDER))
    for name in names:
        if name in TOOLS:
            origin = f"{TOOLS[name].package}@{TOOLS[name].version}"
        else:
            origin = f"tests/support/{PROBES[name].directory} on {PROBES[name].library}@{probe_version(name)}"
        print(f"[tools] {name}: {'building' if name in missing else 'cached'} ({origin})", file=sys.stderr,
              flush=True)
    if missing:
        cache_base().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_base(), prefix=".gobuild-") as caches:
            os.environ[SHARED_GO_CACHE_ENV] = caches
            try:
                with concurrent.futures.ThreadPoolExecutor(PARALLEL_BUILDS) as pool:
                    for name, path in zip(missing, pool.map(ensure, missing), strict=True):
                        print(f"[tools] {name}: built {path}", file=sys.stderr, flush=True)
            finally:
                del os.environ[SHARED_GO_CACHE_ENV]
    for name in names:
        print(ensure(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
