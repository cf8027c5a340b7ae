"""E2E: credentials objects (GoldRushCredentials, ClusterGoldRushCredentials) on the real control plane.

- two namespaces with two keys of two groups: each pipeline is created with its namespace's key, in that
  key's group, and each key lists only its own pipelines; both credentials objects are Ready and count 1 user;
- a namespace outside a ClusterGoldRushCredentials' selector is refused (CredentialsNotAllowed) and no
  request is ever sent with the key for it; labelling the namespace lets it in;
- a revoked key stalls only its users (AuthFailed on them and on the credentials object);
- rotating the key in the credentials' Secret: the new key is used within seconds, with no API write and
  no write to the pipeline object.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pipelines import condition, get, pipeline_manifest, secret_manifest, wait_phase, wait_reason, writes

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

Start = Callable[..., OperatorProcess]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def credentials(name: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushCredentials", "metadata": {"name": name},
            "spec": {"serviceKeySecretRef": {"name": secret, "key": "key"}}}


def cluster_credentials(name: str, secret: str, selector: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "goldrush.dev/v1alpha1", "kind": "ClusterGoldRushCredentials", "metadata": {"name": name},
            "spec": {"serviceKeySecretRef": {"name": secret, "key": "key"}, "namespaceSelector": selector}}


def using(kind: str, name: str, pipeline: str = "p1", **spec: Any) -> dict[str, Any]:
    return pipeline_manifest(pipeline, credentialsRef={"kind": kind, "name": name}, **spec)


def creds_ready(kubectl: Kubectl, resource: str, name: str, status: str, reason: str,
                timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj: dict[str, Any] = kubectl.json("get", resource, name)
        c = condition(obj, "Ready") or {}
        return obj if (c.get("status"), c.get("reason")) == (status, reason) else None

    result: dict[str, Any] = wait_for(check, timeout, message=f"{resource}/{name} Ready={status} {reason}")
    return result


def quiet_version(kubectl: Kubectl, name: str, quiet: float = 3.0) -> str:
    """The object's resourceVersion once it has not changed for `quiet` seconds."""
    last, since = get(kubectl, name)["metadata"]["resourceVersion"], time.monotonic()
    deadline = since + 40
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = get(kubectl, name)["metadata"]["resourceVersion"]
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return str(current)
    raise AssertionError(f"{name} kept changing for 40s")


