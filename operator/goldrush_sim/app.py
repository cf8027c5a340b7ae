"""The aiohttp application: Pipeline API routes under `/platform/pipeline-api/` plus `/_sim/`.

`make_app(config)` is called by `goldrush_sim.cli` (the `goldrush-sim` command) and by code
that embeds the simulator. Pipeline API requests go through one dispatcher that resolves the
route name (list, create, get, put, patch, delete, status, logs, metrics, destination-health),
applies injected faults, authenticates the bearer key, runs the handler, journals the request
and answers in the standard envelope. The admin API lives in `goldrush_sim.admin`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from goldrush_sim import model
from goldrush_sim.config import SimConfig
from goldrush_sim.faults import WRITE_ROUTES, Faults
from goldrush_sim.journal import Journal, journal_body, key_hash
from goldrush_sim.persist import Persister
from goldrush_sim.state import Pipeline, Store, iso, user_object

API_PREFIX = "/platform/pipeline-api/"
SUBRESOURCES = ("status", "logs", "metrics", "destination-health")
ITEM_ROUTES = {"GET": "get", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}

log = logging.getLogger("goldrush_sim")


@dataclass
class Key:
    """A bearer token the simulator knows: a ServiceKey (with group) or a regular API key."""

    kind: str
    group: str | None = None


@dataclass
class Sim:
    """Everything one simulator instance holds; stored in the app under `SIM`."""

    config: SimConfig
    store: Store
    faults: Faults
    journal: Journal
    keys: dict[str, Key] = field(default_factory=dict)
    persister: Persister | None = None

    def reset_keys(self) -> None:
        self.keys = {k: Key("service", g) for k, g in self.config.service_keys.items()}
        self.keys.update({k: Key("api") for k in self.config.api_keys})

    def reset(self) -> None:
        """Back to start-up state: no pipelines, faults, journal, counters or retry state."""
        self.store.clear()
        self.faults.clear()
        self.faults.reset_retry_state()
        self.journal.reset()
        self.reset_keys()


SIM = web.AppKey("sim", Sim)


class ApiError(Exception):
    """Answer with an error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def envelope(data: Any, status: int = 200) -> web.Response:
    body = {"data": data, "error": False, "error_message": None, "error_code": None}
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


def error_response(status: int, message: str, retry_after: int | None = None) -> web.Response:
    body = {"data": None, "error": True, "error_message": message, "error_code": str(status)}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(body=_dumps(body), status=status, content_type="application/json", headers=headers)


def resolve(method: str, path: str) -> tuple[str, str | None]:
    """(route name, pipeline id) for a path; route `unknown`/`method-not-allowed` when none fits."""
    tail = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else None
    if tail is None:
        return "unknown", None
    if tail == "":
        if method == "GET":
            return "list", None
        if method == "POST":
            return "create", None
        return "method-not-allowed", None
    if not tail.endswith("/"):
        return "unknown", None
    parts = tail[:-1].split("/")
    if len(parts) == 1 and parts[0]:
        route = ITEM_ROUTES.get(method)
        return (route or "method-not-allowed"), parts[0]
    if len(parts) == 2 and parts[0] and parts[1] in SUBRESOURCES:
        return (parts[1] if method == "GET" else "method-not-allowed"), parts[0]
    return "unknown", None


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ApiError(400, f"Invalid query parameter '{name}': must be an integer >= 1")
    return value


