"""Retry policy of the GoldRush client: which failures may be retried, back-off with full jitter, Retry-After.

Pure helpers used by :mod:`goldrush_operator.goldrush_api.client`:

* :class:`RetryPolicy` bounds retries by count and by total time and computes full-jitter exponential
  back-off (``uniform(0, min(max_delay, base_delay * 2**retry))``);
* :func:`parse_retry_after` reads ``Retry-After`` as delay-seconds or as an HTTP-date;
* :data:`IDEMPOTENT_METHODS`: GET, PUT and DELETE are retried on any transient failure; POST and PATCH
  only when the request provably was not sent, or after 429.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["IDEMPOTENT_METHODS", "RetryPolicy", "parse_retry_after"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass
class RetryPolicy:
    """Bounds and back-off of retries for one client call.

    ``max_retries``: retries after the first attempt. ``max_elapsed``: no retry is started (and no
    Retry-After wait begun) that would end later than this many seconds after the call started.
    ``rng`` may be seeded for deterministic jitter.
    """

    max_retries: int = 5
    max_elapsed: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retry: int) -> float:
        """Full-jitter delay before retry number ``retry`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * (2.0 ** min(retry, 62)))
        return self.rng.uniform(0.0, max(0.0, cap))

    def allows(self, retries_done: int, elapsed: float, delay: float) -> bool:
        """True when one more retry after ``delay`` seconds stays within both bounds."""
        return retries_done < self.max_retries and elapsed + delay <= self.max_elapsed


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value; ``now`` is the epoch time for HTTP-dates.

    Accepts delay-seconds (also with a fraction) and HTTP-dates; a date in the past gives 0. Returns None
    for a missing or unparseable value.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - now)
