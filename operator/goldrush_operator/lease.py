"""Pure logic of Lease-based leader election and sharding: when to acquire, renew, release, and fence.

No I/O here: `election.Election` reads and writes the `coordination.k8s.io/v1` Leases through `kube.Kube`
and feeds what it saw to `LeaseState` (one per Lease), which decides, from a monotonic clock only:

- a Lease held by another replica may be taken once it has not changed for its `leaseDurationSeconds` as
  measured on *our* clock since we first saw its current version (never from its `renewTime`, so clock skew
  between nodes does not matter);
- we hold a Lease from the send time of our last successful write of it until that time plus the renew
  deadline (`fenced_at`). The renew deadline is shorter than the lease duration, so a holder that cannot renew
  stops writing before any other replica can consider the Lease expired (fencing);
- the object -> shard mapping (`shard_of`: shard i owns the i-th of K equal ranges of the 64-bit FNV-1a hash
  of the uid, the hash and ranges of the apiserver's server-side sharded list and watch, so that
  `shard_selector` can ask the apiserver for exactly the objects of the shards held) and the fair share of
  shards per replica (`fair_share`).

Errors of the Lease calls are the caller's business: `LeaseState` only learns of successes and observations.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

LEASE_NAME = "goldrush-operator"


class Fenced(Exception):
    """A write was refused: this replica does not hold the Lease (of the object's shard) right now."""


@dataclass(frozen=True)
class LeaseTiming:
    """Lease duration > renew deadline > retry period, in seconds (client-go's defaults are 15 / 10 / 2)."""

    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "lease timings must satisfy 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.duration}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of one Lease as read or to be written (`resource_version` None: the Lease does not exist)."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    def spec(self) -> dict[str, object]:
        """The Lease's `spec` (JSON) for a create or an update."""
        spec: dict[str, object] = {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.duration_seconds or 1,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, object] | None, resource_version: str) -> LeaseRecord:
        s = spec or {}
        return cls(
            holder=str(s.get("holderIdentity") or ""),
            duration_seconds=int(str(s.get("leaseDurationSeconds") or 0)),
            acquire_time=str(s["acquireTime"]) if s.get("acquireTime") else None,
            renew_time=str(s["renewTime"]) if s.get("renewTime") else None,
            transitions=int(str(s.get("leaseTransitions") or 0)),
            resource_version=resource_version,
        )


