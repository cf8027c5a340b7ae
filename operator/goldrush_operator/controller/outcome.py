"""The one error policy: every exception a pass or a deletion can raise becomes a `Retry` or a `Stall`.

Called by `controller.loop.Controller` around each reconcile pass and each deletion; nothing else decides
between "try again later" and "a human must act". The rules:

- `Retry(reason, message, delay)`: something outside the object may heal by itself (transport errors, 5xx,
  429 with its `Retry-After`, 409, a write whose outcome is unknown, Kubernetes API errors). The pass backs
  off with jitter; `delay`, when set, is a floor (the API's `Retry-After`).
- `Stall(reason, message)`: retrying the same input cannot succeed (400/422, 401/403, 3xx or other
  unexpected statuses, a secret mask or an invalid value in the desired payload, a name conflict, missing
  input, a write refused by dry-run mode). The object is held until its spec, a referenced Secret or the
  service key changes, or an on-demand reconcile is requested; a write answered 4xx (409 and 429 aside,
  which are retried) is never sent again before that (`holds`).

The error tree's `transient` flag decides for any `GoldRushError` without a more precise rule here.
Messages are scrubbed by the caller's `scrub` before they are returned: nothing here may leak a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from goldrush_operator import conditions as cond
from goldrush_operator.goldrush_api import (
    ConflictError,
    DryRunRefusedError,
    ForbiddenError,
    GoldRushError,
    InvalidRequestError,
    MaskedSecretError,
    OutcomeUnknownError,
    RateLimitedError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from goldrush_operator.kube import KubeError
from goldrush_operator.payload import MaskedValueError

# Reasons only this module gives (the rest live in `conditions`).
CONFLICT = "Conflict"
UNEXPECTED_RESPONSE = "UnexpectedResponse"
OUTCOME_UNKNOWN = "OutcomeUnknown"
KUBERNETES_ERROR = "KubernetesError"
INTERNAL_ERROR = "InternalError"


@dataclass(frozen=True)
class Retry:
    """Try again after a backoff (at least `delay` seconds when set)."""

    reason: str
    message: str
    delay: float | None = None


@dataclass(frozen=True)
class Stall:
    """A human must act. `synced_reason` is the reason `Synced` shows: `reason` itself unless given (what the
    operator found: a spec, key or name it cannot use), `ApiError` for every request the API refused (`_api`
    sets it). `hold`: a write the API refused, never sent again before the inputs change (as the reasons of
    `HOLD_UNTIL_CHANGE`)."""

    reason: str
    message: str
    synced_reason: str = ""
    hold: bool = False

    def __post_init__(self) -> None:
        if not self.synced_reason:
            object.__setattr__(self, "synced_reason", self.reason)


Outcome = Retry | Stall

# Stalls that only a change of the inputs can end, whatever raised them.
HOLD_UNTIL_CHANGE = frozenset({cond.AUTH_FAILED, cond.INVALID_SPEC})
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT"})


def holds(outcome: Outcome) -> TypeGuard[Stall]:
    """Whether the object is held (no API write) until its spec, a Secret or the key changes."""
    return isinstance(outcome, Stall) and (outcome.hold or outcome.reason in HOLD_UNTIL_CHANGE)


class InputProblem(Exception):
    """Raised by the pass itself when its own inputs are unusable; carries the outcome to report."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _api(exc: GoldRushError, message: str) -> Outcome:
    status = f" ({exc.status})" if exc.status else ""
    if isinstance(exc, UnauthorizedError | ForbiddenError):
        return Stall(cond.AUTH_FAILED, f"GoldRush API rejected the service key{status}: {message}", cond.API_ERROR)
    if isinstance(exc, InvalidRequestError):
        return Stall(cond.INVALID_SPEC, f"GoldRush API rejected the pipeline{status}: {message}", cond.API_ERROR)
    if isinstance(exc, DryRunRefusedError):
        # The controller announces its writes before it would send them; this is the client's backstop.
        return Stall(cond.DRY_RUN, f"{message}; the operator runs in dry-run mode")
    if isinstance(exc, MaskedSecretError):
        return Stall(cond.INVALID_SPEC, f"refusing to send the API's secret mask: {message}")
    if isinstance(exc, RateLimitedError):
        return Retry(cond.RATE_LIMITED, f"GoldRush API rate limit: {message}", exc.retry_after)
    if isinstance(exc, ConflictError):
        return Retry(CONFLICT, f"GoldRush API refused the change for now{status}: {message}")
    if isinstance(exc, OutcomeUnknownError):
        return Retry(OUTCOME_UNKNOWN, f"write outcome unknown; looking the pipeline up: {message}")
    if isinstance(exc, UnexpectedResponseError) and exc.status is not None and not 200 <= exc.status < 300:
        return Stall(UNEXPECTED_RESPONSE, f"GoldRush API answered an unexpected status{status} "
                                          f"(check GOLDRUSH_API_URL): {message}", cond.API_ERROR)
    if exc.transient:
        return Retry(cond.API_UNAVAILABLE, f"GoldRush API unavailable: {message}")
    # Any other 4xx to a write (402, 405, 410, 413, 415, ...): the same request would be refused again.
    refused = exc.method in WRITE_METHODS and exc.status is not None and 400 <= exc.status < 500
    return Stall(UNEXPECTED_RESPONSE, f"GoldRush API answered an unexpected status{status}: {message}", cond.API_ERROR,
                 hold=refused)


def classify(exc: BaseException, scrub: Callable[[str], str]) -> Outcome:
    """The outcome of `exc`; every message is passed through `scrub`."""
    if isinstance(exc, InputProblem):
        return exc.outcome
    message = scrub(str(exc))
    if isinstance(exc, GoldRushError):
        return _api(exc, message)
    if isinstance(exc, KubeError):
        return Retry(KUBERNETES_ERROR, f"Kubernetes API error: {message}")
    if isinstance(exc, MaskedValueError):
        return Stall(cond.INVALID_SPEC, f"spec.destination.config: {message}")
    if isinstance(exc, ValueError):
        return Stall(cond.INVALID_SPEC, f"invalid input: {message}")
    return Retry(INTERNAL_ERROR, f"internal error ({type(exc).__name__}); retrying")
