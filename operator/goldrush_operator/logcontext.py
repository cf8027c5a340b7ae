"""Which GoldRushPipeline the running task is working on, for log records.

The controller enters `about((namespace, name))` around each reconcile pass and deletion; the log filter in
`cli.py` reads `current_object` so that every record logged meanwhile (the API client's retries included)
carries the object's namespace, name and pipeline id. A context variable, so concurrent objects never mix.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

current_object: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "goldrush_current_object", default=None
)


@contextmanager
def about(key: tuple[str, str]) -> Iterator[None]:
    """Mark records logged inside the block as being about the object `key` = (namespace, name)."""
    token = current_object.set(key)
    try:
        yield
    finally:
        current_object.reset(token)
