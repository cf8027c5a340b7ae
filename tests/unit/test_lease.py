"""Unit tests of leader election and sharding: the pure timing of `lease.LeaseState`, and `election.Election`
driving two or three replicas against one in-memory Lease store with resourceVersion concurrency, on a fake
monotonic clock (nothing here sleeps for real except a few zero-length awaits)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable
from dataclasses import replace

import pytest
from kubernetes import client

from goldrush_operator.config import LeaseSettings
from goldrush_operator.election import Election
from goldrush_operator.kube import Kube, KubeError
from goldrush_operator.lease import (
    Fenced,
    LeaseRecord,
    LeaseState,
    LeaseTiming,
    fair_share,
    member_lease_names,
    shard_bounds,
    shard_lease_names,
    shard_of,
    shard_selector,
    uid_hash,
)
from goldrush_operator.logcontext import about, current_object
from goldrush_operator.scheduler import Scheduler

TIMING = LeaseTiming(duration=15, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """Leases by name with resourceVersions; `down` makes every call fail like an unreachable apiserver."""

    def __init__(self) -> None:
        self.leases: dict[str, LeaseRecord] = {}
        self.version = 0
        self.down = False
        self.writes: list[tuple[str, str, str]] = []  # (verb, name, holder)

    def _check(self) -> None:
        if self.down:
            raise KubeError("Kubernetes API unreachable: ConnectionRefusedError")

    async def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._check()
        return self.leases.get(name)

    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._check()
        if name in self.leases:
            raise KubeError("Kubernetes API 409 AlreadyExists", 409)
        return self._store("create", name, record)

    async def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._check()
        current = self.leases.get(name)
        if current is None:
            raise KubeError("Kubernetes API 404 NotFound", 404)
        if current.resource_version != record.resource_version:
            raise KubeError("Kubernetes API 409 Conflict", 409)
        return self._store("update", name, record)

    def _store(self, verb: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        stored = replace(record, resource_version=str(self.version))
        self.leases[name] = stored
        self.writes.append((verb, name, record.holder))
        return stored


def election(leases: FakeLeases, clock: Clock, identity: str, shards: int = 1,
             uids: dict[tuple[str, str], str] | None = None) -> Election:
    return Election(leases, "ops", identity, TIMING, lambda key: (uids or {}).get(key), shards=shards, clock=clock)


# ------------------------------------------------------------------------------------------ pure timing


def test_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseTiming(duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError, match="lease timings"):
        LeaseTiming(duration=15, renew_deadline=1, retry_period=2)


def test_a_foreign_lease_is_free_only_after_its_duration_on_our_clock() -> None:
    st = LeaseState("l", "b", TIMING)
    other = LeaseRecord(holder="a", duration_seconds=15, renew_time="2000-01-01T00:00:00.000000Z",
                        resource_version="7")
    st.observe(other, 100.0)
    assert not st.free(114.9)
    assert st.next_write(114.9) is None
    st.observe(other, 110.0)  # the same version seen again: the clock keeps running from its first sighting
    assert st.free(115.0)
    renewed = replace(other, renew_time="2000-01-01T00:00:02.000000Z", resource_version="8")
    st.observe(renewed, 115.0)  # a renewal restarts the count, whatever the timestamps say
    assert not st.free(129.0) and st.free(130.0)
    record = st.next_write(130.0, wall="t")
    assert record is not None and record.holder == "b" and record.transitions == 1 and record.acquire_time == "t"


def test_hold_ends_at_renew_deadline_from_the_send_time() -> None:
    st = LeaseState("l", "a", TIMING)
    st.observe(None, 0.0)
    record = st.next_write(0.0)
    assert record is not None
    st.written(replace(record, resource_version="1"), sent_at=5.0)
    assert st.holds(14.99)
    assert not st.holds(15.0)  # 5 + renew deadline 10; others may take it only at 5 + 15 on their clocks
    assert st.expire(15.0) and not st.expire(16.0)


def test_release_record_clears_the_holder() -> None:
    st = LeaseState("l", "a", TIMING)
    assert st.release_record() is None
    st.written(LeaseRecord(holder="a", duration_seconds=15, resource_version="3"), sent_at=0.0)
    released = st.release_record()
    assert released is not None and released.holder == "" and released.duration_seconds == 1
    assert released.spec()["holderIdentity"] is None


def test_shard_mapping_is_stable_and_spread() -> None:
    rnd = random.Random(7)
    uids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(3000)]  # as the apiserver makes
    assert all(shard_of(u, 1) == 0 for u in uids[:10])
    first = [shard_of(u, 3) for u in uids]
    assert first == [shard_of(u, 3) for u in uids]
    counts = [first.count(i) for i in range(3)]
    assert min(counts) > 900, counts
    assert shard_lease_names(1) == ["goldrush-operator"]
    assert shard_lease_names(2) == ["goldrush-operator-shard-0", "goldrush-operator-shard-1"]
    assert member_lease_names(1) == [] and len(member_lease_names(3)) == 3
    assert [fair_share(4, n) for n in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]


def test_settings_from_env() -> None:
    assert not LeaseSettings.from_env({}).enabled
    assert LeaseSettings.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).enabled
    assert not LeaseSettings.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                       "GOLDRUSH_LEADER_ELECTION": "false"}).enabled
    s = LeaseSettings.from_env({"GOLDRUSH_LEADER_ELECTION": "true", "GOLDRUSH_LEASE_DURATION_SECONDS": "6",
                                "GOLDRUSH_LEASE_RENEW_DEADLINE_SECONDS": "4",
                                "GOLDRUSH_LEASE_RETRY_PERIOD_SECONDS": "1", "POD_NAMESPACE": "ops"})
    assert s.enabled and s.timing == LeaseTiming(6, 4, 1) and s.namespace == "ops" and s.shards == 1
    assert LeaseSettings.from_env({"GOLDRUSH_SHARDS": "4"}).enabled
    with pytest.raises(ValueError, match="GOLDRUSH_LEADER_ELECTION"):
        LeaseSettings.from_env({"GOLDRUSH_LEADER_ELECTION": "maybe"})
    with pytest.raises(ValueError, match="GOLDRUSH_SHARDS"):
        LeaseSettings.from_env({"GOLDRUSH_SHARDS": "3", "GOLDRUSH_LEADER_ELECTION": "false"})
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseSettings.from_env({"GOLDRUSH_LEASE_RENEW_DEADLINE_SECONDS": "20"})


# ------------------------------------------------------------------------------------------ election


async def test_one_leader_standby_takes_over_only_after_the_lease_duration() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = election(leases, clock, "a"), election(leases, clock, "b")
    await a.step()
    await b.step()
    assert a.leader and not b.leader
    assert leases.writes == [("create", "goldrush-operator", "a")]
    with pytest.raises(Fenced):
        b.check_write()
    a.check_write()
    # `a` dies (SIGKILL: no release). `b` keeps reading; it takes over once the Lease went unchanged for 15 s.
    for _ in range(7):
        clock.now += 2
        await b.step()
        assert not b.leader
    clock.now += 2  # 16 s after b first saw a's last renewal
    await b.step()
    assert b.leader
    assert leases.leases["goldrush-operator"].holder == "b"
    assert leases.leases["goldrush-operator"].transitions == 1


async def test_holder_that_cannot_renew_stops_writing_before_others_may_take_over() -> None:
    leases, clock = FakeLeases(), Clock()
    reports: list[tuple[bool, int]] = []
    a = Election(leases, "ops", "a", TIMING, lambda key: None, clock=clock,
                 report=lambda leader, owned: reports.append((leader, owned)))
    b = election(leases, clock, "b")
    await a.step()
    renewed_at = clock.now
    await b.step()  # b saw a's Lease at `renewed_at`
    leases.down = True  # the apiserver is unreachable for both
    fenced_at = None
    while clock.now < renewed_at + 30:
        clock.now += 0.5
        a._expire(clock.now)
        if fenced_at is None and not a.leader:
            fenced_at = clock.now
        with pytest.raises(Fenced) if not a.leader else _nothing():
            a.check_write()
    assert fenced_at is not None and fenced_at <= renewed_at + TIMING.renew_deadline
    assert reports == [(False, 0), (True, 1), (False, 0)]  # standby, leader, fenced
    # After recovery exactly one writer: b takes the Lease (a's hold is gone), a stays a standby.
    leases.down = False
    await a.step()
    await b.step()
    assert [e.leader for e in (a, b)].count(True) == 1


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_graceful_release_lets_the_standby_take_over_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = election(leases, clock, "a"), election(leases, clock, "b")
    await a.step()
    await b.step()
    await a.release()
    assert not a.leader
    with pytest.raises(Fenced):
        a.check_write()
    assert leases.leases["goldrush-operator"].holder == ""
    clock.now += 2
    await b.step()  # no waiting for the lease duration
    assert b.leader


async def test_a_conflict_on_renew_ends_the_hold_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    await a.step()
    leases.leases["goldrush-operator"] = replace(leases.leases["goldrush-operator"], holder="x",
                                                 resource_version="99")
    clock.now += 2
    await a.step()
    assert not a.leader


async def test_takeover_runs_before_objects_are_admitted() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    order: list[str] = []

    async def on_acquired(admitted: object) -> None:
        order.append("takeover")
        assert not a.admits(("ns", "x"))

    a.configure_takeover(on_acquired, lambda: order.append("admitted"))
    await a.step()
    assert order == ["takeover", "admitted"] and a.admits(("ns", "x"))


async def bounded(step: Awaitable[None]) -> None:
    """A step that must end on its own (a step that waits for a stuck takeover fails, not hangs)."""
    await asyncio.wait_for(step, 5)


async def test_a_slow_takeover_does_not_stop_the_renewals() -> None:
    """A takeover waiting on a busy apiserver for longer than the renew deadline must not lose the Lease it is
    taking over (the loop used to wait for it, and then lapsed, acquired, took over, lapsed... under load)."""
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    a.takeover_slice = 0.01
    finish = asyncio.Event()

    async def on_acquired(admitted: object) -> None:
        await finish.wait()

    a.configure_takeover(on_acquired, lambda: None)
    await bounded(a.step())
    assert not a.admits(("ns", "x"))
    for _ in range(10):  # 20 s: twice the renew deadline
        clock.now += TIMING.retry_period
        await bounded(a.step())
        assert a.shard_states[0].holds(clock.now) and not a.admits(("ns", "x"))
    assert len([w for w in leases.writes if w[0] == "update"]) == 10
    finish.set()
    clock.now += TIMING.retry_period
    await bounded(a.step())
    assert a.admits(("ns", "x"))


async def test_a_lease_lost_during_its_takeover_is_not_admitted_by_that_takeover() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    a.takeover_slice = 0.01
    finish = [asyncio.Event(), asyncio.Event()]
    takeovers = 0

    async def on_acquired(admitted: object) -> None:
        nonlocal takeovers
        takeovers += 1
        await finish[takeovers - 1].wait()

    a.configure_takeover(on_acquired, lambda: None)
    await bounded(a.step())
    leases.down = True
    clock.now += TIMING.renew_deadline + 1
    await bounded(a.step())  # the renewal fails: the hold has lapsed
    assert not a.shard_states[0].holds(clock.now)
    leases.down = False
    clock.now += TIMING.duration
    await bounded(a.step())  # acquired again: a new term, while the first takeover still waits
    finish[0].set()
    await asyncio.sleep(0)
    clock.now += TIMING.retry_period
    await bounded(a.step())  # the first takeover ended without admitting; the new term's own one is running
    assert takeovers == 2 and not a.admits(("ns", "x"))
    finish[1].set()
    clock.now += TIMING.retry_period
    await bounded(a.step())
    assert a.admits(("ns", "x"))


async def test_a_takeover_that_fails_between_two_steps_is_reported_by_the_next() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    a.takeover_slice = 0.01
    fail = asyncio.Event()
    calls = 0

    async def on_acquired(admitted: object) -> None:
        nonlocal calls
        calls += 1
        await fail.wait()
        raise KubeError("Kubernetes API unreachable")

    a.configure_takeover(on_acquired, lambda: None)
    await bounded(a.step())
    fail.set()
    await asyncio.sleep(0.01)  # the takeover ends with its error while no step runs
    clock.now += TIMING.retry_period
    with pytest.raises(KubeError):
        await bounded(a.step())
    assert calls == 1 and not a.admits(("ns", "x"))  # its own error, not a silent second attempt


async def test_takeover_failure_is_retried_and_nothing_is_admitted_meanwhile() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    calls = 0

    async def on_acquired(admitted: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KubeError("Kubernetes API unreachable")

    a.configure_takeover(on_acquired, lambda: None)
    with pytest.raises(KubeError):
        await a.step()
    assert not a.admits(("ns", "x"))
    clock.now += 2
    await a.step()
    assert calls == 2 and a.admits(("ns", "x"))


async def test_scheduler_parks_what_the_election_does_not_admit() -> None:
    runs: list[str] = []
    admitted: set[str] = set()

    async def run_pass(key: tuple[str, str]) -> float | None:
        runs.append(key[1])
        return None

    scheduler = Scheduler(run_pass, admit=lambda key: key[1] in admitted)
    task = asyncio.create_task(scheduler.run())
    scheduler.wake(("ns", "a"))
    scheduler.wake(("ns", "b"))
    await asyncio.sleep(0.05)
    assert runs == [] and scheduler.parked == 2
    admitted.add("a")
    scheduler.readmit()
    await asyncio.sleep(0.05)
    assert runs == ["a"] and scheduler.parked == 1
    scheduler.forget(("ns", "b"))
    assert scheduler.parked == 0
    task.cancel()


async def test_the_kube_adapter_guards_each_write_for_the_object_the_pass_is_about() -> None:
    """The guard runs in the adapter at send time, once the write has its slot: it must see the pass's object
    there (a guard that saw no object let a replica holding any shard write objects of a shard it had lost)."""
    kube = Kube(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")), workers=2)
    asked: list[object] = []
    sent: list[str] = []
    kube.write_guard = lambda: asked.append(current_object.get())

    async def send(method: str, path: str, body: bytes, content_type: str) -> None:
        sent.append(path)

    kube._send_json = send  # type: ignore[method-assign]
    with about(("ns", "p1")):
        await kube.patch_status("ns", "p1", {"phase": "RUNNING"})
    assert asked == [("ns", "p1")] and len(sent) == 1


# ------------------------------------------------------------------------------------------ sharding


def _keys_by_shard(shards: int, per_shard: int = 2) -> dict[tuple[str, str], str]:
    uids: dict[tuple[str, str], str] = {}
    i = 0
    while any(sum(1 for u in uids.values() if shard_of(u, shards) == s) < per_shard for s in range(shards)):
        uid = f"uid-{i}"
        if sum(1 for u in uids.values() if shard_of(u, shards) == shard_of(uid, shards)) < per_shard:
            uids[("ns", f"o{i}")] = uid
        i += 1
    return uids


async def _rounds(replicas: list[Election], clock: Clock, n: int) -> None:
    for _ in range(n):
        for r in replicas:
            await r.step()
        clock.now += TIMING.retry_period


def _assert_every_object_written_by_exactly_one(replicas: list[Election], uids: dict[tuple[str, str], str]) -> None:
    for key in uids:
        writers = []
        for r in replicas:
            with about(key):
                try:
                    r.check_write()
                    writers.append(r.identity)
                except Fenced:
                    pass
        assert len(writers) == 1, (key, writers)


async def test_shards_spread_over_replicas_and_move_on_loss_and_add() -> None:
    leases, clock = FakeLeases(), Clock()
    uids = _keys_by_shard(4)
    a = election(leases, clock, "a", shards=4, uids=uids)
    await _rounds([a], clock, 3)
    assert a.owned() == [0, 1, 2, 3]
    _assert_every_object_written_by_exactly_one([a], uids)

    b = election(leases, clock, "b", shards=4, uids=uids)  # a replica is added: a releases 2 shards to b
    await _rounds([a, b], clock, 4)
    assert len(a.owned()) == 2 and len(b.owned()) == 2
    _assert_every_object_written_by_exactly_one([a, b], uids)

    c = election(leases, clock, "c", shards=4, uids=uids)
    await _rounds([a, b, c], clock, 4)
    assert sorted(len(r.owned()) for r in (a, b, c)) == [1, 1, 2]
    _assert_every_object_written_by_exactly_one([a, b, c], uids)

    # c is lost (no release): within one lease duration (+ a few retry periods) its shards move to a and b.
    lost = set(c.owned())
    await _rounds([a, b], clock, int(TIMING.duration / TIMING.retry_period) + 3)
    assert sorted(len(r.owned()) for r in (a, b)) == [2, 2]
    assert lost <= set(a.owned()) | set(b.owned())
    _assert_every_object_written_by_exactly_one([a, b], uids)


async def test_never_two_holders_of_a_shard_at_any_step() -> None:
    leases, clock = FakeLeases(), Clock()
    uids = _keys_by_shard(3, per_shard=1)
    replicas = [election(leases, clock, n, shards=3, uids=uids) for n in "abc"]
    for _ in range(30):
        for r in replicas:
            await r.step()
            held = [i for x in replicas for i in x.owned()]
            assert len(held) == len(set(held)), held
        clock.now += TIMING.retry_period
    assert sorted(len(r.owned()) for r in replicas) == [1, 1, 1]


async def test_release_after_a_renewal_that_landed_late_still_releases() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    await a.step()
    # A renewal the cancelled loop had in flight lands after a's last view: a's resourceVersion is stale.
    current = leases.leases["goldrush-operator"]
    leases.leases["goldrush-operator"] = replace(current, resource_version="50")
    await a.release()
    assert leases.leases["goldrush-operator"].holder == ""
    # A replica that holds nothing releases nothing.
    b = election(leases, clock, "b")
    writes = len(leases.writes)
    await b.release()
    assert len(leases.writes) == writes


async def test_a_renewal_that_timed_out_but_landed_does_not_end_the_hold() -> None:
    leases, clock = FakeLeases(), Clock()
    a = election(leases, clock, "a")
    await a.step()
    # Our renewal was applied but its answer never came: the Lease moved on, still naming us.
    current = leases.leases["goldrush-operator"]
    leases.leases["goldrush-operator"] = replace(current, resource_version="77")
    clock.now += 2
    await a.step()
    assert a.leader and leases.leases["goldrush-operator"].holder == "a"
    assert leases.leases["goldrush-operator"].resource_version != "77"  # renewed at the new version


class SlowRenewals(FakeLeases):
    """Renewals that take longer than the rest of the renew deadline: while one is on the way, `during` runs
    with the clock already past the deadline (the holder's view: it may not write, yet nothing expired)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.slow = False
        self.during: list[Awaitable[None]] = []

    async def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        if self.slow:
            self.slow = False
            self.clock.now += TIMING.renew_deadline - TIMING.retry_period + 1  # sent in time, lands late
            for step in self.during:
                await step
        return await super().update_lease(namespace, name, record)


async def test_objects_parked_while_a_late_renewal_was_on_the_way_are_readmitted_when_it_lands() -> None:
    """A renewal sent in time that lands after the renew deadline keeps the same term (no takeover follows),
    so the objects the scheduler parked while it was on the way must be readmitted when it lands (they
    stayed parked for good: finding 20 of the benchmark notes)."""
    clock = Clock()
    leases = SlowRenewals(clock)
    a = election(leases, clock, "a")
    runs: list[str] = []

    async def run_pass(key: tuple[str, str]) -> float | None:
        runs.append(key[1])
        return None

    scheduler = Scheduler(run_pass, clock=clock, admit=a.admits)

    async def no_takeover(_admitted: object) -> None:
        return None

    a.configure_takeover(no_takeover, scheduler.readmit)
    task = asyncio.create_task(scheduler.run())
    try:
        await a.step()
        assert a.admits(("ns", "x"))

        async def object_comes_due() -> None:
            scheduler.wake(("ns", "x"))
            await asyncio.sleep(0.05)
            assert scheduler.parked == 1 and runs == []  # refused: the hold ran past its renew deadline

        leases.slow, leases.during = True, [object_comes_due()]
        clock.now += TIMING.retry_period
        await a.step()
        assert a.leader and leases.leases["goldrush-operator"].holder == "a"
        await asyncio.sleep(0.05)
        assert runs == ["x"] and scheduler.parked == 0
    finally:
        task.cancel()


def test_the_shard_hash_is_the_apiservers_fnv1a_64_and_its_ranges() -> None:
    # FNV-1a 64 test vectors, and the range of each shard as `shardRange()` splits [0, 2^64).
    assert uid_hash("") == 0xCBF29CE484222325
    assert uid_hash("a") == 0xAF63DC4C8601EC8C
    assert uid_hash("foobar") == 0x85944171F73967E8
    assert shard_bounds(0, 2) == (0, 1 << 63) and shard_bounds(1, 2) == (1 << 63, 1 << 64)
    for shards in (2, 3, 5, 7):
        assert shard_bounds(0, shards)[0] == 0 and shard_bounds(shards - 1, shards)[1] == 1 << 64
        for i in range(shards - 1):
            assert shard_bounds(i, shards)[1] == shard_bounds(i + 1, shards)[0]  # no gap, no overlap
        rnd = random.Random(shards)
        for _ in range(2000):
            uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            start, end = shard_bounds(shard_of(uid, shards), shards)
            assert start <= uid_hash(uid) < end


def test_the_shard_selector_names_the_ranges_of_the_shards_held() -> None:
    whole = "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"
    assert shard_selector({0, 1, 2}, 3) == whole  # adjacent ranges are one
    assert shard_selector({1}, 2) == "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"
    assert shard_selector({2, 0}, 3) == (
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x5555555555555556') || "
        "shardRange(object.metadata.uid, '0xaaaaaaaaaaaaaaab', '0x10000000000000000')"
    )
    # None held: a range of one hash value, not "everything" (a standby must not receive every object).
    assert shard_selector(set(), 3) == "shardRange(object.metadata.uid, '0x0000000000000000', '0x0000000000000001')"


async def test_replicas_started_together_take_one_shard_each_and_never_more() -> None:
    """A replica seen for the first time takes its share in its next step: those already running acquire
    nothing meanwhile (they would release it a moment later; with server-side sharded watches its objects
    would be listed and reconciled in vain)."""
    leases, clock = FakeLeases(), Clock()
    replicas = [election(leases, clock, n, shards=3) for n in "abc"]
    most = 0
    for _ in range(6):
        for r in replicas:  # started within one retry period of each other: a first, then b, then c
            await r.step()
            most = max(most, len(r.owned()))
            clock.now += TIMING.retry_period / 4
        clock.now += TIMING.retry_period / 4
    assert most == 1
    assert sorted(len(r.owned()) for r in replicas) == [1, 1, 1]


async def test_a_lost_replicas_shards_are_taken_in_the_first_step_after_they_expired() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = election(leases, clock, "a", shards=2), election(leases, clock, "b", shards=2)
    await _rounds([a, b], clock, 3)
    assert len(a.owned()) == 1 and len(b.owned()) == 1
    killed = clock.now  # b is gone (no release): a takes its shard once b's Lease expired, not a step later
    while len(a.owned()) < 2 and clock.now < killed + 60:
        clock.now += TIMING.retry_period
        await a.step()
    assert a.owned() == [0, 1]
    assert clock.now - killed <= TIMING.duration + 2 * TIMING.retry_period
