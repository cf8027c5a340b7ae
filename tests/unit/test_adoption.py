"""Unit tests of adoption with `goldrush.dev/adopt: "true"` (controller/loop.py, controller/external.py): a
remote pipeline that equals the spec is taken over with zero writes, its masked secret values are taken to be
the referenced Secrets' (hash recorded, no PATCH), and only a later Secret change is sent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from goldrush_operator.controller.external import trusted_hashes
from goldrush_operator.credentials import ResolvedSecrets, SecretUse
from unit.test_controller import PASSWORD, World, pipeline

PID = "pipe_existing"


def remote(**changes: Any) -> dict[str, Any]:
    """What the API holds for `pipeline()` as the operator would create it as ns/p1 (password stored)."""
    body: dict[str, Any] = {
        "id": PID, "name": "ns-p1", "project": "proj", "description": "", "topic": "base-mainnet.covalent.raw.block.v1",
        "destination_type": "postgres",
        "destination_config": {"type": "postgres", "host": "db", "port": 5432, "database": "d", "user": "u",
                               "password": PASSWORD},
        "transforms": {}, "execution_mode": "unbounded", "execution_start_from": "", "execution_stop_from": "",
        "abi_file": {}, "abi_contract_addresses": [], "abi_unmatched": "", "status": "running",
        "created_at": "2026-01-01T00:00:00Z",
    }
    body.update(changes)
    return body


@pytest.fixture
def world() -> World:
    return World()


def adopted(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    body = pipeline(**spec)
    body["metadata"]["annotations"] = dict(annotations)
    return body


async def _settle(world: World) -> None:
    world.api.phase[PID] = "RUNNING"
    for _ in range(3):
        await world.run()
        world.now += 1000


async def test_adoption_by_id_with_equal_config_sends_nothing(world: World) -> None:
    world.api.pipelines[PID] = remote()
    world.apply(adopted({"goldrush.dev/adopt": "true", "goldrush.dev/pipeline-id": PID}))
    await _settle(world)
    assert world.api.writes() == []
    obj = world.obj()
    assert obj["status"]["pipelineId"] == PID
    assert [s["field"] for s in obj["status"]["secrets"]] == ["password"]
    assert world.cond("Ready")["status"] == "True" and world.cond("Synced")["status"] == "True"  # type: ignore[index]
    adopted_events = [m for r, m in world.kube.events if r == "Adopted"]
    assert len(adopted_events) == 1 and "secret fields password" in adopted_events[0]
    # A later Secret change is sent: exactly one PATCH.
    world.kube.secrets[("ns", "pg")] = {"password": "rotated-value"}
    world.store.secret_event("ns", "pg", {"password": "rotated-value"})
    await _settle(world)
    assert world.api.writes() == [("PATCH", "patch")]
    assert world.api.pipelines[PID]["destination_config"]["password"] == "rotated-value"


async def test_adoption_by_name_with_equal_config_sends_nothing(world: World) -> None:
    world.api.pipelines[PID] = remote()
    world.apply(adopted({"goldrush.dev/adopt": "true"}))
    await _settle(world)
    assert world.api.writes() == []
    assert world.obj()["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == PID
    assert [s["field"] for s in world.obj()["status"]["secrets"]] == ["password"]
    assert world.cond("Synced")["status"] == "True"  # type: ignore[index]


async def test_adoption_with_a_spec_change_sends_one_patch(world: World) -> None:
    world.api.pipelines[PID] = remote(description="old")
    world.apply(adopted({"goldrush.dev/adopt": "true", "goldrush.dev/pipeline-id": PID}, description="new"))
    await _settle(world)
    assert world.api.writes() == [("PATCH", "patch")]
    assert world.api.pipelines[PID]["description"] == "new"


async def test_without_the_adopt_annotation_the_secrets_are_written_once(world: World) -> None:
    world.api.pipelines[PID] = remote()
    world.apply(adopted({"goldrush.dev/pipeline-id": PID}))
    await _settle(world)
    assert world.api.writes() == [("PATCH", "patch")]


async def test_a_secret_field_the_remote_lacks_is_sent(world: World) -> None:
    config = {k: v for k, v in remote()["destination_config"].items() if k != "password"}
    world.api.pipelines[PID] = remote(destination_config=config)
    world.apply(adopted({"goldrush.dev/adopt": "true", "goldrush.dev/pipeline-id": PID}))
    await _settle(world)
    assert world.api.writes() == [("PATCH", "patch")]
    assert world.api.pipelines[PID]["destination_config"]["password"] == PASSWORD


async def test_trust_survives_a_failed_first_read(world: World) -> None:
    world.api.pipelines[PID] = remote()
    world.apply(adopted({"goldrush.dev/adopt": "true", "goldrush.dev/pipeline-id": PID}))
    world.api.fail[("GET", "get")] = 503
    await world.run()
    del world.api.fail[("GET", "get")]
    world.now += 1000
    await _settle(world)
    assert world.api.writes() == []


async def test_an_object_already_holding_a_pipeline_is_not_adopting(world: World) -> None:
    """An object created by the operator keeps comparing by recorded hash, adopt annotation or not."""
    world.apply(adopted({"goldrush.dev/adopt": "true"}))
    await world.run()
    pid = world.obj()["status"]["pipelineId"]
    world.api.phase[pid] = "RUNNING"
    body = copy.deepcopy(world.obj())
    body["spec"]["destination"]["secretRefs"]["user"] = {"name": "pg", "key": "user"}
    body["metadata"]["generation"] = 2
    world.kube.secrets[("ns", "pg")] = {"password": PASSWORD, "user": "u2"}
    world.store.secret_event("ns", "pg", {"password": PASSWORD, "user": "u2"})
    world.apply(body)
    await _settle(world)
    assert world.api.writes() == [("POST", "create"), ("PATCH", "patch")]


def test_trusted_hashes_rule() -> None:
    uses = (SecretUse("password", "s", "password", "h1"), SecretUse("headers.A", "s", "a", "h2"),
            SecretUse("headers.B", "s", "b", "h3"), SecretUse("token", "s", "t", "h4"))
    resolved = ResolvedSecrets({"password": "p", "headers.A": "va", "headers.B": "vb", "token": "t"}, uses, ())
    remote_config = {"password": "******", "headers": {"A": "va", "B": "other"}}
    assert trusted_hashes(resolved, remote_config) == {"password": "h1", "headers.A": "h2"}
