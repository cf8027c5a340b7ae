"""Short-lived listings of every remote pipeline one service key sees, shared by concurrent creates and lookups.

Called by `external.External`: the name rule before a create, an interrupted create's lookup, and the lookup
of management policies without Create all read `Listings.get`. A listing is at most `LOOKUP_TTL_SECONDS` old
(or begun after the caller asked, `fresh`), renewed in the background past half its age, and dropped once no
caller can use it. Pipelines this process creates join the listing of their key at once (`created`), and a
pipeline deleted out of band leaves every listing (`forget`). The name check after a create reads a listing
begun after its POST (`begun_after`) when one is kept, and fetches one only when the key's writes are idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from goldrush_operator.goldrush_api import GoldRushClient, Pipeline

log = logging.getLogger("goldrush_operator.controller")

LOOKUP_TTL_SECONDS = 10.0


@dataclass
class Directory:
    """A short-lived listing of all remote pipelines visible to one key (shared by concurrent creates)."""

    fetched_at: float = -1e9  # when the last listing began
    items: list[Pipeline] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refresh: asyncio.Task[None] | None = None  # a listing fetched ahead of time (see `Listings.get`)
    expiry: asyncio.TimerHandle | None = None  # drops `items` once no caller can use them any more
    # Pipelines this process created since (event-loop time -> pipeline): a listing that began before their
    # POST may lack them, and the next create of the same name must still see them.
    created: list[tuple[float, Pipeline]] = field(default_factory=list)


class Listings:
    """The listings of every key this process uses (one `Directory` per key id)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._directories: dict[str, Directory] = {}
        self.kept = LOOKUP_TTL_SECONDS + 1.0  # seconds (event-loop time) a fetched listing is kept

    def created(self, key_id: str, remote: Pipeline) -> None:
        """A pipeline this process just created joins its key's listing (one begun before the POST lacks it)."""
        directory = self._directories.get(key_id)
        if directory is not None:
            directory.created.append((self._clock(), remote))
            directory.items.append(remote)

    def forget(self, pipeline_id: str) -> None:
        """A pipeline found deleted out of band leaves every listing (a create must not meet it by name)."""
        for directory in self._directories.values():
            directory.items = [i for i in directory.items if i.id != pipeline_id]
            directory.created = [(at, i) for at, i in directory.created if i.id != pipeline_id]

    def begun_after(self, key_id: str, since: float) -> list[Pipeline] | None:
        """The key's kept listing if it began after `since` (event-loop time), else None; never fetches."""
        directory = self._directories.get(key_id)
        if directory is None or directory.fetched_at <= since:
            return None
        if self._clock() - directory.fetched_at > LOOKUP_TTL_SECONDS:
            return None  # its items are dropped, or about to be (`_expire`)
        return list(directory.items)

    async def get(
        self, client: GoldRushClient, key_id: str, *, fresh: bool, since: float | None = None
    ) -> list[Pipeline]:
        """All remote pipelines of the key: begun after this call (`fresh`), after `since` (event-loop time),
        or at most `LOOKUP_TTL_SECONDS` old. Past half its age a listing is renewed in the background, so that
        a burst of creates keeps using one (every create would otherwise wait, at once, on the pages of the
        next)."""
        if since is not None and (kept := self.begun_after(key_id, since)) is not None:
            return kept
        directory = self._directories.setdefault(key_id, Directory())
        asked = self._clock()
        if not fresh and since is None and asked - directory.fetched_at <= LOOKUP_TTL_SECONDS:
            if asked - directory.fetched_at > LOOKUP_TTL_SECONDS / 2 and directory.refresh is None:
                directory.refresh = asyncio.create_task(self._renew(client, directory))
            return list(directory.items)
        async with directory.lock:
            # A listing begun after what the caller needs is fresh for it: concurrent lookups share one.
            if since is not None:
                stale = directory.fetched_at <= since
            elif fresh:
                stale = directory.fetched_at < asked
            else:
                stale = self._clock() - directory.fetched_at > LOOKUP_TTL_SECONDS
            if stale:
                await self._fetch(client, directory)
            return list(directory.items)

    async def _fetch(self, client: GoldRushClient, directory: Directory) -> None:
        # Creates wait on this listing: it gets the rate-limit priority of a write. `fetched_at` is when the
        # listing began: it holds every pipeline created before then.
        began = self._clock()
        items = [item async for item in client.list_pipelines(urgent=True)]
        directory.created = [(at, item) for at, item in directory.created if at >= began]
        listed = {item.id for item in items}
        directory.items = items + [item for _, item in directory.created if item.id not in listed]
        directory.fetched_at = began
        # Past its age limit a listing is never read again (the next caller fetches a new one): keeping it
        # would hold a model of every remote pipeline of the key for as long as the process runs.
        if directory.expiry is not None:
            directory.expiry.cancel()
        directory.expiry = asyncio.get_running_loop().call_later(self.kept, self._expire, directory)

    def _expire(self, directory: Directory) -> None:
        if self._clock() - directory.fetched_at > LOOKUP_TTL_SECONDS:
            directory.items, directory.created, directory.expiry = [], [], None  # a new listing shows them all
        else:  # still young (renewed meanwhile): look again later
            directory.expiry = asyncio.get_running_loop().call_later(self.kept, self._expire, directory)

    async def _renew(self, client: GoldRushClient, directory: Directory) -> None:
        try:
            async with directory.lock:
                if self._clock() - directory.fetched_at > LOOKUP_TTL_SECONDS / 2:
                    await self._fetch(client, directory)
        except Exception as exc:  # the next create past the age limit fetches it itself
            log.info("could not renew the pipeline listing ahead of time: %s", type(exc).__name__)
        finally:
            directory.refresh = None
