"""Builds and caches the ecosystem's own Go tools that the tests judge our artefacts with.

Each tool is `go install`ed once from the Go module proxy at a pinned version into
`~/.cache/goldrush-operator/tools/<name>-<version>/` (or `$GOLDRUSH_CACHE_DIR/tools/...`), with private Go
module and build caches that are deleted right after the build, so only the binary stays on disk.

Callers: test fixtures (`ensure("helm")`), and `make ensure-tools` (`python -m support.gotools all`), which
`make test` runs before the test tiers so that a cold CI run builds each tool exactly once.
"""

from __future__ import annotations

import argparse
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


# One row per tool; the version is the single place to bump it.
TOOLS: dict[str, Tool] = {
    # Validates manifests against JSON schemas (CRDs-catalog layout); judges schemas/ and samples/.
    "kubeconform": Tool("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0", "kubeconform"),
    # Validates manifests the way the apiserver does (structural schema, CEL) from local CRD files.
    "kubectl-validate": Tool("sigs.k8s.io/kubectl-validate", "v0.0.4", "kubectl-validate"),
}


class ToolUnavailable(RuntimeError):
    """The tool cannot be built here (no Go toolchain, module refused, or build failure)."""


def cache_root() -> Path:
    return Path(os.environ.get("GOLDRUSH_CACHE_DIR") or Path.home() / ".cache" / "goldrush-operator") / "tools"


def path_of(name: str) -> Path:
    tool = TOOLS[name]
    return cache_root() / f"{name}-{tool.version}" / tool.binary


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
        command = [go, "install", "-trimpath"]
        if tool.ldflags:
            command.append(f"-ldflags={tool.ldflags}")
        command.append(f"{tool.package}@{tool.version}")
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ToolUnavailable(f"go install {tool.package}@{tool.version} failed:\n{proc.stderr[-4000:]}")
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
