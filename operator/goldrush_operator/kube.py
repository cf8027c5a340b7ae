"""The Kubernetes adapter: the only module that imports `kubernetes`.

Async wrappers for the few calls the operator makes besides kopf's own watching: read referenced Secrets and
ConfigMaps, list and watch Secrets metadata-only (`secret_metadata`, for `secretwatch`), merge-patch the
object's annotations and its `status` subresource, and post Events; merge-patch the `status` of credentials
objects; get, create and update (resourceVersion-guarded) the `coordination.k8s.io/v1` Leases of leader
election (`election.Election`), whose `write_guard` every pipeline write passes first. Reads and Lease calls
use the official client (its connection pool, TLS, auth and config) in bounded thread pools. The operator's
own writes (patches, Events) are sent from the event loop over aiohttp with the same configuration (host, TLS,
auth headers, proxy) and JSON bodies: a thread per write cost three times the CPU (bench/README.md, finding
31). Called by the controller (`controller/`), the handlers (liveness list), `secretwatch`, `election` and the
CLI (`introspect.py` for `logs`/`describe`, `import_command.py` for the pipelines already managed). `select()`
applies the kubectl plugin's `--kubeconfig`, `--context` and `--namespace`.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
import os
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from goldrush_operator.lease import LeaseRecord
from goldrush_operator.resource import GROUP, PLURAL, VERSION
from goldrush_operator.secret_values import decode_secret_data

T = TypeVar("T")

COMPONENT = "goldrush-operator"
log = logging.getLogger("goldrush_operator.kube")

LIST_PAGE_SIZE = 500
"""Objects per page of every list the operator sends (client-go's informers page the same way), kopf's included."""

# Metadata-only reads of Secrets: the apiserver sends `PartialObjectMetadata(List)`, never `data`.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class SecretMeta:
    """One metadata-only observation of a Secret (`type`: LIST, ADDED, MODIFIED, DELETED, RELISTED)."""

    type: str
    namespace: str
    name: str
    resource_version: str


class KubeError(RuntimeError):
    """A Kubernetes API call failed; `status` is the HTTP status (0 for transport errors)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    """The object does not exist (HTTP 404)."""


# How much of the apiserver's own explanation an error keeps (it reaches conditions, after the scrub).
MAX_ERROR_DETAIL = 300


def _answer_error(status: int, body: bytes | str | None, fallback_reason: str = "") -> KubeError:
    """The error for an answer of `status` >= 400: `NotFound` for 404, with the Status object's reason and,
    except for 404 and 409 (which callers handle by status), its message: "failed calling webhook ...",
    "... is forbidden: ...", an invalid field. Called by `_run` and the direct aiohttp writes."""
    try:
        answer = json.loads(body or b"")
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    reason = str(answer.get("reason") or fallback_reason)
    text = f"Kubernetes API {status} {reason}".strip()
    detail = " ".join(str(answer.get("message") or "").split())
    if detail and status not in (404, 409):
        cut = detail[:MAX_ERROR_DETAIL]
        text += f": {cut}" + ("..." if len(detail) > len(cut) else "")
    return (NotFound if status == 404 else KubeError)(text, status)


@dataclass
class Selection:
    """kubectl's `--kubeconfig`, `--context` and `--namespace` for this process (set by the kubectl plugin)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


selection = Selection()


def select(kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None) -> None:
    """Use this kubeconfig file, context and default namespace instead of the kubeconfig's own choice."""
    selection.kubeconfig, selection.context, selection.namespace = kubeconfig, context, namespace


def load_config() -> client.ApiClient:
    """An API client from `KUBECONFIG`/`~/.kube/config` (or `select()`ed), else the in-cluster service account."""
    cfg = client.Configuration()
    chosen = selection.kubeconfig or selection.context
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG") and not chosen:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=selection.kubeconfig, context=selection.context, client_configuration=cfg
        )
    cfg.connection_pool_maxsize = 48
    return client.ApiClient(cfg)


