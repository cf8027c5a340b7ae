"""Credentials objects: the keyring's rules (selector, no confused deputy, start-up grace, usage counts), a pass
with `spec.credentialsRef` (key choice, refusal without any API call, rotation without writes), and the
credentials controller's key check and status."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from goldrush_operator import conditions as c
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller.creds import CredentialsController
from goldrush_operator.controller.loop import Controller
from goldrush_operator.goldrush_api import GoldRushClient, SharedState
from goldrush_operator.keyring import Keyring, NotYetKnown, Refused, selector_matches
from goldrush_operator.resource import CredentialsRef, PipelineSpec
from goldrush_operator.resource_credentials import LabelSelector
from unit.test_controller import KEY, FakeApi, World, pipeline

pytestmark = pytest.mark.unit

TEAM_KEY = "cqt_team_a_service_key"
SHARED_KEY = "cqt_shared_service_key"
OP_NS = "goldrush-system"


def creds_body(name: str = "team", namespace: str | None = "ns", secret: str = "team-key",  # noqa: S107 - a Secret name
               selector: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "generation": generation}
    spec: dict[str, Any] = {"serviceKeySecretRef": {"name": secret, "key": "key"}}
    if namespace is not None:
        meta["namespace"] = namespace
    if selector is not None:
        spec["namespaceSelector"] = selector
    return {"metadata": meta, "spec": spec}


# ------------------------------------------------------------------------------------------------ keyring


@pytest.mark.parametrize(("selector", "labels", "match"), [
    ({}, {}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    ({"matchLabels": {"team": "a"}}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, {"team": "b"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": ""}, False),
    ({"matchLabels": {"team": "a"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]},
     {"team": "a"}, False),
])
def test_selector_semantics(selector: dict[str, Any], labels: dict[str, str], match: bool) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), labels) is match


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def keyring(clock: Clock | None = None) -> Keyring:
    return Keyring(OP_NS, grace=15.0, clock=clock or Clock())


def test_namespaced_credentials_only_from_their_namespace() -> None:
    clock = Clock()
    ring = keyring(clock)
    ring.observe("GoldRushCredentials", creds_body(namespace="team-a"))
    use = ring.resolve(("team-a", "p1"), CredentialsRef(kind="GoldRushCredentials", name="team"))
    assert use.secret == ("team-a", "team-key") and use.credentials.secret_key == "key"
    # The same name from another namespace is another object: unknown there, whatever exists elsewhere.
    with pytest.raises(NotYetKnown):
        ring.resolve(("team-b", "p1"), CredentialsRef(kind="GoldRushCredentials", name="team"))
    clock.now += 20
    with pytest.raises(Refused) as refused:
        ring.resolve(("team-b", "p1"), CredentialsRef(kind="GoldRushCredentials", name="team"))
    assert refused.value.reason == "CredentialsNotFound" and not refused.value.stall
    assert ring.used_by(("GoldRushCredentials", "team-a", "team")) == 1


def test_cluster_credentials_follow_the_namespace_selector() -> None:
    clock = Clock()
    ring = keyring(clock)
    ring.observe("ClusterGoldRushCredentials",
                 creds_body("shared", None, "shared-key", {"matchLabels": {"goldrush.dev/tenant": "yes"}}))
    ring.observe_namespace("team-a", {"goldrush.dev/tenant": "yes"})
    ring.observe_namespace("team-b", {})
    ref = CredentialsRef(kind="ClusterGoldRushCredentials", name="shared")
    assert ring.resolve(("team-a", "p1"), ref).secret == (OP_NS, "shared-key")
    with pytest.raises(Refused) as refused:
        ring.resolve(("team-b", "p1"), ref)
    assert refused.value.reason == "CredentialsNotAllowed" and refused.value.stall
    assert "team-b" in refused.value.message
    key = ("ClusterGoldRushCredentials", "", "shared")
    assert ring.used_by(key) == 1 and ring.users(key) == [("team-a", "p1"), ("team-b", "p1")]
    # Labelling team-b wakes its user; unlabelling team-a wakes its user; an unchanged label wakes nobody.
    assert ring.observe_namespace("team-b", {"goldrush.dev/tenant": "yes"}) == [("team-b", "p1")]
    assert ring.observe_namespace("team-b", {"goldrush.dev/tenant": "yes"}) == []
    assert ring.resolve(("team-b", "p1"), ref)
    assert ring.used_by(key) == 2
    ring.release(("team-a", "p1"))
    assert ring.used_by(key) == 1 and ring.users(key) == [("team-b", "p1")]


def test_unknown_namespace_labels_fail_closed_after_the_grace() -> None:
    clock = Clock()
    ring = keyring(clock)
    ring.observe("ClusterGoldRushCredentials", creds_body("shared", None, "shared-key", {}))
    ref = CredentialsRef(kind="ClusterGoldRushCredentials", name="shared")
    with pytest.raises(NotYetKnown):
        ring.resolve(("team-a", "p1"), ref)
    clock.now += 16
    with pytest.raises(Refused) as refused:
        ring.resolve(("team-a", "p1"), ref)
    assert refused.value.reason == "CredentialsNotAllowed"


def test_a_spec_change_wakes_the_users_and_a_status_only_event_does_not() -> None:
    ring = keyring()
    ring.observe("GoldRushCredentials", creds_body())
    ring.resolve(("ns", "p1"), CredentialsRef(kind="GoldRushCredentials", name="team"))
    body = creds_body()
    body["status"] = {"usedBy": 1}
    assert ring.observe("GoldRushCredentials", body)[1] == []
    assert ring.observe("GoldRushCredentials", creds_body(secret="other", generation=2))[1] == [("ns", "p1")]
    assert ring.forget(("GoldRushCredentials", "ns", "team")) == [("ns", "p1")]


# ------------------------------------------------------------------------------------------------ passes


class KeyedApi(FakeApi):
    """FakeApi that records the bearer token of every request and refuses keys listed in `refuse`."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.refuse: dict[str, int] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.keys.append(token)
        if token in self.refuse:
            status = self.refuse[token]
            return httpx.Response(status, json={"data": None, "error": True, "error_message": f"refused {status}"})
        return super().handler(request)


class CredsWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.api = KeyedApi()
        self.clock = Clock()
        self.ring = Keyring(OP_NS, grace=15.0, clock=self.clock)
        self.kube.secrets[("ns", "team-key")] = {"key": TEAM_KEY}
        self.kube.secrets[(OP_NS, "shared-key")] = {"key": SHARED_KEY}
        settings = Settings(service_key=KEY, poll_fast_seconds=2.0, poll_slow_seconds=900.0, rate_limit=20.0)
        shared = SharedState()

        def client_for(key: str) -> GoldRushClient:
            return GoldRushClient("http://goldrush.test/platform/pipeline-api/", key, rate_limit=0,
                                  transport=httpx.MockTransport(self.api.handler), shared=shared, max_retries=0)

        self.client_for = client_for
        self.controller = Controller(settings, self.kube, self.store, client_for, ServiceKeySource(settings),
                                     clock=lambda: self.now, keyring=self.ring)
        self.hints: list[Any] = []
        self.controller.on_auth_failed = self.hints.append
        self.ring.observe("GoldRushCredentials", creds_body())
        self.ring.observe("ClusterGoldRushCredentials",
                          creds_body("shared", None, "shared-key", {"matchLabels": {"tenant": "yes"}}))
        self.ring.observe_namespace("ns", {"tenant": "no"})


@pytest.fixture
def cworld() -> CredsWorld:
    return CredsWorld()


def with_ref(kind: str, name: str) -> dict[str, Any]:
    return pipeline(credentialsRef={"kind": kind, "name": name})


async def test_the_credentials_key_is_used_and_the_operator_key_is_not(cworld: CredsWorld) -> None:
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    assert cworld.api.writes() == [("POST", "create")]
    assert set(cworld.api.keys) == {TEAM_KEY}
    assert cworld.ring.used_by(("GoldRushCredentials", "ns", "team")) == 1
    assert cworld.store.referenced("ns", "team-key")


