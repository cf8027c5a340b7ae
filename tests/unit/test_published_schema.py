"""The published JSON Schema (schemas/, CRDs-catalog layout) and the ecosystem's validators.

kubeconform (strict, against schemas/) and kubectl-validate (against crds/, CEL included) must accept every
sample and reject bad objects, naming the field. The tools are built once by `support.gotools` (never
skipped: a missing Go toolchain fails the test with the reason).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from goldrush_operator import crdgen
from support import manifestlint

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMMITTED_SCHEMA = REPO / "schemas" / crdgen.JSON_SCHEMA_PATH


def test_schema_path_follows_the_crds_catalog_layout() -> None:
    assert crdgen.JSON_SCHEMA_PATH == "goldrush.dev/goldrushpipeline_v1alpha1.json"


def test_committed_schema_matches_generated() -> None:
    assert COMMITTED_SCHEMA.exists(), "missing schemas/: run `make crd`"
    assert COMMITTED_SCHEMA.read_text() == crdgen.render_json_schema(), "schemas/ is stale: run `make crd`"


def test_write_files_writes_both(tmp_path: Path) -> None:
    paths = crdgen.write_files(tmp_path / "crds", tmp_path / "schemas")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "crds/goldrush.dev_goldrushpipelines.yaml",
        "schemas/goldrush.dev/goldrushpipeline_v1alpha1.json",
        "crds/goldrush.dev_goldrushcredentials.yaml",
        "schemas/goldrush.dev/goldrushcredentials_v1alpha1.json",
        "crds/goldrush.dev_clustergoldrushcredentials.yaml",
        "schemas/goldrush.dev/clustergoldrushcredentials_v1alpha1.json",
    ]
    assert json.loads(paths[1].read_text()) == crdgen.json_schema()


def test_declared_objects_are_closed_and_free_form_ones_open() -> None:
    schema = crdgen.json_schema()
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    config = spec["properties"]["destination"]["properties"]["config"]
    assert config["additionalProperties"] is False
    assert spec["properties"]["transforms"]["additionalProperties"]["type"] == "string"
    assert "additionalProperties" not in schema["properties"]["status"]["properties"]["kopf"]
    assert "x-kubernetes-validations" not in json.dumps(schema)


# ------------------------------------------------------------------------------------------------ tools


def sample_pipeline() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "samples" / "pipeline-postgres.yaml").read_text())
    return doc


def write(tmp_path: Path, name: str, manifest: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


@pytest.mark.parametrize("sample", manifestlint.sample_files(), ids=lambda p: p.name)
def test_kubeconform_accepts_every_sample(sample: Path) -> None:
    verdict = manifestlint.kubeconform(sample)
    if "GoldRushPipeline" in sample.read_text():
        assert verdict.ok, verdict.output
    else:
        assert '"statusSkipped"' in verdict.output, verdict.output


@pytest.mark.parametrize("sample", manifestlint.sample_files(), ids=lambda p: p.name)
def test_kubectl_validate_accepts_every_sample(sample: Path) -> None:
    verdict = manifestlint.kubectl_validate(sample)
    assert verdict.ok, verdict.output


def _mutated(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(sample_pipeline())
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


# (case, mutation path, value, text the error must contain); kubeconform names a bad map key by the key.
SCHEMA_CASES = [
    ("unknown config key", ("spec", "destination", "config", "Password"), "x", "Password"),
    ("bad project", ("spec", "project"), "../../../etc", "project"),
    ("trailing dot topic", ("spec", "topic"), "base.mainnet.ref.block.transfers.", "topic"),
    ("bad table name", ("spec", "transforms"), {"tä ble; DROP": "SELECT 1 FROM x"}, "transforms|tä ble; DROP"),
]
CEL_CASES = [
    ("inline password", ("spec", "destination", "config", "password"), "x", "spec.destination.config.password"),
    ("mask value", ("spec", "destination", "config", "user"), "******", "spec.destination.config.user"),
    ("stopAt before startFrom", ("spec", "execution"), {"mode": "bounded", "startFrom": "20", "stopAt": "9"},
     "spec.execution.stopAt"),
]


@pytest.mark.parametrize(("case", "path", "value", "expected"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_kubeconform_rejects_bad_objects(tmp_path: Path, case: str, path: tuple[str, ...], value: Any,
                                         expected: str) -> None:
    verdict = manifestlint.kubeconform(write(tmp_path, "bad", _mutated(path, value)))
    assert not verdict.ok, case
    assert expected.split("|")[-1] in verdict.output, verdict.output


@pytest.mark.parametrize(("case", "path", "value", "expected"), SCHEMA_CASES + CEL_CASES,
                         ids=[c[0] for c in SCHEMA_CASES + CEL_CASES])
def test_kubectl_validate_rejects_bad_objects(tmp_path: Path, case: str, path: tuple[str, ...], value: Any,
                                              expected: str) -> None:
    verdict = manifestlint.kubectl_validate(write(tmp_path, "bad", _mutated(path, value)))
    assert not verdict.ok, case
    assert expected.split("|")[0] in verdict.output, verdict.output
