"""Error tree of the GoldRush API client.

Raised by :class:`goldrush_operator.goldrush_api.client.GoldRushClient`; the operator's one error policy
(``goldrush_operator.controller.outcome.classify``) maps ``transient`` to back-off-and-retry and the rest to
``Stalled`` conditions::

    GoldRushError                      transient  status
    ├── MaskedSecretError (ValueError)  no         None   body carries the read mask "******"; nothing sent
    ├── DryRunRefusedError              no         None   a write in dry-run mode (GOLDRUSH_DRY_RUN); nothing sent
    ├── TransportError                  yes        None   no usable HTTP answer
    │   ├── ConnectError                yes        None   request provably not sent (connect / pool wait)
    │   └── RequestTimeoutError         yes        None   timed out after the request may have been sent
    ├── OutcomeUnknownError             yes        None|5xx  a write (POST/PATCH) may or may not have
    │                                                     happened: look the result up, do not repeat it
    ├── UnexpectedResponseError         yes        2xx    answer not in the documented shape
    └── ApiError                        by status  4xx/5xx  the API answered with an error
        ├── InvalidRequestError         no         400/422
        ├── UnauthorizedError           no         401
        ├── ForbiddenError              no         403
        ├── NotFoundError               no         404
        ├── ConflictError               yes        409    the pipeline's state refuses the change now
        ├── RateLimitedError            yes        429    ``retry_after`` seconds (or None)
        └── ServerError                 yes        5xx

Other 4xx codes raise plain :class:`ApiError` (transient only for 408 and 425). Every message is built
from scrubbed text: it never contains the service key or a secret value of the request body.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ConflictError",
    "ConnectError",
    "DryRunRefusedError",
    "ForbiddenError",
    "GoldRushError",
    "InvalidRequestError",
    "MaskedSecretError",
    "NotFoundError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "api_error_for_status",
]


class GoldRushError(Exception):
    """Base of every error raised by the GoldRush client.

    Attributes: ``transient`` (retrying later may succeed), ``status`` (HTTP status or None),
    ``method`` and ``route`` (the route name, e.g. ``"create"``) of the failed call, when known.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        route: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.route = route
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class MaskedSecretError(GoldRushError, ValueError):
    """The body to send contains the API's read mask ``******``; raised before any I/O.

    ``paths`` lists where the mask was found (field paths, never values).
    """

    transient = False

    def __init__(self, paths: list[str], *, method: str | None = None, route: str | None = None) -> None:
        self.paths = tuple(paths)
        super().__init__(
            "refusing to send the masked placeholder '******' (read it from the source Secret instead) at: "
            + ", ".join(self.paths),
            method=method,
            route=route,
        )


class DryRunRefusedError(GoldRushError):
    """A write (any method but GET) asked of a client in dry-run mode; raised before any I/O."""

    transient = False

    def __init__(self, method: str, route: str) -> None:
        super().__init__(f"dry run: {method} {route} not sent (GOLDRUSH_DRY_RUN=true)", method=method, route=route)


class TransportError(GoldRushError):
    """No usable HTTP answer: connection failure, reset or timeout."""

    transient = True


class ConnectError(TransportError):
    """The request was provably not sent (connection could not be opened, or no pool slot in time)."""


class RequestTimeoutError(TransportError):
    """The attempt timed out (read, write or total timeout) after the request may have been sent."""


class OutcomeUnknownError(GoldRushError):
    """A POST or PATCH may have been applied: the connection failed after sending, or a 5xx came back.

    The caller must look the result up (for create: list the pipelines and match) instead of repeating the
    write. ``status`` is the 5xx code, or None after a transport failure.
    """

    transient = True


class UnexpectedResponseError(GoldRushError):
    """A success answer whose body is not the documented envelope/shape (e.g. HTML from a proxy)."""

    transient = True


class ApiError(GoldRushError):
    """The API answered with an error status. ``error_code`` is the envelope's ``error_code``, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        route: str | None = None,
        error_code: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, route=route, transient=transient)
        self.error_code = error_code


class InvalidRequestError(ApiError):
    """400 or 422: the request was rejected as invalid; permanent until the request changes."""


class UnauthorizedError(ApiError):
    """401: the service key is missing, unknown or revoked."""


class ForbiddenError(ApiError):
    """403: the credential may not use this API (e.g. a regular API key instead of a ServiceKey)."""


class NotFoundError(ApiError):
    """404: no such pipeline in the key's group (for delete: it is gone)."""


class ConflictError(ApiError):
    """409 from the API: the pipeline's current state refuses the change (the API does not document when)."""

    transient = True


class RateLimitedError(ApiError):
    """429: too many requests. ``retry_after`` is the server's wait in seconds, or None when not given."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        method: str | None = None,
        route: str | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, route=route, error_code=error_code)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx from the API (for an idempotent call; a 5xx answer to POST/PATCH is OutcomeUnknownError)."""

    transient = True


def api_error_for_status(
    status: int,
    message: str,
    *,
    method: str | None = None,
    route: str | None = None,
    error_code: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the :class:`ApiError` subclass that matches an HTTP error ``status``."""
    if status == 429:
        return RateLimitedError(
            message, retry_after=retry_after, method=method, route=route, error_code=error_code
        )
    classes: dict[int, type[ApiError]] = {
        400: InvalidRequestError,
        401: UnauthorizedError,
        403: ForbiddenError,
        404: NotFoundError,
        409: ConflictError,
        422: InvalidRequestError,
    }
    cls = classes.get(status, ServerError if status >= 500 else ApiError)
    transient = (status in (408, 425)) if cls is ApiError else None
    return cls(message, status=status, method=method, route=route, error_code=error_code, transient=transient)
