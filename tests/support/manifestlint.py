"""Judges manifests with the ecosystem's validators: kubeconform (strict, against the published JSON Schema in
`schemas/`) and kubectl-validate (apiserver-equivalent validation, CEL included, from the CRDs in `crds/`).

Callers: `make lint` (`python -m support.manifestlint`, which validates every sample) and
tests/unit/test_published_schema.py (samples accepted, bad objects rejected). The tools come from
`support.gotools` (built once, cached).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import gotools

REPO = Path(__file__).resolve().parents[2]
SCHEMA_LOCATION = str(REPO / "schemas" / "{{.Group}}" / "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json")
KIND = "GoldRushPipeline"


@dataclass(frozen=True)
class Verdict:
    """One validator's result for one manifest file: `ok` when every GoldRushPipeline in it is valid."""

    tool: str
    path: Path
    ok: bool
    output: str


def sample_files() -> list[Path]:
    """Every manifest in samples/ (the kustomization itself is not a manifest for the cluster)."""
    return sorted(p for p in (REPO / "samples").glob("*.yaml") if p.name != "kustomization.yaml")


def kubeconform(path: Path) -> Verdict:
    """kubeconform -strict with our schema only; objects without a schema here (Secrets) are skipped, and a
    file whose GoldRushPipeline was skipped rather than validated counts as a failure."""
    binary = gotools.ensure("kubeconform")
    proc = subprocess.run(
        [str(binary), "-strict", "-summary", "-verbose", "-output", "json", "-ignore-missing-schemas",
         "-schema-location", SCHEMA_LOCATION, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    try:
        resources = json.loads(proc.stdout).get("resources") or []
    except json.JSONDecodeError:
        return Verdict("kubeconform", path, False, proc.stdout + proc.stderr)
    ours = [r for r in resources if r.get("kind") == KIND]
    expected = f"kind: {KIND}" in path.read_text()
    ok = proc.returncode == 0 and bool(ours) == expected and all(r.get("status") == "statusValid" for r in ours)
    return Verdict("kubeconform", path, ok, proc.stdout + proc.stderr)


def kubectl_validate(path: Path) -> Verdict:
    """kubectl-validate with the CRDs in crds/ (structural schema and CEL rules, as the apiserver applies)."""
    binary = gotools.ensure("kubectl-validate")
    proc = subprocess.run(
        [str(binary), str(path), "--local-crds", str(REPO / "crds")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return Verdict("kubectl-validate", path, proc.returncode == 0, proc.stdout + proc.stderr)


def main() -> int:
    """Validate every sample with both tools; print failures; exit 1 when any failed."""
    failed = 0
    for path in sample_files():
        for verdict in (kubeconform(path), kubectl_validate(path)):
            status = "ok" if verdict.ok else "FAILED"
            print(f"[manifests] {verdict.tool} {path.relative_to(REPO)}: {status}", file=sys.stderr)
            if not verdict.ok:
                failed += 1
                print(verdict.output, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
