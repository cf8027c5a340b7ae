"""E2E: what Argo CD and Flux say about real objects, in every state of the README's health table.

The operator is driven into each state against the simulator; the live object is judged by Argo CD's own
health code (deploy/argocd/health.lua run by `github.com/argoproj/argo-cd/v3/util/lua`) and by Flux's kstatus
(`sigs.k8s.io/cli-utils`); the two must agree (`support.verdicts.AGREEMENT`) and match the README's table.

The objects are also the Argo CD test cases: `GOLDRUSH_RECORD_SNAPSHOTS=1` writes each one (identity and
timestamps normalised) to deploy/argocd/testdata/<case>.yaml and regenerates deploy/argocd/health_test.yaml;
without it the test fails when a committed snapshot is missing or its verdict differs from the live one.
It also times the failing-update case: both tools must say "not healthy" within 10 s of the spec change and
"healthy" again once the PATCH goes through.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from identity import forbidden_lines
from pipelines import get, pipeline_manifest, secret_manifest, wait_phase, wait_reason

from support import argocd, kstatus, verdicts
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "deploy" / "argocd" / "testdata"
HEALTH_TEST = REPO / "deploy" / "argocd" / "health_test.yaml"
RECORD = os.environ.get("GOLDRUSH_RECORD_SNAPSHOTS") == "1"
# `limited-key`: a second key of the same group, for the object whose writes a Retry-After holds (per key);
# `fresh-key`: a third, whose first listing (the operator caches one per key) meets an API that answers 503.
# `regular-key`: a regular GoldRush API key (answered 403), held by a credentials object;
# `outage-key`: a service key whose requests alone meet an API answering 503, held by a credentials object.
SIM_ARGS = ("--service-key", "dev-key=group_default", "--service-key", "limited-key=group_default",
            "--service-key", "fresh-key=group_default", "--api-key", "regular-key",
            "--service-key", "outage-key=group_default",
            "--deploy-seconds", "3", "--stop-seconds", "0.5")
FIXED_TIME = "2026-01-01T00:00:00Z"


def readme_table() -> dict[str, tuple[str, str]]:
    """case -> (Argo CD health, kstatus) from the README's "What Argo CD and Flux show" table."""
    text = (REPO / "README.md").read_text()
    section = text.split("### What Argo CD and Flux show", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| [^|]+ \| `([a-z_]+)` \| (\w+) \| (\w+) \|", section, flags=re.M)
    return {case: (argo, flux) for case, argo, flux in rows}


PIPELINE_ID = re.compile(r"pipe_[0-9a-f]{27}")
SECRET_HASH = re.compile(r"hmac-sha256:[0-9a-f]{64}")  # keyed by the object's uid: new in every run


def stable_text(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Every string with the run's namespace as `pipelines`, the simulator's random pipeline ids as
    `pipe_000...1`, `pipe_000...2` (in order of first appearance) and the per-object keyed secret hashes as
    zeros: a re-record shows only real changes."""
    ids: dict[str, str] = {}

    def fix(text: str) -> str:
        text = SECRET_HASH.sub("hmac-sha256:" + "0" * 64, text.replace(namespace, "pipelines"))
        return PIPELINE_ID.sub(lambda m: ids.setdefault(m.group(0), f"pipe_{len(ids) + 1:027x}"), text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fix(value)
        if isinstance(value, dict):
            return {fix(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(obj)  # type: ignore[no-any-return]


def normalise(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The live object as a stable test case: no server-set identity, fixed times, stable names and ids."""
    meta = obj["metadata"]
    out = {
        "apiVersion": obj["apiVersion"], "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": "pipelines", "generation": meta["generation"],
                     **({"annotations": {k: v for k, v in meta.get("annotations", {}).items()
                                         if k.startswith(("goldrush.dev/", "reconcile.fluxcd.io/"))}}
                        if meta.get("annotations") else {})},
        "spec": copy.deepcopy(obj.get("spec", {})),
        "status": copy.deepcopy(obj.get("status", {})),
    }
    annotations = out["metadata"].get("annotations", {})
    if "goldrush.dev/create-pending" in annotations:
        annotations["goldrush.dev/create-pending"] = FIXED_TIME
    status = out["status"]
    for condition in status.get("conditions", []):
        condition["lastTransitionTime"] = FIXED_TIME
    for key in ("createdAt", "lastHandledReconcileAt"):
        if key in status:
            status[key] = FIXED_TIME
    if "destinationHealth" in status:
        status["destinationHealth"]["checkedAt"] = FIXED_TIME
    return stable_text(out, namespace)


def utc_now(offset: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def health_sim() -> Any:
    with SimProcess.start(*SIM_ARGS) as process:
        yield process


@pytest.fixture
def health_operator(operator_identity: Path, namespace: str, health_sim: SimProcess, tmp_path: Path,
                    crd_installed: None) -> Any:
    """The operator as the default install's ServiceAccount (see conftest.py); no request of it is denied."""
    # A request timeout of 30 s (the default): an interrupted create waits that long, plus a margin, before
    # the name rule decides, which keeps the Pending case in view for seconds.
    proc = OperatorProcess.start(operator_identity, health_sim.base_url, tmp_path / "operator.log",
                                 namespaces=[namespace], env={"GOLDRUSH_REQUEST_TIMEOUT_SECONDS": "30"})
    yield proc
    if proc.alive():
        proc.stop()
    denied = forbidden_lines(proc.log)
    if denied:
        pytest.fail(f"the operator's requests were denied by RBAC: {denied}", pytrace=False)


def test_argo_cd_and_kstatus_agree_on_every_state(
    kubectl: Kubectl, health_sim: SimProcess, health_operator: OperatorProcess, operator_identity: Path,
    tmp_path: Path,
) -> None:
    sim = health_sim
    # First of all, while the operator is new: an object marked by an interrupted create whose POST may
    # still land (request timeout plus a margin after the operator became its writer) waits, Pending.
    kubectl.apply(secret_manifest())
    waiting = pipeline_manifest("waiting")
    waiting["metadata"].setdefault("annotations", {})["goldrush.dev/create-pending"] = utc_now()
    kubectl.apply(waiting)
    table = readme_table()
    assert len(table) >= 12, "the README health table is missing or unparsable"
    argocd.ensure_binary()
    kstatus.ensure_binary()
    seen: dict[str, dict[str, Any]] = {}

    def snap(case: str, obj: dict[str, Any]) -> None:
        assert case in table, f"case {case} is not in the README table"
        result = verdicts.verdicts(obj)
        argo, flux = result.argo["status"], result.kstatus["status"]
        assert result.agree, f"{case}: Argo CD {argo} vs kstatus {flux}: {obj['status']}"
        assert (argo, flux) == table[case], f"{case}: live ({argo}, {flux}) but the README says {table[case]}"
        seen[case] = normalise(obj, kubectl.namespace)
        if not RECORD:
            committed = TESTDATA / f"{case}.yaml"
            assert committed.exists(), f"{committed} is missing: run with GOLDRUSH_RECORD_SNAPSHOTS=1"
            stored = argocd.compute(argocd.ensure_binary(), yaml.safe_load(committed.read_text()))
            assert stored["status"] == argo, f"{case}: committed snapshot says {stored['status']}, live {argo}"

    def when(name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 40,
             kind: str = "goldrushpipeline") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj: dict[str, Any] = get(kubectl, name) if kind == "goldrushpipeline" else kubectl.json("get", kind, name)
            return obj if predicate(obj) else None

        result: dict[str, Any] = wait_for(check, timeout, message=f"{name} to reach the state")
        return result

    def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
        for c in obj.get("status", {}).get("conditions", []):
            if c["type"] == ctype:
                return dict(c)
        return {}

    snap("progressing_pending", when("waiting", lambda o: cond(o, "Ready").get("reason") == "Pending", timeout=20))

    # A foreign pipeline with the name and project of an object applied last (seeded before any listing,
    # which the operator caches for a few seconds).
    conflicting = pipeline_manifest("conflict")
    sim.seed(name=f"{kubectl.namespace}-conflict", project=conflicting["spec"]["project"],
             topic="eth.mainnet.ref.block.logs", destination_type="postgres", execution_mode="unbounded",
             group="group_default", destination_config={"type": "postgres", "url": "postgresql://x/y",
                                                        "user": "u", "password": "theirs"})
    # What an interrupted create left twice (a create-pending mark, two pipelines of its name, project and
    # topic created after it), also seeded before any listing.
    incomplete = pipeline_manifest("incomplete")
    mark = utc_now(-1)
    for _ in range(2):
        sim.seed(name=f"{kubectl.namespace}-incomplete", project=incomplete["spec"]["project"],
                 topic=incomplete["spec"]["topic"], destination_type="postgres", execution_mode="unbounded",
                 group="group_default", destination_config={"type": "postgres", "url": "postgresql://x/y",
                                                            "user": "u", "password": "either"})
    incomplete["metadata"].setdefault("annotations", {})["goldrush.dev/create-pending"] = mark
    kubectl.apply(incomplete)
    # Deploying, then running.
    kubectl.apply(pipeline_manifest("running"))
    snap("progressing_deploying", when("running", lambda o: o.get("status", {}).get("phase") == "DEPLOYING"))
    running = wait_phase(kubectl, "running", "RUNNING", ready="True")
    snap("healthy_running", running)

    # The failing update: a 409 on every PATCH, then a spec change.
    sim.faults(rules=[{"route": "patch", "method": "*", "status": 409, "rate": 1.0}])
    kubectl.apply(pipeline_manifest("running", description="a change the API refuses for now"))
    changed = time.monotonic()
    conflict = when("running", lambda o: cond(o, "Synced").get("reason") == "Conflict", timeout=10)
    assert time.monotonic() - changed <= 10
    assert verdicts.verdicts(conflict).argo["status"] != "Healthy"
    snap("progressing_update_conflict", conflict)
    sim.clear_faults()
    healed = when("running", lambda o: cond(o, "Synced").get("status") == "True" and cond(o, "Ready").get(
        "status") == "True", timeout=60)
    assert verdicts.verdicts(healed).argo["status"] == "Healthy"
    assert verdicts.verdicts(healed).kstatus["status"] == "Current"

    # Transient API trouble while running: still Ready, retrying.
    sim.faults(rules=[{"route": "status", "method": "*", "status": 503, "rate": 1.0}])
    snap("progressing_api_unavailable", when("running", lambda o: cond(o, "Reconciling").get("reason") == "Retrying"))
    sim.faults(rules=[{"route": "status", "method": "*", "status": 503, "rate": 1.0},
                      {"route": "list", "method": "*", "status": 503, "rate": 1.0}])
    kubectl.apply(secret_manifest("freshkey", {"key": "fresh-key"}))
    kubectl.apply(pipeline_manifest("unavailable", serviceKeySecretRef={"name": "freshkey", "key": "key"}))
    snap("progressing_api_unavailable_create", when("unavailable", lambda o: cond(o, "Ready").get("reason")
                                                    == "ApiUnavailable"))
    sim.clear_faults()
    wait_reason(kubectl, "running", "Ready", "True", "Running")
    when("running", lambda o: not cond(o, "Reconciling"))

    # Unhealthy destination: Ready stays True.
    pid = running["status"]["pipelineId"]
    sim.admin("POST", f"pipelines/{pid}/destination-health", {"healthy": False, "last_error": "connection refused"})
    kubectl("annotate", "--overwrite", "grp", "running", "goldrush.dev/reconcile-requested-at=1")
    snap("healthy_destination_unhealthy", when("running", lambda o: cond(o, "DestinationHealthy").get("status")
                                               == "False"))

    # Pause-reconciliation annotation.
    kubectl("annotate", "--overwrite", "grp", "running", "goldrush.dev/pause-reconciliation=true")
    snap("suspended_reconcile_paused", when("running", lambda o: cond(o, "Synced").get("reason") == "ReconcilePaused"))
    kubectl("annotate", "grp", "running", "goldrush.dev/pause-reconciliation-")

    # Paused as asked.
    kubectl.apply(pipeline_manifest("paused", paused=True))
    snap("suspended_paused", when("paused", lambda o: cond(o, "Ready").get("reason") == "Paused"))

    # Remote FAILED, a stopped unbounded pipeline, a finished bounded one.
    kubectl.apply(pipeline_manifest("failing"))
    pid = wait_phase(kubectl, "failing", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.force_phase(pid, "FAILED", log="sink error: relation does not exist")
    snap("degraded_remote_failed", when("failing", lambda o: cond(o, "Stalled").get("reason") == "RemoteFailed"))
    kubectl.apply(pipeline_manifest("stopped"))
    pid = wait_phase(kubectl, "stopped", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.force_phase(pid, "STOPPED")
    snap("progressing_stopped_unbounded", when("stopped", lambda o: cond(o, "Ready").get("reason") == "Stopped"))
    kubectl.apply(pipeline_manifest("bounded", execution={"mode": "bounded", "startFrom": "100", "stopAt": "200"}))
    pid = wait_phase(kubectl, "bounded", "RUNNING", ready="True")["status"]["pipelineId"]
    sim.force_phase(pid, "STOPPED")
    snap("healthy_bounded_finished", when("bounded", lambda o: cond(o, "Ready").get("reason") == "Completed"))

    # Inputs the user must fix or provide.
    missing = pipeline_manifest("nosecret")
    missing["spec"]["destination"]["secretRefs"]["password"]["name"] = "not-there"
    kubectl.apply(missing)
    snap("progressing_secret_not_found", when("nosecret", lambda o: cond(o, "Ready").get("reason") == "SecretNotFound"))
    kubectl.apply(pipeline_manifest("nocreds", credentialsRef={"kind": "GoldRushCredentials", "name": "not-there"}))
    snap("progressing_credentials_not_found", when("nocreds", lambda o: cond(o, "Ready").get("reason")
                                                   == "CredentialsNotFound"))
    kubectl.apply(pipeline_manifest("noabi", abi={"configMapRef": {"name": "abi-missing", "key": "abi.json"}}))
    snap("progressing_configmap_not_found", when("noabi", lambda o: cond(o, "Ready").get("reason")
                                                 == "ConfigMapNotFound"))
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "abi-garbled"},
                   "data": {"abi.json": "{this is not JSON"}})
    kubectl.apply(pipeline_manifest("garbled", abi={"configMapRef": {"name": "abi-garbled", "key": "abi.json"}}))
    snap("degraded_invalid_input", when("garbled", lambda o: cond(o, "Stalled").get("reason") == "InvalidSpec"))
    kubectl.apply(secret_manifest("badkey", {"key": "cqt_not_a_known_key"}))
    kubectl.apply(pipeline_manifest("badkey", serviceKeySecretRef={"name": "badkey", "key": "key"}))
    snap("degraded_auth_failed", when("badkey", lambda o: cond(o, "Stalled").get("reason") == "AuthFailed"))
    sim.faults(echo_body_in_422={"route": "create", "count": 1})
    kubectl.apply(pipeline_manifest("rejected"))
    snap("degraded_invalid_spec", when("rejected", lambda o: cond(o, "Stalled").get("reason") == "InvalidSpec"))
    kubectl.apply(conflicting)
    snap("degraded_name_conflict", when("conflict", lambda o: cond(o, "Stalled").get("reason") == "NameConflict"))
    snap("degraded_create_incomplete", when("incomplete", lambda o: cond(o, "Stalled").get("reason")
                                            == "CreateIncomplete"))
    elsewhere = f"{kubectl.namespace}-elsewhere"
    kubectl.apply({"apiVersion": "goldrush.dev/v1alpha1", "kind": "ClusterGoldRushCredentials",
                   "metadata": {"name": elsewhere},
                   "spec": {"serviceKeySecretRef": {"name": "goldrush-key", "key": "key"},
                            "namespaceSelector": {"matchLabels": {"goldrush.dev/team": "someone-else"}}}})
    try:
        kubectl.apply(pipeline_manifest("notallowed", credentialsRef={"kind": "ClusterGoldRushCredentials",
                                                                      "name": elsewhere}))
        snap("degraded_credentials_not_allowed", when("notallowed", lambda o: cond(o, "Stalled").get("reason")
                                                      == "CredentialsNotAllowed"))
    finally:
        kubectl("delete", "clustergoldrushcredentials", elsewhere, "--wait=false", check=False)

    # Credentials objects: the same script judges them (registered under their kinds too); kstatus reads
    # their Stalled and Reconciling like a pipeline's.
    kubectl.apply(secret_manifest("credskey", {"key": "dev-key"}))
    kubectl.apply(secret_manifest("regularkey", {"key": "regular-key"}))
    kubectl.apply(secret_manifest("outagekey", {"key": "outage-key"}))
    # Only this key's requests meet the outage: every other object of the test is served.
    sim.faults(rules=[{"route": "*", "method": "*", "status": 503, "rate": 1.0,
                       "key_sha256": hashlib.sha256(b"outage-key").hexdigest()}])
    for creds_name, creds_secret in (("creds-valid", "credskey"), ("creds-revoked", "badkey"),
                                     ("creds-regular", "regularkey"), ("creds-nosecret", "creds-missing"),
                                     ("creds-outage", "outagekey")):
        kubectl.apply({"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushCredentials",
                       "metadata": {"name": creds_name},
                       "spec": {"serviceKeySecretRef": {"name": creds_secret, "key": "key"}}})
    snap("healthy_credentials_key_valid", when("creds-valid", lambda o: cond(o, "Ready").get("reason") == "KeyValid",
                                               kind="goldrushcredentials"))
    snap("degraded_credentials_auth_failed", when("creds-revoked", lambda o: cond(o, "Stalled").get("reason")
                                                  == "AuthFailed", kind="goldrushcredentials"))
    snap("degraded_credentials_not_a_service_key", when("creds-regular", lambda o: cond(o, "Stalled").get("reason")
                                                        == "NotAServiceKey", kind="goldrushcredentials"))
    snap("progressing_credentials_secret_not_found", when("creds-nosecret", lambda o: cond(o, "Reconciling").get(
        "reason") == "SecretNotFound", kind="goldrushcredentials"))
    snap("progressing_credentials_api_unavailable", when("creds-outage", lambda o: cond(o, "Reconciling").get(
        "reason") == "ApiUnavailable", kind="goldrushcredentials"))

    # Writes under way or refused: each on an object of its own, running first.
    def running_object(name: str, **spec: Any) -> str:
        kubectl.apply(pipeline_manifest(name, **spec))
        return str(wait_phase(kubectl, name, "RUNNING", ready="True")["status"]["pipelineId"])

    running_object("changing")
    sim.faults(delay_after_commit={"route": "patch", "method": "*", "seconds": 4, "count": 1})
    kubectl.apply(pipeline_manifest("changing", description="a change the API takes its time over"))
    snap("progressing_update_pending", when("changing", lambda o: cond(o, "Synced").get("reason") == "UpdatePending",
                                            timeout=4))
    sim.clear_faults()
    sim.faults(rules=[{"route": "patch", "method": "*", "status": 500, "rate": 1.0}])
    kubectl.apply(pipeline_manifest("changing", description="a change answered 500"))
    snap("progressing_outcome_unknown", when("changing", lambda o: cond(o, "Synced").get("reason") == "OutcomeUnknown"))
    sim.clear_faults()
    kubectl.apply(secret_manifest("limitedkey", {"key": "limited-key"}))
    limited_key = {"serviceKeySecretRef": {"name": "limitedkey", "key": "key"}}
    running_object("limited", **limited_key)
    sim.faults(rules=[{"route": "patch", "method": "*", "status": 429, "rate": 1.0, "retry_after": 90, "count": 1}])
    kubectl.apply(pipeline_manifest("limited", description="a change the key may not send yet", **limited_key))
    snap("progressing_rate_limited", when("limited", lambda o: cond(o, "Reconciling").get("reason") == "RateLimited"))
    running_object("refused")
    sim.faults(rules=[{"route": "patch", "method": "*", "status": 413, "rate": 1.0, "count": 1}])
    kubectl.apply(pipeline_manifest("refused", description="x" * 200))
    snap("degraded_unexpected_response", when("refused", lambda o: cond(o, "Stalled").get("reason")
                                              == "UnexpectedResponse"))
    pid = running_object("moved")
    sim.admin("PATCH", f"pipelines/{pid}", {"topic": "eth.mainnet.ref.block.logs"})
    kubectl("annotate", "--overwrite", "grp", "moved", "goldrush.dev/reconcile-requested-at=1")
    snap("degraded_immutable_field_changed", when("moved", lambda o: cond(o, "Stalled").get("reason")
                                                  == "ImmutableFieldChanged"))
    pid = running_object("stopping")
    sim.force_phase(pid, "STOPPING")
    kubectl("annotate", "--overwrite", "grp", "stopping", "goldrush.dev/reconcile-requested-at=1")
    snap("progressing_stopping", when("stopping", lambda o: cond(o, "Ready").get("reason") == "Stopping"))

    # Management policies: nothing to observe; a difference kept unwritten.
    kubectl.apply(pipeline_manifest("observed", managementPolicies=["Observe"]))
    snap("progressing_not_found", when("observed", lambda o: cond(o, "Ready").get("reason") == "NotFound"))
    running_object("frozen")
    kubectl.apply(pipeline_manifest("frozen", description="not to be written",
                                    managementPolicies=["Observe", "Create", "Delete"]))
    snap("healthy_update_not_allowed", when("frozen", lambda o: cond(o, "Synced").get("reason") == "UpdateNotAllowed"))

    # The apiserver refuses the operator's writes to the object itself (a webhook it cannot reach; status
    # writes go through): the remote pipeline vanished, and the mark that must precede a new POST fails.
    blocked = pipeline_manifest("blocked")
    blocked["metadata"].setdefault("labels", {})["goldrush.dev/e2e-webhook"] = kubectl.namespace
    kubectl.apply(blocked)
    pid = str(wait_phase(kubectl, "blocked", "RUNNING", ready="True")["status"]["pipelineId"])
    hook = f"{kubectl.namespace}-unreachable"
    kubectl.apply({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": hook},
        "webhooks": [{
            "name": "unreachable.e2e.goldrush.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 1, "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "objectSelector": {"matchLabels": {"goldrush.dev/e2e-webhook": kubectl.namespace}},
            "rules": [{"apiGroups": ["goldrush.dev"], "apiVersions": ["*"], "operations": ["UPDATE"],
                       "resources": ["goldrushpipelines"], "scope": "Namespaced"}],
        }],
    })
    try:
        wait_for(lambda: kubectl("label", "--overwrite", "grp", "blocked", "probe=1", check=False).returncode != 0,
                 10, message="the webhook to be in force")
        sim.admin("DELETE", f"pipelines/{pid}")
        snap("progressing_kubernetes_error", when("blocked", lambda o: cond(o, "Ready").get("reason")
                                                  == "KubernetesError"))
    finally:
        kubectl("delete", "validatingwebhookconfiguration", hook, "--wait=false", check=False)
    recreated = when("blocked", lambda o: o.get("status", {}).get("pipelineId") not in (None, pid)
                     and cond(o, "Ready").get("status") == "True", timeout=60)
    named = [i for i in sim.admin("GET", "pipelines")["items"] if i["name"] == f"{kubectl.namespace}-blocked"]
    assert [i["id"] for i in named] == [recreated["status"]["pipelineId"]], named

    # Dry run: the same operator with GOLDRUSH_DRY_RUN=true only announces a change of a running pipeline.
    health_operator.stop()
    dry = OperatorProcess.start(operator_identity, sim.base_url, tmp_path / "dry-run.log",
                                namespaces=[kubectl.namespace], env={"GOLDRUSH_DRY_RUN": "true"})
    try:
        kubectl.apply(pipeline_manifest("running", description="a change a dry run only announces"))
        snap("healthy_dry_run", when("running", lambda o: cond(o, "Synced").get("reason") == "DryRun"))
    finally:
        dry.stop()
    denied = forbidden_lines(dry.log)
    assert not denied, f"the dry-run operator's requests were denied by RBAC: {denied}"

    # An operator with no service key, and an object that references none: AuthFailed, and nothing is sent.
    keyless = OperatorProcess.start(operator_identity, sim.base_url, tmp_path / "keyless.log",
                                    namespaces=[kubectl.namespace], service_key=None)
    try:
        kubectl.apply(pipeline_manifest("keyless"))
        snap("degraded_no_service_key", when("keyless", lambda o: cond(o, "Synced").get("reason") == "AuthFailed"))
    finally:
        keyless.stop()
    assert not [i for i in sim.admin("GET", "pipelines")["items"] if i["name"] == f"{kubectl.namespace}-keyless"]

    assert set(seen) == set(table), f"README cases without a snapshot: {sorted(set(table) - set(seen))}"
    if RECORD:
        for old in TESTDATA.glob("*.yaml"):
            old.unlink()
        for case, obj in sorted(seen.items()):
            (TESTDATA / f"{case}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
        results = {case: argocd.compute(argocd.ensure_binary(), obj) for case, obj in seen.items()}
        tests = [{"healthStatus": {"status": results[c]["status"], "message": results[c]["message"]},
                  "inputPath": f"testdata/{c}.yaml"} for c in sorted(seen)]
        HEALTH_TEST.write_text(yaml.safe_dump({"tests": tests}, sort_keys=False, width=120))