def micro_time(now: dt.datetime | None = None) -> str:
    """A `MicroTime` (RFC 3339 with microseconds, UTC) for `acquireTime` / `renewTime`."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseState:
    """What one replica knows about one Lease, and what it should do next.

    The caller loop: `observe(record, now)` after each read (None: absent), `next_write(now)` for the record
    to write (None: nothing to do), `written(record, sent_at)` after a successful write, `lost(now)` when a
    write was refused (409: another replica changed the Lease). `holds(now)` is the fence every write obeys.
    """

    def __init__(self, name: str, identity: str, timing: LeaseTiming) -> None:
        self.name = name
        self.identity = identity
        self.timing = timing
        self.record: LeaseRecord | None = None  # last observed or written
        self.observed_at = 0.0  # our clock when the current `record` version was first seen
        self.exists = False
        self.renewed_at: float | None = None  # send time of our last successful write that made us holder

    # --------------------------------------------------------------------------------------- questions

    def holds(self, now: float) -> bool:
        """Whether we may write now: we are the holder and the renew deadline has not passed."""
        return self.renewed_at is not None and now < self.renewed_at + self.timing.renew_deadline

    def fenced_at(self) -> float | None:
        """When our hold ends unless renewed (None: not held)."""
        return None if self.renewed_at is None else self.renewed_at + self.timing.renew_deadline

    def free(self, now: float) -> bool:
        """Whether the Lease may be taken now: absent, released, ours, or unchanged for its duration."""
        rec = self.record
        if rec is None or not rec.holder or rec.holder == self.identity:
            return True
        return now >= self.observed_at + max(rec.duration_seconds, 1)

    def held_by_other(self, now: float) -> bool:
        """Whether a live holder other than us has it (for counting replicas)."""
        return self.record is not None and bool(self.record.holder) and self.record.holder != self.identity \
            and not self.free(now)

    # --------------------------------------------------------------------------------------- inputs

    def observe(self, record: LeaseRecord | None, now: float) -> None:
        """A read of the Lease (None: it does not exist)."""
        self.exists = record is not None
        if record is None:
            self.record = None
            self.observed_at = now
        else:
            old = self.record
            if old is None or (old.resource_version, old.holder, old.renew_time) != (
                record.resource_version, record.holder, record.renew_time
            ):
                self.observed_at = now
            self.record = record
        if record is None or record.holder != self.identity:
            self.renewed_at = None  # someone else's (or nobody's): we do not hold it, whatever we thought

    def next_write(self, now: float, wall: str | None = None) -> LeaseRecord | None:
        """The record to write to acquire or renew the Lease (None when it is another's and not free)."""
        if not self.free(now):
            return None
        wall = wall or micro_time()
        rec = self.record or LeaseRecord()
        ours = rec.holder == self.identity
        return replace(
            rec,
            holder=self.identity,
            duration_seconds=max(1, math.ceil(self.timing.duration)),
            acquire_time=rec.acquire_time if ours and rec.acquire_time else wall,
            renew_time=wall,
            transitions=rec.transitions if ours or not rec.holder else rec.transitions + 1,
        )

    def release_record(self, wall: str | None = None) -> LeaseRecord | None:
        """The record that gives the Lease up (None when we do not hold it as far as we know)."""
        rec = self.record
        if rec is None or rec.holder != self.identity:
            return None
        return replace(rec, holder="", duration_seconds=1, renew_time=wall or micro_time())

    def written(self, record: LeaseRecord, sent_at: float) -> None:
        """Our write of `record` succeeded; `sent_at` is our clock when the request was sent."""
        self.record = record
        self.exists = True
        self.observed_at = sent_at
        self.renewed_at = sent_at if record.holder == self.identity else None

    def lost(self) -> None:
        """Our write was refused (the Lease changed under us): we hold nothing until the next read."""
        self.renewed_at = None

    def expire(self, now: float) -> bool:
        """Drop a hold whose renew deadline has passed; True when this call ended a hold."""
        if self.renewed_at is not None and not self.holds(now):
            self.renewed_at = None
            return True
        return False


# ------------------------------------------------------------------------------------------- sharding


def shard_lease_names(shards: int, name: str = LEASE_NAME) -> list[str]:
    """The Lease of each shard: `name` alone for one shard (plain leader election), else `name-shard-<i>`."""
    return [name] if shards <= 1 else [f"{name}-shard-{i}" for i in range(shards)]


def member_lease_names(shards: int, name: str = LEASE_NAME) -> list[str]:
    """Membership slots (one per replica that counts for the fair share); none for one shard."""
    return [] if shards <= 1 else [f"{name}-member-{i}" for i in range(shards)]


FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
HASH_SPACE = 1 << 64


def uid_hash(uid: str) -> int:
    """The 64-bit FNV-1a hash of the uid's UTF-8 bytes: the hash kube-apiserver's `shardRange()` uses."""
    h = FNV64_OFFSET
    for byte in uid.encode():
        h = ((h ^ byte) * FNV64_PRIME) & (HASH_SPACE - 1)
    return h


def shard_bounds(shard: int, shards: int) -> tuple[int, int]:
    """[start, end) of shard `shard`'s hash range: the K ranges split [0, 2^64) as evenly as integers can."""
    return -(-shard * HASH_SPACE // shards), -(-(shard + 1) * HASH_SPACE // shards)


def shard_of(uid: str, shards: int) -> int:
    """The shard of an object: the range its uid's hash falls in (the same on every replica, across restarts,
    and as the apiserver computes it for a `shard_selector`)."""
    if shards <= 1:
        return 0
    return uid_hash(uid) * shards >> 64


def _hex(bound: int) -> str:
    # The apiserver wants 16 hex digits; the end of the whole space is written 0x10000000000000000.
    return f"0x{bound:016x}"


def shard_selector(held: frozenset[int] | set[int], shards: int) -> str:
    """The `shardSelector` of a list or watch that returns the objects of the shards `held` (of `shards`):
    one `shardRange()` per run of adjacent shards, joined by `||`. Holding none, the first hash value alone
    (a range that practically never matches: a standby then receives no object, not all of them)."""
    runs: list[tuple[int, int]] = []
    for shard in sorted(i for i in held if 0 <= i < shards):
        start, end = shard_bounds(shard, shards)
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    if not runs:
        runs = [(0, 1)]
    return " || ".join(f"shardRange(object.metadata.uid, '{_hex(a)}', '{_hex(b)}')" for a, b in runs)


def fair_share(shards: int, replicas: int) -> int:
    """How many shards one replica may hold when `replicas` replicas are seen: ceil(K / replicas)."""
    return math.ceil(shards / max(1, replicas))
