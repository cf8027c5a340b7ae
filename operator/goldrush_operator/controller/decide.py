"""Which API writes a pass would send, as data: shared by the controller and `goldrush-operator plan`.

Pure functions (no I/O). `loop.Controller` turns a `payload.PayloadDiff` into `Call`s with `config_calls`
before it sends them (and, in dry-run mode, announces them instead); `plan.py` prints the same `Call`s, so
the plan and the operator cannot disagree. `lookup` decides what a pipeline without a known id becomes
(create, adopt, observe, conflict, not found) from the pipelines with its name and project.

Management policies (`spec.managementPolicies`) decide what is allowed: without Update no PATCH and no
pause/resume PUT is planned (the differences are reported as `blocked`); without Create nothing is created.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from goldrush_operator.payload import PayloadDiff
from goldrush_operator.resource import PipelineSpec

Method = Literal["POST", "PATCH", "PUT", "DELETE"]
# What dry-run mode announces instead of each call (Event reasons).
WOULD_CREATE = "WouldCreate"
WOULD_UPDATE = "WouldUpdate"
WOULD_PAUSE = "WouldPause"
WOULD_RESUME = "WouldResume"
WOULD_DELETE = "WouldDelete"


@dataclass(frozen=True)
class Call:
    """One API write: method, the client's route name (as the API journal names it) and what it changes."""

    method: Method
    route: str
    pipeline_id: str | None = None
    fields: tuple[str, ...] = ()
    value: str = ""  # PUT: the status sent (`paused` / `running`)
    digest: str = field(default="", compare=False, repr=False)  # sha256 of the body: which change it is

    @property
    def path(self) -> str:
        return f"/{self.pipeline_id}/" if self.pipeline_id else "/"

    @property
    def reason(self) -> str:
        if self.method == "POST":
            return WOULD_CREATE
        if self.method == "PATCH":
            return WOULD_UPDATE
        if self.method == "PUT":
            return WOULD_PAUSE if self.value == "paused" else WOULD_RESUME
        return WOULD_DELETE

    def describe(self) -> str:
        """Safe to print and to put in Events: field names and the status, never values."""
        text = f"{self.method} {self.path}"
        if self.method == "POST":
            text += " (create)"
        elif self.method == "PATCH":
            text += f" ({', '.join(self.fields)})"
        elif self.method == "PUT":
            text += f" status={self.value}"
        return text

    def key(self) -> str:
        """Identity of the change (not only of the call): a new spec gives a new key."""
        return f"{self.method} {self.path} {','.join(self.fields)} {self.value} {self.digest}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "route": self.route, "path": self.path}
        if self.pipeline_id:
            out["pipelineId"] = self.pipeline_id
        if self.fields:
            out["fields"] = list(self.fields)
        if self.value:
            out["status"] = self.value
        return out


def digest(body: Mapping[str, Any]) -> str:
    """sha256 of a request body: kept in memory only, to tell one change from the next."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def create_call(payload: Mapping[str, Any]) -> Call:
    return Call("POST", "create", None, tuple(sorted(k for k in payload if k != "status")),
                str(payload.get("status") or ""), digest(payload))


def delete_call(pipeline_id: str) -> Call:
    return Call("DELETE", "delete", pipeline_id, digest=pipeline_id)


@dataclass(frozen=True)
class ConfigPlan:
    """The writes that make the remote match, and what differs but may not be written."""

    calls: tuple[Call, ...]
    blocked: tuple[str, ...] = ()  # differing fields the management policies keep the operator from writing
    immutable: tuple[str, ...] = ()  # differing create-only fields (a stall when Update is allowed)
    remote_status: str | None = None  # the remote's intent when a PUT is not sent (judged instead of spec.paused)


def config_calls(pipeline_id: str, diff: PayloadDiff, spec: PipelineSpec, remote_status: str | None) -> ConfigPlan:
    """The PATCH and PUT a full check sends for `diff` under the object's management policies."""
    immutable = tuple(sorted(diff.immutable))
    if not spec.allows("Update"):
        blocked = [*diff.changed_fields, *immutable, *(["status"] if diff.status else [])]
        return ConfigPlan((), tuple(blocked), (), remote_status)
    if immutable:
        return ConfigPlan((), (), immutable, remote_status)
    calls: list[Call] = []
    if diff.patch:
        calls.append(Call("PATCH", "patch", pipeline_id, tuple(diff.changed_fields), digest=digest(diff.patch)))
    if diff.status is not None:
        calls.append(Call("PUT", "put", pipeline_id, ("status",), diff.status, digest=diff.status))
    return ConfigPlan(tuple(calls))


Lookup = Literal["create", "adopt", "observe", "conflict", "ambiguous", "not-found"]


def lookup(named: Sequence[Any], spec: PipelineSpec, adopt: bool) -> Lookup:
    """What an object without a known pipeline id does, given the remote pipelines with its name and project.

    With Create (the operator's create path): none -> create; one with the adopt annotation -> adopt;
    else a name conflict. Without Create the object can only point at an existing pipeline: one match is
    observed (and, when Update is allowed too, needs the adopt annotation, since writes would follow).
    """
    if spec.allows("Create"):
        if not named:
            return "create"
        return "adopt" if adopt and len(named) == 1 else "conflict"
    if not named:
        return "not-found"
    if len(named) > 1:
        return "ambiguous"
    if spec.allows("Update") and not adopt:
        return "conflict"
    return "observe"
