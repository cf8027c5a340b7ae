"""Progress for people (progress.py) and the metrics table of `describe` (introspect.metrics_table)."""

from __future__ import annotations

import io

import pytest

from goldrush_operator.goldrush_api import PipelineMetrics
from goldrush_operator.introspect import metrics_table
from goldrush_operator.progress import ASCII_ARROWS, CLEAR_LINE, Progress, arrows_for, trend


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("before", "after", "shown"), [
    (10, 15, "↑ +5"), (1500.0, 900.0, "↓ -600"), (100.0, 100.0, "→"), (2.5, 3.75, "↑ +1.2"),
    (30_000_000, 30_001_234, "↑ +1,234"), (None, 3, "-"), (3, None, "-"),
])
def test_trend_arrow_and_change(before: float | None, after: float | None, shown: str) -> None:
    assert trend(before, after) == shown


def test_ascii_arrows_when_the_output_cannot_show_unicode() -> None:
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert arrows_for(ascii_out) == ASCII_ARROWS
    assert trend(1, 2, arrows_for(ascii_out)) == "^ +1"
    assert arrows_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))["up"] == "↑"


def test_progress_draws_only_on_a_terminal_and_erases_its_line() -> None:
    pipe = io.StringIO()
    quiet = Progress(pipe)
    quiet.update("working")
    quiet.step(1, 3, "objects")
    quiet.done()
    assert pipe.getvalue() == ""
    tty = Tty()
    shown = Progress(tty)
    shown.step(2, 3, "objects")
    assert tty.getvalue() == CLEAR_LINE + "objects: 2/3"
    shown.done()
    assert tty.getvalue().endswith("objects: 2/3" + CLEAR_LINE)
    shown.done()  # nothing drawn since: nothing more written
    assert tty.getvalue().count(CLEAR_LINE) == 2


async def test_countdown_shows_the_seconds_left() -> None:
    tty = Tty()
    await Progress(tty).countdown(0.3, "waiting", tick=0.1)
    assert "waiting (0s)" in tty.getvalue()


def test_metrics_table_with_and_without_a_trend() -> None:
    before = PipelineMetrics(records_consumed=1000, last_block_height=44_745_000, pending_records=25,
                             processing_delay_ms=1500.0, records_per_second=100.0, normalization_errors=0)
    after = before.model_copy(update={"records_consumed": 1300, "pending_records": 20, "last_offset": 7})
    rows = metrics_table(after, before)
    assert rows[0].split() == ["FIELD", "VALUE", "TREND"]
    table = {r.split()[0]: r.split()[1:] for r in rows[1:]}
    assert table["records_consumed"] == ["1,300", "↑", "+300"]
    assert table["pending_records"] == ["20", "↓", "-5"]
    assert table["records_per_second"] == ["100.0", "→"]
    assert table["processing_delay_ms"] == ["1,500.0", "→"]
    assert table["last_offset"] == ["7", "-"]  # not in the first sample
    assert "uid" not in table
    # Columns line up: every value ends in the same column.
    assert len({r.index(r.split()[1]) + len(r.split()[1]) for r in rows[1:]}) == 1, rows
    single = metrics_table(after)
    assert single[0].split() == ["FIELD", "VALUE"]
    assert all(len(r.split()) == 2 for r in single)
