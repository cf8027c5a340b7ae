"""Condition rules: transition times, abnormal-true types, ordering and change detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from goldrush_operator import conditions as c

pytestmark = pytest.mark.unit

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_new_condition_gets_all_fields() -> None:
    out = c.set_condition([], c.READY, c.FALSE, c.DEPLOYING, "deploying", 3, T0)
    assert out == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Deploying",
            "message": "deploying",
            "lastTransitionTime": "2026-05-01T10:00:00Z",
            "observedGeneration": 3,
        }
    ]


def test_input_is_not_mutated() -> None:
    before = c.set_condition([], c.READY, c.FALSE, c.PENDING, "", 1, T0)
    snapshot = [dict(x) for x in before]
    c.set_condition(before, c.READY, c.TRUE, c.RUNNING, "", 1, T1)
    assert before == snapshot


def test_transition_time_kept_when_status_unchanged() -> None:
    first = c.set_condition([], c.READY, c.FALSE, c.PENDING, "waiting", 1, T0)
    second = c.set_condition(first, c.READY, c.FALSE, c.DEPLOYING, "deploying", 2, T1)
    cond = c.get_condition(second, c.READY)
    assert cond is not None
    assert cond["lastTransitionTime"] == "2026-05-01T10:00:00Z"
    assert cond["reason"] == "Deploying"
    assert cond["message"] == "deploying"
    assert cond["observedGeneration"] == 2


def test_transition_time_changes_when_status_flips() -> None:
    first = c.set_condition([], c.READY, c.FALSE, c.DEPLOYING, "", 1, T0)
    second = c.set_condition(first, c.READY, True, c.RUNNING, "", 1, T1)
    cond = c.get_condition(second, c.READY)
    assert cond is not None
    assert cond["status"] == "True"
    assert cond["lastTransitionTime"] == "2026-05-01T10:05:00Z"


@pytest.mark.parametrize("ctype", [c.RECONCILING, c.STALLED])
@pytest.mark.parametrize("status", [c.FALSE, c.UNKNOWN, False])
def test_abnormal_true_types_are_removed_unless_true(ctype: str, status: c.ConditionStatus | bool) -> None:
    present = c.set_condition([], ctype, c.TRUE, c.RETRYING, "retrying", 1, T0)
    assert c.is_true(present, ctype)
    assert c.set_condition(present, ctype, status, c.IN_SYNC, "", 1, T1) == []
    assert c.set_condition([], ctype, status, c.IN_SYNC, "", 1, T1) == []


def test_other_types_keep_false() -> None:
    out = c.set_condition([], c.SYNCED, c.FALSE, c.UPDATE_PENDING, "", 1, T0)
    assert c.condition_status(out, c.SYNCED) == "False"


def test_canonical_order() -> None:
    out: list[c.Condition] = []
    for ctype in [c.DESTINATION_HEALTHY, "Zeta", c.STALLED, c.SYNCED, "Alpha", c.RECONCILING, c.READY]:
        out = c.set_condition(out, ctype, c.TRUE, "Because", "", 1, T0)
    assert [x["type"] for x in out] == [
        "Ready",
        "Synced",
        "Reconciling",
        "Stalled",
        "DestinationHealthy",
        "Alpha",
        "Zeta",
    ]


def test_missing_condition_is_unknown() -> None:
    assert c.condition_status([], c.READY) == "Unknown"
    assert c.condition_status(None, c.READY) == "Unknown"
    assert not c.is_true(None, c.READY)
    assert c.get_condition(None, c.READY) is None


def test_observed_generation_optional() -> None:
    out = c.set_condition([], c.READY, c.TRUE, c.RUNNING, "", None, T0)
    assert "observedGeneration" not in out[0]


def test_rejects_bad_reason_and_status() -> None:
    with pytest.raises(ValueError, match="reason"):
        c.set_condition([], c.READY, c.TRUE, "not one word", "", 1, T0)
    with pytest.raises(ValueError, match="reason"):
        c.set_condition([], c.READY, c.TRUE, "", "", 1, T0)
    with pytest.raises(ValueError, match="status"):
        c.set_condition([], c.READY, "true", c.RUNNING, "", 1, T0)  # type: ignore[arg-type]


def test_long_message_truncated() -> None:
    out = c.set_condition([], c.READY, c.FALSE, c.API_ERROR, "x" * 40000, 1, T0)
    assert len(out[0]["message"]) == c.MAX_MESSAGE_LENGTH
    assert out[0]["message"].endswith("(truncated)")


def test_time_formatting() -> None:
    assert c.format_time(T0) == "2026-05-01T10:00:00Z"
    assert c.format_time(datetime(2026, 5, 1, 12, 0, 0, 999, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-05-01T10:00:00Z"
    )
    assert c.format_time(datetime(2026, 5, 1, 10, 0, 0)) == "2026-05-01T10:00:00Z"  # naive = UTC
    assert c.format_time("2026-05-01T10:00:00Z") == "2026-05-01T10:00:00Z"
    assert c.now_utc().tzinfo is not None


def test_remove_condition() -> None:
    out = c.set_condition([], c.READY, c.TRUE, c.RUNNING, "", 1, T0)
    out = c.set_condition(out, c.SYNCED, c.TRUE, c.IN_SYNC, "", 1, T0)
    assert [x["type"] for x in c.remove_condition(out, c.READY)] == ["Synced"]


def test_conditions_changed_ignores_order_only() -> None:
    a = c.set_condition([], c.READY, c.TRUE, c.RUNNING, "", 1, T0)
    a = c.set_condition(a, c.SYNCED, c.TRUE, c.IN_SYNC, "", 1, T0)
    assert not c.conditions_changed(a, list(reversed(a)))
    assert not c.conditions_changed(a, c.set_condition(a, c.READY, c.TRUE, c.RUNNING, "", 1, T1))
    assert c.conditions_changed(a, c.set_condition(a, c.READY, c.TRUE, c.RUNNING, "new message", 1, T1))
    assert c.conditions_changed(a, c.set_condition(a, c.READY, c.TRUE, c.RUNNING, "", 2, T1))
    assert c.conditions_changed(a, c.set_condition(a, c.STALLED, c.TRUE, c.REMOTE_FAILED, "", 1, T1))
    assert not c.conditions_changed(None, [])


def test_normalize_drops_false_abnormal_conditions() -> None:
    stored = [
        {"type": "Stalled", "status": "False", "reason": "X", "message": "", "lastTransitionTime": "t"},
        {"type": "Ready", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": "t"},
    ]
    assert [x["type"] for x in c.normalize_conditions(stored)] == ["Ready"]


def test_status_changed() -> None:
    conds = c.set_condition([], c.READY, c.TRUE, c.RUNNING, "", 1, T0)
    stored = {"phase": "RUNNING", "observedGeneration": 1, "conditions": conds, "pipelineId": "pipe_1"}
    assert not c.status_changed(stored, {"phase": "RUNNING", "conditions": list(reversed(conds))})
    assert c.status_changed(stored, {"phase": "DEPLOYING"})
    assert c.status_changed(stored, {"observedGeneration": 2})
    assert c.status_changed(stored, {"pipelineId": None})
    assert not c.status_changed(stored, {"lastError": None})
    assert c.status_changed(None, {"phase": "PENDING"})


def test_reason_constants_are_valid() -> None:
    reasons = [
        value
        for name, value in vars(c).items()
        if name.isupper()
        and isinstance(value, str)
        and name not in {"TRUE", "FALSE", "UNKNOWN"}
        and name[0] != "_"
    ]
    for required in [
        "Pending",
        "Deploying",
        "Stopping",
        "RemoteFailed",
        "SecretNotFound",
        "AuthFailed",
        "InvalidSpec",
        "ApiUnavailable",
        "ReconcilePaused",
        "Paused",
        "Running",
        "UpdatePending",
        "ApiError",
        "NameConflict",
        "CreateIncomplete",
        "Unhealthy",
        "Healthy",
        "InSync",
    ]:
        assert required in reasons
    for reason in reasons:
        c.set_condition([], c.READY, c.TRUE, reason, "", 1, T0)  # every constant is a valid reason
