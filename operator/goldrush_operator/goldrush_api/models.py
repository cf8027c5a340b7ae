"""Pydantic v2 wire models of the GoldRush Pipeline REST API.

Parsed by :mod:`goldrush_operator.goldrush_api.client` from response envelopes and returned to its callers (the
controller). Every model tolerates (and keeps, ``extra="allow"``) fields it does not know, and most fields
are optional, because the API is young and partly undocumented. Numbers sent as strings and strings sent
as numbers are coerced where the docs are vague (block heights, ``error_code``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "CreatedBy",
    "DestinationHealth",
    "Envelope",
    "ErrorEnvelope",
    "Group",
    "Pagination",
    "Pipeline",
    "PipelineLogs",
    "PipelineMetrics",
    "PipelinePage",
    "PodLogs",
    "RuntimeStatus",
    "WireModel",
]

T = TypeVar("T")


def _to_str(value: Any) -> Any:
    """Coerce ints/floats to str (block heights and error codes are strings on the wire, but be lenient)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _none_to_empty_dict(value: Any) -> Any:
    return {} if value is None else value


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


LenientStr = Annotated[str | None, BeforeValidator(_to_str)]
DictField = Annotated[dict[str, Any], BeforeValidator(_none_to_empty_dict)]


class WireModel(BaseModel):
    """Base of all wire models: unknown fields are kept, field names are the API's snake_case names."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CreatedBy(WireModel):
    """The user who created a pipeline (read-only)."""

    id: str | None = None
    email: str | None = None
    display_name: str | None = None
    full_name: str | None = None


class Group(WireModel):
    """The group (account) that owns a pipeline; the service key sees only its own group's pipelines."""

    id: str | None = None
    name: str | None = None
    slug: str | None = None
    is_paid: bool | None = None
    is_over_limit: bool | None = None
    is_free_trial_expired: bool | None = None


class Pipeline(WireModel):
    """A pipeline object as returned by list/get/create/PUT/PATCH.

    ``status`` is the user's intent (``running``/``paused``), not the runtime phase (see RuntimeStatus).
    ``destination_config`` is left out of the repr; its secret fields arrive masked as ``******``.
    """

    id: str
    name: str | None = None
    project: str | None = None
    description: str | None = None
    topic: str | None = None
    destination_type: str | None = None
    destination_config: DictField = Field(default_factory=dict, repr=False)
    transforms: Annotated[dict[str, str], BeforeValidator(_none_to_empty_dict)] = Field(default_factory=dict)
    execution_mode: str | None = None
    execution_start_from: LenientStr = None
    execution_stop_from: LenientStr = None
    abi_file: DictField = Field(default_factory=dict)
    abi_contract_addresses: Annotated[list[str], BeforeValidator(_none_to_empty_list)] = Field(
        default_factory=list
    )
    abi_unmatched: str | None = None
    status: str | None = None
    created_by: CreatedBy | None = None
    group: Group | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Pagination(WireModel):
    """Pagination block of a list answer; ``page_number`` is 1-based."""

    page_number: int = 1
    page_size: int | None = None
    total_count: int | None = None
    has_more: bool | None = None  # None: not sent (the documented shape was truncated): see `more_after`

    def more_after(self, seen: int, items_on_page: int, asked_page_size: int) -> bool:
        """Whether another page follows: `has_more` when sent, else `total_count` against the pipelines seen,
        else whether this page was full."""
        if self.has_more is not None:
            return self.has_more
        if self.total_count is not None:
            return seen < self.total_count
        return items_on_page >= (self.page_size or asked_page_size)


class PipelinePage(WireModel):
    """``data`` of a list answer: one page of pipelines."""

    items: Annotated[list[Pipeline], BeforeValidator(_none_to_empty_list)] = Field(default_factory=list)
    pagination: Pagination | None = None
    updated_at: datetime | None = None


class RuntimeStatus(WireModel):
    """``/status/``: runtime phase (``DEPLOYING, RUNNING, PAUSED, FAILED, STOPPING, STOPPED``), replicas."""

    uid: str | None = None
    status: str
    replicas: int = 0
    ready: int = 0
    start_time: datetime | None = None


class PodLogs(WireModel):
    """Log tail of one pod: ``logs`` is one newline-separated string."""

    pod: str | None = None
    logs: str = ""


class PipelineLogs(WireModel):
    """``/logs/``: the recent log tail of each pod of the pipeline's worker."""

    uid: str | None = None
    pods: Annotated[list[PodLogs], BeforeValidator(_none_to_empty_list)] = Field(default_factory=list)


class PipelineMetrics(WireModel):
    """``/metrics/``: point-in-time counters (reset when the worker restarts)."""

    uid: str | None = None
    records_consumed: int | None = None
    last_offset: int | None = None
    last_block_height: int | None = None
    pending_records: int | None = None
    processing_delay_ms: float | None = None
    records_per_second: float | None = None
    normalization_errors: int | None = None


class DestinationHealth(WireModel):
    """``/destination-health/``: result of the latest destination probe; ``last_error`` when unhealthy.
    ``healthy`` is None when the API has no verdict yet (no probe ran; its schema is not documented)."""

    healthy: bool | None = None
    last_error: str | None = None


class Envelope(WireModel, Generic[T]):
    """The response envelope ``{data, error, error_message, error_code}`` around a payload of type ``T``."""

    data: T | None = None
    error: bool = False
    error_message: str | None = None
    error_code: LenientStr = None


class ErrorEnvelope(WireModel):
    """An error answer: ``{"data": null, "error": true, "error_message": "...", "error_code": "404"}``."""

    data: Any = None
    error: bool = True
    error_message: str | None = None
    error_code: LenientStr = None
