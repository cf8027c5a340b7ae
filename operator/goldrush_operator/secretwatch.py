"""Rotation without holding Secrets: a metadata-only watch, and a GET only of referenced Secrets that changed.

Started by the handlers' start-up (`handlers.configure`), one task per watched namespace (one for the whole
cluster when the operator watches all namespaces). The Kubernetes adapter (`kube.Kube.secret_metadata`)
delivers `(namespace, name, resourceVersion)` of every Secret and never a value; here every observation of
a Secret that no pipeline references is dropped at once, so the operator's memory and CPU do not depend
on unrelated Secrets. When a referenced Secret's resourceVersion differs from the one of the cached data,
it is read once (`GET`) and its users are woken (`Store.secret_event` -> `Scheduler.wake`; credentials objects
through `on_change`).

What it costs the apiserver: one metadata-only LIST per namespace at start (pages of 500) and after a watch
expires, one long-lived metadata-only WATCH per namespace, and one GET per change of a referenced Secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from goldrush_operator.kube import KubeError, NotFound, SecretMeta
from goldrush_operator.state import ObjectKey, Store

log = logging.getLogger("goldrush_operator.secretwatch")


class SecretSource(Protocol):
    """The adapter's side (`kube.Kube`)."""

    def secret_metadata(
        self, namespace: str | None, stop: threading.Event, wanted: Callable[[str, str], bool] | None = None,
    ) -> AsyncIterator[SecretMeta]: ...
    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]: ...


class SecretWatch:
    """Feeds changes of referenced Secrets to the store and wakes their users."""

    def __init__(
        self, kube: SecretSource, store: Store, wake: Callable[[ObjectKey], None],
        on_change: Callable[[ObjectKey], None] = lambda _key: None,
    ) -> None:
        self._kube = kube
        self._store = store
        self._wake = wake
        self._on_change = on_change  # any referenced Secret whose data changed (credentials objects' checks)
        self._stop = threading.Event()

    async def run(self, namespaces: tuple[str, ...]) -> None:
        """Watch `namespaces` (all when empty) until cancelled."""
        tasks = [asyncio.create_task(self._watch(ns)) for ns in (namespaces or (None,))]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _watch(self, namespace: str | None) -> None:
        # Unreferenced Secrets are dropped in the adapter's thread (`Store.referenced` is a dict lookup).
        async for meta in self._kube.secret_metadata(namespace, self._stop, self._store.referenced):
            await self.observe(meta)

    async def observe(self, meta: SecretMeta) -> None:
        """One metadata observation: refresh and wake only when a referenced Secret changed."""
        key = (meta.namespace, meta.name)
        if not self._store.referenced(*key):
            return
        cached = self._store.cached_secret(*key)
        if meta.type != "DELETED" and cached is not None and cached.version == meta.resource_version:
            return  # the cached data is this version
        data: dict[str, str] | None = None
        version = meta.resource_version
        if meta.type != "DELETED":
            try:
                data, version = await self._kube.get_secret(*key)
            except NotFound:
                data = None
            except KubeError as exc:
                log.warning("could not read Secret %s/%s: %s", *key, exc)
                return
        users = self._store.secret_event(meta.namespace, meta.name, data, version)
        if users is None:
            return  # the same data again
        self._on_change(key)
        for user in users:
            self._wake(user)
        if users:
            log.info("Secret %s/%s changed; woke %d pipeline(s)", meta.namespace, meta.name, len(users))
