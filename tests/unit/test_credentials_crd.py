"""The generated GoldRushCredentials and ClusterGoldRushCredentials CRDs: drift, names, scope, rules, columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goldrush_operator import crdgen

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_KINDS = ("GoldRushCredentials", "ClusterGoldRushCredentials")


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_committed_files_match_generated(kind: str) -> None:
    k = crdgen.KINDS[kind]
    crd = REPO_ROOT / "crds" / k.crd_file_name
    assert crd.read_text() == crdgen.render_crd_yaml(kind), "crds/ is stale: run `make crd`"
    assert (REPO_ROOT / "schemas" / k.json_schema_path).read_text() == crdgen.render_json_schema(kind)
    chart_copy = REPO_ROOT / "charts" / "goldrush-operator" / "files" / k.crd_file_name
    assert chart_copy.read_text() == crd.read_text(), "the chart's copy is stale: run `make crd`"
    assert k.crd_file_name in (REPO_ROOT / "crds" / "kustomization.yaml").read_text()


@pytest.mark.parametrize(("kind", "scope", "plural"), [
    ("GoldRushCredentials", "Namespaced", "goldrushcredentials"),
    ("ClusterGoldRushCredentials", "Cluster", "clustergoldrushcredentials"),
])
def test_names_and_scope(kind: str, scope: str, plural: str) -> None:
    crd = crdgen.generate_crd(kind)
    assert crd["metadata"]["name"] == f"{plural}.goldrush.dev"
    assert crd["spec"]["scope"] == scope
    assert crd["spec"]["names"]["kind"] == kind and crd["spec"]["names"]["plural"] == plural
    assert crd["spec"]["names"]["categories"] == ["goldrush"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["READY", "REASON", "USED BY", "SECRET", "AGE", "MESSAGE"]


def _spec(kind: str) -> dict[str, Any]:
    root = crdgen.generate_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec: dict[str, Any] = root["properties"]["spec"]
    return spec


def test_cluster_credentials_require_a_selector() -> None:
    assert _spec("ClusterGoldRushCredentials")["required"] == ["serviceKeySecretRef", "namespaceSelector"]
    assert _spec("GoldRushCredentials")["required"] == ["serviceKeySecretRef"]
    assert "namespaceSelector" not in _spec("GoldRushCredentials")["properties"]


def test_selector_requirement_values_rule() -> None:
    selector = _spec("ClusterGoldRushCredentials")["properties"]["namespaceSelector"]
    item = selector["properties"]["matchExpressions"]["items"]
    assert item["properties"]["operator"]["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]
    (rule,) = item["x-kubernetes-validations"]
    assert "self.operator in ['In', 'NotIn']" in rule["rule"]


def test_status_declares_conditions_and_used_by() -> None:
    root = crdgen.generate_crd("GoldRushCredentials")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status = root["properties"]["status"]["properties"]
    assert set(status) == {"observedGeneration", "conditions", "usedBy"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_pipeline_takes_one_key_source_at_most() -> None:
    root = crdgen.generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "!(has(self.credentialsRef) && has(self.serviceKeySecretRef))" in rules
    ref = spec["properties"]["credentialsRef"]
    assert ref["required"] == ["kind", "name"]
    assert ref["properties"]["kind"]["enum"] == list(CREDENTIAL_KINDS)


def test_cli_prints_every_crd(capsys: pytest.CaptureFixture[str]) -> None:
    from goldrush_operator.cli import main

    assert main(["crd"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["spec"]["names"]["kind"] for d in docs] == ["GoldRushPipeline", *CREDENTIAL_KINDS]
