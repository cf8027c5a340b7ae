"""Unit tests of the controller (controller/loop.py and its steps) with a fake Kubernetes adapter and a
`MockTransport` GoldRush client: the create/update/poll/stall/retry decisions and the conditions they write."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from goldrush_operator import conditions as c
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller.external import keeps_the_name
from goldrush_operator.controller.loop import Controller, DeleteLater
from goldrush_operator.goldrush_api import GoldRushClient, Pipeline, SharedState
from goldrush_operator.kube import KubeError, NotFound
from goldrush_operator.resource import ANNOTATION_CREATE_PENDING, FINALIZER
from goldrush_operator.state import ObjectKey, Store

KEY = "cqt_service_key_for_tests"
PASSWORD = "pg-Secret-Value-1"


class FakeKube:
    """In-memory Kubernetes: objects by (namespace, name), Secrets, ConfigMaps; counts writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.events: list[tuple[str, str]] = []
        self.status_writes = 0
        self.annotation_writes = 0
        self.refuse_annotations = False  # the apiserver refuses writes to the object itself (not its status)
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}

    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        if (namespace, name) not in self.secrets:
            raise NotFound("Kubernetes API 404 Not Found", 404)
        return dict(self.secrets[(namespace, name)]), "1"

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        if (namespace, name) not in self.configmaps:
            raise NotFound("Kubernetes API 404 Not Found", 404)
        return dict(self.configmaps[(namespace, name)])

    async def patch_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *,
        finalizers: list[str] | None = None, resource_version: str | None = None,
    ) -> None:
        self.annotation_writes += 1
        if self.refuse_annotations:
            raise KubeError("Kubernetes API 500 InternalError", 500)
        meta = self.objects[(namespace, name)]["metadata"]
        if finalizers is not None:
            if resource_version is not None and resource_version != meta.get("resourceVersion"):
                raise KubeError("Kubernetes API 409 Conflict", 409)
            meta["finalizers"] = list(finalizers)
        current = meta.setdefault("annotations", {})
        for k, v in annotations.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v

    async def remove_finalizer(self, namespace: str, name: str, index: int, finalizer: str) -> None:
        obj = self.objects[(namespace, name)]
        finalizers = obj["metadata"].get("finalizers") or []
        if index >= len(finalizers) or finalizers[index] != finalizer:
            raise KubeError("Kubernetes API 422 Invalid", 422)
        del finalizers[index]
        if not finalizers and obj["metadata"].get("deletionTimestamp"):
            del self.objects[(namespace, name)]  # the apiserver lets it go

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_writes += 1
        stored = self.objects[(namespace, name)].setdefault("status", {})
        for k, v in status.items():
            if v is None:
                stored.pop(k, None)
            else:
                stored[k] = copy.deepcopy(v)

    async def post_event(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        assert PASSWORD not in message and KEY not in message
        self.events.append((reason, message))


class FakeApi:
    """Just enough of the Pipeline API over MockTransport; `fail` maps (method, route) -> status to answer."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.phase: dict[str, str] = {}
        self.journal: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.fail_text: dict[tuple[str, str], str] = {}  # the error_message of a failure (default "injected N")
        self.no_runtime: set[str] = set()  # pipelines whose `/status/` answers 404 (the API leaves it open)
        self.vanish_on_patch = False  # the pipeline is deleted out of band just before a PATCH arrives
        self.health: dict[str, Any] = {"healthy": True, "last_error": None}
        self._ids = itertools.count(1)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/platform/pipeline-api/").strip("/")
        parts = path.split("/") if path else []
        method = request.method
        route = "list" if not parts and method == "GET" else "create" if not parts else (
            parts[1] if len(parts) > 1 else {"GET": "get", "PATCH": "patch", "PUT": "put", "DELETE": "delete"}[method])
        self.journal.append((method, route))
        if (method, route) in self.fail:
            status = self.fail[(method, route)]
            text = self.fail_text.get((method, route), f"injected {status}")
            return httpx.Response(status, json={"data": None, "error": True, "error_message": text})
        if route == "list":
            return self._ok({"items": [self._masked(p) for p in self.pipelines.values()],
                             "pagination": {"page_number": 1, "has_more": False}})
        if route == "create":
            body = json.loads(request.content)
            pid = f"pipe_{next(self._ids):04d}"
            self.pipelines[pid] = {**body, "id": pid, "created_at": "2099-01-01T00:00:00Z"}
            self.phase[pid] = "DEPLOYING"
            return self._ok(self._masked(self.pipelines[pid]), 201)
        pid = parts[0]
        if route == "patch" and self.vanish_on_patch:
            self.pipelines.pop(pid, None)
        if pid not in self.pipelines:
            return httpx.Response(404, json={"data": None, "error": True, "error_message": "not found"})
        if route == "get":
            return self._ok(self._masked(self.pipelines[pid]))
        if route in ("patch", "put"):
            self.pipelines[pid].update(json.loads(request.content))
            return self._ok(self._masked(self.pipelines[pid]))
        if route == "delete":
            del self.pipelines[pid]
            return httpx.Response(204)
        if route == "status":
            if pid in self.no_runtime:
                return httpx.Response(404, json={"data": None, "error": True, "error_message": "no runtime"})
            return self._ok({"status": self.phase[pid], "replicas": 1, "ready": 1})
        if route == "destination-health":
            return self._ok(self.health)
        return self._ok({"pods": [{"pod": "w-0", "logs": "boom: disk full\n"}]})

    @staticmethod
    def _masked(pipeline: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(pipeline)
        if "password" in out.get("destination_config", {}):
            out["destination_config"]["password"] = "******"
        return out

    @staticmethod
    def _ok(data: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json={"data": data, "error": False, "error_message": None, "error_code": None})

    def writes(self) -> list[tuple[str, str]]:
        return [(m, r) for m, r in self.journal if m != "GET"]


def pipeline(name: str = "p1", generation: int = 1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "project": "proj", "topic": "base-mainnet.covalent.raw.block.v1",
        "destination": {"type": "postgres", "config": {"host": "db", "port": 5432, "database": "d", "user": "u"},
                        "secretRefs": {"password": {"name": "pg", "key": "password"}}},
        "execution": {"mode": "unbounded"},
    }
    body.update(spec)
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": generation,
                         "resourceVersion": "1", "annotations": {}}, "spec": body}


class World:
    """A controller wired to the fakes; `sync()` mirrors the fake cluster into the store like the watch."""

    def __init__(self, rate_limit: float = 0, service_key: str = KEY) -> None:  # rate 0: unlimited (real clock)
        self.kube, self.api, self.store = FakeKube(), FakeApi(), Store()
        self.kube.secrets[("ns", "pg")] = {"password": PASSWORD}
        self.now = 1000.0
        settings = Settings(service_key=service_key, poll_fast_seconds=2.0, poll_slow_seconds=900.0, rate_limit=20.0)
        shared = SharedState()

        def client_for(key: str) -> GoldRushClient:
            return GoldRushClient("http://goldrush.test/platform/pipeline-api/", key, rate_limit=rate_limit,
                                  transport=httpx.MockTransport(self.api.handler), shared=shared, max_retries=0)

        self._wiring = (settings, client_for)
        self.controller = self._controller()

    def _controller(self) -> Controller:
        settings, client_for = self._wiring
        return Controller(settings, self.kube, self.store, client_for, ServiceKeySource(settings),
                          clock=lambda: self.now)

    def restart(self) -> None:
        """A new operator process over the same cluster and API: no records, no listings; the watch's first list."""
        self.store = Store()
        self.controller = self._controller()
        self.sync()

    def apply(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        old = self.kube.objects.get(key)
        if old is not None:
            body = {**body, "status": old.get("status", {})}
            body["metadata"] = {**body["metadata"], "annotations": old["metadata"].get("annotations", {}),
                                "finalizers": old["metadata"].get("finalizers", [])}
        self.kube.objects[key] = copy.deepcopy(body)
        self.sync()

    def sync(self) -> None:
        for obj in self.kube.objects.values():
            self.store.observe(copy.deepcopy(obj))

    async def run(self, name: str = "p1") -> float | None:
        delay = await self.controller.run_pass(("ns", name))
        self.sync()
        return delay

    def obj(self, name: str = "p1") -> dict[str, Any]:
        return self.kube.objects[("ns", name)]

    def cond(self, ctype: str, name: str = "p1") -> dict[str, Any] | None:
        return c.get_condition(self.obj(name).get("status", {}).get("conditions"), ctype)


@pytest.fixture
def world() -> World:
    return World()


async def test_create_records_id_then_one_poll_per_pass(world: World) -> None:
    world.apply(pipeline())
    delay = await world.run()
    assert world.api.writes() == [("POST", "create")]
    obj = world.obj()
    pid = obj["status"]["pipelineId"]
    assert obj["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == pid
    # The create pass sends no read (reads step aside for the writes of a burst): the runtime comes next pass.
    assert [m for m, _ in world.api.journal if m == "GET"] == ["GET"]  # the name-conflict listing only
    assert "phase" not in obj["status"] and delay == 2.0
    # Kubernetes writes of a create: the intent mark, one status write (id, secret hashes and the first
    # conditions together), the id annotation; and the Created Event.
    assert (world.kube.annotation_writes, world.kube.status_writes) == (2, 1)
    assert [r for r, _ in world.kube.events] == ["Created"]
    assert obj["status"]["createdAt"] and obj["status"]["observedGeneration"] == 1
    assert world.cond("Reconciling")["reason"] == "Creating"  # type: ignore[index]
    assert world.cond("Synced")["status"] == "True" and world.cond("Ready")["status"] == "False"  # type: ignore[index]
    world.now += 2
    await world.run()
    assert world.obj()["status"]["phase"] == "DEPLOYING"
    assert world.cond("Reconciling")["reason"] == "Deploying"  # type: ignore[index]
    world.api.phase[pid] = "RUNNING"
    world.now += 2
    await world.run()
    ready = world.cond("Ready")
    assert ready is not None and ready["status"] == "True" and ready["observedGeneration"] == 1
    assert world.cond("Synced")["status"] == "True"  # type: ignore[index]
    assert world.cond("Reconciling") is None and world.cond("Stalled") is None
    assert world.api.writes() == [("POST", "create")]
    assert PASSWORD not in json.dumps(world.obj())
    # Idle passes: reads only, and no status write when nothing changed.
    writes = world.kube.status_writes
    world.now += 100
    await world.run()
    assert world.kube.status_writes == writes and world.api.writes() == [("POST", "create")]


async def _running(world: World) -> str:
    world.apply(pipeline())
    await world.run()
    pid: str = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    world.now += 2
    await world.run()
    return pid


async def test_failing_update_is_never_reported_healthy(world: World) -> None:
    pid = await _running(world)
    world.api.fail[("PATCH", "patch")] = 409
    world.apply(pipeline(generation=2, description="new"))
    delay = await world.run()
    synced, ready, reconciling = world.cond("Synced"), world.cond("Ready"), world.cond("Reconciling")
    assert synced is not None and synced["status"] == "False" and synced["reason"] == "Conflict"
    assert ready is not None and ready["status"] == "False" and ready["observedGeneration"] == 2
    assert reconciling is not None and reconciling["status"] == "True"
    assert world.cond("Stalled") is None
    assert world.obj()["status"]["observedGeneration"] == 2
    assert delay is not None and delay <= 10
    # The PATCH is retried (409 is transient) and, once it succeeds, everything is true again.
    del world.api.fail[("PATCH", "patch")]
    world.now += delay
    await world.run()
    assert world.cond("Synced")["status"] == "True" and world.cond("Ready")["status"] == "True"  # type: ignore[index]
    assert world.cond("Reconciling") is None
    assert world.api.pipelines[pid]["description"] == "new"


async def test_rejected_patch_is_not_sent_again_until_the_spec_changes(world: World) -> None:
    await _running(world)
    world.api.fail[("PATCH", "patch")] = 422
    world.apply(pipeline(generation=2, description="bad"))
    await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "InvalidSpec" and "422" in stalled["message"]
    assert world.cond("Synced")["status"] == "False"  # type: ignore[index]
    assert world.cond("Synced")["reason"] == "ApiError"  # type: ignore[index]  # the API refused the write
    patches = world.api.writes().count(("PATCH", "patch"))
    polls = world.api.journal.count(("GET", "status"))
    for _ in range(3):  # later passes (slow poll, recheck) do not repeat the rejected write
        world.now += 1000
        await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == patches
    assert world.api.journal.count(("GET", "status")) > polls  # ... but the runtime is still observed
    assert world.cond("Stalled")["reason"] == "InvalidSpec"  # type: ignore[index]
    del world.api.fail[("PATCH", "patch")]
    world.apply(pipeline(generation=3, description="good"))
    await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == patches + 1
    assert world.cond("Stalled") is None and world.cond("Ready")["status"] == "True"  # type: ignore[index]


@pytest.mark.parametrize("code", [402, 405, 413, 415])
async def test_a_write_answered_any_other_4xx_is_not_sent_again_until_the_spec_changes(world: World, code: int) -> None:
    """Not only 400/422: a write refused with any 4xx but 409/429 would be refused again (issue: "a write
    answered 4xx is not sent again until the spec, a Secret or the key changes")."""
    await _running(world)
    world.api.fail[("PATCH", "patch")] = code
    world.apply(pipeline(generation=2, description="x"))
    await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "UnexpectedResponse" and str(code) in stalled["message"]
    assert world.cond("Synced")["reason"] == "ApiError"  # type: ignore[index]
    for _ in range(3):
        world.now += 1000
        await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == 1
    del world.api.fail[("PATCH", "patch")]
    world.apply(pipeline(generation=3, description="y"))
    await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == 2 and world.cond("Stalled") is None


async def test_a_create_refused_for_sure_drops_its_intent_mark(world: World) -> None:
    """A POST answered 4xx created nothing: no mark stays that could make another object's pipeline of the
    same name look like this object's (adopted later, or deleted with it). One answered 500 keeps it."""
    world.apply(pipeline())
    world.api.fail[("POST", "create")] = 422
    await world.run()
    assert world.api.writes() == [("POST", "create")] and world.cond("Stalled")["reason"] == "InvalidSpec"  # type: ignore[index]
    annotations = world.obj()["metadata"]["annotations"]
    assert ANNOTATION_CREATE_PENDING not in annotations and "goldrush.dev/create-pending-secrets" not in annotations
    world.apply(pipeline(name="p2"))
    world.api.fail[("POST", "create")] = 500
    await world.run("p2")
    assert ANNOTATION_CREATE_PENDING in world.obj("p2")["metadata"]["annotations"]


async def test_a_patch_answered_404_recreates_only_a_pipeline_that_is_gone(world: World) -> None:
    """A 404 to a PATCH is checked with `GET /{id}/`: deleted meanwhile, the pipeline is created again; still
    there, the 404 is the write's own answer (a held stall), and nothing is created."""
    pid = await _running(world)
    world.api.fail[("PATCH", "patch")] = 404
    world.apply(pipeline(generation=2, description="x"))
    await world.run()
    assert world.cond("Stalled")["reason"] == "UnexpectedResponse" and list(world.api.pipelines) == [pid]  # type: ignore[index]
    del world.api.fail[("PATCH", "patch")]
    world.api.vanish_on_patch = True
    world.apply(pipeline(generation=3, description="y"))
    await world.run()
    assert "RemoteDeleted" in [r for r, _ in world.kube.events] and world.api.pipelines == {}
    world.api.vanish_on_patch = False
    await world.run()
    assert world.api.writes().count(("POST", "create")) == 2 and len(world.api.pipelines) == 1


async def test_unexpected_status_gets_its_own_reason(world: World) -> None:
    await _running(world)
    world.api.fail[("PATCH", "patch")] = 302
    world.apply(pipeline(generation=2, description="x"))
    await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "UnexpectedResponse" and "302" in stalled["message"]


async def test_transient_poll_error_keeps_ready_and_says_retrying(world: World) -> None:
    await _running(world)
    world.api.fail[("GET", "status")] = 503
    world.now += 100
    await world.run()
    assert world.cond("Ready")["status"] == "True"  # type: ignore[index]
    assert world.cond("Synced")["status"] == "True"  # type: ignore[index]
    assert world.cond("Reconciling")["reason"] == "Retrying"  # type: ignore[index]


@pytest.mark.parametrize("route", ["status", "destination-health"])
async def test_a_read_error_echoing_a_secret_at_the_cut_leaves_no_prefix_of_it(
    world: World, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A read's error text with the destination password where the client shortens it (500 characters): the
    pass gives the client the object's secrets, so not even a prefix reaches a condition, an Event or a log."""
    caplog.set_level(logging.DEBUG)
    await _running(world)
    world.api.fail[("GET", route)] = 503
    world.api.fail_text[("GET", route)] = "x" * 495 + " " + PASSWORD
    for _ in range(3):
        world.now += 1000
        await world.run()
    assert world.api.journal.count(("GET", route)) >= 2
    texts = [json.dumps(world.obj()["status"]), caplog.text] + [m for _, m in world.kube.events]
    assert "x" * 100 in "".join(texts)  # the error text itself was written or logged
    assert not any(PASSWORD[:4] in t for t in texts), texts


@pytest.mark.parametrize("health", [{"healthy": None, "last_error": None}, {"last_error": None}, "fail"])
async def test_a_destination_health_without_a_verdict_keeps_the_phase_mirrored(world: World, health: Any) -> None:
    """`healthy: null` (no probe yet), a schema without it, or a failing read: the runtime phase is still
    written, and no DestinationHealthy verdict is made up."""
    if health == "fail":
        world.api.fail[("GET", "destination-health")] = 503
    else:
        world.api.health = health
    pid = await _running(world)
    assert world.obj()["status"]["phase"] == "RUNNING" and world.cond("Ready")["status"] == "True"  # type: ignore[index]
    assert world.cond("DestinationHealthy") is None and world.obj()["status"]["pipelineId"] == pid


async def test_inline_mask_ends_in_a_condition(world: World) -> None:
    body = pipeline()
    body["spec"]["destination"]["config"]["host"] = "******"
    world.apply(body)
    delay = await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "InvalidSpec"
    assert "destination_config.host" in stalled["message"]
    assert world.api.journal == [] and delay is not None and delay > 0
    synced = world.cond("Synced")  # no API error happened: Synced names what is wrong, not ApiError
    assert synced is not None and synced["status"] == "False" and synced["reason"] == "InvalidSpec"


async def test_an_abi_that_is_not_json_stalls_invalid_spec_on_every_condition(world: World) -> None:
    """The operator finds the input unusable itself: Ready, Synced and Stalled all say InvalidSpec (no API
    call was made, so Synced must not say ApiError), and no request leaves."""
    world.kube.configmaps[("ns", "abi")] = {"abi.json": "{not json"}
    world.apply(pipeline(abi={"configMapRef": {"name": "abi", "key": "abi.json"}}))
    await world.run()
    for ctype in ("Ready", "Synced", "Stalled"):
        got = world.cond(ctype)
        assert got is not None and got["reason"] == "InvalidSpec" and "spec.abi.configMapRef" in got["message"], ctype
    assert world.api.journal == [] and world.obj()["status"]["phase"] == "PENDING"


async def test_a_held_stall_keeps_the_synced_reason_it_was_held_with(world: World,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own backstop refuses a body with the API's mask (nothing sent); the stall is held, and
    later passes under the hold keep Synced=InvalidSpec instead of falling back to ApiError."""
    from goldrush_operator.controller import inputs

    real = inputs.desired_payload

    def with_mask(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = real(*args, **kwargs)
        out["description"] = "******"  # past the payload's own check: only the client's backstop sees it
        return out

    await _running(world)
    writes = len(world.api.writes())
    monkeypatch.setattr(inputs, "desired_payload", with_mask)
    world.apply(pipeline(generation=2, description="x"))
    await world.run()
    assert world.cond("Stalled")["reason"] == "InvalidSpec"  # type: ignore[index]
    assert world.cond("Synced")["reason"] == "InvalidSpec"  # type: ignore[index]
    polls = world.api.journal.count(("GET", "status"))
    for _ in range(2):  # held: the remote is still observed, the status rewritten, nothing sent
        world.now += 1000
        await world.run()
        assert world.cond("Synced")["reason"] == "InvalidSpec"  # type: ignore[index]
        assert world.cond("Stalled")["reason"] == "InvalidSpec"  # type: ignore[index]
    assert len(world.api.writes()) == writes and world.api.journal.count(("GET", "status")) > polls


async def test_a_remote_changed_in_an_immutable_field_stalls_and_synced_says_so(world: World) -> None:
    """The remote's topic changed out of band: nothing is patched, Stalled and Synced name
    ImmutableFieldChanged (not ApiError: the API refused nothing), Ready keeps describing the runtime."""
    pid = await _running(world)
    world.api.pipelines[pid]["topic"] = "eth-mainnet.covalent.raw.block.v1"
    writes = len(world.api.writes())
    for _ in range(3):  # until the full configuration check is due (the slow poll carries jitter)
        world.now += 1000
        await world.run()
        if world.cond("Stalled") is not None:
            break
    stalled, synced = world.cond("Stalled"), world.cond("Synced")
    assert stalled is not None and stalled["reason"] == "ImmutableFieldChanged" and "topic" in stalled["message"]
    assert synced is not None and synced["status"] == "False" and synced["reason"] == "ImmutableFieldChanged"
    assert len(world.api.writes()) == writes


async def test_an_operator_without_a_service_key_stalls_auth_failed_without_any_request() -> None:
    """No key configured and none referenced: nothing can be sent. Stalled and Synced both say AuthFailed
    (Synced must not say ApiError: the API refused nothing), and no request leaves."""
    world = World(service_key="")
    world.apply(pipeline())
    await world.run()
    for ctype in ("Ready", "Synced", "Stalled"):
        got = world.cond(ctype)
        assert got is not None and got["reason"] == "AuthFailed" and "no service key" in got["message"], ctype
    assert world.api.journal == []


async def test_missing_secret_waits_without_api_calls(world: World) -> None:
    del world.kube.secrets[("ns", "pg")]
    world.apply(pipeline())
    await world.run()
    ready = world.cond("Ready")
    assert ready is not None and ready["reason"] == "SecretNotFound" and "pg" in ready["message"]
    assert world.api.journal == [] and world.obj()["status"]["phase"] == "PENDING"


async def test_a_new_generation_waiting_for_its_secret_is_reconciling(world: World) -> None:
    """Generation 2 names a Secret that does not exist yet: Synced False (SecretNotFound) and, while the
    generation is not applied, Reconciling True; the remote keeps running what generation 1 applied."""
    await _running(world)
    spec = pipeline(generation=2)["spec"]
    spec["destination"]["secretRefs"]["password"]["name"] = "pg-new"
    world.apply({**pipeline(generation=2), "spec": spec})
    await world.run()
    synced, reconciling = world.cond("Synced"), world.cond("Reconciling")
    assert synced is not None and (synced["status"], synced["reason"]) == ("False", "SecretNotFound")
    assert reconciling is not None and (reconciling["status"], reconciling["reason"]) == ("True", "SecretNotFound")
    assert world.cond("Stalled") is None and world.api.writes() == [("POST", "create")]


async def test_synced_is_false_before_a_spec_change_is_sent(world: World) -> None:
    """As soon as the generation is ahead of what was applied, and before the PATCH (which may wait for
    rate-limit tokens or a Retry-After): Synced False UpdatePending and Reconciling True are written."""
    await _running(world)
    seen: list[tuple[int, dict[str, Any] | None, dict[str, Any] | None]] = []
    patch_status = world.kube.patch_status

    async def recording(namespace: str, name: str, status: Mapping[str, Any]) -> None:
        conds = status.get("conditions")
        seen.append((world.api.writes().count(("PATCH", "patch")), c.get_condition(conds, "Synced"),
                     c.get_condition(conds, "Reconciling")))
        await patch_status(namespace, name, status)

    world.kube.patch_status = recording  # type: ignore[method-assign]
    world.apply(pipeline(generation=2, description="new"))
    await world.run()
    before = [(s, r) for n, s, r in seen if n == 0]
    assert before, "no status write before the PATCH"
    synced, reconciling = before[0]
    assert synced is not None and (synced["status"], synced["reason"], synced["observedGeneration"]) == (
        "False", "UpdatePending", 2)
    assert reconciling is not None and (reconciling["status"], reconciling["reason"]) == ("True", "UpdatePending")
    assert world.cond("Synced")["status"] == "True" and world.cond("Reconciling") is None  # type: ignore[index]
    assert world.api.writes().count(("PATCH", "patch")) == 1


async def test_passes_missing_the_same_secret_at_once_share_one_read(world: World) -> None:
    """A restart's start-up pass runs many objects at once that share a Secret: one GET serves them all (one
    GET each cost as many reader threads and connections as the pool allows, memory kept after the pass)."""
    reads: list[tuple[str, str]] = []
    gate = asyncio.Event()
    get_secret = world.kube.get_secret

    async def slow_get(namespace: str, name: str) -> tuple[dict[str, str], str]:
        reads.append((namespace, name))
        await gate.wait()
        return await get_secret(namespace, name)

    world.kube.get_secret = slow_get  # type: ignore[method-assign]
    names = [f"p{i}" for i in range(5)]
    for n in names:
        world.apply(pipeline(n))
    passes = [asyncio.ensure_future(world.controller.run_pass(("ns", n))) for n in names]
    await asyncio.sleep(0.01)
    passes[0].cancel()  # one waiter going away does not cancel the others' read
    gate.set()
    done = await asyncio.gather(*passes, return_exceptions=True)
    assert reads == [("ns", "pg")]
    assert isinstance(done[0], asyncio.CancelledError)
    world.sync()
    assert [world.obj(n)["status"].get("pipelineId") is not None for n in names[1:]] == [True] * 4
    assert world.api.writes() == [("POST", "create")] * 4


async def test_a_failed_shared_secret_read_reaches_every_waiter_and_is_not_kept(world: World) -> None:
    reads = 0

    async def failing_get(namespace: str, name: str) -> tuple[dict[str, str], str]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        raise KubeError("Kubernetes API 500 Internal Server Error", 500)

    get_secret = world.kube.get_secret
    world.kube.get_secret = failing_get  # type: ignore[method-assign]
    for n in ("p1", "p2"):
        world.apply(pipeline(n))
    await asyncio.gather(world.run("p1"), world.run("p2"))
    assert reads == 1 and world.api.journal == []
    assert [(world.cond("Synced", n) or {}).get("status") for n in ("p1", "p2")] == ["False", "False"]
    world.kube.get_secret = get_secret  # type: ignore[method-assign]
    world.now += 60
    await world.run("p1")
    assert world.obj("p1")["status"].get("pipelineId") is not None  # read again, not a kept failure


async def test_a_secret_read_that_predates_the_watchs_refresh_does_not_overwrite_it(world: World) -> None:
    """The Secret changes while a pass's GET is in flight: the watch's refresh (its event, then its own GET)
    lands first. The older reading must not replace it, or the pass and every later one keep the old value."""
    gate = asyncio.Event()
    get_secret = world.kube.get_secret

    async def slow_get(namespace: str, name: str) -> tuple[dict[str, str], str]:
        answer = await get_secret(namespace, name)
        await gate.wait()
        return answer

    world.kube.get_secret = slow_get  # type: ignore[method-assign]
    world.apply(pipeline())
    running = asyncio.ensure_future(world.run())
    await asyncio.sleep(0.01)
    world.kube.secrets[("ns", "pg")] = {"password": "rotated-Value-2"}
    world.store.secret_event("ns", "pg", {"password": "rotated-Value-2"}, "2")  # what the Secret watch does
    gate.set()
    await running
    assert world.store.cached_secret("ns", "pg").data == {"password": "rotated-Value-2"}
    assert world.api.pipelines and [p["destination_config"]["password"] for p in world.api.pipelines.values()] == [
        "rotated-Value-2"]


async def test_foreign_pipeline_with_same_name_and_project_is_a_conflict_whatever_its_topic(world: World) -> None:
    world.api.pipelines["pipe_foreign"] = {"id": "pipe_foreign", "name": "ns-p1", "project": "proj",
                                           "topic": "eth-mainnet.covalent.raw.block.v1", "destination_config": {}}
    world.apply(pipeline())
    await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict"
    assert world.cond("Synced")["reason"] == "NameConflict"  # type: ignore[index]
    assert ("POST", "create") not in world.api.writes()


async def test_an_interrupted_create_that_left_two_pipelines_stalls_create_incomplete(world: World) -> None:
    """Both match the mark (name, project, topic, created after it): which one is the object's is not for the
    operator to guess. Nothing is created or deleted; Synced says the same reason; the phase stays PENDING."""
    for pid in ("pipe_one", "pipe_two"):
        world.api.pipelines[pid] = {"id": pid, "name": "ns-p1", "project": "proj", "created_at": "2099-01-01T00:00:00Z",
                                    "topic": "base-mainnet.covalent.raw.block.v1", "destination_config": {}}
    _marked_by_another_process(world)
    await world.run()
    stalled, synced = world.cond("Stalled"), world.cond("Synced")
    assert stalled is not None and stalled["reason"] == "CreateIncomplete"
    assert "pipe_one, pipe_two" in stalled["message"] and "goldrush.dev/pipeline-id" in stalled["message"]
    assert synced is not None and synced["reason"] == "CreateIncomplete"
    assert world.obj()["status"]["phase"] == "PENDING" and "pipelineId" not in world.obj()["status"]
    assert world.api.writes() == [] and set(world.api.pipelines) == {"pipe_one", "pipe_two"}
    assert [r for r, _ in world.kube.events] == ["CreateIncomplete"]


async def test_remote_failed_is_stalled_with_the_log_hint(world: World) -> None:
    pid = await _running(world)
    world.api.phase[pid] = "FAILED"
    world.now += 100
    await world.run()
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "RemoteFailed" and "disk full" in stalled["message"]
    assert world.obj()["status"]["phase"] == "FAILED"


async def test_rotation_patches_once(world: World) -> None:
    pid = await _running(world)
    world.kube.secrets[("ns", "pg")] = {"password": "rotated-value"}
    world.store.secret_event("ns", "pg", {"password": "rotated-value"})
    await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == 1
    assert world.api.pipelines[pid]["destination_config"]["password"] == "rotated-value"
    await world.run()
    assert world.api.writes().count(("PATCH", "patch")) == 1
    assert ("SecretRotated" in {reason for reason, _ in world.kube.events})


async def test_delete_removes_the_remote_and_forgets_the_object(world: World) -> None:
    pid = await _running(world)
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.api.fail[("DELETE", "delete")] = 503
    with pytest.raises(DeleteLater):
        await world.controller.finalizer.delete(body)
    del world.api.fail[("DELETE", "delete")]
    await world.controller.finalizer.delete(body)
    assert pid not in world.api.pipelines and world.store.get(("ns", "p1")) is None


async def test_a_delete_the_api_refuses_is_reported_once_on_the_object(world: World) -> None:
    """The object stays Terminating while its DELETE is refused: a Warning Event says why, once per reason."""
    await _running(world)
    body = world.obj()
    body["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.api.fail[("DELETE", "delete")] = 403
    for _ in range(3):
        with pytest.raises(DeleteLater, match="403"):
            await world.controller.finalizer.delete(body)
    refused = [m for r, m in world.kube.events if r == "AuthFailed"]
    assert len(refused) == 1 and "cannot delete the remote pipeline" in refused[0]


async def test_the_finalizer_is_the_operators_own_from_the_intent_mark_to_the_deletion(world: World) -> None:
    """The create adds the finalizer in the intent-mark patch (no write of its own; another controller's
    finalizer stays); a deleted object's pass deletes the remote, retries a failure, then removes only its
    own finalizer, and the object goes."""
    world.apply(pipeline())
    world.obj()["metadata"]["finalizers"] = ["other.io/keep"]
    world.sync()
    await world.run()
    assert world.obj()["metadata"]["finalizers"] == ["other.io/keep", FINALIZER]
    assert world.kube.annotation_writes == 2  # the intent mark (with the finalizer), the id
    pid = world.obj()["status"]["pipelineId"]
    world.obj()["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.sync()
    world.api.fail[("DELETE", "delete")] = 503
    assert (await world.run()) is not None  # retried after a delay; the finalizer stays
    assert world.obj()["metadata"]["finalizers"] == ["other.io/keep", FINALIZER] and pid in world.api.pipelines
    del world.api.fail[("DELETE", "delete")]
    assert (await world.run()) is None
    assert pid not in world.api.pipelines
    assert world.obj()["metadata"]["finalizers"] == ["other.io/keep"]
    # The object waits for the other controller now; the operator is done with it (no further pass).
    record = world.store.get(("ns", "p1"))
    assert record is not None and not record.finalized
    assert (await world.run()) is None and world.api.writes().count(("DELETE", "delete")) == 2


async def test_an_object_changed_under_the_intent_mark_is_not_created_yet(world: World) -> None:
    """The finalizer patch is guarded by the observed resourceVersion: a 409 sends no POST, and the next pass
    (with the newer object) creates once."""
    body = pipeline()
    body["metadata"]["resourceVersion"] = "1"
    world.apply(body)
    world.obj()["metadata"]["resourceVersion"] = "2"  # changed by someone; the watch has not delivered it yet
    delay = await world.controller.run_pass(("ns", "p1"))
    assert delay is not None and delay < 1 and world.api.writes().count(("POST", "create")) == 0
    world.sync()
    await world.run()
    assert world.api.writes().count(("POST", "create")) == 1 and FINALIZER in world.obj()["metadata"]["finalizers"]


async def test_read_budget_spreads_polls(world: World) -> None:
    await _running(world)
    # 1 object, 2 reads/s budget: the status interval is the fast poll; the budget pays at once.
    status_every, full_every = world.controller.timing.intervals()
    assert status_every == 2.0 and full_every == 900.0


async def test_every_read_sent_is_paid_from_the_budget(world: World) -> None:
    """A full check that falls due while a paid-for status read waits is left to the next poll."""
    await _running(world)
    record = world.store.get(("ns", "p1"))
    assert record is not None
    world.controller.timing.budget.reserve(100)  # the budget is booked 50 s ahead (2 reads/s)
    world.now += 3
    world.api.journal.clear()
    wait = await world.run()
    assert wait is not None and wait > 40 and world.api.journal == []  # one status read booked, none sent
    assert record.poll_reserved == 1
    world.now += wait
    record.next_full_check = world.now - 1  # the full check fell due meanwhile
    await world.run()
    assert world.api.journal == [("GET", "status")]  # only what was paid for
    world.api.journal.clear()
    world.now += 3
    await world.run()  # the next poll books the full check's three reads (paid at once now) and sends them
    assert sorted(world.api.journal) == [("GET", "destination-health"), ("GET", "get"), ("GET", "status")]


async def test_idle_polls_fall_due_together_on_the_ticks_of_the_fast_poll() -> None:
    """Polls paid from the budget are due only on multiples of the fast poll (2 s), so the idle operator wakes
    once a tick for several reads; each read is still paid before it goes, and none comes faster than the fast
    poll or later than the status maximum (60 s) while the budget pays for that."""
    world = World()
    names = [f"p{i}" for i in range(12)]
    for name in names:
        world.apply(pipeline(name))
        await world.run(name)
    for pid in world.api.phase:
        world.api.phase[pid] = "RUNNING"
    due: dict[str, float] = {}
    world.now += 2.3
    for name in names:
        world.now += 0.37  # passes at odd times, as watch events and the budget's waits leave them
        delay = await world.run(name)
        assert delay is not None and delay >= 2.0
        due[name] = world.now + delay
        assert abs(delay - world.controller.timing.intervals()[0]) <= 1.0 + 1e-9  # the nearest tick
    def on_tick(t: float) -> bool:
        return abs(t / 2.0 - round(t / 2.0)) < 1e-9

    assert all(on_tick(d) for d in due.values())  # one wake-up runs every poll due by then
    assert len(set(due.values())) < len(names)
    timing = world.controller.timing
    for delay in (0.3, 1.0, 2.0, 2.5, 3.9, 4.0, 7.9, 59.5, 60.0, 61.0, 500.0):
        for start in (1000.0, 1000.1, 1001.9):
            world.now = start
            budget_wait = timing.on_tick(delay)  # a wait for the budget: never before it has paid
            assert delay - 1e-9 <= budget_wait < delay + 2.0 and on_tick(start + budget_wait)
            if delay < 2.0:
                continue  # the status cadence is never faster than the fast poll
            poll = timing.on_tick(delay, limit=60.0)
            assert poll >= 2.0  # never faster than the fast poll
            assert poll <= (60.0 if delay <= 60.0 else delay + 1.0)  # the maximum while the budget pays for it
            assert (on_tick(start + poll) and abs(poll - delay) <= 2.0) or (poll == delay and delay < 4.0)


async def test_the_name_listing_is_renewed_ahead_of_time(world: World) -> None:
    """A burst of creates shares one listing of the remote pipelines (the name rule); past half its age it
    is renewed in the background, so no create waits for the pages of the next one."""
    def lists() -> int:
        return sum(1 for m, r in world.api.journal if (m, r) == ("GET", "list"))

    world.apply(pipeline("p1"))
    await world.run("p1")
    assert lists() == 1
    world.now += 6  # past half the listing's age: used, and renewed behind the pass
    world.apply(pipeline("p2"))
    await world.run("p2")
    assert world.api.writes()[-1] == ("POST", "create")
    await asyncio.sleep(0.2)
    assert lists() == 2
    world.now += 3  # the renewed listing is young: no listing at all
    world.apply(pipeline("p3"))
    await world.run("p3")
    await asyncio.sleep(0.2)
    assert lists() == 2
    world.now += 30  # too old: the create waits for a new one
    world.apply(pipeline("p4"))
    await world.run("p4")
    assert lists() == 3 and world.api.writes().count(("POST", "create")) == 4


async def test_an_outdated_name_listing_is_not_kept(world: World) -> None:
    """A listing past its age limit is never read again: it is dropped (with 10,000 remote pipelines it would
    otherwise hold 10,000 models for the life of the process)."""
    world.controller.external.listings.kept = 0.05
    world.apply(pipeline("p1"))
    await world.run("p1")  # listed before its POST: the listing is empty
    world.now += 11
    world.apply(pipeline("p2"))
    await world.run("p2")  # a new listing (it holds p1), then p2 is created and joins it
    directory = next(iter(world.controller.external.listings._directories.values()))
    assert [i.name for i in directory.items] == ["ns-p1", "ns-p2"] and len(directory.created) == 1
    await asyncio.sleep(0.2)
    assert len(directory.items) == 2  # still young on the controller's clock: kept
    world.now += 11
    await asyncio.sleep(0.2)
    assert directory.items == [] and directory.created == [] and directory.expiry is None


async def test_a_poll_steps_aside_while_writes_flow() -> None:
    """Right after a write took a rate-limit token a poll is not sent: the pass ends at once (its worker
    is free for the next create) and the poll runs on a later pass, once the writes have passed."""
    world = World(rate_limit=10)  # writes "flow" for 2 token intervals: 0.2 s
    world.apply(pipeline())
    await world.run()
    assert world.api.writes() == [("POST", "create")]
    reads = len(world.api.journal)
    world.now += 2
    delay = await world.run()
    assert len(world.api.journal) == reads and delay is not None and delay <= 2.0  # nothing sent, due soon
    await asyncio.sleep(0.25)
    world.now += 2
    await world.run()  # the name check's listing first (a create's priority: the poll steps aside again)
    assert world.api.journal[reads:] == [("GET", "list")]
    await asyncio.sleep(0.25)
    world.now += 2
    await world.run()
    assert ("GET", "status") in world.api.journal[reads:]


async def test_the_record_keeps_one_copy_of_the_status_once_the_watch_caught_up(world: World) -> None:
    """What the operator wrote last is remembered until a watch event shows exactly it; then the snapshot is
    the only copy, and the next pass still sees the same status (no write)."""
    await _running(world)
    record = world.store.get(("ns", "p1"))
    assert record is not None and record.last_status_raw is None  # `run` mirrored the object (the watch)
    writes = world.kube.status_writes
    world.now += 3
    await world.controller.run_pass(("ns", "p1"))
    assert world.kube.status_writes == writes


def _marked_by_another_process(world: World) -> None:
    """An object as a killed process left it: the intent mark (long ago) and the finalizer, no id."""
    body = pipeline()
    body["metadata"]["annotations"] = {ANNOTATION_CREATE_PENDING: "2020-01-01T00:00:00Z"}
    body["metadata"]["finalizers"] = [FINALIZER]
    world.apply(body)


async def _created_once_35_seconds_on(world: World) -> None:
    """No POST 34 s on (the request timeout of 30 s + 5 s not yet over), exactly one 2 s later."""
    world.now += 34.0
    await world.run()
    assert world.api.writes() == []
    world.now += 2.0
    await world.run()
    assert world.api.writes() == [("POST", "create")]


async def test_a_create_another_process_marked_waits_until_its_post_cannot_land(world: World) -> None:
    """The killed process may have sent its POST just before it died, however old its mark (the POST can
    wait for a token or a Retry-After gate after the mark is written): it is repeated only once the request
    timeout (30 s) + 5 s have passed since this process became the writer."""
    _marked_by_another_process(world)
    await world.run()
    waiting = world.obj()["status"]
    assert waiting["phase"] == "PENDING" and world.cond("Ready")["reason"] == "Pending"  # type: ignore[index]
    await _created_once_35_seconds_on(world)
    assert world.cond("Ready") is not None and world.obj()["status"]["pipelineId"]


async def test_a_create_marked_before_a_takeover_waits_from_the_takeover(world: World) -> None:
    """The replica that held the Lease may have sent the POST just before it stopped writing."""
    world.now += 3600.0
    world.controller.external.became_writer()
    _marked_by_another_process(world)
    await _created_once_35_seconds_on(world)


async def test_an_own_create_with_an_unknown_outcome_waits_from_the_end_of_its_call(world: World) -> None:
    """A POST answered 500 may still have created the pipeline: it is repeated only once it could no longer
    land, counted from the end of the call (not from the mark)."""
    world.now += 3600.0  # long after the process started
    world.apply(pipeline())
    world.api.fail[("POST", "create")] = 500
    await world.run()
    assert world.api.writes() == [("POST", "create")]
    del world.api.fail[("POST", "create")]
    world.now += 34.0
    await world.run()
    assert world.api.writes() == [("POST", "create")]
    world.now += 2.0
    await world.run()
    assert world.api.writes() == [("POST", "create"), ("POST", "create")] and len(world.api.pipelines) == 1


async def test_deleting_an_object_whose_create_may_still_land_keeps_the_finalizer(world: World) -> None:
    """Deleted while a POST of the killed process may still land: the finalizer stays until it has landed
    (then the pipeline is deleted) or no longer can; nothing is left behind."""
    _marked_by_another_process(world)
    world.obj()["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.sync()
    with pytest.raises(DeleteLater, match="may still land"):
        await world.controller.finalizer.delete(world.obj())
    assert FINALIZER in world.obj()["metadata"]["finalizers"]
    spec = world.obj()["spec"]
    world.api.pipelines["pipe_late"] = {"id": "pipe_late", "name": "ns-p1", "project": spec["project"],
                                        "topic": spec["topic"], "created_at": "2099-01-01T00:00:00Z"}
    world.now += 2.0  # the next look, a fresh listing
    await world.controller.finalizer.delete(world.obj())
    assert world.api.pipelines == {} and ("DELETE", "delete") in world.api.writes()


async def test_two_objects_naming_one_pipeline_within_a_listings_life_get_one_create(world: World) -> None:
    """The second object's create uses the listing fetched before the first one's POST (kept up to 10 s): the
    pipeline this process just created joins it, so the second object meets the name rule, not a twin."""
    world.apply(pipeline(pipelineName="orders"))
    await world.run()
    world.now += 3
    world.apply(pipeline(name="p2", pipelineName="orders"))
    await world.run("p2")
    assert world.api.writes() == [("POST", "create")] and len(world.api.pipelines) == 1
    stalled = world.cond("Stalled", "p2")
    assert stalled is not None and stalled["reason"] == "NameConflict"


async def test_a_create_in_flight_keeps_another_object_from_creating_the_same_name(world: World) -> None:
    """Two passes that both found no pipeline named so: the second waits on nothing and stalls NameConflict
    while the first one's POST is in flight (same process)."""
    world.apply(pipeline(pipelineName="orders"))
    world.apply(pipeline(name="p2", pipelineName="orders"))
    await asyncio.gather(world.controller.run_pass(("ns", "p1")), world.controller.run_pass(("ns", "p2")))
    world.sync()
    assert world.api.writes() == [("POST", "create")] and len(world.api.pipelines) == 1
    reasons = {n: (world.cond("Stalled", n) or {}).get("reason") for n in ("p1", "p2")}
    assert sorted(reasons.values(), key=str) == ["NameConflict", None]


def _lists(world: World) -> int:
    return sum(1 for m, r in world.api.journal if (m, r) == ("GET", "list"))


@pytest.mark.parametrize(("other", "keeps"), [
    ({"created_at": "2026-01-01T00:00:00Z"}, True),  # created a second earlier
    ({"created_at": "2026-01-01T00:00:02Z"}, False),  # a second later: ours was first for certain
    ({}, True),  # the same second: which was first is unknown, ours yields (the other's check may not see it)
    ({"created_at": None}, True),  # no time: the same
])
def test_who_keeps_a_name_two_creates_share(other: dict[str, Any], keeps: bool) -> None:
    ours = Pipeline.model_validate({"id": "pipe_m", "created_at": "2026-01-01T00:00:01Z"})
    theirs = Pipeline.model_validate({"id": "pipe_x", "created_at": "2026-01-01T00:00:01Z", **other})
    assert keeps_the_name(theirs, ours) is keeps
    assert keeps_the_name(ours, theirs) or keeps  # never both stay: at least one of the two yields


async def _created_with_a_twin(world: World, created_at: str) -> str:
    """The object's create (the fake API dates it 2099-01-01T00:00:00Z), then a pipeline of the same name and
    project made elsewhere at `created_at`, then the next pass; returns the object's pipeline id."""
    world.apply(pipeline())
    await world.run()
    ours: str = world.obj()["status"]["pipelineId"]
    world.api.pipelines["pipe_other"] = {"id": "pipe_other", "name": "ns-p1", "project": "proj",
                                         "topic": "eth.mainnet.ref.block.logs", "created_at": created_at}
    world.now += 2
    await world.run()
    return ours


async def test_a_same_named_pipeline_created_first_but_unseen_keeps_the_name(world: World) -> None:
    """The listing a create consults may lack a pipeline of the same name and project (made within the
    listing's age by hand, or by another replica: the in-process claim covers only this process). A listing
    begun after the POST shows it: the first created keeps the name, this object's own twin is deleted and
    the object stalls NameConflict, as if it had seen the other first; it never creates again beside it."""
    # Another replica's create of the same name and project landed before ours, after our listing began.
    ours = await _created_with_a_twin(world, "2098-12-31T23:59:59Z")
    assert world.api.writes() == [("POST", "create"), ("DELETE", "delete")]
    assert set(world.api.pipelines) == {"pipe_other"}
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict"
    assert "pipe_other" in stalled["message"] and ours in stalled["message"]
    assert world.cond("Synced")["reason"] == "NameConflict"  # type: ignore[index]
    status = world.obj()["status"]
    assert "pipelineId" not in status and status["phase"] == "PENDING"
    assert "goldrush.dev/pipeline-id" not in world.obj()["metadata"]["annotations"]
    assert [r for r, _ in world.kube.events].count("NameConflict") == 1
    for _ in range(3):  # later passes meet the name rule before any POST: no twin, no second Warning
        world.now += 60
        await world.run()
    assert world.api.writes() == [("POST", "create"), ("DELETE", "delete")]
    assert world.cond("Stalled")["reason"] == "NameConflict"  # type: ignore[index]
    assert [r for r, _ in world.kube.events].count("NameConflict") == 1


async def test_a_same_named_pipeline_created_after_ours_leaves_ours_alone(world: World) -> None:
    """The check runs once, on one listing begun after the POST: when this object's pipeline was created
    first it keeps the name (the later one is the other's to give up), and no further listing is read."""
    ours = await _created_with_a_twin(world, "2099-01-01T00:00:01Z")  # a second after ours
    assert _lists(world) == 2
    assert world.api.writes() == [("POST", "create")] and world.cond("Stalled") is None
    world.api.phase[ours] = "RUNNING"
    for _ in range(3):
        world.now += 60
        await world.run()
    assert _lists(world) == 2 and world.obj()["status"]["pipelineId"] == ours
    assert world.cond("Ready")["status"] == "True"  # type: ignore[index]


async def test_the_name_check_reads_a_listing_begun_after_the_post_without_a_fetch_of_its_own(world: World) -> None:
    """A burst's creates renew the key's listing: a later object's listing, begun after this object's POST,
    serves its check (no listing of its own); only an object created after every kept listing fetches."""
    world.apply(pipeline("p1"))
    await world.run("p1")
    world.now += 6
    world.apply(pipeline("p2"))
    await world.run("p2")  # past half the listing's age: renewed in the background
    await asyncio.sleep(0.2)
    assert _lists(world) == 2
    world.now += 1
    await world.run("p1")
    assert _lists(world) == 2 and world.controller.store.get(("ns", "p1")).name_check is None  # type: ignore[union-attr]


async def _restarted_after_a_create(world: World, other_created_at: str | None) -> tuple[str, list[ObjectKey]]:
    """The object's create, then the process dies before the pass that checks the name (a crash, a restart, a
    Lease taken over); with `other_created_at` a same-named pipeline made elsewhere. The next process's first
    pass; returns the object's pipeline id and the objects the audit woke (`delay` short for the test)."""
    world.apply(pipeline())
    await world.run()
    ours: str = world.obj()["status"]["pipelineId"]
    if other_created_at is not None:
        world.api.pipelines["pipe_other"] = {"id": "pipe_other", "name": "ns-p1", "project": "proj",
                                             "topic": "eth.mainnet.ref.block.logs", "created_at": other_created_at}
    world.restart()
    woken: list[ObjectKey] = []
    world.controller.audit.wake, world.controller.audit.settle = woken.append, 0.2
    lists = _lists(world)
    world.now += 2
    await world.run()
    assert _lists(world) == lists, "the pass waited for the audit's listing"
    await asyncio.gather(*world.controller.audit.tasks())
    assert _lists(world) == lists + 1 and not world.controller.audit.tasks()
    return ours, woken


async def test_a_create_just_before_a_restart_is_audited_and_its_twin_goes(world: World) -> None:
    """The process that created the pipeline died before its name check: the next process audits the young
    create in the background (the pass does not wait), wakes only the object that lost the name, and that
    object's next pass deletes its twin and stalls NameConflict."""
    ours, woken = await _restarted_after_a_create(world, "2098-12-31T23:59:59Z")
    assert woken == [("ns", "p1")]
    assert world.api.writes() == [("POST", "create")]
    world.now += 2
    await world.run()
    assert world.api.writes() == [("POST", "create"), ("DELETE", "delete")]
    assert set(world.api.pipelines) == {"pipe_other"}
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict" and ours in stalled["message"]
    assert "pipelineId" not in world.obj()["status"]
    assert [r for r, _ in world.kube.events].count("NameConflict") == 1


@pytest.mark.parametrize("other_created_at", [None, "2099-01-01T00:00:01Z"])  # none; or one created after ours
async def test_the_audit_after_a_restart_leaves_a_pipeline_that_keeps_its_name_alone(
    world: World, other_created_at: str | None
) -> None:
    ours, woken = await _restarted_after_a_create(world, other_created_at)
    assert woken == [] and world.controller.store.get(("ns", "p1")).name_check is None  # type: ignore[union-attr]
    world.api.phase[ours] = "RUNNING"
    for _ in range(2):
        world.now += 60
        await world.run()
    assert world.api.writes() == [("POST", "create")] and world.cond("Ready")["status"] == "True"  # type: ignore[index]


async def test_the_audit_tries_a_failed_listing_again_and_then_finds_the_twin(world: World) -> None:
    """A listing the API answers 503 does not end the audit: it is tried again later (`ATTEMPTS` in all)."""
    world.apply(pipeline())
    await world.run()
    world.api.pipelines["pipe_other"] = {"id": "pipe_other", "name": "ns-p1", "project": "proj",
                                         "topic": "eth.mainnet.ref.block.logs", "created_at": "2098-12-31T23:59:59Z"}
    world.restart()
    woken: list[ObjectKey] = []
    world.controller.audit.wake, world.controller.audit.settle = woken.append, 0.02
    world.api.fail[("GET", "list")] = 503
    world.now += 2
    await world.run()
    await asyncio.gather(*world.controller.audit.tasks())
    lists = _lists(world)
    assert lists >= 1 and woken == [] and world.controller.audit.tasks(), "no second attempt was planned"
    del world.api.fail[("GET", "list")]
    while tasks := world.controller.audit.tasks():
        await asyncio.gather(*tasks)
    assert _lists(world) == lists + 1 and woken == [("ns", "p1")]


async def test_an_old_create_is_not_audited_after_a_restart(world: World) -> None:
    """A create older than `NAME_AUDIT_SECONDS` had its check in the process that made it: a restart lists
    nothing for it and leaves its pipeline alone."""
    world.apply(pipeline())
    await world.run()
    ours = world.obj()["status"]["pipelineId"]
    world.obj()["status"]["createdAt"] = "2020-01-01T00:00:00Z"
    world.api.pipelines["pipe_other"] = {"id": "pipe_other", "name": "ns-p1", "project": "proj",
                                         "topic": "eth.mainnet.ref.block.logs", "created_at": "2098-12-31T23:59:59Z"}
    world.restart()
    lists = _lists(world)
    world.now += 2
    await world.run()
    assert not world.controller.audit.tasks() and _lists(world) == lists
    assert world.api.writes() == [("POST", "create")] and world.obj()["status"]["pipelineId"] == ours


@pytest.mark.parametrize("change", ["observe-only", "adopt"])
async def test_a_young_create_is_not_audited_when_the_object_may_no_longer_create(world: World, change: str) -> None:
    """After the restart the object may not create (policies without Create) or is being adopted: its
    pipeline is the one to keep whatever shares its name, so the new process lists nothing for it."""
    world.apply(pipeline())
    await world.run()
    world.api.pipelines["pipe_other"] = {"id": "pipe_other", "name": "ns-p1", "project": "proj",
                                         "topic": "eth.mainnet.ref.block.logs", "created_at": "2098-12-31T23:59:59Z"}
    if change == "adopt":
        world.obj()["metadata"]["annotations"]["goldrush.dev/adopt"] = "true"
    else:
        world.obj()["spec"]["managementPolicies"] = ["Observe", "Update", "Delete"]
    world.restart()
    lists = _lists(world)
    world.now += 2
    await world.run()
    assert not world.controller.audit.tasks() and _lists(world) == lists
    assert world.api.writes() == [("POST", "create")]


async def test_an_interrupted_create_that_landed_beside_an_older_same_named_pipeline_gives_the_name_up(
    world: World,
) -> None:
    """The pipeline an interrupted create left is adopted from a listing that shows every pipeline created
    before it: an older one of the same name and project (another topic, or too old to be the create's) keeps
    the name; the object's own is deleted and it stalls NameConflict."""
    _foreign(world, "eth.mainnet.ref.block.logs", "2019-12-31T23:00:00Z")
    world.api.pipelines["pipe_landed"] = {"id": "pipe_landed", "name": "ns-p1", "project": "proj",
                                          "topic": "base-mainnet.covalent.raw.block.v1",
                                          "created_at": "2020-01-01T00:00:01Z"}
    _marked_by_another_process(world)
    await world.run()
    assert world.api.writes() == [("DELETE", "delete")] and set(world.api.pipelines) == {"pipe_foreign"}
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict" and "pipe_landed" in stalled["message"]
    assert "pipelineId" not in world.obj()["status"]
    annotations = world.obj()["metadata"]["annotations"]
    assert "goldrush.dev/pipeline-id" not in annotations and ANNOTATION_CREATE_PENDING not in annotations
    assert [r for r, _ in world.kube.events] == ["NameConflict"]  # never announced as adopted
    world.now += 60
    await world.run()  # the next attempt meets the older pipeline before any POST
    assert world.api.writes() == [("DELETE", "delete")] and world.cond("Stalled")["reason"] == "NameConflict"  # type: ignore[index]


def _foreign(world: World, topic: str, created_at: str) -> None:
    world.api.pipelines["pipe_foreign"] = {"id": "pipe_foreign", "name": "ns-p1", "project": "proj",
                                           "topic": topic, "created_at": created_at}


@pytest.mark.parametrize(("topic", "created_at"), [
    ("eth.mainnet.ref.block.logs", "2099-01-01T00:00:00Z"),  # another topic, created after the mark
    ("base-mainnet.covalent.raw.block.v1", "2019-12-31T23:00:00Z"),  # the object's topic, long before the mark
])
async def test_a_marked_create_that_never_landed_meets_the_name_rule(world: World, topic: str, created_at: str) -> None:
    """An interrupted create whose POST never landed is not repeated beside a pipeline of the same name and
    project that it did not create (design: NameConflict whatever its topic): no twin, a NameConflict stall."""
    _foreign(world, topic, created_at)
    _marked_by_another_process(world)
    await world.run()
    world.now += 36.0
    await world.run()
    assert world.api.writes() == [] and set(world.api.pipelines) == {"pipe_foreign"}
    stalled = world.cond("Stalled")
    assert stalled is not None and stalled["reason"] == "NameConflict" and "pipe_foreign" in stalled["message"]
    assert "pipelineId" not in world.obj().get("status", {})


async def test_a_marked_create_that_landed_is_adopted(world: World) -> None:
    """The pipeline the interrupted POST created (same name, project and topic, created after the mark) is
    adopted at once: no second POST."""
    _foreign(world, "base-mainnet.covalent.raw.block.v1", "2020-01-01T00:00:01Z")
    _marked_by_another_process(world)
    await world.run()
    assert world.api.writes() == [] and world.obj()["status"]["pipelineId"] == "pipe_foreign"
    assert "Adopted" in [r for r, _ in world.kube.events]


def _renamed_after_an_interrupted_create(world: World) -> None:
    """The killed process sent its POST as `ns-p1` (it landed); the user renamed the pipeline since."""
    world.api.pipelines["pipe_landed"] = {"id": "pipe_landed", "name": "ns-p1", "project": "proj",
                                          "topic": "base-mainnet.covalent.raw.block.v1", "destination_type": "postgres",
                                          "execution_mode": "unbounded", "created_at": "2020-01-01T00:00:01Z"}
    body = pipeline(pipelineName="orders")
    body["metadata"]["annotations"] = {ANNOTATION_CREATE_PENDING: "2020-01-01T00:00:00Z",
                                       "goldrush.dev/create-pending-name": "ns-p1"}
    body["metadata"]["finalizers"] = [FINALIZER]
    world.apply(body)


async def test_an_interrupted_create_is_found_by_the_name_it_was_sent_with(world: World) -> None:
    """spec.pipelineName changed before the interrupted create was resolved: the pipeline it left is adopted
    (and renamed by a PATCH), not orphaned beside a second one."""
    _renamed_after_an_interrupted_create(world)
    await world.run()
    assert ("POST", "create") not in world.api.writes() and world.obj()["status"]["pipelineId"] == "pipe_landed"
    world.now += 3
    await world.run()
    assert list(world.api.pipelines) == ["pipe_landed"] and world.api.pipelines["pipe_landed"]["name"] == "orders"
    assert "goldrush.dev/create-pending-name" not in world.obj()["metadata"]["annotations"]


async def test_deleting_a_renamed_object_deletes_what_its_interrupted_create_left(world: World) -> None:
    _renamed_after_an_interrupted_create(world)
    world.obj()["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.sync()
    await world.controller.finalizer.delete(world.obj())
    assert world.api.pipelines == {}


async def test_deleting_a_marked_object_never_deletes_an_older_pipeline_of_the_same_name(world: World) -> None:
    """A pipeline of the same name, project and topic created long before the intent mark is not what the
    interrupted create left: deleting the object leaves it alone."""
    _foreign(world, "base-mainnet.covalent.raw.block.v1", "2019-12-31T23:00:00Z")
    _marked_by_another_process(world)
    world.now += 36.0
    world.obj()["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.sync()
    await world.controller.finalizer.delete(world.obj())
    assert world.api.writes() == [] and set(world.api.pipelines) == {"pipe_foreign"}


async def test_deleting_a_marked_object_once_no_create_can_land_lets_it_go(world: World) -> None:
    _marked_by_another_process(world)
    world.now += 36.0
    world.obj()["metadata"]["deletionTimestamp"] = "2099-01-01T00:00:00Z"
    world.sync()
    await world.controller.finalizer.delete(world.obj())
    assert world.api.writes() == [] and world.store.get(("ns", "p1")) is None


async def test_a_vanished_pipeline_is_not_reported_ready_while_the_apiserver_refuses_to_forget_it(
    world: World,
) -> None:
    """Deleted out of band, and the id cannot be dropped from the object (the apiserver refuses the write):
    the status stops saying Ready/Running/InSync for a pipeline that no longer exists, and nothing is created
    before the id is forgotten."""
    pid = await _running(world)
    del world.api.pipelines[pid]
    world.kube.refuse_annotations = True
    world.now += 3
    await world.run()
    status = world.obj()["status"]
    assert status["phase"] == "PENDING"
    ready, synced = world.cond("Ready"), world.cond("Synced")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "KubernetesError")
    assert synced is not None and (synced["status"], synced["reason"]) == ("False", "KubernetesError")
    assert world.cond("Reconciling")["status"] == "True"  # type: ignore[index]
    assert ("POST", "create") not in world.api.writes()[1:] and world.api.pipelines == {}
    world.kube.refuse_annotations = False
    world.now += 30
    await world.run()
    await world.run()
    assert len(world.api.pipelines) == 1 and world.obj()["status"]["pipelineId"] != pid


async def test_a_pipeline_deleted_out_of_band_is_reported_once_even_before_the_watch_catches_up(
    world: World,
) -> None:
    """The pass after `remote_gone` runs at once, usually before the watch shows the id annotation removed:
    the stale snapshot's id is the one just forgotten, not a user's pointer to another pipeline. It is neither
    polled again nor reported twice; the pipeline is created once more."""
    pid = await _running(world)
    del world.api.pipelines[pid]
    world.now += 3
    reads = len(world.api.journal)
    delay = await world.controller.run_pass(("ns", "p1"))  # no sync: the watch has not delivered anything yet
    assert delay == 0.0
    assert [r for r, _ in world.kube.events].count("RemoteDeleted") == 1
    await world.controller.run_pass(("ns", "p1"))  # the snapshot still carries the old id annotation
    assert [r for r, _ in world.kube.events].count("RemoteDeleted") == 1
    assert world.api.journal[reads:].count(("GET", "status")) == 1
    assert world.api.writes() == [("POST", "create"), ("POST", "create")]
    new_id = world.obj()["status"]["pipelineId"]
    assert new_id != pid and world.obj()["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == new_id
    world.sync()
    world.now += 2
    await world.run()
    assert world.api.writes() == [("POST", "create"), ("POST", "create")]
    assert [r for r, _ in world.kube.events].count("RemoteDeleted") == 1


@pytest.mark.parametrize(("paused", "phase"), [(True, "PAUSED"), (False, "DEPLOYING")])
async def test_a_status_404_of_a_pipeline_that_exists_is_no_runtime_not_a_deletion(
    world: World, paused: bool, phase: str,
) -> None:
    """The API leaves open what `/status/` answers while no runtime exists (a paused pipeline, right after a
    create): a 404 there is checked with `GET /{id}/`; the pipeline is not created a second time."""
    pid = await _running(world)
    world.api.no_runtime.add(pid)
    if paused:
        world.api.pipelines[pid]["status"] = "paused"
        world.apply(pipeline(generation=2, paused=True))
    world.now += 3
    await world.run()
    world.now += 3
    await world.run()
    assert [w for w in world.api.writes() if w != ("PUT", "put")] == [("POST", "create")]
    assert len(world.api.pipelines) == 1 and world.obj()["status"]["pipelineId"] == pid
    assert world.obj()["status"]["phase"] == phase
    assert "RemoteDeleted" not in [r for r, _ in world.kube.events]
    assert ("GET", "get") in world.api.journal


async def test_a_watch_event_of_the_own_write_during_the_pass_costs_no_second_write(world: World) -> None:
    """The watch delivers the create's status write while the pass still runs (here: as it posts the Event).
    The record then drops its copy of that write; the pass's closing write must compare with the stored
    status, not with the snapshot it started from, or it sends the same status a second time (1,000 extra
    Kubernetes writes in a burst of 1,000 creates)."""
    world.apply(pipeline())
    post_event = world.kube.post_event

    async def event_then_watch(obj: Any, reason: str, message: str, *, warning: bool = False) -> None:
        await post_event(obj, reason, message, warning=warning)
        world.sync()

    world.kube.post_event = event_then_watch  # type: ignore[method-assign]
    await world.controller.run_pass(("ns", "p1"))
    assert [r for r, _ in world.kube.events] == ["Created"]
    record = world.store.get(("ns", "p1"))
    assert record is not None and record.last_status_raw is None  # the watch caught up during the pass
    assert world.kube.status_writes == 1
    world.sync()
    world.now += 2
    await world.run()
    assert world.obj()["status"]["phase"] == "DEPLOYING" and world.kube.status_writes == 2
