"""The async GoldRush Pipeline REST API client: the only code that talks HTTP to GoldRush.

Called by the operator's controller (and by the simulator tests). One :class:`GoldRushClient` per service
key; all clients of one base URL share one ``httpx.AsyncClient`` (connection pool, striped: :mod:`.pool`)
and all clients of one (base URL, key) share a token bucket, a concurrency cap and a Retry-After gate (see
:mod:`.shared`, :mod:`.ratelimit`).

Rules enforced here:

* GET, PUT and DELETE retry transient failures (transport errors, 429, 5xx) with full-jitter exponential
  back-off, bounded by ``max_retries`` and ``retry_max_elapsed``.
* POST and PATCH are retried only when the request provably was not sent (connect error/timeout, no pool
  slot) or after 429. A transport failure after sending, a 5xx answer or an unreadable success answer
  raises :class:`~.errors.OutcomeUnknownError`: look the result up, never repeat the write blindly.
* After a ``Retry-After`` (429 or 503), no request for that (base URL, key) is sent before it expires.
* With ``dry_run=True`` (``GOLDRUSH_DRY_RUN=true``) every request but GET is refused with
  :class:`~.errors.DryRunRefusedError` before any I/O: the client then cannot write.
* A body that contains the read mask ``******`` is refused with :class:`~.errors.MaskedSecretError`
  before any I/O. Error messages are scrubbed of the service key, of the secret values of the request
  body and of the ``secrets`` a call is given (every call on one pipeline takes them), before they are
  shortened; request and response bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from goldrush_operator import __version__
from goldrush_operator.secret_values import Redactor, find_masks

from .errors import (
    ConnectError,
    DryRunRefusedError,
    GoldRushError,
    InvalidRequestError,
    MaskedSecretError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    TransportError,
    UnexpectedResponseError,
    api_error_for_status,
)
from .models import (
    DestinationHealth,
    ErrorEnvelope,
    Pagination,
    Pipeline,
    PipelineLogs,
    PipelineMetrics,
    PipelinePage,
    RuntimeStatus,
)
from .pool import striped_transport
from .ratelimit import Clock, KeyLimits, SystemClock
from .retry import IDEMPOTENT_METHODS, RetryPolicy, parse_retry_after
from .shared import SharedState, default_shared_state

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_MAX_CONCURRENCY",
    "ENV_RATE_LIMIT",
    "USER_AGENT",
    "GoldRushClient",
    "RequestHook",
    "open_pool",
]

DEFAULT_BASE_URL: Final = "https://api.covalenthq.com/platform/pipeline-api/"
ENV_RATE_LIMIT: Final = "GOLDRUSH_RATE_LIMIT"
ENV_MAX_CONCURRENCY: Final = "GOLDRUSH_MAX_CONCURRENCY"
USER_AGENT: Final = f"goldrush-operator/{__version__}"

RequestHook = Callable[[str, str, str], None]
"""``on_request(method, route, outcome)``; outcome is the status code as text or ``"transport_error"``."""

_MAX_ERROR_TEXT: Final = 500
_MAX_PAGES: Final = 100_000

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


def _normalized(base_url: str | None) -> str:
    base = (base_url or DEFAULT_BASE_URL).strip()
    return base if base.endswith("/") else base + "/"


def _new_http(transport: httpx.AsyncBaseTransport | None, timeout: httpx.Timeout) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport if transport is not None else striped_transport(),
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


def _timeouts(timeout: float, connect_timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=connect_timeout, pool=connect_timeout)


def open_pool(
    base_url: str | None, *, connect_timeout: float = 5.0, timeout: float = 30.0, shared: SharedState | None = None
) -> None:
    """Build the shared connection pool of ``base_url`` now and keep it open until the shared state closes.

    Called at start-up by the handlers (``Runtime.open_pool``, set by ``cli.run`` with the operator's timeouts):
    building a pool imports httpx's transport modules and loads the CA bundle, about 60 ms of the event loop
    and 2-3 MiB, which the first pass of a create burst would otherwise pay while the burst waits. The pool
    belongs to the base URL, not to a key: every :class:`GoldRushClient` of that URL uses it, whatever its
    key. Sends nothing. Must run on the event loop the clients will be used on; the timeouts must be the
    clients' (the pool's are those of whoever builds it first). A TLS setting that cannot be loaded is only
    logged here: every request meets it again and reports it.
    """
    state = shared or default_shared_state()
    try:
        state.acquire_pool(_normalized(base_url), lambda: _new_http(None, _timeouts(timeout, connect_timeout)))
    except OSError as exc:  # ssl.SSLError and a missing CA file are OSErrors
        log.warning("could not build the GoldRush connection pool at start-up: %s", exc)


class _NotSent(Exception):
    """Internal: the attempt failed before the request could reach the server."""


class _MaybeSent(Exception):
    """Internal: the attempt failed after the request may have reached the server."""

    def __init__(self, detail: str, *, timeout: bool) -> None:
        super().__init__(detail)
        self.timeout = timeout


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _check_service_key(service_key: str) -> str:
    key = service_key.strip()
    if not key or any(not ("\x21" <= ch <= "\x7e") for ch in key):
        raise ValueError("service key is empty or contains characters not allowed in an HTTP header")
    return key


def _pipeline_path(pipeline_id: str, suffix: str = "") -> str:
    if not isinstance(pipeline_id, str) or pipeline_id.strip() in ("", ".", ".."):
        raise ValueError("pipeline_id must be a non-empty string")
    return f"{urllib.parse.quote(pipeline_id, safe='')}/{suffix}"


class GoldRushClient:
    """Typed async client of the GoldRush Pipeline REST API for one service key.

    ``base_url`` (None = :data:`DEFAULT_BASE_URL`) and ``service_key`` are required. Keyword options:

    * ``rate_limit`` requests/s per (base URL, key), 0 = unlimited (default: env ``GOLDRUSH_RATE_LIMIT`` or
      20); ``burst`` tokens (default: a quarter second's worth); ``max_concurrency`` in-flight requests per
      (base URL, key) (default: env ``GOLDRUSH_MAX_CONCURRENCY`` or 10). The first client of a key fixes these values.
    * ``max_retries`` (retries after the first attempt), ``retry_max_elapsed`` (seconds per call),
      ``backoff_base`` / ``backoff_max`` (seconds) bound retries.
    * ``connect_timeout`` and ``timeout`` (total per attempt), in seconds.
    * ``on_request``: :data:`RequestHook` called after every HTTP attempt.
    * ``dry_run``: refuse every request but GET (:class:`~.errors.DryRunRefusedError`), before any I/O.
    * For tests: ``transport`` (a private ``httpx.AsyncClient`` on that transport instead of the shared
      pool), ``shared`` (a :class:`~.shared.SharedState` instead of the running loop's default), ``clock``
      (e.g. :class:`~.ratelimit.ManualClock`), ``rng`` (seeded jitter).
    * ``redactor``: a :class:`~goldrush_operator.secret_values.Redactor` whose secrets are also scrubbed.
    * ``write_guard``: called right before every attempt of a write (any method but GET); whatever it raises
      ends the call unsent (leader election refuses writes of a replica that does not hold the Lease).

    Use as ``async with GoldRushClient(...) as client:`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str | None,
        service_key: str,
        *,
        rate_limit: float | None = None,
        burst: float | None = None,
        max_concurrency: int | None = None,
        max_retries: int = 5,
        retry_max_elapsed: float = 60.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        on_request: RequestHook | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        shared: SharedState | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        redactor: Redactor | None = None,
        dry_run: bool = False,
        write_guard: Callable[[], None] | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.base_url: str = _normalized(base_url)
        self._service_key = _check_service_key(service_key)
        self._rate = _env_number(ENV_RATE_LIMIT, 20.0) if rate_limit is None else max(0.0, rate_limit)
        self._burst = burst
        self._max_concurrency = (
            int(_env_number(ENV_MAX_CONCURRENCY, 10)) if max_concurrency is None else max_concurrency
        )
        self._policy = RetryPolicy(
            max_retries=max(0, max_retries),
            max_elapsed=max(0.0, retry_max_elapsed),
            base_delay=backoff_base,
            max_delay=backoff_max,
            rng=rng or random.Random(),
        )
        self._timeout = timeout
        self._http_timeout = _timeouts(timeout, connect_timeout)
        self._on_request = on_request
        self._transport = transport
        self._shared = shared
        self._clock: Clock = clock or SystemClock()
        self._redactor = redactor
        # Whether listings send `page_size` (the API documents neither its default nor its maximum): cleared
        # for this client's life once a first page asked with it is refused as invalid.
        self._send_page_size = True
        self._write_guard = write_guard
        self._http: httpx.AsyncClient | None = None
        self._bound_state: SharedState | None = None
        self._limits: KeyLimits | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"GoldRushClient(base_url={self.base_url!r})"

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> GoldRushClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection pool (closed when its last user goes); the client is unusable after."""
        if self._closed:
            return
        self._closed = True
        http, self._http = self._http, None
        if http is None:
            return
        if self._transport is not None:
            await http.aclose()
        elif self._bound_state is not None:
            await self._bound_state.release_pool(self.base_url, http)

    def _resources(self) -> tuple[httpx.AsyncClient, KeyLimits]:
        if self._closed:
            raise RuntimeError("GoldRushClient is closed")
        if self._http is None or self._limits is None:
            state = self._shared or default_shared_state()
            self._bound_state = state
            if self._transport is not None:
                self._http = _new_http(self._transport, self._http_timeout)
            else:
                self._http = state.acquire_pool(self.base_url, lambda: _new_http(None, self._http_timeout))
            self._limits = state.limiters.get(
                self.base_url,
                self._service_key,
                rate=self._rate,
                burst=self._burst,
                max_concurrency=self._max_concurrency,
                clock=self._clock,
            )
        return self._http, self._limits

    def writes_flowing(self) -> bool:
        """Whether this key's writes are waiting for, or just took, a rate-limit token: a poll sent now
        would only wait behind them (the controller then runs it later instead of holding a worker)."""
        return self._resources()[1].bucket.writes_flow()

    # ----------------------------------------------------------------- endpoints

    async def list_pipelines(
        self, page_size: int = 100, *, urgent: bool = False, on_page: Callable[[Pagination | None], None] | None = None
    ) -> AsyncIterator[Pipeline]:
        """Yield every pipeline of the key's group, fetching page after page (``GET /``).

        ``page_size`` is sent until the API refuses a first page asked with it (400/422); then the API's default
        applies for the client's life. Stops when ``pagination.has_more`` is false (without it: once
        ``total_count`` pipelines were seen, or at a page that is not full; without a pagination block: at an
        empty page). A pipeline seen on an earlier page is not yielded twice. ``urgent`` gives the pages the rate-limit
        priority of writes: for a listing that a create is waiting on. ``on_page`` is called with each page's
        pagination block (for progress reports) before its items are yielded.
        """
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        seen: set[str] = set()
        for page_number in range(1, _MAX_PAGES + 1):
            params = {"page_number": page_number}
            if self._send_page_size:
                params["page_size"] = page_size
            try:
                response, redactor = await self._call("GET", "list", "", params=params, urgent=urgent)
            except InvalidRequestError:
                if page_number > 1 or not self._send_page_size:
                    raise
                log.warning("GoldRush list: page_size=%d refused; listing with the API's default page size",
                            page_size)
                self._send_page_size = False
                response, redactor = await self._call("GET", "list", "", params={"page_number": 1}, urgent=urgent)
            page = self._parse(response, PipelinePage, "GET", "list", redactor)
            if on_page is not None:
                on_page(page.pagination)
            new = [item for item in page.items if item.id not in seen]
            for item in new:
                seen.add(item.id)
                yield item
            more = (page.pagination.more_after(len(seen), len(page.items), page_size)
                    if page.pagination is not None else bool(page.items))
            if not more or not new:
                return
        raise UnexpectedResponseError(
            f"list did not end after {_MAX_PAGES} pages", method="GET", route="list"
        )

    async def create_pipeline(self, payload: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> Pipeline:
        """Create a pipeline (``POST /``); raises OutcomeUnknownError when it may or may not exist now.

        ``secrets``: every secret value the body carries beyond the known secret fields (e.g. a Secret-sourced
        ``url``); error text is scrubbed of them before it is shortened.
        """
        response, redactor = await self._call("POST", "create", "", body=payload, secrets=secrets)
        return self._parse(response, Pipeline, "POST", "create", redactor)

    async def get_pipeline(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> Pipeline:
        """Fetch one pipeline (``GET /{id}/``); secret fields come back as ``******``. ``secrets``: the
        object's secret values, scrubbed from error text before it is shortened (as for every per-pipeline
        call below)."""
        response, redactor = await self._call("GET", "get", _pipeline_path(pipeline_id), secrets=secrets)
        return self._parse(response, Pipeline, "GET", "get", redactor)

    async def update_pipeline(
        self, pipeline_id: str, changes: Mapping[str, Any], *, secrets: Iterable[str] = ()
    ) -> Pipeline:
        """Partially update writeable fields (``PATCH /{id}/``); OutcomeUnknownError when undecidable.
        ``secrets`` as for :meth:`create_pipeline`."""
        response, redactor = await self._call(
            "PATCH", "patch", _pipeline_path(pipeline_id), body=changes, secrets=secrets
        )
        return self._parse(response, Pipeline, "PATCH", "patch", redactor)

    async def set_status(
        self, pipeline_id: str, status: Literal["running", "paused"], *, secrets: Iterable[str] = ()
    ) -> Pipeline:
        """Set the intent status to ``running`` or ``paused`` (``PUT /{id}/``, body ``{"status": ...}``)."""
        if status not in ("running", "paused"):
            raise ValueError("status must be 'running' or 'paused'")
        body = {"status": status}
        response, redactor = await self._call("PUT", "put", _pipeline_path(pipeline_id), body=body, secrets=secrets)
        return self._parse(response, Pipeline, "PUT", "put", redactor)

    async def delete_pipeline(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> None:
        """Delete a pipeline (``DELETE /{id}/``); raises NotFoundError on 404 (the caller decides: gone)."""
        await self._call("DELETE", "delete", _pipeline_path(pipeline_id), secrets=secrets)

    async def get_status(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> RuntimeStatus:
        """Runtime phase and replicas (``GET /{id}/status/``)."""
        response, redactor = await self._call("GET", "status", _pipeline_path(pipeline_id, "status/"),
                                              secrets=secrets)
        return self._parse(response, RuntimeStatus, "GET", "status", redactor)

    async def get_logs(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> PipelineLogs:
        """Recent log tail per pod (``GET /{id}/logs/``)."""
        response, redactor = await self._call("GET", "logs", _pipeline_path(pipeline_id, "logs/"), secrets=secrets)
        return self._parse(response, PipelineLogs, "GET", "logs", redactor)

    async def get_metrics(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> PipelineMetrics:
        """Point-in-time throughput and lag counters (``GET /{id}/metrics/``)."""
        response, redactor = await self._call("GET", "metrics", _pipeline_path(pipeline_id, "metrics/"),
                                              secrets=secrets)
        return self._parse(response, PipelineMetrics, "GET", "metrics", redactor)

    async def get_destination_health(self, pipeline_id: str, *, secrets: Iterable[str] = ()) -> DestinationHealth:
        """Result of the latest destination probe (``GET /{id}/destination-health/``)."""
        path = _pipeline_path(pipeline_id, "destination-health/")
        response, redactor = await self._call("GET", "destination-health", path, secrets=secrets)
        return self._parse(response, DestinationHealth, "GET", "destination-health", redactor)

    # ----------------------------------------------------------------- request machinery

    def _request_redactor(self, body: Mapping[str, Any] | None, secrets: Iterable[str] = ()) -> Redactor:
        redactor = (self._redactor or Redactor()).with_payload(body)
        redactor.add(self._service_key, *secrets)
        return redactor

    async def _call(
        self,
        method: str,
        route: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        urgent: bool | None = None,
        secrets: Iterable[str] = (),
    ) -> tuple[httpx.Response, Redactor]:
        """Send one logical call with the retry rules; return the 2xx response and the call's redactor.

        ``urgent`` (default: every method but GET) takes rate-limit tokens ahead of ordinary reads.
        """
        if self.dry_run and method != "GET":
            raise DryRunRefusedError(method, route)
        priority = method != "GET" if urgent is None else urgent
        content: bytes | None = None
        if body is not None:
            masks = find_masks(body)
            if masks:
                raise MaskedSecretError(masks, method=method, route=route)
            try:
                content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            except (TypeError, ValueError):
                raise ValueError(f"{method} {route}: request body is not JSON-serialisable") from None
        redactor = self._request_redactor(body, secrets)
        http, limits = self._resources()
        idempotent = method in IDEMPOTENT_METHODS
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._service_key}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        started = self._clock.monotonic()
        retries = 0
        while True:
            elapsed = self._clock.monotonic() - started
            gate_left = limits.gate.remaining()
            if gate_left > 0 and elapsed + gate_left > self._policy.max_elapsed:
                raise RateLimitedError(
                    f"{method} {route}: rate limited by the API, no request allowed for {gate_left:.1f}s",
                    retry_after=gate_left,
                    method=method,
                    route=route,
                )
            err: GoldRushError
            wait: float | None = None  # seconds the Retry-After gate will hold the next attempt
            try:
                response = await self._attempt(
                    http, limits, method, route, url, content, params, headers, urgent=priority
                )
            except _NotSent as exc:
                err = ConnectError(
                    f"{method} {route}: request not sent: {redactor.scrub(str(exc))}",
                    method=method,
                    route=route,
                )
            except _MaybeSent as exc:
                detail = redactor.scrub(str(exc))
                if not idempotent:
                    raise OutcomeUnknownError(
                        f"{method} {route}: outcome unknown, the connection failed after the request was "
                        f"sent ({detail}); look the result up before repeating the write",
                        method=method,
                        route=route,
                    ) from None
                cls = RequestTimeoutError if exc.timeout else TransportError
                err = cls(f"{method} {route}: {detail}", method=method, route=route)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response, redactor
                retry_after = self._retry_after(response)
                if retry_after is not None:
                    wait = retry_after  # _attempt has already pushed the key's gate
                err = self._error_from_response(response, method, route, redactor, retry_after)
                if status >= 500 and not idempotent:
                    raise OutcomeUnknownError(
                        f"{method} {route}: outcome unknown, the API answered {status}: {err.message}; "
                        "look the result up before repeating the write",
                        status=status,
                        method=method,
                        route=route,
                    ) from None
                if not err.transient or (not idempotent and status != 429):
                    raise err
            delay = wait if wait is not None else self._policy.backoff(retries)
            if not self._policy.allows(retries, self._clock.monotonic() - started, delay):
                raise err
            retries += 1
            log.info(
                "GoldRush %s %s: %s, retry %d/%d in %.2fs",
                method,
                route,
                type(err).__name__,
                retries,
                self._policy.max_retries,
                delay,
            )
            if wait is None:
                await self._clock.sleep(delay)

    async def _attempt(
        self,
        http: httpx.AsyncClient,
        limits: KeyLimits,
        method: str,
        route: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        *,
        urgent: bool,
    ) -> httpx.Response:
        """One HTTP attempt under the key's Retry-After gate, concurrency cap and token bucket."""
        while True:
            probe = await limits.gate.wait()
            try:
                # The token first (writes ahead of polls), then a concurrency slot: queued polls never hold
                # the slots a write needs.
                await limits.bucket.acquire(urgent=urgent)
                slot = limits.semaphore if limits.semaphore is not None else contextlib.nullcontext()
                async with slot:
                    if not limits.gate.is_open(probe=probe):
                        continue  # closed again (or another request probes) while we queued: wait again
                    if self._write_guard is not None and method != "GET":
                        self._write_guard()
                    response = await self._send(http, method, route, url, content, params, headers)
                    retry_after = self._retry_after(response)
                    if retry_after is not None:
                        limits.gate.push(retry_after)  # before a probe is finished, so others keep waiting
                    return response
            finally:
                if probe:
                    limits.gate.probe_finished()

    async def _send(
        self,
        http: httpx.AsyncClient,
        method: str,
        route: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """Send one request with the total timeout; classify failures as not sent / maybe sent."""
        outcome = "transport_error"
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                response = await http.request(method, url, content=content, params=params, headers=headers)
            outcome = str(response.status_code)
            return response
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _NotSent(f"{type(exc).__name__}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise _MaybeSent(f"{type(exc).__name__}: {exc}", timeout=True) from None
        except TimeoutError:
            raise _MaybeSent(f"no complete answer within {self._timeout}s", timeout=True) from None
        except httpx.TransportError as exc:
            raise _MaybeSent(f"{type(exc).__name__}: {exc}", timeout=False) from None
        finally:
            log.debug("GoldRush %s %s -> %s in %.3fs", method, route, outcome, time.monotonic() - started)
            self._notify(method, route, outcome)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds from ``Retry-After`` of a 429 or 503 answer (None otherwise or when unparseable)."""
        if response.status_code not in (429, 503):
            return None
        return parse_retry_after(response.headers.get("Retry-After"), self._clock.time())

    def _notify(self, method: str, route: str, outcome: str) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(method, route, outcome)
        except Exception:  # a metrics hook must never break a call
            log.debug("on_request hook failed for %s %s", method, route, exc_info=True)

    @staticmethod
    def _error_from_response(
        response: httpx.Response,
        method: str,
        route: str,
        redactor: Redactor,
        retry_after: float | None,
    ) -> GoldRushError:
        """Build the scrubbed error for a non-2xx answer (tolerates non-JSON bodies)."""
        status = response.status_code
        text: str | None = None
        error_code: str | None = None
        try:
            envelope = ErrorEnvelope.model_validate(json.loads(response.content))
        except (ValueError, ValidationError):
            envelope = None
        if envelope is not None:
            text, error_code = envelope.error_message, envelope.error_code
        if text is None:
            text = response.text
        detail = " ".join(redactor.scrub(text).split())[:_MAX_ERROR_TEXT] or response.reason_phrase
        message = f"{method} {route}: HTTP {status}: {detail}"
        if 300 <= status < 400:
            return UnexpectedResponseError(
                message, status=status, method=method, route=route, transient=False
            )
        return api_error_for_status(
            status, message, method=method, route=route, error_code=error_code, retry_after=retry_after
        )

    @staticmethod
    def _parse(response: httpx.Response, model: type[M], method: str, route: str, redactor: Redactor) -> M:
        """Unwrap the success envelope and validate ``data`` as ``model``; never echoes values in errors."""
        status = response.status_code
        writes = method in ("POST", "PATCH")
        cls: type[GoldRushError] = OutcomeUnknownError if writes else UnexpectedResponseError
        suffix = "; look the result up before repeating the write" if writes else ""
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise cls(
                f"{method} {route}: HTTP {status} answer is not JSON{suffix}",
                status=status,
                method=method,
                route=route,
            ) from None
        if not isinstance(payload, dict):
            raise cls(
                f"{method} {route}: HTTP {status} answer is not an envelope{suffix}",
                status=status,
                method=method,
                route=route,
            )
        if payload.get("error") is True and payload.get("data") is None:
            code = str(payload.get("error_code") or "")
            message = " ".join(redactor.scrub(str(payload.get("error_message") or "")).split())
            message = f"{method} {route}: API error {code or '?'}: {message[:_MAX_ERROR_TEXT]}"
            if code.isdigit() and int(code) >= 400:
                return_error = api_error_for_status(
                    int(code), message, method=method, route=route, error_code=code
                )
                raise return_error
            raise UnexpectedResponseError(message, status=status, method=method, route=route)
        try:
            return model.model_validate(payload.get("data"))
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['type']}"
                for e in exc.errors(include_url=False, include_input=False, include_context=False)[:5]
            )
            raise cls(
                f"{method} {route}: HTTP {status} answer has an unexpected shape ({where}){suffix}",
                status=status,
                method=method,
                route=route,
            ) from None