class PipelineApi:
    """Handlers for the ten Pipeline API routes (called by `dispatch`)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.store = sim.store

    def _find(self, pipeline_id: str | None, group: str) -> Pipeline:
        p = self.store.get(pipeline_id or "", group)
        if p is None:
            raise ApiError(404, f"Pipeline '{pipeline_id}' not found")
        return p

    def _writable(self, p: Pipeline) -> None:
        if p.deleting_at is not None:
            raise ApiError(409, f"Pipeline '{p.id}' is being deleted")

    def list(self, request: web.Request, group: str, _: Any) -> web.Response:
        cfg = self.sim.config
        page_number = _int_param(request, "page_number", 1)
        page_size = min(_int_param(request, "page_size", cfg.default_page_size), cfg.max_page_size)
        items, total = self.store.page(group, page_number, page_size)
        return envelope(
            {
                "items": [self.store.render(p) for p in items],
                "pagination": {
                    "page_number": page_number,
                    "page_size": page_size,
                    "total_count": total,
                    "has_more": page_number * page_size < total,
                },
                "updated_at": iso(time.time()),
            }
        )

    def create(self, request: web.Request, group: str, body: Any) -> web.Response:
        fields = model.validate_create(body)
        p = self.store.create(group, fields, user_object(request["sim_token"]))
        return envelope(self.store.render(p), self.sim.config.create_status)

    def get(self, request: web.Request, group: str, _: Any) -> web.Response:
        return envelope(self.store.render(self._find(request["sim_pipeline_id"], group)))

    def put(self, request: web.Request, group: str, body: Any) -> web.Response:
        p = self._find(request["sim_pipeline_id"], group)
        if not isinstance(body, dict):
            raise model.ValidationFailed("Request body must be a JSON object", 400)
        model.check_no_mask(body)
        if "status" not in body:
            raise model.ValidationFailed("Missing required field(s): 'status'")
        status = model.validate_patch_fields(body, ("status",))["status"]
        self._writable(p)
        self.store.set_status(p, status, self.store.clock())
        self.store.touch(p)
        return envelope(self.store.render(p))

    def patch(self, request: web.Request, group: str, body: Any) -> web.Response:
        p = self._find(request["sim_pipeline_id"], group)
        if not isinstance(body, dict):
            raise model.ValidationFailed("Request body must be a JSON object", 400)
        model.check_no_mask(body)
        cfg = self.sim.config
        if cfg.immutable_patch == "reject":
            for name in model.IMMUTABLE:
                if name in body and body[name] != p.fields.get(name):
                    raise model.ValidationFailed(
                        f"Invalid field '{name}': cannot be changed after creation (delete and recreate)"
                    )
        changes = model.validate_patch_fields(body, model.PATCHABLE)
        resulting = dict(p.fields)
        for name, value in changes.items():
            resulting[name] = model.deep_merge(p.fields.get(name), value) if cfg.patch_merge == "deep" else value
        model.check_cross_fields(resulting)
        self._writable(p)
        self.store.update(p, changes, merge=cfg.patch_merge)
        return envelope(self.store.render(p))

    def delete(self, request: web.Request, group: str, _: Any) -> web.Response:
        p = self._find(request["sim_pipeline_id"], group)
        self.store.delete(p)
        return web.Response(status=204)

    def status(self, request: web.Request, group: str, _: Any) -> web.Response:
        p = self._find(request["sim_pipeline_id"], group)
        if self.sim.config.status_without_runtime == "404" and self.store.phase(p)[0] in ("PAUSED", "STOPPED"):
            raise ApiError(404, f"Pipeline {p.id} has no runtime")
        return envelope(self.store.status_view(p))

    def logs(self, request: web.Request, group: str, _: Any) -> web.Response:
        return envelope(self.store.logs_view(self._find(request["sim_pipeline_id"], group)))

    def metrics(self, request: web.Request, group: str, _: Any) -> web.Response:
        return envelope(self.store.metrics_view(self._find(request["sim_pipeline_id"], group)))

    def destination_health(self, request: web.Request, group: str, _: Any) -> web.Response:
        return envelope(self.store.health_view(self._find(request["sim_pipeline_id"], group)))


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Entry point for every request under /platform/pipeline-api (see module docstring)."""
    sim = request.app[SIM]
    api: PipelineApi = request.app[API]
    now = time.time()
    method = request.method
    route, pipeline_id = resolve(method, request.path)
    token = _bearer(request)
    khash = key_hash(token) if token else None
    raw = await request.read() if request.body_exists else b""
    parsed: Any = None
    parsed_ok = False
    if raw:
        try:
            parsed = json.loads(raw)
            parsed_ok = True
        except ValueError:
            parsed_ok = False
    request["sim_token"] = token
    request["sim_pipeline_id"] = pipeline_id
    faults = sim.faults
    faults.note_request(khash, now)
    fault: str | None = None
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    known = route not in ("unknown", "method-not-allowed")
    rejection = faults.before(route, method, khash, now) if known else None
    response: web.Response
    committed_write = False
    if rejection is not None:
        fault = rejection.fault
        response = error_response(rejection.status, rejection.message, rejection.retry_after)
    else:
        try:
            key = sim.keys.get(token) if token else None
            if token is None:
                raise ApiError(401, "Authentication credentials were not provided (Authorization: Bearer <ServiceKey>)")
            if key is None:
                raise ApiError(401, "Invalid or revoked service key")
            if key.kind != "service" or key.group is None:
                raise ApiError(403, "API keys cannot be used with the Pipeline API; use a ServiceKey")
            if route == "unknown":
                hint = "" if request.path.endswith("/") else " (Pipeline API paths end with '/')"
                raise ApiError(404, f"Not found: {request.path}{hint}")
            if route == "method-not-allowed":
                raise ApiError(405, f"Method {method} not allowed on {request.path}")
            if route in ("create", "put", "patch"):
                if raw and not parsed_ok:
                    raise model.ValidationFailed("Request body is not valid JSON", 400)
                if raw and faults.take_echo(route, method):
                    fault = "echo_body_in_422"
                    raise model.ValidationFailed("Invalid request body: " + raw.decode("utf-8", "replace"))
            handler = getattr(api, route.replace("-", "_"))
            response = handler(request, key.group, parsed)
            committed_write = route in WRITE_ROUTES and response.status < 300
        except ApiError as exc:
            response = error_response(exc.status, exc.message)
        except model.ValidationFailed as exc:
            response = error_response(exc.status, exc.message)
    if response.status == 429 or (rejection is not None and rejection.retry_after is not None):
        retry_after = rejection.retry_after if rejection is not None and rejection.retry_after is not None else 1
        # The window opens when the 429 is sent (after any added latency): a request that arrived before
        # then cannot have seen the Retry-After and is not an early retry.
        faults.note_retry_after(khash, retry_after, time.time())
    if committed_write and faults.take_drop(route, method):
        fault = "drop_after_commit"
        _record(sim, request, route, response.status, khash, raw, parsed, parsed_ok, now, fault)
        _drop_connection(request)
        raise asyncio.CancelledError
    if committed_write:
        delay = faults.take_delay(route, method)
        if delay is not None:
            # Journal the write when it commits (it is visible from now on), then hold the answer back.
            _record(sim, request, route, response.status, khash, raw, parsed, parsed_ok, now, "delay_after_commit")
            await asyncio.sleep(delay)
            return response
    _record(sim, request, route, response.status, khash, raw, parsed, parsed_ok, now, fault)
    return response


