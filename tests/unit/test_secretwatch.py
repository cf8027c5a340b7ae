"""Unit tests of secretwatch.SecretWatch: unreferenced Secrets are dropped without a read; a referenced one is
read once per new resourceVersion and wakes its users; a deletion wakes them without a read."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator

from goldrush_operator.kube import Kube, NotFound, SecretMeta
from goldrush_operator.secretwatch import SecretWatch
from goldrush_operator.state import ObjectRecord, Store


class FakeKube:
    def __init__(self) -> None:
        self.reads: list[str] = []
        self.data = {"dest": ({"password": "v2"}, "7")}

    async def secret_metadata(
        self, namespace: str | None, stop: threading.Event, wanted: Callable[[str, str], bool] | None = None,
    ) -> AsyncIterator[SecretMeta]:
        if False:  # pragma: no cover - an empty stream
            yield SecretMeta("LIST", "", "", "")

    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        self.reads.append(name)
        if name not in self.data:
            raise NotFound("Kubernetes API 404", 404)
        return self.data[name]


async def test_only_referenced_changes_are_read_and_wake() -> None:
    kube, store, woken = FakeKube(), Store(), []
    record = ObjectRecord(key=("ns", "p1"), uid="u1")
    store.records[record.key] = record
    store.set_references(record, frozenset({"dest"}))
    store.cache_secret("ns", "dest", {"password": "v1"}, "5")
    watch = SecretWatch(kube, store, woken.append)
    await watch.observe(SecretMeta("MODIFIED", "ns", "helm-release-1", "9"))
    await watch.observe(SecretMeta("LIST", "ns", "dest", "5"))  # the cached version: nothing to do
    assert kube.reads == [] and woken == []
    await watch.observe(SecretMeta("MODIFIED", "ns", "dest", "7"))
    assert kube.reads == ["dest"] and woken == [("ns", "p1")]
    assert store.cached_secret("ns", "dest").data == {"password": "v2"}
    await watch.observe(SecretMeta("MODIFIED", "ns", "dest", "7"))
    assert kube.reads == ["dest"]
    await watch.observe(SecretMeta("DELETED", "ns", "dest", "8"))
    assert kube.reads == ["dest"] and woken == [("ns", "p1"), ("ns", "p1")]
    assert store.cached_secret("ns", "dest").data is None


async def test_a_credentials_objects_secret_is_followed_without_pipeline_users() -> None:
    """A key Secret referenced only by a credentials object (and one in another namespace than its pipeline)."""
    kube, store, woken, changed = FakeKube(), Store(), [], []
    kube.data["shared-key"] = ({"key": "k2"}, "3")
    store.set_owner_reference("ClusterGoldRushCredentials//shared", ("goldrush-system", "shared-key"))
    assert store.referenced("goldrush-system", "shared-key")
    watch = SecretWatch(kube, store, woken.append, changed.append)
    await watch.observe(SecretMeta("MODIFIED", "goldrush-system", "shared-key", "3"))
    assert kube.reads == ["shared-key"] and woken == [] and changed == [("goldrush-system", "shared-key")]
    await watch.observe(SecretMeta("MODIFIED", "goldrush-system", "shared-key", "4"))  # same data: no change
    assert changed == [("goldrush-system", "shared-key")]
    record = ObjectRecord(key=("team-a", "p1"), uid="u1")
    store.records[record.key] = record
    store.set_references(record, frozenset({"dest"}), frozenset({("goldrush-system", "shared-key")}))
    kube.data["shared-key"] = ({"key": "k3"}, "5")
    await watch.observe(SecretMeta("MODIFIED", "goldrush-system", "shared-key", "5"))
    assert woken == [("team-a", "p1")] and len(changed) == 2
    store.set_owner_reference("ClusterGoldRushCredentials//shared", None)
    store.set_references(record, frozenset({"dest"}))
    assert not store.referenced("goldrush-system", "shared-key")
    assert store.cached_secret("goldrush-system", "shared-key") is None


async def test_the_adapter_drops_unreferenced_secrets_in_its_thread() -> None:
    """An unrelated Secret's list item or watch event never reaches the event loop: `wanted` is asked in the
    adapter's reader thread, and only what it accepts is queued."""
    kube = Kube.__new__(Kube)
    stop = threading.Event()
    asked: list[tuple[str, bool]] = []
    watches = 0

    def listing(namespace: str | None) -> tuple[list[SecretMeta], str]:
        return [SecretMeta("LIST", "ns", "sh.helm.release.v1.app.v1", "1"), SecretMeta("LIST", "ns", "dest", "2")], "2"

    def watch(namespace: str | None, version: str) -> Iterator[SecretMeta | str]:
        nonlocal watches
        watches += 1
        if watches == 1:
            yield SecretMeta("MODIFIED", "ns", "sh.helm.release.v1.app.v1", "3")
            yield SecretMeta("MODIFIED", "ns", "dest", "4")
        stop.wait(5)

    def wanted(namespace: str, name: str) -> bool:
        asked.append((name, threading.current_thread() is threading.main_thread()))
        return name == "dest"

    kube._list_secret_metadata = listing  # type: ignore[method-assign]
    kube._watch_secret_metadata = watch  # type: ignore[method-assign]
    got: list[tuple[str, str]] = []
    async for meta in kube.secret_metadata("ns", stop, wanted):
        got.append((meta.type, meta.name))
        if len(got) == 2:
            break
    stop.set()
    assert got == [("LIST", "dest"), ("MODIFIED", "dest")]
    assert [name for name, _ in asked] == ["sh.helm.release.v1.app.v1", "dest"] * 2
    assert not any(on_main for _, on_main in asked)  # every decision was taken in the reader thread


def test_a_read_does_not_replace_what_the_watch_stored_while_it_was_in_flight() -> None:
    store = Store()
    record = ObjectRecord(key=("ns", "p1"), uid="u1")
    store.records[record.key] = record
    store.set_references(record, frozenset({"dest"}))
    store.secret_event("ns", "dest", {"password": "new"}, "7")
    assert store.cache_secret("ns", "dest", {"password": "old"}, "5") == {"password": "new"}
    cached = store.cached_secret("ns", "dest")
    assert cached is not None and cached.data == {"password": "new"} and cached.version == "7"
    assert store.cache_secret("ns", "other", {"password": "x"}) == {"password": "x"}  # not referenced: not kept
    assert store.cached_secret("ns", "other") is None
