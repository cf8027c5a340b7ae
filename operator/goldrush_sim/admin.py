"""Admin and inspection API under `/_sim/` (plain JSON, no envelope, no auth, loopback only).

Registered by `goldrush_sim.app.make_app`; used by tests (`tests/support/sim.py`) and by
people driving the simulator by hand. Requests from non-loopback peers get 403. Admin
requests are not journalled and do not count in `/_sim/counters`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldrush_sim import model
from goldrush_sim.app import SIM, Key, Sim
from goldrush_sim.config import FOREIGN_GROUP
from goldrush_sim.faults import FaultPatch
from goldrush_sim.state import Pipeline, user_object

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loopback-only access and JSON error bodies for everything under /_sim/."""
    if not _is_loopback(request.remote):
        return _json({"error": "the /_sim/ admin API only answers loopback clients"}, 403)
    try:
        return await handler(request)
    except AdminError as exc:
        return _json({"error": exc.message}, exc.status)
    except model.ValidationFailed as exc:
        return _json({"error": exc.message}, exc.status)
    except ValidationError as exc:
        return _json({"error": "invalid request", "details": json.loads(exc.json())}, 422)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _json({"error": exc.reason}, exc.status)
        raise


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise AdminError(400, "request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise AdminError(400, "request body must be a JSON object")
    return data


def _sim(request: web.Request) -> Sim:
    return request.config_dict[SIM]


def _pipeline(sim: Sim, pipeline_id: str) -> Pipeline:
    p = sim.store.get(pipeline_id)
    if p is None:
        raise AdminError(404, f"pipeline '{pipeline_id}' not found")
    return p


def admin_view(sim: Sim, p: Pipeline) -> dict[str, Any]:
    """Full object with secrets as `sha256:<hex>`, plus group_id, phase and deleting."""
    out = sim.store.render(p, secrets="hash")
    out["group_id"] = p.group_id
    out["phase"] = sim.store.phase(p)[0]
    out["deleting"] = p.deleting_at is not None
    return out


# ---------------------------------------------------------------- general


async def health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def reset(request: web.Request) -> web.Response:
    _sim(request).reset()
    return _json({"ok": True})


async def config(request: web.Request) -> web.Response:
    return _json(json.loads(_sim(request).config.model_dump_json()))


async def journal(request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
    except ValueError as exc:
        raise AdminError(400, "since must be an integer") from exc
    return _json({"entries": _sim(request).journal.since(since)})


async def counters(request: web.Request) -> web.Response:
    sim = _sim(request)
    return _json(sim.journal.counters(sim.faults.early_retries))


# ---------------------------------------------------------------- faults


async def faults_get(request: web.Request) -> web.Response:
    return _json(_sim(request).faults.to_json())


async def faults_post(request: web.Request) -> web.Response:
    sim = _sim(request)
    patch = FaultPatch.model_validate(await _body(request))
    sim.faults.merge(patch, set(patch.model_fields_set))
    return _json(sim.faults.to_json())


async def faults_delete(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.faults.clear()
    return _json(sim.faults.to_json())


# ---------------------------------------------------------------- pipelines


class PhaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phase: str
    log: str | None = None


class HealthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    healthy: bool
    last_error: str | None = None


class MetricsBody(BaseModel):
    """Fields of the `/metrics/` answer to hold (the rest keep following the phase machine)."""

    model_config = ConfigDict(extra="forbid")
    records_consumed: int | None = Field(default=None, ge=0)
    last_offset: int | None = Field(default=None, ge=0)
    last_block_height: int | None = Field(default=None, ge=0)
    pending_records: int | None = Field(default=None, ge=0)
    processing_delay_ms: float | None = Field(default=None, ge=0)
    records_per_second: float | None = Field(default=None, ge=0)
    normalization_errors: int | None = Field(default=None, ge=0)


class KeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1)
    group: str = "group_default"
    kind: str = "service"


async def pipelines_list(request: web.Request) -> web.Response:
    sim = _sim(request)
    return _json({"items": [admin_view(sim, p) for p in sim.store.all()]})


async def pipeline_get(request: web.Request) -> web.Response:
    sim = _sim(request)
    return _json(admin_view(sim, _pipeline(sim, request.match_info["pipeline_id"])))


async def pipeline_seed(request: web.Request) -> web.Response:
    """Create a pipeline in any group (default `group_foreign`) with the normal create validation."""
    sim = _sim(request)
    body = await _body(request)
    group = body.pop("group", FOREIGN_GROUP)
    phase = body.pop("phase", None)
    if not isinstance(group, str) or not group:
        raise AdminError(422, "group must be a non-empty string")
    fields = model.validate_create(body)
    p = sim.store.create(group, fields, user_object(f"seeded-by-admin:{group}"))
    if phase is not None:
        _force(sim, p, phase, None)
    return _json(admin_view(sim, p), 201)


def _force(sim: Sim, p: Pipeline, phase: Any, log: str | None) -> None:
    if phase not in model.PHASES:
        raise AdminError(422, f"phase must be one of {', '.join(model.PHASES)}")
    sim.store.force_phase(p, phase, log, sim.store.clock())
    sim.store.on_change()


async def pipeline_patch(request: web.Request) -> web.Response:
    """Out-of-band change of stored fields (no validation, no phase change unless `phase`)."""
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    body = await _body(request)
    phase = body.pop("phase", None)
    unknown = sorted(set(body) - set(model.WRITE_FIELDS))
    if unknown:
        raise AdminError(422, f"unknown or read-only fields: {', '.join(unknown)}")
    for name, value in body.items():
        p.fields[name] = value
    sim.store.touch(p)
    if phase is not None:
        _force(sim, p, phase, None)
    return _json(admin_view(sim, p))


async def pipeline_delete(request: web.Request) -> web.Response:
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    sim.store.remove(p.id)
    return _json({"deleted": p.id})


async def pipeline_phase(request: web.Request) -> web.Response:
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    body = PhaseBody.model_validate(await _body(request))
    _force(sim, p, body.phase, body.log)
    return _json(admin_view(sim, p))


async def pipeline_health(request: web.Request) -> web.Response:
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    body = HealthBody.model_validate(await _body(request))
    p.runtime.health = (body.healthy, body.last_error)
    sim.store.on_change()
    return _json(sim.store.health_view(p))


async def pipeline_metrics_get(request: web.Request) -> web.Response:
    """What `GET /{id}/metrics/` answers now, without a journal entry."""
    sim = _sim(request)
    return _json(sim.store.metrics_view(_pipeline(sim, request.match_info["pipeline_id"])))


async def pipeline_metrics(request: web.Request) -> web.Response:
    """Hold the given `/metrics/` fields (merged into earlier ones) until the next deploy."""
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    body = MetricsBody.model_validate(await _body(request))
    p.runtime.metrics = {**(p.runtime.metrics or {}), **body.model_dump(exclude_unset=True, exclude_none=True)}
    sim.store.on_change()
    return _json(sim.store.metrics_view(p))


async def pipeline_metrics_clear(request: web.Request) -> web.Response:
    sim = _sim(request)
    p = _pipeline(sim, request.match_info["pipeline_id"])
    p.runtime.metrics = None
    sim.store.on_change()
    return _json(sim.store.metrics_view(p))


# ---------------------------------------------------------------- keys


async def keys_list(request: web.Request) -> web.Response:
    sim = _sim(request)
    return _json({"keys": [{"key": k, "kind": v.kind, "group": v.group} for k, v in sim.keys.items()]})


async def keys_add(request: web.Request) -> web.Response:
    sim = _sim(request)
    body = KeyBody.model_validate(await _body(request))
    if body.kind not in ("service", "api"):
        raise AdminError(422, "kind must be 'service' or 'api'")
    sim.keys[body.key] = Key(body.kind, body.group if body.kind == "service" else None)
    return _json({"key": body.key, "kind": body.kind, "group": sim.keys[body.key].group}, 201)


async def keys_delete(request: web.Request) -> web.Response:
    sim = _sim(request)
    key = request.match_info["key"]
    if sim.keys.pop(key, None) is None:
        raise AdminError(404, "unknown key")
    return _json({"revoked": True})


def add_routes(app: web.Application) -> None:
    """Mount the `/_sim/` sub-application (with its loopback guard) on `app`."""
    admin = web.Application(middlewares=[admin_guard])
    r = admin.router
    r.add_get("/health", health)
    r.add_post("/reset", reset)
    r.add_get("/config", config)
    r.add_get("/journal", journal)
    r.add_get("/counters", counters)
    r.add_get("/faults", faults_get)
    r.add_post("/faults", faults_post)
    r.add_delete("/faults", faults_delete)
    r.add_get("/pipelines", pipelines_list)
    r.add_post("/pipelines", pipeline_seed)
    r.add_get("/pipelines/{pipeline_id}", pipeline_get)
    r.add_patch("/pipelines/{pipeline_id}", pipeline_patch)
    r.add_delete("/pipelines/{pipeline_id}", pipeline_delete)
    r.add_post("/pipelines/{pipeline_id}/phase", pipeline_phase)
    r.add_post("/pipelines/{pipeline_id}/destination-health", pipeline_health)
    r.add_get("/pipelines/{pipeline_id}/metrics", pipeline_metrics_get)
    r.add_post("/pipelines/{pipeline_id}/metrics", pipeline_metrics)
    r.add_delete("/pipelines/{pipeline_id}/metrics", pipeline_metrics_clear)
    r.add_get("/keys", keys_list)
    r.add_post("/keys", keys_add)
    r.add_delete("/keys/{key}", keys_delete)
    app.add_subapp("/_sim/", admin)