def _record(
    sim: Sim,
    request: web.Request,
    route: str,
    status: int,
    khash: str | None,
    raw: bytes,
    parsed: Any,
    parsed_ok: bool,
    now: float,
    fault: str | None,
) -> None:
    sim.journal.record(
        time=now,
        method=request.method,
        path=request.path,
        query=request.query_string,
        route=route,
        status=status,
        key=khash,
        body=journal_body(raw, parsed, parsed_ok),
        fault=fault,
    )


API = web.AppKey("api", PipelineApi)


def make_sim(config: SimConfig) -> Sim:
    """Build the simulator state (store, faults, journal, keys, optional persistence)."""
    store = Store(config)
    sim = Sim(
        config=config,
        store=store,
        faults=Faults(seed=config.seed, latency_ms=config.latency_ms, rate_limit_rps=config.rate_limit_rps),
        journal=Journal(config.journal_size),
    )
    sim.reset_keys()
    if config.state_file is not None:
        persister = Persister(store, config.state_file, config.state_debounce_seconds)
        restored = persister.load()
        if restored:
            log.info("restored %d pipelines from %s", restored, config.state_file)
        store.on_change = persister.schedule
        sim.persister = persister
    return sim


def make_app(config: SimConfig) -> web.Application:
    """The complete simulator as an aiohttp application (Pipeline API + admin API)."""
    from goldrush_sim import admin

    sim = make_sim(config)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SIM] = sim
    app[API] = PipelineApi(sim)
    app.router.add_route("*", "/platform/pipeline-api", dispatch)
    app.router.add_route("*", "/platform/pipeline-api/{tail:.*}", dispatch)
    admin.add_routes(app)

    async def on_cleanup(app: web.Application) -> None:
        persister = app[SIM].persister
        if persister is not None:
            await persister.close()

    app.on_cleanup.append(on_cleanup)
    return app