def listed_names(sim: SimProcess, key: str) -> set[str]:
    response = httpx.get(sim.base_url, params={"page_size": 100}, headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    return {item["name"] for item in response.json()["data"]["items"]}


@pytest.fixture
def tenants(kubeconfig: Any, namespace: str) -> Iterator[tuple[Kubectl, Kubectl, Kubectl]]:
    """Two tenant namespaces (the test's and one more) and the operator's own namespace."""
    admin = Kubectl(kubeconfig)
    other, own = f"t-{uuid.uuid4().hex[:10]}", f"op-{uuid.uuid4().hex[:10]}"
    admin("create", "namespace", other)
    admin("create", "namespace", own)
    yield admin.in_namespace(namespace), admin.in_namespace(other), admin.in_namespace(own)
    admin("delete", "namespace", other, own, "--wait=false", check=False)


def start(start_operator: Start, a: Kubectl, b: Kubectl, own: Kubectl) -> OperatorProcess:
    return start_operator(namespaces=[a.namespace, b.namespace], env={"POD_NAMESPACE": own.namespace})


def add_key(sim: SimProcess, key: str, group: str) -> None:
    sim.admin("POST", "keys", {"key": key, "group": group, "kind": "service"})


def two_teams(sim: SimProcess, a: Kubectl, b: Kubectl) -> None:
    for kubectl, team in ((a, "a"), (b, "b")):
        add_key(sim, f"team-{team}-key", f"group_{team}")
        kubectl.apply(secret_manifest())
        kubectl.apply(secret_manifest("team-key", {"key": f"team-{team}-key"}))
        kubectl.apply(credentials("team", "team-key"))
        kubectl.apply(using("GoldRushCredentials", "team"))


def test_two_namespaces_with_two_keys_see_only_their_own_pipelines(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> None:
    a, b, own = tenants
    operator = start(start_operator, a, b, own)
    two_teams(sim, a, b)
    for kubectl in (a, b):
        wait_phase(kubectl, "p1", "RUNNING", ready="True")
    by_name = {p["name"]: p for p in sim.pipelines()}
    assert by_name[f"{a.namespace}-p1"]["group_id"] == "group_a"
    assert by_name[f"{b.namespace}-p1"]["group_id"] == "group_b"
    assert listed_names(sim, "team-a-key") == {f"{a.namespace}-p1"}
    assert listed_names(sim, "team-b-key") == {f"{b.namespace}-p1"}
    creates = {w["body"]["name"]: w["key"] for w in writes(sim, "create")}
    assert creates == {f"{a.namespace}-p1": key_hash("team-a-key"), f"{b.namespace}-p1": key_hash("team-b-key")}
    assert key_hash("dev-key") not in {e["key"] for e in sim.journal()}, "the operator's own key is never used"
    for kubectl in (a, b):
        obj = creds_ready(kubectl, "goldrushcredentials", "team", "True", "KeyValid")
        wait_for(lambda k=kubectl: k.json("get", "goldrushcredentials", "team")["status"].get("usedBy") == 1, 30,
                 message="usedBy 1")
        assert condition(obj, "Stalled") is None
    printed = a("get", "goldrushcredentials", "team").stdout
    assert "KeyValid" in printed and "team-key" in printed
    assert "team-a-key" not in operator.log and "team-b-key" not in operator.log


def test_a_namespace_outside_the_selector_is_refused_without_an_api_call(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> None:
    a, b, own = tenants
    label = f"e2e-{uuid.uuid4().hex[:8]}"
    name = f"shared-{label}"
    a("label", "namespace", a.namespace, f"goldrush.dev/tenant={label}")
    start(start_operator, a, b, own)
    own.apply(secret_manifest("shared-key", {"key": "other-key"}))
    a.apply(cluster_credentials(name, "shared-key", {"matchLabels": {"goldrush.dev/tenant": label}}))
    try:
        for kubectl in (a, b):
            kubectl.apply(secret_manifest())
            kubectl.apply(using("ClusterGoldRushCredentials", name))
        wait_phase(a, "p1", "RUNNING", ready="True")
        refused = wait_reason(b, "p1", "Stalled", "True", "CredentialsNotAllowed")
        assert (condition(refused, "Ready") or {}).get("reason") == "CredentialsNotAllowed"
        assert b.namespace in (condition(refused, "Ready") or {})["message"]
        names = {p["name"]: p for p in sim.pipelines()}
        assert f"{b.namespace}-p1" not in names and names[f"{a.namespace}-p1"]["group_id"] == "group_other"
        assert [w["body"]["name"] for w in writes(sim, "create")] == [f"{a.namespace}-p1"]
        assert not [e for e in sim.journal() if b.namespace in str(e.get("body") or "")]
        creds = creds_ready(a, "clustergoldrushcredentials", name, "True", "KeyValid")
        wait_for(lambda: a.json("get", "clustergoldrushcredentials", name)["status"].get("usedBy") == 1, 30,
                 message="usedBy 1 (the refused pipeline does not count)")
        assert creds["metadata"].get("namespace") is None
        # Labelling the other namespace lets it in at once (no spec change).
        b("label", "namespace", b.namespace, f"goldrush.dev/tenant={label}")
        wait_phase(b, "p1", "RUNNING", ready="True", timeout=30)
        wait_for(lambda: a.json("get", "clustergoldrushcredentials", name)["status"].get("usedBy") == 2, 30,
                 message="usedBy 2")
    finally:
        a("delete", "clustergoldrushcredentials", name, "--wait=false", check=False)


def test_a_revoked_key_stalls_only_its_users(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> None:
    a, b, own = tenants
    start(start_operator, a, b, own)
    two_teams(sim, a, b)
    for kubectl in (a, b):
        wait_phase(kubectl, "p1", "RUNNING", ready="True")
        creds_ready(kubectl, "goldrushcredentials", "team", "True", "KeyValid")
    sim.admin("DELETE", "keys/team-a-key")
    a.apply(using("GoldRushCredentials", "team", description="needs the API"))
    wait_reason(a, "p1", "Stalled", "True", "AuthFailed")
    creds = creds_ready(a, "goldrushcredentials", "team", "False", "AuthFailed", timeout=30)
    assert (condition(creds, "Stalled") or {}).get("reason") == "AuthFailed"
    other = get(b, "p1")
    assert (condition(other, "Ready") or {}).get("status") == "True" and condition(other, "Stalled") is None
    assert (condition(b.json("get", "goldrushcredentials", "team"), "Ready") or {}).get("reason") == "KeyValid"


def rotation_setup(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> tuple[Kubectl, dict[str, Any]]:
    """One pipeline in team a on a credentials object whose Secret holds the first of two keys of group_a."""
    a, b, own = tenants
    start(start_operator, a, b, own)
    add_key(sim, "team-a-key", "group_a")
    add_key(sim, "team-a-key-2", "group_a")
    a.apply(secret_manifest())
    a.apply(secret_manifest("team-key", {"key": "team-a-key"}))
    a.apply(credentials("team", "team-key"))
    a.apply(using("GoldRushCredentials", "team"))
    return a, wait_phase(a, "p1", "RUNNING", ready="True")


def test_key_rotation_reaches_the_users_within_seconds_without_writes(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> None:
    a, obj = rotation_setup(sim, start_operator, tenants)
    creds_ready(a, "goldrushcredentials", "team", "True", "KeyValid")
    pid = obj["status"]["pipelineId"]
    seq = max(e["seq"] for e in sim.journal())
    a.apply(secret_manifest("team-key", {"key": "team-a-key-2"}))

    def new_key_used() -> bool:
        return any(e["key"] == key_hash("team-a-key-2") and pid in e["path"] for e in sim.journal(seq))

    wait_for(new_key_used, 10, message="a request for the pipeline with the rotated key")
    after = sim.journal(seq)
    assert not [e for e in after if e["method"] != "GET"], "rotation sent no API write"
    sim.admin("DELETE", "keys/team-a-key")  # the old key is gone: the pipeline keeps working with the new one
    a.apply(using("GoldRushCredentials", "team", description="after the rotation"))
    wait_for(lambda: [w for w in writes(sim, "patch") if pid in w["path"]], 30, message="the PATCH")
    patch = [w for w in writes(sim, "patch") if pid in w["path"]][-1]
    assert patch["key"] == key_hash("team-a-key-2") and patch["status"] == 200
    creds_ready(a, "goldrushcredentials", "team", "True", "KeyValid")


def test_rotation_writes_nothing_to_the_pipeline_object(
    sim: SimProcess, start_operator: Start, tenants: tuple[Kubectl, Kubectl, Kubectl]
) -> None:
    a, obj = rotation_setup(sim, start_operator, tenants)
    pid = obj["status"]["pipelineId"]
    version = quiet_version(a, "p1")
    seq = max(e["seq"] for e in sim.journal())
    a.apply(secret_manifest("team-key", {"key": "team-a-key-2"}))
    wait_for(lambda: any(e["key"] == key_hash("team-a-key-2") and pid in e["path"] for e in sim.journal(seq)), 10,
             message="a request with the rotated key")
    time.sleep(1.0)  # a status write the new key's answers caused would land now
    assert get(a, "p1")["metadata"]["resourceVersion"] == version, "no write to the pipeline object"
