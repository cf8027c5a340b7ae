"""Leader election and sharding on `coordination.k8s.io/v1` Leases: the loop that reads and writes them.

Started by `handlers.configure` (one task) when `GOLDRUSH_LEADER_ELECTION` is on; `cli.run` builds it. With
one shard it keeps the Lease `goldrush-operator` in the operator's namespace (plain leader election); with K
shards (`GOLDRUSH_SHARDS`) the Leases `goldrush-operator-shard-<i>`, plus K membership slots
`goldrush-operator-member-<j>` (each replica holds one) so that every replica knows how many replicas run
and takes at most ceil(K / replicas) shards, releasing extras when a replica joins.

Every `retry_period` it renews what it holds and reads what it does not, acquiring what is free within its
fair share (timing decisions: `lease.LeaseState`). Writes are gated by `check_write` (called by `kube.Kube`
before every pipeline write and by the GoldRush client before every API write) and the scheduler's
`admits`: only objects of shards this replica holds *and has taken over* are reconciled. A takeover first runs
`on_acquired` (the handlers reset the controller's memory of those objects and wait until the watch has
caught up with a fresh LIST), so a new holder never acts on what it remembered from an earlier term; it runs
in a task of its own, so that the loop keeps renewing meanwhile. With `on_shards` (server-side sharded
watches, `handlers.ShardedWatch`), each step first tells it the shards held whenever they changed, so that
the watch delivers the objects of exactly those shards before a takeover lists them.
`release()` (graceful stop) stops writing, then gives every Lease up so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from goldrush_operator.kube import KubeError, NotFound
from goldrush_operator.lease import (
    LEASE_NAME,
    Fenced,
    LeaseRecord,
    LeaseState,
    LeaseTiming,
    fair_share,
    member_lease_names,
    shard_lease_names,
    shard_of,
)
from goldrush_operator.logcontext import current_object
from goldrush_operator.state import ObjectKey

log = logging.getLogger("goldrush_operator.election")


class LeasePort(Protocol):
    """The Lease calls (`kube.Kube` implements them); errors raise `kube.KubeError` (409: conflict)."""

    async def get_lease(self, namespace: str, name: str) -> LeaseRecord | None: ...
    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord: ...
    async def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord: ...


def holder_identity() -> str:
    """The pod name (`POD_NAME`, from the downward API), else `<hostname>-<pid>`."""
    return os.environ.get("POD_NAME", "").strip() or f"{socket.gethostname()}-{os.getpid()}"


class Election:
    """This replica's Leases: which shards it holds, and the write gate."""

    def __init__(
        self,
        leases: LeasePort,
        namespace: str,
        identity: str,
        timing: LeaseTiming,
        uid_of: Callable[[ObjectKey], str | None],
        *,
        shards: int = 1,
        name: str = LEASE_NAME,
        on_acquired: Callable[[Callable[[ObjectKey], bool]], Awaitable[None]] | None = None,
        on_admitted: Callable[[], None] = lambda: None,
        report: Callable[[bool, int], None] = lambda _leader, _owned: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases, self.namespace, self.identity, self.timing = leases, namespace, identity, timing
        self.shards = max(1, shards)
        self._uid_of = uid_of
        self._on_acquired = on_acquired
        self._on_admitted = on_admitted
        self._report = report
        self._clock = clock
        self.shard_states = [LeaseState(n, identity, timing) for n in shard_lease_names(self.shards, name)]
        self.member_states = [LeaseState(n, identity, timing) for n in member_lease_names(self.shards, name)]
        self.active: set[int] = set()  # shards held and taken over: their objects may be written
        self.stopping = False
        self._reported: tuple[bool, int] | None = None
        self._failing: set[str] = set()  # Leases whose last call failed (their warnings go to debug)
        self._terms = [0] * self.shards  # per shard: how often this replica acquired it (a takeover's term)
        self._takeover: asyncio.Task[None] | None = None
        self._writable: set[int] = set()  # shards whose objects `_publish` last saw admitted (see `_publish`)
        self.takeover_slice = timing.retry_period  # how long one step waits for a running takeover
        self._on_shards: Callable[[frozenset[int]], Awaitable[None]] | None = None
        self._followed: frozenset[int] | None = None  # the shards `on_shards` was last told of
        self._replicas_seen: set[str] = set()  # the replicas the last step saw (this one included)

    def configure_takeover(
        self, on_acquired: Callable[[Callable[[ObjectKey], bool]], Awaitable[None]], on_admitted: Callable[[], None]
    ) -> None:
        """`on_acquired(admitted)` runs before the objects of new Leases are admitted; `on_admitted` after."""
        self._on_acquired, self._on_admitted = on_acquired, on_admitted

    def configure_watch(self, on_shards: Callable[[frozenset[int]], Awaitable[None]]) -> None:
        """`on_shards(held)` runs in a step whenever the shards held changed (before their takeover)."""
        self._on_shards, self._followed = on_shards, None

    # ------------------------------------------------------------------------------------------ the gate

    def shard_of_key(self, key: ObjectKey) -> int | None:
        if self.shards == 1:
            return 0
        uid = self._uid_of(key)
        return None if not uid else shard_of(uid, self.shards)

    def _may(self, shard: int | None, now: float) -> bool:
        return (not self.stopping and shard is not None and shard in self.active
                and self.shard_states[shard].holds(now))

    def admits(self, key: ObjectKey) -> bool:
        """Whether this replica reconciles `key` now (the scheduler's admission).

        A refusal for a shard last published as writable (its hold ran past the renew deadline while the
        renewal is still on the way) takes it out of `_writable`, so that `_publish` readmits what the
        scheduler parks meanwhile once the shard is writable again, takeover or not."""
        shard, now = self.shard_of_key(key), self._clock()
        if self._may(shard, now):
            return True
        if shard is not None:
            self._writable.discard(shard)
        return False

    def check_write(self) -> None:
        """Raise `Fenced` unless this replica may write about the object the running task works on now."""
        key = current_object.get()
        now = self._clock()
        if key is None:
            if self.stopping or not any(self._may(i, now) for i in range(self.shards)):
                raise Fenced("not the Lease holder: write refused")
            return
        if not self._may(self.shard_of_key(key), now):
            raise Fenced(f"not the holder of the Lease of {key[0]}/{key[1]}: write refused")

    @property
    def leader(self) -> bool:
        now = self._clock()
        return any(self._may(i, now) for i in range(self.shards))

    def owned(self) -> list[int]:
        now = self._clock()
        return [i for i, st in enumerate(self.shard_states) if st.holds(now)]

    # ------------------------------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Keep the Leases until cancelled (`release` gives them up)."""
        log.info("leader election on: identity %s, Lease(s) %s in namespace %s, lease %gs, renew deadline "
                 "%gs, retry %gs", self.identity, ",".join(s.name for s in self.shard_states), self.namespace,
                 self.timing.duration, self.timing.renew_deadline, self.timing.retry_period)
        while not self.stopping:
            started = self._clock()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the election silently: the hold then lapses (fenced)
                log.exception("leader election step failed")
            await self._sleep_until(started + self.timing.retry_period)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until `when`, waking at a renew deadline on the way to fence on time."""
        while True:
            now = self._clock()
            self._expire(now)
            if now >= when:
                return
            ends = [f for s in self.shard_states if (f := s.fenced_at()) is not None and f > now]
            await asyncio.sleep(max(0.0, min([when, *ends]) - now))

    def _expire(self, now: float) -> None:
        for i, st in enumerate(self.shard_states):
            if st.expire(now):
                self.active.discard(i)
                log.error("could not renew Lease %s/%s within the renew deadline (%gs): stopped writing; "
                          "another replica may take over after %gs", self.namespace, st.name,
                          self.timing.renew_deadline, self.timing.duration)
        for st in self.member_states:
            st.expire(now)
        self._publish()

    async def step(self) -> None:
        """One round: membership, then each shard's Lease (renew, release an extra, or try to acquire)."""
        replicas = await self._membership()
        target = self._target(replicas)
        held = len(self.owned())
        # A replica just seen (or this one's first step) takes its own share in its next step: until then this
        # one acquires no more (one, if it holds none), so replicas started together do not first take what
        # they release a moment later (with server-side sharded watches each such shard's objects would be
        # listed and reconciled in vain).
        if not replicas <= self._replicas_seen:
            target = min(target, held or 1)
        self._replicas_seen = replicas
        for i, st in enumerate(self.shard_states):
            now = self._clock()
            self._expire(now)
            if st.holds(now):
                if held > target and not self.stopping:
                    await self._release_one(i)
                    held -= 1
                else:
                    await self._write(st)
                continue
            if not await self._read(st):
                continue
            if held < target and st.free(self._clock()) and await self._write(st):
                held += 1
                self._terms[i] += 1
                log.info("acquired Lease %s/%s as %s", self.namespace, st.name, self.identity)
        await self._follow_shards()
        # Held but not yet taken over (just acquired, or an earlier takeover failed): take over now.
        pending = [i for i in self.owned() if i not in self.active]
        if pending and not self.stopping:
            await self._take_over_for_a_while(pending)
        self._publish()

    async def _follow_shards(self) -> None:
        held = frozenset(self.owned())
        if self._on_shards is None or self.stopping or held == self._followed:
            return
        await self._on_shards(held)
        self._followed = held

    async def _take_over_for_a_while(self, pending: list[int]) -> None:
        """Run (or go on with) the takeover of `pending` for at most one retry period, so that the loop keeps
        renewing what it holds while a takeover waits on a busy apiserver (a takeover that blocked the loop
        past the renew deadline lost the Lease it was taking over, again and again). A takeover that ended
        with an error raises it here; the next step starts a new one."""
        task = self._takeover
        if task is not None and task.done():  # it ended between two steps: its outcome first
            self._takeover = None
            task.result()
            pending = [i for i in pending if i not in self.active]
            if not pending:
                return
            task = None
        if task is None:
            task = self._takeover = asyncio.create_task(self._take_over(pending), name="goldrush-takeover")
        done, _ = await asyncio.wait({task}, timeout=self.takeover_slice)
        if task in done:
            self._takeover = None
            task.result()

    def _target(self, replicas: set[str]) -> int:
        """How many shards to hold: the fair share ceil(K / replicas), or its floor while another replica
        holds less than the floor and no shard is free (so that 4 shards on 3 replicas end as 2, 1, 1)."""
        share = fair_share(self.shards, len(replicas))
        floor = self.shards // max(1, len(replicas))
        if share == floor:
            return share
        now = self._clock()
        counts = dict.fromkeys(replicas - {self.identity}, 0)
        for st in self.shard_states:
            if st.held_by_other(now) and st.record is not None and st.record.holder in counts:
                counts[st.record.holder] += 1
        free = any(st.free(now) and not st.holds(now) for st in self.shard_states)
        return floor if not free and any(c < floor for c in counts.values()) else share

    async def _membership(self) -> set[str]:
        """The identities of the replicas seen (this one included), from the membership slots."""
        if not self.member_states:
            return {self.identity}
        mine = [st for st in self.member_states if st.holds(self._clock())]
        for st in mine:
            await self._write(st)
        others: set[str] = set()
        for st in self.member_states:
            if st.holds(self._clock()):
                continue
            if not await self._read(st):
                continue
            if not mine and st.free(self._clock()) and await self._write(st):
                mine.append(st)
            elif st.held_by_other(self._clock()) and st.record is not None:
                others.add(st.record.holder)
        return {self.identity, *others}

    async def _take_over(self, gained: list[int]) -> None:
        shards = set(gained)

        def in_gained(key: ObjectKey) -> bool:
            return self.shard_of_key(key) in shards

        terms = {i: self._terms[i] for i in gained}
        if self._on_acquired is not None:
            await self._on_acquired(in_gained)
        now = self._clock()
        # Only shards held without a break since the takeover began (a Lease lost and acquired again meanwhile
        # is a new term: its objects get a takeover of their own).
        self.active |= {i for i in gained if self.shard_states[i].holds(now) and self._terms[i] == terms[i]}
        self._publish()  # readmits the objects of the shards taken over

    # ------------------------------------------------------------------------------------------ calls

    async def _read(self, st: LeaseState) -> bool:
        try:
            record = await self.leases.get_lease(self.namespace, st.name)
        except KubeError as exc:
            self._failed(st, "read", exc)
            return False
        self._failing.discard(st.name)
        st.observe(record, self._clock())
        return True

    def _failed(self, st: LeaseState, what: str, exc: KubeError) -> None:
        """Warn on the first failure of a Lease's calls in a row, then only at debug level."""
        level = logging.DEBUG if st.name in self._failing else logging.WARNING
        self._failing.add(st.name)
        log.log(level, "cannot %s Lease %s/%s: %s (retrying every %gs)", what, self.namespace, st.name, exc,
                self.timing.retry_period)

    async def _write(self, st: LeaseState, record: LeaseRecord | None = None, *, again: bool = True) -> bool:
        """Acquire or renew (or, with `record`, write that record); True when the write succeeded."""
        record = record or st.next_write(self._clock())
        if record is None:
            return False
        sent_at, fence = self._clock(), st.fenced_at()
        try:
            if st.exists and record.resource_version is not None:
                written = await self.leases.update_lease(self.namespace, st.name, record)
            else:
                written = await self.leases.create_lease(self.namespace, st.name, record)
        except NotFound:
            st.observe(None, self._clock())
            return False
        except KubeError as exc:
            if exc.status == 409:  # changed under us (or created by another)
                if again and st.holds(self._clock()) and record.holder == self.identity and await self._ours_still(st):
                    return await self._write(st, again=False)  # our own write landed after its timeout: go on
                was = st.holds(self._clock())
                st.lost()
                if was:
                    self._lost(st, "another replica changed it")
            else:
                self._failed(st, "write", exc)
            return False
        self._failing.discard(st.name)
        st.written(written, sent_at)
        if fence is not None and self._clock() >= fence and st.holds(self._clock()):
            log.warning("renewal of Lease %s/%s landed after the renew deadline: writing again", self.namespace,
                        st.name)
        self._publish()  # a renewal that landed after its deadline readmits what was parked meanwhile
        return True

    async def _ours_still(self, st: LeaseState) -> bool:
        """After a conflict on a Lease we hold: whether it still names us (a renewal of ours that timed out
        on our side landed). Then we adopt its version; the hold keeps the send time of the last renewal we
        saw succeed, so this never extends it."""
        try:
            current = await self.leases.get_lease(self.namespace, st.name)
        except KubeError:
            return False
        if current is None or current.holder != self.identity:
            return False
        st.record = current
        return True

    def _lost(self, st: LeaseState, why: str) -> None:
        if st in self.shard_states:
            self.active.discard(self.shard_states.index(st))
        log.error("lost Lease %s/%s (%s): stopped writing", self.namespace, st.name, why)
        self._publish()

    async def _release_one(self, shard: int) -> None:
        st = self.shard_states[shard]
        self.active.discard(shard)
        record = st.release_record()
        if record is not None and await self._write(st, record):
            log.info("released Lease %s/%s to spread the shards over more replicas", self.namespace, st.name)
        self._publish()

    async def release(self) -> None:
        """Graceful stop: stop writing, then give up every Lease held (a standby takes over at once).

        A renewal still in flight when the loop was cancelled may land first and make the release a 409:
        then the Lease is read again and released at its new version.
        """
        self.stopping = True
        self.active.clear()
        self._publish()
        if self._takeover is not None:
            self._takeover.cancel()
        for st in [*self.shard_states, *self.member_states]:
            for _attempt in range(2):
                record = st.release_record() if st.record is not None else None
                if record is None:
                    break
                if await self._write(st, record):
                    log.info("released Lease %s/%s", self.namespace, st.name)
                    break
                if not await self._read(st):
                    break

    def _publish(self) -> None:
        """Report leadership and shards owned when they changed, and run `on_admitted` (the scheduler's
        `readmit`) whenever a shard has become writable since the last call: after a takeover, and after a
        renewal that landed past the renew deadline in the same term (no takeover follows that one; what the
        scheduler parked while it was on the way would otherwise stay parked)."""
        now = self._clock()
        writable = {i for i in range(self.shards) if self._may(i, now)}
        gained, self._writable = writable - self._writable, writable
        if gained:
            self._on_admitted()
        state = (self.leader, len([i for i in self.owned() if i in self.active]))
        if state != self._reported:
            self._reported = state
            self._report(*state)

