"""Progress for people: one self-rewriting line on stderr while a CLI command works, and trend arrows.

Used by the console commands (`introspect.inspect_command` for `describe`). The line is drawn only when
stderr is a terminal, so scripts and pipes see no control characters; stdout is never touched. `trend`
compares two samples of a number (the arrows fall back to ASCII when the output encoding lacks them).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

ARROWS = {"up": "↑", "down": "↓", "same": "→"}
ASCII_ARROWS = {"up": "^", "down": "v", "same": "="}
CLEAR_LINE = "\r\x1b[2K"


class Progress:
    """A status line on `stream` (default stderr), drawn only when it is a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self._shown = False

    def update(self, text: str) -> None:
        """Replace the line with `text`."""
        if not self.enabled:
            return
        self.stream.write(CLEAR_LINE + text)
        self.stream.flush()
        self._shown = True

    def step(self, done: int, total: int, what: str) -> None:
        """A counter: `what: done/total`."""
        self.update(f"{what}: {done}/{total}")

    async def countdown(self, seconds: float, what: str, tick: float = 0.5) -> None:
        """Sleep `seconds`, showing `what (Ns)` with the seconds left."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.update(f"{what} ({left:.0f}s)")
            await asyncio.sleep(min(tick, left))

    def done(self) -> None:
        """Erase the line (nothing was drawn: nothing to erase)."""
        if self._shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self._shown = False


def arrows_for(stream: TextIO) -> dict[str, str]:
    """Unicode arrows when `stream`'s encoding can show them, else ASCII ones."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "".join(ARROWS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_ARROWS
    return ARROWS


def trend(before: float | None, after: float | None, arrows: dict[str, str] = ARROWS) -> str:
    """`↑ +5`, `↓ -2.5`, `→` (unchanged) or `-` (a sample is missing)."""
    if before is None or after is None:
        return "-"
    change = after - before
    if change == 0:
        return arrows["same"]
    text = f"{change:+,.1f}" if isinstance(change, float) and not change.is_integer() else f"{int(change):+,}"
    return f"{arrows['up' if change > 0 else 'down']} {text}"
