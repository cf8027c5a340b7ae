"""Deterministic crash points for reliability tests (test-only; off unless `GOLDRUSH_CRASH_AT` is set).

`crash_point(step)` ends the process abruptly (`os._exit`, no cleanup, like SIGKILL) when the environment
variable `GOLDRUSH_CRASH_AT` names `step`. The controller calls it between every read and write of create,
update, pause, resume and delete; `STEPS` lists them all (README "Crash points").
"""

from __future__ import annotations

import os
import sys
from typing import Final

STEPS: Final[tuple[str, ...]] = (
    "create.before-intent",      # secrets resolved, nothing written yet
    "create.after-intent",       # create-pending annotation written, POST not sent
    "create.after-post",         # POST answered, id not recorded
    "create.after-record-status",  # id and secret hashes in status, annotations not yet written
    "create.after-record",       # id recorded (annotation + status), status not written
    "update.before-patch",       # difference computed, PATCH not sent
    "update.after-patch",        # PATCH answered, status (secret hashes) not written
    "pause.before-put",          # PUT paused not sent
    "pause.after-put",           # PUT paused answered, status not written
    "resume.before-put",         # PUT running not sent
    "resume.after-put",          # PUT running answered, status not written
    "status.before-write",       # remote observed, status not written
    "delete.before-delete",      # finalizer running, DELETE not sent
    "delete.after-delete",       # DELETE answered, finalizer not removed
)

EXIT_CODE: Final = 86


def crash_point(step: str) -> None:
    """Exit the process at once when `GOLDRUSH_CRASH_AT` equals `step` (test-only)."""
    if os.environ.get("GOLDRUSH_CRASH_AT") == step:
        sys.stderr.write(f"GOLDRUSH_CRASH_AT={step}: exiting abruptly (test crash point)\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
