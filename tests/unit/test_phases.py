"""The runtime phase -> conditions mapping (`goldrush_operator.phases.judge`)."""

from __future__ import annotations

import pytest

from goldrush_operator.phases import judge


@pytest.mark.parametrize(
    ("phase", "ready", "replicas", "paused", "bounded", "expected"),
    [
        ("RUNNING", 1, 1, False, False, (True, "Running", False, False)),
        ("RUNNING", 0, 1, False, False, (False, "Deploying", True, False)),
        ("DEPLOYING", 0, 1, False, False, (False, "Deploying", True, False)),
        ("STOPPING", 0, 1, True, False, (False, "Stopping", True, False)),
        ("RUNNING", 1, 1, True, False, (False, "Stopping", True, False)),  # pause asked, not visible yet
        ("PAUSED", 0, 0, True, False, (True, "Paused", False, False)),
        ("PAUSED", 0, 0, False, False, (False, "Deploying", True, False)),  # resume asked, not visible yet
        ("FAILED", 0, 1, False, False, (False, "RemoteFailed", False, True)),
        ("FAILED", 0, 1, True, False, (False, "RemoteFailed", False, True)),
        ("STOPPED", 0, 0, False, True, (True, "Completed", False, False)),
        ("STOPPED", 0, 0, False, False, (False, "Stopped", False, False)),
        ("SOMETHING_NEW", 0, 0, False, False, (False, "Pending", True, False)),
    ],
)
def test_judge(phase: str, ready: int, replicas: int, paused: bool, bounded: bool,
               expected: tuple[bool, str, bool, bool]) -> None:
    verdict = judge(phase, ready, replicas, want_paused=paused, bounded=bounded, pipeline_id="pipe_x")
    assert (verdict.ready, verdict.reason, verdict.reconciling, verdict.stalled) == expected
    assert verdict.fast_poll == verdict.reconciling
    assert verdict.message


def test_failed_message_carries_the_hint() -> None:
    verdict = judge("FAILED", 0, 1, want_paused=False, bounded=False, pipeline_id="pipe_x", hint="disk full")
    assert verdict.message == "pipeline pipe_x failed: disk full"


def test_running_message_counts_replicas() -> None:
    assert judge("RUNNING", 2, 3, want_paused=False, bounded=False, pipeline_id="p").message == (
        "waiting for replicas (2/3 ready)"
    )