async def test_a_namespace_outside_the_selector_is_refused_without_an_api_call(cworld: CredsWorld) -> None:
    cworld.apply(with_ref("ClusterGoldRushCredentials", "shared"))
    await cworld.run()
    assert cworld.api.journal == [] and cworld.api.keys == []
    ready, stalled = cworld.cond("Ready"), cworld.cond("Stalled")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "CredentialsNotAllowed")
    assert stalled is not None and stalled["reason"] == "CredentialsNotAllowed"
    assert cworld.cond("Synced")["reason"] == "CredentialsNotAllowed"  # type: ignore[index]
    assert not cworld.store.referenced(OP_NS, "shared-key"), "a refused pipeline does not follow the key Secret"
    # Once the namespace is labelled, the pipeline is woken and uses the shared key.
    assert cworld.ring.observe_namespace("ns", {"tenant": "yes"}) == [("ns", "p1")]
    await cworld.run()
    assert set(cworld.api.keys) == {SHARED_KEY} and cworld.api.writes() == [("POST", "create")]


async def test_missing_credentials_wait_silently_at_start_then_say_so(cworld: CredsWorld) -> None:
    cworld.apply(with_ref("GoldRushCredentials", "nope"))
    writes = cworld.kube.status_writes
    delay = await cworld.run()
    assert delay == 0.5 and cworld.kube.status_writes == writes and cworld.kube.events == []
    cworld.clock.now += 20
    await cworld.run()
    ready = cworld.cond("Ready")
    assert ready is not None and ready["reason"] == "CredentialsNotFound"
    assert cworld.cond("Stalled") is None and cworld.api.journal == []


async def test_rotation_uses_the_new_key_with_no_write(cworld: CredsWorld) -> None:
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    pid = cworld.obj()["status"]["pipelineId"]
    cworld.api.phase[pid] = "RUNNING"
    cworld.now += 2
    await cworld.run()
    writes = (cworld.api.writes(), cworld.kube.status_writes, cworld.kube.annotation_writes)
    users = cworld.store.secret_event("ns", "team-key", {"key": "cqt_rotated_key"}, "2")
    assert users == [("ns", "p1")]
    cworld.api.keys.clear()
    cworld.now += 1
    await cworld.run()
    assert cworld.api.keys and set(cworld.api.keys) == {"cqt_rotated_key"}
    assert (cworld.api.writes(), cworld.kube.status_writes, cworld.kube.annotation_writes) == writes


async def test_a_revoked_key_stalls_its_user_and_asks_for_a_check(cworld: CredsWorld) -> None:
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    cworld.api.refuse[TEAM_KEY] = 401
    await cworld.run()
    stalled = cworld.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "AuthFailed"
    assert cworld.hints == [("GoldRushCredentials", "ns", "team")]
    assert TEAM_KEY not in str(cworld.obj())


def test_not_both_key_sources_in_one_spec() -> None:
    spec = PipelineSpec.model_validate(with_ref("GoldRushCredentials", "team")["spec"])
    assert spec.credentials_ref is not None and spec.credentials_ref.kind == "GoldRushCredentials"


# ------------------------------------------------------------------------------------------ key checks


class StatusKube:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str | None, str, dict[str, Any]]] = []

    async def patch_credentials_status(self, plural: str, namespace: str | None, name: str,
                                       status: Mapping[str, Any]) -> None:
        self.writes.append((plural, namespace, name, copy.deepcopy(dict(status))))


def checker(cworld: CredsWorld) -> tuple[CredentialsController, StatusKube, list[Any]]:
    kube, woken = StatusKube(), []
    ctl = CredentialsController(cworld.ring, cworld.store, kube, cworld.client_for,
                                cworld.controller.inputs.read_secret, woken.append, recheck_seconds=900,
                                clock=cworld.clock)
    return ctl, kube, woken


def ready_of(status: Mapping[str, Any]) -> tuple[str, str]:
    ready = c.get_condition(status.get("conditions"), "Ready") or {}
    return str(ready.get("status")), str(ready.get("reason"))


async def test_check_reports_a_valid_key_and_the_users(cworld: CredsWorld) -> None:
    ctl, kube, _ = checker(cworld)
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    verdict = await ctl.check(("GoldRushCredentials", "ns", "team"))
    assert verdict is not None and verdict.ready
    plural, namespace, name, status = kube.writes[-1]
    assert (plural, namespace, name) == ("goldrushcredentials", "ns", "team")
    assert ready_of(status) == ("True", "KeyValid") and status["usedBy"] == 1
    assert c.get_condition(status["conditions"], "Stalled") is None
    assert c.get_condition(status["conditions"], "Reconciling") is None
    assert cworld.api.keys[-1] == TEAM_KEY and cworld.api.journal[-1] == ("GET", "list")
    await ctl.check(("GoldRushCredentials", "ns", "team"))
    assert len(kube.writes) == 1, "no status write when nothing changed"


