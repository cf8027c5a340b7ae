"""What a remote runtime phase means for the object's conditions and polling (pure; no I/O).

The controller calls `judge(...)` after reading `/status/` and applies the result to `Ready`, `Reconciling` and
`Stalled`; design.md section 2 defines the semantics:
- `Ready=True` when RUNNING with every replica ready and not asked to pause, when PAUSED as asked (reason
  `Paused`), and when a bounded pipeline has finished (STOPPED, reason `Completed`);
- FAILED is `Stalled` (a human must look; the hint is the worker's last log line);
- anything on its way somewhere (DEPLOYING, STOPPING, PENDING, a pause or resume not yet visible, replicas
  not yet ready) is `Reconciling` and polled fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from goldrush_operator import conditions as cond

COMPLETED = "Completed"


@dataclass(frozen=True)
class Judgement:
    """Conditions implied by one runtime observation."""

    ready: bool
    reason: str
    message: str
    reconciling: bool = False
    stalled: bool = False

    @property
    def fast_poll(self) -> bool:
        """Poll again within seconds: the phase is expected to change soon."""
        return self.reconciling


def judge(
    phase: str, ready: int, replicas: int, *, want_paused: bool, bounded: bool, pipeline_id: str, hint: str = ""
) -> Judgement:
    """Map the API's runtime `phase` (+ replicas) and the desired pause state to conditions."""
    if phase == "FAILED":
        message = f"pipeline {pipeline_id} failed" + (f": {hint}" if hint else "")
        return Judgement(False, cond.REMOTE_FAILED, message, stalled=True)
    if phase == "STOPPED":
        if bounded:
            return Judgement(True, COMPLETED, "bounded pipeline finished")
        return Judgement(False, cond.STOPPED, "pipeline stopped")
    if want_paused:
        if phase == "PAUSED":
            return Judgement(True, cond.PAUSED, "pipeline is paused as requested by spec.paused")
        return Judgement(False, cond.STOPPING, "pausing pipeline", reconciling=True)
    if phase == "RUNNING":
        if ready >= replicas:
            return Judgement(True, cond.RUNNING, f"pipeline is running ({ready}/{replicas} ready)")
        return Judgement(False, cond.DEPLOYING, f"waiting for replicas ({ready}/{replicas} ready)", reconciling=True)
    if phase == "PAUSED":
        return Judgement(False, cond.DEPLOYING, "resuming pipeline", reconciling=True)
    if phase == "STOPPING":
        return Judgement(False, cond.STOPPING, "pipeline is stopping", reconciling=True)
    if phase == "DEPLOYING":
        return Judgement(False, cond.DEPLOYING, "pipeline is deploying", reconciling=True)
    return Judgement(False, cond.PENDING, f"pipeline is {phase.lower() or 'pending'}", reconciling=True)
