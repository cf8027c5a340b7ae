"""The test harness's `free_port`: below the kernel's ephemeral range, bindable, never handed out twice.

A port from the ephemeral range could be taken by any outgoing connection before the server binds it (an
operator once exited at start with "address already in use" on its health port).
"""

from __future__ import annotations

import socket

import pytest

from support import ctlplane
from support.ctlplane import _ephemeral_low, free_port


def test_ports_lie_below_the_ephemeral_range_are_bindable_and_distinct() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == len(ports)
    if low > 11000:
        assert all(10000 <= p < low for p in ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", port))


def test_a_port_in_use_or_handed_out_before_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    if _ephemeral_low() <= 11000:
        pytest.skip("no room below the ephemeral range on this machine")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the draws below are the ports themselves
    given, busy_port, fresh = free_port(), free_port(), free_port()
    ctlplane._handed_out.discard(fresh)  # drawn for this test only: as if never handed out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", busy_port))
        busy.listen()
        draws = iter([given, busy_port, fresh])
        monkeypatch.setattr(ctlplane.random, "randrange", lambda _lo, _hi: next(draws))
        assert free_port() == fresh


@pytest.mark.parametrize("worker", [0, 1, 2])
def test_parallel_workers_draw_from_disjoint_ports(monkeypatch: pytest.MonkeyPatch, worker: int) -> None:
    """Each pytest-xdist worker of the e2e tier (`gw<i>` of n) gets only ports equal to i modulo n, so two
    workers never race for one port between the check and the server's bind."""
    if _ephemeral_low() <= 11000:
        pytest.skip("no room below the ephemeral range on this machine")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    ports = [free_port() for _ in range(20)]
    assert all(p % 3 == worker and 10000 <= p < _ephemeral_low() for p in ports), ports
