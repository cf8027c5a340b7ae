"""Fixtures for the simulator suites: one fast `goldrush-sim` subprocess per session, reset per test.

`sim_process` (session) runs the simulator with short phase timings; `sim` (function) is the same
process after `POST /_sim/reset`, so every test starts without pipelines, faults or journal.
Keys: `dev-key` (service key, group `group_default`), `other-key` (service key, group
`group_other`) and `regular-api-key` (a regular API key, answered 403).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.sim import SimProcess

FAST_ARGS = (
    "--service-key",
    "dev-key=group_default",
    "--service-key",
    "other-key=group_other",
    "--api-key",
    "regular-api-key",
    "--deploy-seconds",
    "0.3",
    "--stop-seconds",
    "0.2",
    "--bounded-run-seconds",
    "0.6",
)


@pytest.fixture(scope="session")
def sim_process() -> Iterator[SimProcess]:
    with SimProcess.start(*FAST_ARGS) as process:
        yield process


@pytest.fixture
def sim(sim_process: SimProcess) -> SimProcess:
    sim_process.reset()
    return sim_process
