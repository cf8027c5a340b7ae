"""GoldRush Pipeline REST API client: the only package of the operator that imports httpx.

Used by the controller (and by the simulator tests). Public names:

Client (:mod:`.client`)
    ``GoldRushClient(base_url, service_key, *, rate_limit=None, burst=None, max_concurrency=None,
    max_retries=5, retry_max_elapsed=60.0, backoff_base=0.5, backoff_max=30.0, connect_timeout=5.0,
    timeout=30.0, on_request=None, transport=None, shared=None, clock=None, rng=None, redactor=None,
    dry_run=False)``
    with ``list_pipelines(page_size=100)`` (async iterator), ``create_pipeline(payload)``,
    ``get_pipeline(id)``, ``update_pipeline(id, changes)`` (PATCH), ``set_status(id, "running"|"paused")``
    (PUT), ``delete_pipeline(id)``, ``get_status(id)``, ``get_logs(id)``, ``get_metrics(id)``,
    ``get_destination_health(id)``, ``aclose()``; ``RequestHook`` is the ``on_request`` callback type;
    ``DEFAULT_BASE_URL``, ``USER_AGENT``, ``ENV_RATE_LIMIT``, ``ENV_MAX_CONCURRENCY``; ``open_pool(base_url,
    *, connect_timeout=5.0, timeout=30.0, shared=None)`` builds a base URL's shared pool ahead of its clients.

Wire models (:mod:`.models`)
    ``Pipeline`` (with ``CreatedBy``, ``Group``), ``PipelinePage``, ``Pagination``, ``RuntimeStatus``,
    ``PipelineLogs`` (``PodLogs``), ``PipelineMetrics``, ``DestinationHealth``, ``Envelope``,
    ``ErrorEnvelope``, ``WireModel``.

Errors (:mod:`.errors`, tree in its docstring)
    ``GoldRushError`` > ``MaskedSecretError``, ``DryRunRefusedError``, ``TransportError`` (``ConnectError``,
    ``RequestTimeoutError``), ``OutcomeUnknownError``, ``UnexpectedResponseError``, ``ApiError``
    (``InvalidRequestError``, ``ConflictError``, ``UnauthorizedError``, ``ForbiddenError``, ``NotFoundError``,
    ``RateLimitedError``, ``ServerError``); ``api_error_for_status``.

Rate limiting and shared state (:mod:`.ratelimit`, :mod:`.retry`, :mod:`.shared`)
    ``Clock``, ``SystemClock``, ``ManualClock``, ``TokenBucket``, ``NotBeforeGate``, ``KeyLimits``,
    ``LimiterRegistry``, ``RetryPolicy``, ``parse_retry_after``, ``SharedState``,
    ``default_shared_state()``, ``reset_shared_state()``.
"""

from .client import (
    DEFAULT_BASE_URL,
    ENV_MAX_CONCURRENCY,
    ENV_RATE_LIMIT,
    USER_AGENT,
    GoldRushClient,
    RequestHook,
    open_pool,
)
from .errors import (
    ApiError,
    ConflictError,
    ConnectError,
    DryRunRefusedError,
    ForbiddenError,
    GoldRushError,
    InvalidRequestError,
    MaskedSecretError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    api_error_for_status,
)
from .models import (
    CreatedBy,
    DestinationHealth,
    Envelope,
    ErrorEnvelope,
    Group,
    Pagination,
    Pipeline,
    PipelineLogs,
    PipelineMetrics,
    PipelinePage,
    PodLogs,
    RuntimeStatus,
    WireModel,
)
from .ratelimit import (
    Clock,
    KeyLimits,
    LimiterRegistry,
    ManualClock,
    NotBeforeGate,
    SystemClock,
    TokenBucket,
)
from .retry import RetryPolicy, parse_retry_after
from .shared import SharedState, default_shared_state, reset_shared_state

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_MAX_CONCURRENCY",
    "ENV_RATE_LIMIT",
    "USER_AGENT",
    "ApiError",
    "Clock",
    "ConflictError",
    "ConnectError",
    "CreatedBy",
    "DestinationHealth",
    "DryRunRefusedError",
    "Envelope",
    "ErrorEnvelope",
    "ForbiddenError",
    "GoldRushClient",
    "GoldRushError",
    "Group",
    "InvalidRequestError",
    "KeyLimits",
    "LimiterRegistry",
    "ManualClock",
    "MaskedSecretError",
    "NotBeforeGate",
    "NotFoundError",
    "OutcomeUnknownError",
    "Pagination",
    "Pipeline",
    "PipelineLogs",
    "PipelineMetrics",
    "PipelinePage",
    "PodLogs",
    "RateLimitedError",
    "RequestHook",
    "RequestTimeoutError",
    "RetryPolicy",
    "RuntimeStatus",
    "ServerError",
    "SharedState",
    "SystemClock",
    "TokenBucket",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "WireModel",
    "api_error_for_status",
    "default_shared_state",
    "open_pool",
    "parse_retry_after",
    "reset_shared_state",
]
