"""Optional `--state-file` persistence of the pipeline store.

`goldrush_sim.app` wires `Persister.schedule` as the store's change callback, loads the file
at start-up and calls `save_now()` at shutdown. Saves are debounced (one write per
`state_debounce_seconds` burst of changes), done off the event loop, and atomic (temporary
file in the same directory, fsync, rename). The file holds secrets in clear text (it must be
able to restore them), so it is created with mode 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from goldrush_sim.state import Store

log = logging.getLogger("goldrush_sim.persist")


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to `path` so that readers see either the old or the new file, never a mix."""
    text = json.dumps(data, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Persister:
    """Debounced, atomic snapshots of a `Store` to a JSON file."""

    def __init__(self, store: Store, path: Path, debounce: float) -> None:
        self.store = store
        self.path = path
        self.debounce = debounce
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self) -> int:
        """Load the file if it exists; returns the number of pipelines restored."""
        if not self.path.exists():
            return 0
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self.store.load(data)
        return len(self.store.pipelines)

    def schedule(self) -> None:
        """Store change callback: write soon (debounced)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save_now()
            return
        if self._handle is None:
            self._handle = loop.call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._handle = None
        snapshot = self.store.dump()
        task = asyncio.get_running_loop().create_task(self._write(snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, snapshot: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(write_atomic, self.path, snapshot)
        except OSError:
            log.exception("cannot write state file %s", self.path)

    async def close(self) -> None:
        """Flush at shutdown: wait for running writes, then write the final snapshot."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.save_now()

    def save_now(self) -> None:
        write_atomic(self.path, self.store.dump())
