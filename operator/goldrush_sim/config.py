"""Simulator options as one pydantic model, `SimConfig`.

Built by `goldrush_sim.cli` from the command line (or directly by code that embeds the
simulator through `goldrush_sim.app.make_app`). Every behaviour the real API documentation
leaves open and that matters to a client is an option here; see docs/simulator.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_SERVICE_KEY = "dev-key"
DEFAULT_GROUP = "group_default"
FOREIGN_GROUP = "group_foreign"


def parse_service_key(spec: str) -> tuple[str, str]:
    """Split a `KEY[=GROUP]` command line value into (key, group).

    The split happens at the last `=`; when nothing follows it (a key that itself ends in
    `=`, e.g. base64 padding) the whole text is the key and the group is `group_default`.
    """
    key, sep, group = spec.rpartition("=")
    if not sep or not key or not group:
        return spec, DEFAULT_GROUP
    return key, group


class SimConfig(BaseModel):
    """All simulator options; field names match the `--long-option` names with `_`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=18080, ge=0, le=65535)
    service_keys: dict[str, str] = Field(
        default_factory=lambda: {DEFAULT_SERVICE_KEY: DEFAULT_GROUP},
        description="ServiceKey -> group id. Valid bearer tokens for the Pipeline API.",
    )
    api_keys: list[str] = Field(
        default_factory=list, description="Regular GoldRush API keys: recognised, answered with 403."
    )
    latency_ms: int = Field(default=0, ge=0, description="Added latency for every Pipeline API request.")
    deploy_seconds: float = Field(default=2.0, ge=0)
    stop_seconds: float = Field(default=1.0, ge=0)
    bounded_run_seconds: float = Field(default=30.0, ge=0)
    delete_seconds: float = Field(default=0.0, ge=0)
    default_page_size: int = Field(default=10, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    state_file: Path | None = None
    state_debounce_seconds: float = Field(default=0.25, ge=0)
    journal_size: int = Field(default=100_000, ge=0)
    immutable_patch: Literal["reject", "ignore"] = "reject"
    patch_merge: Literal["replace", "deep"] = "replace"
    create_status: Literal[200, 201] = 201
    rate_limit_rps: float | None = Field(default=None, gt=0)
    status_without_runtime: Literal["phase", "404"] = Field(
        default="phase",
        description="`/status/` of a pipeline without a runtime (PAUSED, STOPPED): its phase, or 404.",
    )
    echo_defaults: bool = Field(
        default=False, description="Reads fill in the documented defaults of destination settings left out."
    )
    seed: int = 0
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not exceed max_page_size")
        overlap = set(self.service_keys) & set(self.api_keys)
        if overlap:
            raise ValueError(f"keys given both as service key and API key: {sorted(overlap)}")
        return self
