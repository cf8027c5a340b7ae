"""Admission on the real apiserver: every bad object is rejected at `kubectl apply`, naming the field;
every sample and a maximal valid object are accepted.

Needs only the CRD (no operator). Each bad case starts from a valid manifest of one destination type and
changes one thing to break one rule (schema type/bound/pattern, CEL rule, or an unknown field, which
kubectl's default strict field validation rejects).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipelines import pipeline_manifest

from goldrush_operator import resource
from support.kubectl import Kubectl

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

CONFIGS: dict[str, dict[str, Any]] = {
    "postgres": {"url": "postgresql://db.example.com:5432/analytics", "user": "pipeline", "batch_size": 1000},
    "clickhouse": {"url": "clickhouse://ch.example.com:8123/a", "user": "pipeline", "flush_interval_ms": 5000},
    "kafka": {"bootstrap_servers": "b-0:9092", "output_topic": "out", "sasl": {"mechanism": "SCRAM-SHA-512",
                                                                             "username": "pipeline"}},
    "object_storage": {"provider": "s3", "bucket": "data", "region": "eu-west-1", "format": "parquet",
                       "partition_by": ["day"], "access_key_id": "AKIDEXAMPLE"},
    "sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q.fifo", "region": "eu-west-1", "batch_size": 10},
    "webhook": {"url": "https://hooks.example.com/in", "method": "POST", "retry": {"max_attempts": 5}},
}
SECRET_FIELD = {"postgres": "password", "clickhouse": "password", "kafka": "sasl.password",
                "object_storage": "secret_access_key", "sqs": "secret_access_key", "webhook": "headers.Authorization"}


def manifest(dtype: str = "postgres", name: str = "bad", **spec: Any) -> dict[str, Any]:
    m = pipeline_manifest(name)
    m["spec"]["destination"] = {
        "type": dtype,
        "config": copy.deepcopy(CONFIGS[dtype]),
        "secretRefs": {SECRET_FIELD[dtype]: {"name": "dest", "key": "secret"}},
    }
    m["spec"].update(copy.deepcopy(spec))
    return m


def config(dtype: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"]["destination"]["type"] = dtype
        m["spec"]["destination"]["config"] = {**copy.deepcopy(CONFIGS[dtype]), **values}
        m["spec"]["destination"]["secretRefs"] = {SECRET_FIELD[dtype]: {"name": "dest", "key": "secret"}}
    return mutate


def spec(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(m: dict[str, Any]) -> None:
        m["spec"].update(copy.deepcopy(values))
    return mutate


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(m: dict[str, Any]) -> None:
        node = m["spec"]
        keys = path.split("/")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return mutate


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        node = {"a": node}
    return node


SQL = "SELECT block_height FROM transfers"
MASK = resource.SECRET_MASK

# (case id, mutation, texts that must all appear in the error)
BAD: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    # inline secrets, every destination type, every spelling
    ("postgres password", config("postgres", password="pw"), ("spec.destination.config.password", "secretRefs")),
    ("clickhouse password", config("clickhouse", password="pw"), ("spec.destination.config.password",)),
    ("Password capitalised", config("postgres", Password="pw"), ("spec.destination.config.Password",)),
    ("PASSWORD upper", config("postgres", PASSWORD="pw"), ("spec.destination.config.PASSWORD",)),
    ("auth.password nested", config("postgres", auth={"password": "pw"}), ("spec.destination.config.auth",)),
    ("auth.password literal", config("postgres", **{"auth.password": "pw"}),
     ("spec.destination.config.auth.password",)),
    ("kafka sasl.password nested", config("kafka", sasl={"mechanism": "PLAIN", "password": "pw"}),
     ("spec.destination.config.sasl.password", "secretRefs")),
    ("kafka sasl.password literal", config("kafka", **{"sasl.password": "pw"}),
     ('spec.destination.config["sasl.password"]',)),
    ("kafka sasl.Password", config("kafka", sasl={"mechanism": "PLAIN", "Password": "pw"}),
     ("spec.destination.config.sasl.Password",)),
    ("s3 secret_access_key", config("object_storage", secret_access_key="k"),
     ("spec.destination.config.secret_access_key", "secretRefs")),
    ("sqs secret_access_key", config("sqs", secret_access_key="k"), ("spec.destination.config.secret_access_key",)),
    ("Secret_Access_Key", config("sqs", Secret_Access_Key="k"), ("spec.destination.config.Secret_Access_Key",)),
    ("webhook headers", config("webhook", headers={"Authorization": "Bearer t"}),
     ("spec.destination.config.headers", "secretRefs")),
    ("webhook Headers", config("webhook", Headers={"Authorization": "Bearer t"}),
     ("spec.destination.config.Headers",)),
    ("headers.Authorization literal", config("webhook", **{"headers.Authorization": "Bearer t"}),
     ("spec.destination.config.headers.Authorization",)),
    # the API's mask as a value
    ("mask in user", config("postgres", user=MASK), ("spec.destination.config.user", MASK)),
    ("mask in url", config("webhook", url=MASK), ("spec.destination.config.url",)),
    ("mask in sasl.username", config("kafka", sasl={"mechanism": "PLAIN", "username": MASK}),
     ("spec.destination.config.sasl.username",)),
    ("mask in access_key_id", config("sqs", access_key_id=MASK), ("spec.destination.config.access_key_id",)),
    ("mask in bucket", config("object_storage", bucket=MASK), ("spec.destination.config.bucket",)),
    # size, depth and types of config
    ("1.4 MB url", config("postgres", url="postgresql://h/" + "x" * 1_400_000), ("spec.destination.config.url",)),
    ("200-deep nesting", config("postgres", extra=nested(200)), ("spec.destination.config.extra",)),
    ("nesting under retry", config("webhook", retry={"max_attempts": 1, "more": nested(3)}),
     ("spec.destination.config.retry.more",)),
    ("batch_size string", config("postgres", batch_size="1000"), ("spec.destination.config.batch_size",)),
    ("batch_size zero", config("postgres", batch_size=0), ("spec.destination.config.batch_size",)),
    ("sqs batch_size 11", config("sqs", batch_size=11), ("spec.destination.config.batch_size", "sqs")),
    ("unknown provider", config("object_storage", provider="azure"), ("spec.destination.config.provider",)),
    ("unknown format", config("object_storage", format="csv"), ("spec.destination.config.format",)),
    ("unknown partition", config("object_storage", partition_by=["week"]), ("spec.destination.config.partition_by",)),
    ("webhook GET", config("webhook", method="GET"), ("spec.destination.config.method",)),
    ("kafka field on postgres", config("postgres", bootstrap_servers="b:9092"),
     ("spec.destination.config.bootstrap_servers", "kafka")),
    ("queue_url on webhook", config("webhook", queue_url="https://q"), ("spec.destination.config.queue_url", "sqs")),
    ("config type key", config("postgres", type="postgres"), ("spec.destination.config.type",)),
    # destination and secretRefs
    ("unknown destination type", at("destination/type", "bigquery"), ("spec.destination.type",)),
    ("secretRefs bad key", at("destination/secretRefs", {"a..b": {"name": "s", "key": "k"}}),
     ("spec.destination.secretRefs",)),
    ("secretRefs type", at("destination/secretRefs", {"type": {"name": "s", "key": "k"}}),
     ("spec.destination.secretRefs",)),
    ("secretRef bad secret name", at("destination/secretRefs", {"password": {"name": "Bad_Name", "key": "k"}}),
     ("spec.destination.secretRefs.password.name",)),
    ("too many secretRefs", at("destination/secretRefs", {f"f{i}": {"name": "s", "key": "k"} for i in range(33)}),
     ("spec.destination.secretRefs",)),
    # project
    ("project path", spec(project="../../../etc"), ("spec.project",)),
    ("project spaces", spec(project="my project"), ("spec.project",)),
    ("project unicode", spec(project="pröject"), ("spec.project",)),
    ("project upper", spec(project="Analytics"), ("spec.project",)),
    ("project too long", spec(project="p" * 64), ("spec.project",)),
    # topic
    ("topic trailing dot", spec(topic="base.mainnet.ref.block.transfers."), ("spec.topic",)),
    ("topic double dot", spec(topic="base.mainnet.ref.block.swap..v3"), ("spec.topic",)),
    ("topic no block", spec(topic="base.mainnet.logs"), ("spec.topic",)),
    ("topic upper", spec(topic="Base.mainnet.ref.block.logs"), ("spec.topic",)),
    # transforms
    ("table name injection", spec(transforms={"tä ble; DROP": SQL}), ("spec.transforms",)),
    ("table name digit", spec(transforms={"1table": SQL}), ("spec.transforms",)),
    ("table name dotted", spec(transforms={"public.transfers": SQL}), ("spec.transforms",)),
    ("table name too long", spec(transforms={"t" * 64: SQL}), ("spec.transforms",)),
    ("too many transforms", spec(transforms={f"t{i}": SQL for i in range(17)}), ("spec.transforms",)),
    ("sql too long", spec(transforms={"transfers": "SELECT " + "x" * 5000}), ("spec.transforms.transfers",)),
    ("empty sql", spec(transforms={"transfers": ""}), ("spec.transforms.transfers",)),
    ("kafka transforms", lambda m: (config("kafka")(m), spec(transforms={"logs": SQL})(m)), ("spec.transforms",)),
    ("kafka abi", lambda m: (config("kafka")(m), spec(abi={"unmatched": "raw"})(m)), ("spec.abi",)),
    # execution
    ("stopAt before startFrom", spec(execution={"mode": "bounded", "startFrom": "200", "stopAt": "199"}),
     ("spec.execution.stopAt", "startFrom")),
    ("stopAt shorter than startFrom", spec(execution={"mode": "bounded", "startFrom": "1000", "stopAt": "999"}),
     ("spec.execution.stopAt",)),
    ("startFrom leading zero", spec(execution={"mode": "unbounded", "startFrom": "0100"}),
     ("spec.execution.startFrom",)),
    ("startFrom not numeric", spec(execution={"mode": "unbounded", "startFrom": "latest"}),
     ("spec.execution.startFrom",)),
    ("startFrom too long", spec(execution={"mode": "unbounded", "startFrom": "1" * 21}),
     ("spec.execution.startFrom",)),
    ("bounded without stopAt", spec(execution={"mode": "bounded", "startFrom": "1"}), ("spec.execution.stopAt",)),
    ("unbounded with stopAt", spec(execution={"mode": "unbounded", "stopAt": "5"}), ("spec.execution.stopAt",)),
    ("unknown mode", spec(execution={"mode": "sometimes"}), ("spec.execution.mode",)),
    # the rest of spec
    ("pipelineName too long", spec(pipelineName="n" * 254), ("spec.pipelineName",)),
    ("description too long", spec(description="d" * 4097), ("spec.description",)),
    ("bad contract address", spec(abi={"contractAddresses": ["0x12 34"]}), ("spec.abi.contractAddresses",)),
    ("too many contract addresses", spec(abi={"contractAddresses": [f"0x{i:040x}" for i in range(257)]}),
     ("spec.abi.contractAddresses",)),
    ("bad unmatched", spec(abi={"unmatched": "RAW; DROP"}), ("spec.abi.unmatched",)),
    ("bad deletionPolicy", spec(deletionPolicy="Keep"), ("spec.deletionPolicy",)),
    ("bad serviceKey ref", spec(serviceKeySecretRef={"name": "k"}), ("spec.serviceKeySecretRef.key",)),
    ("paused string", spec(paused="yes"), ("spec.paused",)),
    ("both key sources", spec(serviceKeySecretRef={"name": "k", "key": "key"},
                              credentialsRef={"kind": "GoldRushCredentials", "name": "team"}),
     ("spec.credentialsRef and spec.serviceKeySecretRef are mutually exclusive",)),
    ("unknown credentials kind", spec(credentialsRef={"kind": "ProviderConfig", "name": "team"}),
     ("spec.credentialsRef.kind",)),
    ("credentials without a name", spec(credentialsRef={"kind": "GoldRushCredentials"}),
     ("spec.credentialsRef.name",)),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BAD, ids=[c[0] for c in BAD])
def test_bad_object_is_rejected_naming_the_field(
    kubectl: Kubectl, crd_installed: None, case: str, mutate: Callable[[dict[str, Any]], None],
    expected: tuple[str, ...],
) -> None:
    m = manifest()
    mutate(m)
    proc = kubectl("apply", "-f", "-", input=json.dumps(m), check=False, timeout=120)
    assert proc.returncode != 0, f"{case}: accepted"
    for text in expected:
        assert text in proc.stderr, f"{case}: {text!r} not in {proc.stderr[:2000]}"
    assert kubectl("get", "grp", "bad", "--ignore-not-found", "-o", "name").stdout.strip() == ""


def test_unknown_config_key_is_pruned_without_strict_validation(kubectl: Kubectl, crd_installed: None) -> None:
    """A client that opts out of strict field validation gets a warning; the key is never stored."""
    m = manifest(name="lenient")
    m["spec"]["destination"]["config"]["Password"] = "pw"
    proc = kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(m))
    stored = kubectl.json("get", "grp", "lenient")["spec"]["destination"]["config"]
    assert "Password" not in stored and "pw" not in json.dumps(stored), proc.stderr
    assert stored["user"] == "pipeline"


@pytest.mark.parametrize("dtype", list(CONFIGS))
def test_each_destination_type_is_accepted(kubectl: Kubectl, crd_installed: None, dtype: str) -> None:
    kubectl.apply(manifest(dtype, name=f"ok-{dtype.replace('_', '-')}"))


def test_every_sample_is_accepted(kubectl: Kubectl, crd_installed: None) -> None:
    proc = kubectl("apply", "-k", str(REPO / "samples"))
    assert proc.stdout.count("goldrushpipeline.goldrush.dev/") == 3, proc.stdout
    names = kubectl("get", "grp", "-o", "name").stdout.split()
    assert sorted(names) == sorted(f"goldrushpipeline.goldrush.dev/{n}" for n in
                                   ("base-transfers-postgres", "eth-logs-kafka", "base-swaps-webhook"))


def maximal() -> dict[str, Any]:
    """Every map and list full, every string at its maximum length (within its pattern)."""
    m = manifest("postgres", name="maximal")
    s = m["spec"]
    s["pipelineName"] = "n" * resource.MAX_NAME_LENGTH
    s["project"] = "p" * resource.MAX_PROJECT_LENGTH
    s["description"] = "d" * resource.MAX_TEXT_LENGTH
    s["topic"] = "base.mainnet.ref.block." + "e" * (resource.MAX_NAME_LENGTH - len("base.mainnet.ref.block."))
    s["transforms"] = {
        f"t{i:02d}" + "_" * (resource.MAX_TABLE_NAME_LENGTH - 3): "SELECT " + "x" * (resource.MAX_SQL_LENGTH - 7)
        for i in range(resource.MAX_TRANSFORMS)
    }
    s["abi"] = {
        "contractAddresses": [f"{i:0{resource.MAX_CONTRACT_ADDRESS_LENGTH}x}"
                              for i in range(resource.MAX_CONTRACT_ADDRESSES)],
        "unmatched": "raw",
        "configMapRef": {"name": "a" * resource.MAX_NAME_LENGTH, "key": "k" * resource.MAX_NAME_LENGTH},
    }
    s["execution"] = {"mode": "bounded", "startFrom": "1" * 19, "stopAt": "9" * 20}
    s["serviceKeySecretRef"] = {"name": "s" * resource.MAX_NAME_LENGTH, "key": "k" * resource.MAX_NAME_LENGTH}
    s["managementPolicies"] = [a for a in resource.MANAGEMENT_ACTIONS if a != "*"]
    d = s["destination"]
    d["config"] = {
        "url": "postgresql://" + "h" * (resource.MAX_URL_LENGTH - 13),
        "user": "u" * resource.MAX_SETTING_LENGTH,
        "batch_size": 1_000_000,
        "flush_interval_ms": 2**62,
    }
    d["secretRefs"] = {
        f"f{i:02d}." + "x" * (resource.MAX_FIELD_PATH_LENGTH - 4):
            {"name": "s" * resource.MAX_NAME_LENGTH, "key": "k" * resource.MAX_NAME_LENGTH}
        for i in range(resource.MAX_SECRET_REFS)
    }
    return m


def test_maximal_valid_object_is_accepted(kubectl: Kubectl, crd_installed: None) -> None:
    m = maximal()
    size = len(json.dumps(m))
    assert size > 100_000, size  # it really is large
    kubectl.apply(m)  # client-side apply: the last-applied annotation must fit too
    stored = kubectl.json("get", "grp", "maximal")
    assert stored["spec"]["transforms"] == m["spec"]["transforms"]
    assert stored["spec"]["destination"]["secretRefs"] == m["spec"]["destination"]["secretRefs"]


def test_maximal_object_updates_and_immutable_fields_still_hold(kubectl: Kubectl, crd_installed: None) -> None:
    m = maximal()
    kubectl.apply(m)
    m["spec"]["description"] = "e" * resource.MAX_TEXT_LENGTH
    kubectl.apply(m)  # oldSelf rules evaluated on an update of the largest object
    m["spec"]["project"] = "q" * resource.MAX_PROJECT_LENGTH
    proc = kubectl("apply", "-f", "-", input=json.dumps(m), check=False)
    assert proc.returncode != 0 and "spec.project is immutable" in proc.stderr


def test_credentials_objects_are_validated(kubectl: Kubectl, crd_installed: None) -> None:
    """The credentials CRDs: a cluster selector is required, and an In requirement needs values."""
    base = {"apiVersion": "goldrush.dev/v1alpha1", "kind": "ClusterGoldRushCredentials",
            "metadata": {"name": f"bad-{kubectl.namespace}"},
            "spec": {"serviceKeySecretRef": {"name": "k", "key": "key"}}}
    proc = kubectl("apply", "-f", "-", input=json.dumps(base), check=False)
    assert proc.returncode != 0 and "spec.namespaceSelector" in proc.stderr, proc.stderr
    base["spec"]["namespaceSelector"] = {"matchExpressions": [{"key": "team", "operator": "In"}]}
    proc = kubectl("apply", "-f", "-", input=json.dumps(base), check=False)
    assert proc.returncode != 0 and "values must be non-empty for In and NotIn" in proc.stderr, proc.stderr
    ok = {"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushCredentials", "metadata": {"name": "team"},
          "spec": {"serviceKeySecretRef": {"name": "team-key", "key": "key"}}}
    kubectl.apply(ok)
    assert kubectl.json("get", "goldrushcredentials", "team")["spec"] == ok["spec"]