@pytest.mark.parametrize(("status_code", "reason"), [(401, "AuthFailed"), (403, "NotAServiceKey")])
async def test_check_reports_a_refused_key(cworld: CredsWorld, status_code: int, reason: str) -> None:
    ctl, kube, _ = checker(cworld)
    cworld.api.refuse[SHARED_KEY] = status_code
    await ctl.check(("ClusterGoldRushCredentials", "", "shared"))
    plural, namespace, name, status = kube.writes[-1]
    assert (plural, namespace, name) == ("clustergoldrushcredentials", None, "shared")
    assert ready_of(status) == ("False", reason) and status["usedBy"] == 0
    assert (c.get_condition(status["conditions"], "Stalled") or {}).get("reason") == reason
    assert c.get_condition(status["conditions"], "Reconciling") is None  # a human must act: not in progress
    assert SHARED_KEY not in str(status)


async def test_a_key_the_api_cannot_check_now_is_reconciling_not_stalled(cworld: CredsWorld) -> None:
    """A 503 to the check: retried with backoff, so Reconciling=True ApiUnavailable (kstatus InProgress) and
    no Stalled; once the API answers, Ready=True and Reconciling is gone."""
    ctl, kube, _ = checker(cworld)
    cworld.api.refuse[SHARED_KEY] = 503
    await ctl.check(("ClusterGoldRushCredentials", "", "shared"))
    status = kube.writes[-1][3]
    assert ready_of(status) == ("False", "ApiUnavailable")
    reconciling = c.get_condition(status["conditions"], "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True" and reconciling["reason"] == "ApiUnavailable"
    assert c.get_condition(status["conditions"], "Stalled") is None
    del cworld.api.refuse[SHARED_KEY]
    await ctl.check(("ClusterGoldRushCredentials", "", "shared"))
    status = kube.writes[-1][3]
    assert ready_of(status) == ("True", "KeyValid") and c.get_condition(status["conditions"], "Reconciling") is None


async def test_check_reports_a_missing_secret_and_rechecks_when_it_appears(cworld: CredsWorld) -> None:
    ctl, kube, _ = checker(cworld)
    del cworld.kube.secrets[("ns", "team-key")]
    ctl.on_event("GoldRushCredentials", creds_body(), "ADDED")
    assert cworld.store.referenced("ns", "team-key"), "the key Secret is followed by the Secret watch"
    await ctl.check(("GoldRushCredentials", "ns", "team"))
    assert ready_of(kube.writes[-1][3]) == ("False", "SecretNotFound") and cworld.api.journal == []
    # Waited for, not stalled: Reconciling says so (Flux's kstatus: InProgress, not Current).
    reconciling = c.get_condition(kube.writes[-1][3]["conditions"], "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True" and reconciling["reason"] == "SecretNotFound"
    assert c.get_condition(kube.writes[-1][3]["conditions"], "Stalled") is None
    cworld.store.secret_event("ns", "team-key", {"key": TEAM_KEY}, "5")
    ctl.on_secret_changed(("ns", "team-key"))
    assert ("GoldRushCredentials", "ns", "team") in ctl._due
    await ctl.check(("GoldRushCredentials", "ns", "team"))
    assert ready_of(kube.writes[-1][3]) == ("True", "KeyValid")


async def test_deleting_credentials_wakes_their_users(cworld: CredsWorld) -> None:
    ctl, _, woken = checker(cworld)
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    ctl.on_event("GoldRushCredentials", creds_body(), "DELETED")
    assert woken == [("ns", "p1")]
    cworld.clock.now += 20
    await cworld.run()
    assert (cworld.cond("Ready") or {}).get("reason") == "CredentialsNotFound"


async def test_handlers_route_credentials_namespaces_and_deleted_pipelines(cworld: CredsWorld) -> None:
    from goldrush_operator import handlers
    from goldrush_operator.scheduler import Scheduler

    async def no_pass(key: tuple[str, str]) -> float | None:
        return None

    ctl, _, _ = checker(cworld)
    rt = handlers.Runtime(controller=cworld.controller, store=cworld.store, scheduler=Scheduler(no_pass),
                          list_versions=lambda _ns: None, credentials=ctl, operator_namespace=OP_NS)
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    assert cworld.ring.used_by(("GoldRushCredentials", "ns", "team")) == 1
    handlers.on_pipeline(rt, cworld.obj(), "DELETED")
    assert cworld.ring.used_by(("GoldRushCredentials", "ns", "team")) == 0
    ctl.on_namespace({"metadata": {"name": "ns", "labels": {"tenant": "yes"}}}, "MODIFIED")
    assert cworld.ring.labels["ns"] == {"tenant": "yes"}
    ctl.on_namespace({"metadata": {"name": "ns"}}, "DELETED")
    assert "ns" not in cworld.ring.labels


async def test_a_refusal_right_after_a_check_is_checked_again_not_dropped(cworld: CredsWorld) -> None:
    """A key revoked just after its check: the users' 401 asks for a check, which waits out the minimum interval."""
    ctl, kube, _ = checker(cworld)
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    key = ("GoldRushCredentials", "ns", "team")
    await ctl.check(key)
    assert ready_of(kube.writes[-1][3]) == ("True", "KeyValid")
    cworld.clock.now += 0.5
    ctl.auth_failed(key)  # a pipeline's call was refused half a second after the check
    due = ctl._due[key] - cworld.clock.now
    assert 0 < due <= 2.0, "the check waits for the minimum interval, and is never dropped"


async def test_the_credentials_loop_sleeps_until_a_count_changes_then_writes_the_counts_on_the_next_tick(
        cworld: CredsWorld) -> None:
    """No periodic wake-up while nothing changes; the first change of `usedBy` wakes the loop once, and the
    counts changed until the next tick of the poll grid are written there in one status write."""
    ctl, kube, _ = checker(cworld)
    key = ("GoldRushCredentials", "ns", "team")
    cworld.clock.now += 20  # past the start-up grace
    await ctl.check(key)
    written = len(kube.writes)
    assert kube.writes[-1][3]["usedBy"] == 0
    idle = ctl.next_wake()
    assert idle is not None and idle >= 900, "idle: the next wake-up is the recheck, no tick in between"
    ctl._signal.clear()

    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    assert ctl._signal.is_set(), "the first change wakes the loop (to sleep until the tick)"
    ctl._signal.clear()
    cworld.apply(pipeline("p2", credentialsRef={"kind": "GoldRushCredentials", "name": "team"}))
    await cworld.run("p2")
    assert not ctl._signal.is_set(), "a change while the write is scheduled costs no wake-up"

    wait = ctl.next_wake()
    assert wait is not None and 0 < wait <= 2.0
    assert (cworld.clock.now + wait) % 2.0 == pytest.approx(0.0, abs=1e-9), "the write falls on a tick"
    await ctl.flush_counts()
    assert len(kube.writes) == written, "nothing is written before the tick"
    cworld.clock.now += wait
    await ctl.flush_counts()
    assert len(kube.writes) == written + 1 and kube.writes[-1][3]["usedBy"] == 2
    after = ctl.next_wake()
    assert after is not None and after >= 800, "the loop sleeps again until the recheck"


async def test_counts_changed_during_the_start_up_grace_are_written_on_the_first_tick_after_it(
        cworld: CredsWorld) -> None:
    """While the keyring's start-up grace runs (usedBy is not known yet), a change schedules one write, on the
    first tick of the poll grid after the grace: the loop does not wake on every tick until then."""
    ctl, kube, _ = checker(cworld)
    key = ("GoldRushCredentials", "ns", "team")
    cworld.clock.now = cworld.ring.started + 3.3  # inside the 15 s grace
    await ctl.check(key)
    written = len(kube.writes)
    cworld.apply(with_ref("GoldRushCredentials", "team"))
    await cworld.run()
    wait = ctl.next_wake()
    assert wait is not None
    due = cworld.clock.now + wait
    assert due >= cworld.ring.started + cworld.ring.grace, "not before the grace is over"
    assert due - (cworld.ring.started + cworld.ring.grace) <= 2.0 and due % 2.0 == pytest.approx(0.0, abs=1e-9)
    cworld.clock.now = due - 0.01
    await ctl.flush_counts()
    assert len(kube.writes) == written and ctl.next_wake() == pytest.approx(0.05), "one wake-up, at that tick"
    cworld.clock.now = due
    await ctl.flush_counts()
    assert len(kube.writes) == written + 1 and kube.writes[-1][3]["usedBy"] == 1
