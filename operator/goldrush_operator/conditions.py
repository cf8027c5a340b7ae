"""Kubernetes condition rules for `GoldRushPipeline.status.conditions` (kstatus / Flux semantics).

Pure functions over the camelCase condition dicts stored in status; the controller's status step calls them to build
the next status and `conditions_changed()` to decide whether a status write is needed at all (no write
when nothing changed, so no reconcile storms). Rules:

- `lastTransitionTime` changes only when a condition's `status` flips; reason/message/observedGeneration
  updates keep it.
- `Reconciling` and `Stalled` are "abnormal-true": present only while True, removed otherwise.
- The list is kept in a fixed order (Ready, Synced, Reconciling, Stalled, DestinationHealthy, then any
  other type alphabetically), so equal states always serialise identically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

# Condition types.
READY: Final = "Ready"
SYNCED: Final = "Synced"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
DESTINATION_HEALTHY: Final = "DestinationHealthy"

CONDITION_ORDER: Final[tuple[str, ...]] = (READY, SYNCED, RECONCILING, STALLED, DESTINATION_HEALTHY)
# Types that may only be present while True (kstatus "abnormal-true" polarity).
ABNORMAL_TRUE: Final = frozenset({RECONCILING, STALLED})

# Reasons (design §2). Ready:
PENDING: Final = "Pending"
DEPLOYING: Final = "Deploying"
RUNNING: Final = "Running"
PAUSED: Final = "Paused"
STOPPING: Final = "Stopping"
STOPPED: Final = "Stopped"
REMOTE_FAILED: Final = "RemoteFailed"
SECRET_NOT_FOUND: Final = "SecretNotFound"  # noqa: S105 (a reason, not a secret)
AUTH_FAILED: Final = "AuthFailed"
INVALID_SPEC: Final = "InvalidSpec"
API_UNAVAILABLE: Final = "ApiUnavailable"
RECONCILE_PAUSED: Final = "ReconcilePaused"
# Synced:
IN_SYNC: Final = "InSync"
UPDATE_PENDING: Final = "UpdatePending"
API_ERROR: Final = "ApiError"
NAME_CONFLICT: Final = "NameConflict"
IMMUTABLE_FIELD_CHANGED: Final = "ImmutableFieldChanged"
# spec.managementPolicies and dry-run mode (Ready/Synced):
NOT_FOUND: Final = "NotFound"  # no remote pipeline to observe and the policies do not allow Create
UPDATE_NOT_ALLOWED: Final = "UpdateNotAllowed"  # the remote differs; the policies do not allow Update
DRY_RUN: Final = "DryRun"  # a write is pending; GOLDRUSH_DRY_RUN keeps the operator from sending it
# Reconciling:
CREATING: Final = "Creating"
RETRYING: Final = "Retrying"
RATE_LIMITED: Final = "RateLimited"
# Stalled:
CREATE_INCOMPLETE: Final = "CreateIncomplete"
# DestinationHealthy:
HEALTHY: Final = "Healthy"
UNHEALTHY: Final = "Unhealthy"

MAX_MESSAGE_LENGTH: Final = 32768
_REASON_RE: Final = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TRUNCATION_MARK: Final = "... (truncated)"

Condition = dict[str, Any]


def format_time(moment: datetime | str) -> str:
    """RFC 3339 UTC with second precision (metav1.Time), e.g. `2026-05-01T10:00:00Z`."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> datetime:
    """The current time; a function so callers and tests can inject their own clock instead."""
    return datetime.now(UTC)


def _order_key(condition: Mapping[str, Any]) -> tuple[int, str]:
    ctype = str(condition.get("type", ""))
    rank = CONDITION_ORDER.index(ctype) if ctype in CONDITION_ORDER else len(CONDITION_ORDER)
    return rank, ctype


def sort_conditions(conditions: Sequence[Mapping[str, Any]]) -> list[Condition]:
    """Copies of the conditions in canonical order (one entry per type: the last one wins)."""
    by_type: dict[str, Condition] = {}
    for cond in conditions:
        by_type[str(cond.get("type", ""))] = dict(cond)
    return sorted(by_type.values(), key=_order_key)


def get_condition(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> Condition | None:
    """A copy of the condition of that type, or None."""
    for cond in conditions or ():
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def condition_status(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> str:
    """`True`, `False` or `Unknown` (a missing condition means Unknown)."""
    cond = get_condition(conditions, ctype)
    return str(cond.get("status", UNKNOWN)) if cond else UNKNOWN


def is_true(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> bool:
    """Whether the condition of that type is present with status True."""
    return condition_status(conditions, ctype) == TRUE


def _truncate(message: str) -> str:
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - len(_TRUNCATION_MARK)] + _TRUNCATION_MARK


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    ctype: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime | str,
) -> list[Condition]:
    """Return a new condition list with `ctype` set; the input is not modified.

    `status` may be a bool. `lastTransitionTime` is kept unless the status flips (or the condition is
    new). `Reconciling`/`Stalled` with a status other than True are removed instead of set.
    """
    if isinstance(status, bool):
        status = TRUE if status else FALSE
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    if not _REASON_RE.match(reason) or len(reason) > 1024:
        raise ValueError(f"condition reason must be one CamelCase word, not {reason!r}")
    current = sort_conditions(conditions or ())
    if ctype in ABNORMAL_TRUE and status != TRUE:
        return remove_condition(current, ctype)
    previous = get_condition(current, ctype)
    transition = format_time(now)
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = str(previous["lastTransitionTime"])
    new: Condition = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": _truncate(message),
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    rest = [c for c in current if c.get("type") != ctype]
    return sort_conditions([*rest, new])


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> list[Condition]:
    """A new list without the condition of that type."""
    return sort_conditions([c for c in conditions or () if c.get("type") != ctype])


def normalize_conditions(conditions: Sequence[Mapping[str, Any]] | None) -> list[Condition]:
    """Canonical form for comparison: canonical order, abnormal-true types dropped unless True."""
    return [
        c
        for c in sort_conditions(conditions or ())
        if not (c.get("type") in ABNORMAL_TRUE and c.get("status") != TRUE)
    ]


def conditions_changed(
    old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]] | None
) -> bool:
    """Whether writing `new` would change anything relative to `old` (every field compared; order not).

    Use it (with the other status fields) to skip status writes when nothing changed.
    """
    return sort_conditions(old or ()) != sort_conditions(new or ())


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether merging `new` (a status patch) into `old` (the stored status) would change anything.

    Keys absent from `new` are untouched by a merge patch and so ignored; `None` in `new` deletes.
    Conditions are compared with `conditions_changed` (order-insensitive).
    """
    stored = old or {}
    for key, value in new.items():
        if key == "conditions":
            if conditions_changed(stored.get("conditions"), value):
                return True
        elif value is None:
            if stored.get(key) is not None:
                return True
        elif stored.get(key) != value:
            return True
    return False