class Kube:
    """Async facade over the sync client; one instance per operator process."""

    def __init__(self, api_client: client.ApiClient | None = None, workers: int = 48) -> None:
        self._api_client = api_client or load_config()
        self._core = client.CoreV1Api(self._api_client)
        self._custom = client.CustomObjectsApi(self._api_client)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._write_slots = asyncio.Semaphore(workers)
        self._session: aiohttp.ClientSession | None = None
        self._send_options = self._derive_send_options()
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self.writes = 0
        # Leader election: called before every pipeline write (raises `lease.Fenced` to refuse it); the
        # Lease calls have a thread of their own so that busy pipeline writes never delay a renewal.
        self.write_guard: Callable[[], None] | None = None
        self._lease_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-lease")
        self.lease_timeout = 5.0  # seconds per Lease call (set below the renew deadline by `cli.run`)

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        # In the caller's context: the write guard asks which object the pass is about (`current_object`),
        # and a worker thread does not inherit context variables by itself.
        context = contextvars.copy_context()
        try:
            return await loop.run_in_executor(self._pool, context.run, fn)
        except ApiException as exc:
            raise _answer_error(int(exc.status or 0), exc.body, str(exc.reason or "")) from None
        except OSError as exc:  # urllib3 wraps most transport errors into OSError subclasses
            raise KubeError(f"Kubernetes API unreachable: {type(exc).__name__}") from None

    # ------------------------------------------------------------------------------------------ reads

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Decoded `data` values of a Secret; raises NotFound. Only for Secrets a pipeline references."""
        return (await self.get_secret(namespace, name))[0]

    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """(decoded data, resourceVersion) of a referenced Secret; raises NotFound."""
        log.debug("GET secret %s/%s", namespace, name)
        secret = await self._run(lambda: self._core.read_namespaced_secret(name, namespace))
        data = decode_secret_data({str(k): str(v) for k, v in (secret.data or {}).items()})
        return data, str((secret.metadata.resource_version if secret.metadata else None) or "")

    # ------------------------------------------------------------------------------------------ Secret metadata

    def _auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for setting in self._api_client.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    def _secrets_path(self, namespace: str | None) -> str:
        return f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/secrets" if namespace else "/api/v1/secrets"

    def _get_json_stream(self, path: str, params: Mapping[str, str], accept: str, read_timeout: float) -> Any:
        url = self._api_client.configuration.host + path + "?" + urllib.parse.urlencode(params)
        log.debug("GET %s (Accept: %s)", path + "?" + urllib.parse.urlencode(params), accept.split(";as=")[-1])
        pool: urllib3.PoolManager = self._api_client.rest_client.pool_manager
        response = pool.request("GET", url, headers={**self._auth_headers(), "Accept": accept},
                                preload_content=False, timeout=urllib3.Timeout(connect=30, read=read_timeout))
        if response.status >= 400:
            body = response.read(2048).decode(errors="replace")
            response.release_conn()
            status = int(response.status)
            reason = "Gone" if status == 410 else str(json.loads(body).get("reason") if body.startswith("{") else "")
            raise (NotFound if status == 404 else KubeError)(f"Kubernetes API {status} {reason}", status)
        return response

    def _get_json(self, path: str, params: Mapping[str, str], accept: str, read_timeout: float) -> Any:
        """One GET answered with a JSON document (a list page), read whole."""
        response = self._get_json_stream(path, params, accept, read_timeout)
        try:
            return json.loads(response.read())
        finally:
            response.release_conn()

    def _metadata_pages(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The pages of a metadata-only list of `path` (`LIST_PAGE_SIZE` objects each), following `continue`."""
        token = ""
        while True:
            page = self._get_json(path, {"limit": str(LIST_PAGE_SIZE), **params,
                                         **({"continue": token} if token else {})}, METADATA_LIST, 60)
            yield page
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def _list_secret_metadata(self, namespace: str | None) -> tuple[list[SecretMeta], str]:
        """Every Secret's (namespace, name, resourceVersion), in pages of 500; and the list's resourceVersion."""
        items: list[SecretMeta] = []
        version = ""
        for page in self._metadata_pages(self._secrets_path(namespace), {}):
            for item in page.get("items") or ():
                meta = item.get("metadata") or {}
                items.append(SecretMeta("LIST", str(meta.get("namespace")), str(meta.get("name")),
                                        str(meta.get("resourceVersion"))))
            version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        return items, version

    def _watch_secret_metadata(self, namespace: str | None, version: str) -> Iterator[SecretMeta | str]:
        """Metadata-only watch events from `version`; yields a str (the new version) on bookmarks."""
        params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        response = self._get_json_stream(self._secrets_path(namespace), params, METADATA_WATCH, 330)
        buffer = b""
        try:
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    if event.get("type") == "ERROR":
                        code = int(obj.get("code") or 0)
                        raise KubeError(f"Kubernetes API watch error {code} {obj.get('reason')}", code)
                    if event.get("type") == "BOOKMARK":
                        yield str(meta.get("resourceVersion"))
                        continue
                    yield SecretMeta(str(event.get("type")), str(meta.get("namespace")), str(meta.get("name")),
                                     str(meta.get("resourceVersion")))
        finally:
            response.release_conn()

    async def secret_metadata(
        self, namespace: str | None, stop: threading.Event, wanted: Callable[[str, str], bool] | None = None,
    ) -> AsyncIterator[SecretMeta]:
        """Endless metadata-only observations of the Secrets of `namespace` (all when None).

        First every Secret as `LIST`, then watch events; after a watch expires (410) a fresh list whose
        items come as `RELISTED`. Runs in its own thread; Secret values never reach the process this way.
        `wanted(namespace, name)` is asked in that thread: an observation it refuses is dropped there, so a
        change of an unrelated Secret never wakes the event loop (it must be safe to call from a thread).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[SecretMeta | BaseException] = asyncio.Queue()

        def put(item: SecretMeta | BaseException) -> None:
            if isinstance(item, SecretMeta) and wanted is not None and not wanted(item.namespace, item.name):
                return
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            version, kind = "", "LIST"
            while not stop.is_set():
                try:
                    if not version:
                        items, version = self._list_secret_metadata(namespace)
                        for item in items:
                            put(SecretMeta(kind, item.namespace, item.name, item.resource_version))
                        kind = "RELISTED"
                    for event in self._watch_secret_metadata(namespace, version):
                        if stop.is_set():
                            return
                        if isinstance(event, str):
                            version = event
                        else:
                            version = event.resource_version
                            put(event)
                except KubeError as exc:
                    if exc.status == 410:
                        version = ""  # expired: list again
                    else:
                        put(exc)
                        stop.wait(2.0)
                except (OSError, urllib3.exceptions.HTTPError, ValueError) as exc:
                    put(KubeError(f"Secret metadata watch: {type(exc).__name__}"))
                    stop.wait(2.0)

        thread = threading.Thread(target=run, name=f"secret-meta-{namespace or 'all'}", daemon=True)
        thread.start()
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                log.warning("Secret metadata watch of %s: %s; retrying", namespace or "all namespaces", item)
                continue
            yield item

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        """`data` of a ConfigMap; raises NotFound."""
        return await self._run(lambda: dict(self._core.read_namespaced_config_map(name, namespace).data or {}))

    async def get_pipeline_object(self, namespace: str, name: str) -> dict[str, Any]:
        """The GoldRushPipeline object as a dict; raises NotFound."""
        obj: Any = await self._run(
            lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        )
        result: dict[str, Any] = dict(obj)
        return result

    async def get_credentials_object(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        """A GoldRushCredentials (namespace) or ClusterGoldRushCredentials (None) as a dict; raises NotFound."""
        def call() -> Any:
            if namespace:
                return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            return self._custom.get_cluster_custom_object(GROUP, VERSION, plural, name)

        obj: Any = await self._run(call)
        return dict(obj)

    async def list_pipeline_versions(
        self, namespaces: tuple[str, ...], shard_selector: str = "",
    ) -> dict[tuple[str, str], str]:
        """(namespace, name) -> resourceVersion of every GoldRushPipeline in `namespaces` (all when empty), or
        only of those a server-side `shard_selector` (`lease.shard_selector`) selects.

        Listed in pages of 500 so that memory stays flat however many objects exist.
        """
        metas = await self.list_pipeline_metadata(namespaces, shard_selector)
        return {
            (str(meta.get("namespace")), str(meta.get("name"))): str(meta.get("resourceVersion")) for meta in metas
        }

    def _pipelines_path(self, namespace: str | None) -> str:
        ns = f"/namespaces/{urllib.parse.quote(namespace)}" if namespace else ""
        return f"/apis/{GROUP}/{VERSION}{ns}/{PLURAL}"

    async def list_pipeline_metadata(
        self, namespaces: tuple[str, ...], shard_selector: str = "",
    ) -> list[dict[str, Any]]:
        """`metadata` of every GoldRushPipeline in `namespaces` (all when empty), in pages of 500 (metadata-only
        lists: no spec or status is read); with `shard_selector`, of the objects it selects only."""

        selected = {"shardSelector": shard_selector} if shard_selector else {}

        def pages(namespace: str | None) -> list[dict[str, Any]]:
            return [dict(item.get("metadata") or {})
                    for page in self._metadata_pages(self._pipelines_path(namespace), selected)
                    for item in page.get("items") or ()]

        def call() -> list[dict[str, Any]]:
            if not namespaces:
                return pages(None)
            return [meta for ns in namespaces for meta in pages(ns)]

        return await self._run_raw(call)

    async def serves_shard_selectors(self, namespace: str) -> bool:
        """Whether the apiserver filters lists and watches by `shardSelector` (the alpha feature gate
        `ShardedListAndWatch`, Kubernetes 1.36+; an apiserver without it ignores the parameter).

        Only a built-in resource's list says so (`metadata.shardInfo`; a custom resource's list is filtered the
        same, but does not report it): a list of the Secrets of `namespace` (the operator's, where it may list
        them) whose field selector names a Secret that cannot exist, so no Secret is ever read.
        """
        params = {"limit": "1", "fieldSelector": "metadata.name=goldrush-operator.shard-probe.",
                  "shardSelector": "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"}

        def call() -> bool:
            page = self._get_json(self._secrets_path(namespace), params, "application/json", 30)
            return bool((page.get("metadata") or {}).get("shardInfo"))

        try:
            return await self._run_raw(call)
        except KubeError as exc:
            log.warning("cannot tell whether the apiserver shards lists and watches (%s): assuming not", exc)
            return False

    async def _run_raw(self, fn: Callable[[], T]) -> T:
        """`_run` for calls made straight through the connection pool (transport errors become KubeError)."""
        try:
            return await self._run(fn)
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            raise KubeError(f"Kubernetes API unreachable: {type(exc).__name__}") from None

    # ------------------------------------------------------------------------------------------ writes

    def _ssl_context(self) -> ssl.SSLContext:
        """The client configuration's TLS (CA, client certificate, verification) for the write session."""
        cfg = self._api_client.configuration
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if not cfg.verify_ssl:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        elif cfg.assert_hostname is False:
            ctx.check_hostname = False
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        return ctx

    def _derive_send_options(self) -> dict[str, Any]:
        """Per-request options of every write, as the configuration decides them: the proxy the official client
        chose (and its headers) and the TLS server name."""
        cfg = self._api_client.configuration
        pool = self._api_client.rest_client.pool_manager
        proxy = str(pool.proxy.url) if isinstance(pool, urllib3.ProxyManager) and pool.proxy else None
        return {"proxy": proxy, "proxy_headers": cfg.proxy_headers if proxy else None,
                "server_hostname": getattr(cfg, "tls_server_name", None) or None}

    def _write_session(self) -> aiohttp.ClientSession:
        """The event loop's HTTP session for writes, opened at the first write of that loop (TLS and the
        constant headers are settled here, not per write)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            cfg = self._api_client.configuration
            tls = self._ssl_context() if str(cfg.host).startswith("https:") else False
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls, limit=0),
                timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=60),
                headers={"Accept": "application/json", "User-Agent": COMPONENT}, auto_decompress=False)
            self._session_loop = loop
        return self._session

    async def _send_json(self, method: str, path: str, body: bytes, content_type: str) -> None:
        """One write with a JSON body on the event loop; the answer's body is only read for its reason."""
        session = self._write_session()
        headers = {**self._auth_headers(), "Content-Type": content_type}  # auth: tokens are refreshed
        try:
            async with session.request(method, self._api_client.configuration.host + path, data=body,
                                       headers=headers, **self._send_options) as response:
                status = response.status
                data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeError(f"Kubernetes API unreachable: {type(exc).__name__}") from None
        if status >= 400:
            raise _answer_error(status, data)

    async def _write(self, method: str, path: str, body: Mapping[str, Any] | list[Any], content_type: str) -> None:
        """Every write of the operator's own (patches, Events): at most `workers` in flight, straight from the
        event loop (a thread per write cost three times the CPU). The generated client's models are not used:
        their (de)serialisation costs more than the write itself, and the operator never reads the answer.
        """
        data = json.dumps(body, separators=(",", ":"), default=str).encode()
        self.writes += 1
        async with self._write_slots:
            if self.write_guard is not None:
                self.write_guard()  # at send time: a write queued before a lost Lease is refused
            await self._send_json(method, path, data, content_type)

    def _pipeline_path(self, namespace: str, name: str, subresource: str = "") -> str:
        ns, nm = urllib.parse.quote(namespace), urllib.parse.quote(name)
        return f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{nm}" + (f"/{subresource}" if subresource else "")

    async def patch_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *,
        finalizers: list[str] | None = None, resource_version: str | None = None,
    ) -> None:
        """Merge-patch `metadata.annotations` (None removes a key); never touches spec.

        `finalizers`: the whole new finalizer list, sent with `resource_version` as the precondition (a merge
        patch replaces the list, so it must be the list of that very version: 409 when the object changed).
        """
        meta: dict[str, Any] = {"annotations": dict(annotations)} if annotations else {}
        if finalizers is not None:
            meta["finalizers"] = list(finalizers)
            if resource_version:
                meta["resourceVersion"] = resource_version
        await self._write("PATCH", self._pipeline_path(namespace, name), {"metadata": meta}, MERGE_PATCH)

    async def remove_finalizer(self, namespace: str, name: str, index: int, finalizer: str) -> None:
        """Remove `finalizer` at `index` of `metadata.finalizers`: a JSON patch that first tests that entry, so
        another controller's finalizer is never touched (422 when the list changed meanwhile)."""
        path = f"/metadata/finalizers/{int(index)}"
        await self._write("PATCH", self._pipeline_path(namespace, name),
                          [{"op": "test", "path": path, "value": finalizer}, {"op": "remove", "path": path}],
                          JSON_PATCH)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the `status` subresource with `status` (lists are replaced whole)."""
        await self._write("PATCH", self._pipeline_path(namespace, name, "status"), {"status": dict(status)},
                          MERGE_PATCH)

    async def patch_credentials_status(
        self, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge-patch the `status` of a GoldRushCredentials (namespace) or ClusterGoldRushCredentials (None)."""
        scope = f"namespaces/{urllib.parse.quote(namespace)}/" if namespace else ""
        path = f"/apis/{GROUP}/{VERSION}/{scope}{urllib.parse.quote(plural)}/{urllib.parse.quote(name)}/status"
        await self._write("PATCH", path, {"status": dict(status)}, MERGE_PATCH)

    async def post_event(
        self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """Record a core/v1 Event about `obj`. The message must already be scrubbed of secrets."""
        meta = obj.get("metadata", {})
        namespace = str(meta.get("namespace") or "default")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoldRushPipeline",
                               "name": meta.get("name"), "namespace": namespace, "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._write("POST", f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/events", event,
                          "application/json")

    # ------------------------------------------------------------------------------------------ Leases

    def _lease_request(self, method: str, path: str, body: Mapping[str, Any] | None, timeout: float) -> Any:
        pool: urllib3.PoolManager = self._api_client.rest_client.pool_manager
        response = pool.request(
            method, self._api_client.configuration.host + path,
            body=None if body is None else json.dumps(body, separators=(",", ":")).encode(),
            headers={**self._auth_headers(), "Content-Type": "application/json", "Accept": "application/json"},
            timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False,
        )
        status = int(response.status)
        if status >= 400:
            raise _answer_error(status, response.data)
        try:
            return json.loads(response.data)
        except ValueError:
            return {}

    async def _lease_call(
        self, method: str, namespace: str, name: str | None, body: Mapping[str, Any] | None
    ) -> LeaseRecord:
        timeout = self.lease_timeout
        path = f"/apis/coordination.k8s.io/v1/namespaces/{urllib.parse.quote(namespace)}/leases"
        if name is not None:
            path += "/" + urllib.parse.quote(name)
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(
                self._lease_pool, lambda: self._lease_request(method, path, body, timeout))
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise KubeError(f"Kubernetes API unreachable: {type(exc).__name__}") from None
        meta = answer.get("metadata") or {}
        return LeaseRecord.from_spec(answer.get("spec"), str(meta.get("resourceVersion") or ""))

    async def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease's spec and resourceVersion, None when it does not exist."""
        try:
            return await self._lease_call("GET", namespace, name, None)
        except NotFound:
            return None

    async def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease (409 when it exists); returns it as written."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/name": COMPONENT}},
                "spec": record.spec()}
        return await self._lease_call("POST", namespace, None, body)

    async def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease's spec if it is still at `record.resource_version` (409 otherwise)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": record.resource_version,
                             "labels": {"app.kubernetes.io/name": COMPONENT}},
                "spec": record.spec()}
        return await self._lease_call("PUT", namespace, name, body)

    async def aclose(self) -> None:
        """Close the write session (kopf's cleanup, on the loop that wrote)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def close(self) -> None:
        """Stop the worker threads and close the HTTP pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lease_pool.shutdown(wait=False, cancel_futures=True)
        self._api_client.close()  # type: ignore[no-untyped-call]


def current_namespace() -> str:
    """The `select()`ed namespace, else the kubeconfig context's (or the in-cluster one), else `default`."""
    if selection.namespace:
        return selection.namespace
    try:
        contexts, context = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=selection.kubeconfig
        )
        if selection.context:
            context = next((c for c in contexts or [] if c.get("name") == selection.context), None)
        return str((context or {}).get("context", {}).get("namespace") or "default")
    except (config.ConfigException, OSError, TypeError):
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as fh:
                return fh.read().strip() or "default"
        except OSError:
            return "default"
