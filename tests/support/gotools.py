"""Builds and caches the ecosystem's own Go tools that the tests judge our artefacts with.

Each tool is `go install`ed once from the Go module proxy at a pinned version into
`~/.cache/goldrush-operator/tools/<name>-<version>/` (or `$GOLDRUSH_CACHE_DIR/tools/...`), with private Go
module and build caches that are deleted right after the build, so only the binary stays on disk.
A tool with `source` is a small probe program of ours (a Go module under tests/support/, pinned by its
go.mod and go.sum) built with `go build`; its cache directory also carries a hash of its source files, so
an edit rebuilds it.

Callers: test fixtures (`ensure("helm")`), and `make ensure-tools` (`python -m support.gotools all`), which
`make test` runs before the test tiers so that a cold CI run builds each tool exactly once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    """A Go program installed by `go install <package>@<version>`; `binary` is the installed file name."""

    package: str
    version: str
    binary: str
    ldflags: str = ""
    tags: str = ""  # Go build tags (comma-separated); part of the cache directory's name
    source: str = ""  # a directory under tests/support/ holding main.go, go.mod and go.sum


SUPPORT = Path(__file__).resolve().parent


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
    # Strict decoding of the Grafana dashboard with Grafana's own schema types (tests/support/grafana).
    "grafana-dashboard-check": Tool("github.com/grafana/grafana-foundation-sdk/go", "v0.0.22",
                                    "grafana-dashboard-check", source="grafana"),
}


class ToolUnavailable(RuntimeError):
    """The tool cannot be built here (no Go toolchain, module refused, or build failure)."""


def cache_root() -> Path:
    return Path(os.environ.get("GOLDRUSH_CACHE_DIR") or Path.home() / ".cache" / "goldrush-operator") / "tools"


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.suffix == ".go" or path.name in {"go.mod", "go.sum"}:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def path_of(name: str) -> Path:
    tool = TOOLS[name]
    version = f"{tool.version}-{_fingerprint(SUPPORT / tool.source)}" if tool.source else tool.version
    if tool.tags:
        version += "-" + tool.tags.replace(",", "-")
    return cache_root() / f"{name}-{version}" / tool.binary


def ensure(name: str, timeout: float = 1800) -> Path:
    """The cached binary of tool `name`, built first when missing."""
    if name not in TOOLS:
        raise ToolUnavailable(f"unknown tool {name!r}; known: {', '.join(sorted(TOOLS))}")
    tool, binary = TOOLS[name], path_of(name)
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ToolUnavailable(f"the Go toolchain (go) is not installed; it builds {name}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-modcacherw",
               "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"), "GOBIN": str(Path(tmp) / "bin"),
               "GOMODCACHE": str(Path(tmp) / "mod"), "GOCACHE": str(Path(tmp) / "cache"), "GOPATH": tmp}
        if tool.source:
            env["GOFLAGS"] = "-mod=readonly -modcacherw"
            command = [go, "build", "-trimpath", "-o", str(Path(tmp) / "bin" / tool.binary), "."]
            cwd: Path | None = SUPPORT / tool.source
        else:
            command = [go, "install", "-trimpath"]
            if tool.ldflags:
                command.append(f"-ldflags={tool.ldflags}")
            if tool.tags:
                command.append(f"-tags={tool.tags}")
            command.append(f"{tool.package}@{tool.version}")
            cwd = None
        proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if proc.returncode != 0:
            raise ToolUnavailable(f"{' '.join(command[1:3])} {tool.package}@{tool.version} failed:\n"
                                  f"{proc.stderr[-4000:]}")
        (Path(tmp) / "bin" / tool.binary).replace(binary)  # atomic: a concurrent run sees no half file
    return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the cached Go tools the tests use")
    parser.add_argument("names", nargs="*", help="tool names (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or sorted(TOOLS):
        cached = path_of(name).exists()
        print(f"[tools] {name}: {'cached' if cached else 'building'} ({TOOLS[name].package}@{TOOLS[name].version})",
              file=sys.stderr, flush=True)
        print(ensure(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
