"""B1's floors: what the kube-apiserver and the API need, without the operator, for the work B1 asks for.

Called by `bench.run.b1` right after the B1 burst, with the operator stopped.

- Kubernetes floor: the driver creates the same number of objects (same manifest, CREATE_CONCURRENCY
  concurrent creates, as in B1) and, for each object, sends in order the same Kubernetes writes the operator
  sent per object during B1 (the most common sequence of verb + resource in the audit log: metadata patches,
  status patches with a status of the real size, Events), at most GOLDRUSH_WORKERS writes at a time (the
  operator's concurrency). It writes as the identity `goldrush-floor`, audited like the operator, in the
  namespace `bench-floor`; the objects are deleted afterwards.
- API floor: a fresh simulator with the same flags; for each object the driver sends the same request sequence
  the operator sent per object during B1 (the most common sequence of method + route in the journal, plus the
  shared listings), at most GOLDRUSH_MAX_CONCURRENCY requests at a time, without a client rate limit. The last
  status read of each sequence is not sent before the deploy time has passed since the POST was answered
  (Ready needs RUNNING), so this floor includes the simulated deploy.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from collections import Counter, defaultdict
from typing import Any

import aiohttp

from bench import env
from bench.common import CREATE_CONCURRENCY, DEPLOY_SECONDS, Ctx, manifest
from bench.kube import KubeClient

NS_FLOOR = "bench-floor"
API_PREFIX = "/platform/pipeline-api/"


# ---------------------------------------------------------------------------------------------- Kubernetes


def kube_plan(ctx: Ctx, audit_mark: int, ns: str, names: set[str]) -> tuple[list[str], dict[str, Any]]:
    """The operator's most common per-object sequence of Kubernetes writes in the audit log since the mark."""
    assert ctx.audit
    per: dict[str, list[str]] = defaultdict(list)
    events = 0
    other = 0
    for e in ctx.audit.entries(audit_mark):
        if e.get("stage") != "ResponseComplete" or (e.get("user") or {}).get("username") != env.OPERATOR_USER:
            continue
        ref = e.get("objectRef") or {}
        resource = ref.get("resource", "?") + (("/" + ref["subresource"]) if ref.get("subresource") else "")
        if resource == "events":
            events += 1 if ref.get("namespace") == ns else 0
        elif ref.get("namespace") == ns and ref.get("name") in names:
            per[ref["name"]].append(f"{e.get('verb')} {resource}")
        else:
            other += 1
    sequences = Counter(tuple(v) for v in per.values())
    modal: list[str] = list(sequences.most_common(1)[0][0]) if sequences else []
    plan = modal + ["create events"] * round(events / max(1, len(names)))
    info = {"plan": plan, "objects_with_the_modal_sequence": sequences.most_common(1)[0][1] if sequences else 0,
            "distinct_sequences": len(sequences), "events": events, "writes_not_per_object": other}
    return plan, info


def _event(name: str, uid: str, index: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": f"{name}."},
            "involvedObject": {"apiVersion": "goldrush.dev/v1alpha1", "kind": "GoldRushPipeline", "name": name,
                               "namespace": NS_FLOOR, "uid": uid},
            "reason": "Created", "message": f"benchmark floor event {index} for {name}", "type": "Normal",
            "source": {"component": "goldrush-floor"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1}


async def kube_floor(ctx: Ctx, plan: list[str], n: int, status_template: dict[str, Any],
                     workers: int) -> dict[str, Any]:
    """Seconds for the driver to create `n` objects and send each one's `plan` of writes; then clean up."""
    assert ctx.kube
    assert ctx.floor_kubeconfig
    await ctx.kube.ensure_namespace(NS_FLOOR)
    floor_ssl = env.ssl_context_for(ctx.floor_kubeconfig, ctx.workdir)
    writes = Counter[str]()
    async with KubeClient(ctx.plane.url, floor_ssl, concurrency=workers) as writer, \
            KubeClient(ctx.plane.url, ctx.plane.ssl_context(), concurrency=CREATE_CONCURRENCY) as creator:

        async def chain(i: int) -> None:
            name = f"p-{i:05d}"
            created = await creator.create_pipeline(NS_FLOOR, manifest(name, "dest-0"))
            uid = (created.get("metadata") or {}).get("uid", "")
            for k, step in enumerate(plan):
                resource = step.partition(" ")[2]
                if resource == "events":
                    await writer.create_event(NS_FLOOR, _event(name, uid, k))
                elif resource.endswith("/status"):
                    status = copy.deepcopy(status_template)
                    status["phase"] = "DEPLOYING" if k % 2 == 0 else "RUNNING"
                    for c in status.get("conditions") or []:
                        c["message"] = f"{c.get('message', '')} (floor write {k})"
                    await writer.patch_pipeline_status(NS_FLOOR, name, {"status": status})
                else:  # metadata writes (finalizer, intent and id annotations): one metadata patch each
                    await writer.patch_pipeline(NS_FLOOR, name,
                                                {"metadata": {"annotations": {f"floor.bench/w{k}": str(k)}}})
                writes[step] += 1

        t0 = time.monotonic()
        await asyncio.gather(*(chain(i) for i in range(n)))
        seconds = time.monotonic() - t0
    await ctx.kube.delete_pipelines(NS_FLOOR)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        data = await ctx.kube.request("GET", f"/apis/goldrush.dev/v1alpha1/namespaces/{NS_FLOOR}/goldrushpipelines"
                                             "?limit=1")
        if not data.get("items"):
            break
        await asyncio.sleep(1)
    return {"seconds": round(seconds, 2), "objects": n, "writes_per_object": len(plan) + 1,
            "writes_by_kind": {"create goldrushpipelines (driver)": n, **dict(writes)},
            "concurrency": {"creates": CREATE_CONCURRENCY, "operator_writes": workers}}


# ---------------------------------------------------------------------------------------------- API


def api_plan(view: env.JournalView, id_to_name: dict[str, str], names: set[str], prefix: str) -> dict[str, Any]:
    """The operator's most common per-object request sequence, the shared listings and a create body.

    `names` are the objects' Kubernetes names; remote names (POST bodies) carry `prefix` in front."""
    per: dict[str, list[tuple[str, str]]] = defaultdict(list)
    lists: list[str] = []
    body: Any = None
    for e in view.entries:
        route = e["route"]
        if route == "list":
            lists.append(e.get("query") or "")
            continue
        if route == "create":
            name = str((e.get("body") or {}).get("name", "")).removeprefix(prefix)
            if body is None and name in names:
                body = e.get("body")
        else:
            pid = e["path"][len(API_PREFIX):].split("/", 1)[0]
            name = id_to_name.get(pid, "")
        if name in names:
            per[name].append((e["method"], route))
    sequences = Counter(tuple(v) for v in per.values())
    modal = list(sequences.most_common(1)[0][0]) if sequences else []
    return {"chain": modal, "lists": len(lists), "list_query": lists[0] if lists else "", "create_body": body,
            "objects_with_the_modal_sequence": sequences.most_common(1)[0][1] if sequences else 0,
            "distinct_sequences": len(sequences)}


async def api_floor(plan: dict[str, Any], n: int, concurrency: int) -> dict[str, Any]:
    """Seconds for the driver to send `plan` for `n` objects to a fresh simulator, `concurrency` at a time."""
    chain: list[tuple[str, str]] = plan["chain"]
    if not chain or plan["create_body"] is None:
        return {"seconds": None, "error": "no per-object request sequence found in the B1 journal"}
    last_status = max((j for j, (m, r) in enumerate(chain) if (m, r) == ("GET", "status")), default=-1)
    sim = await asyncio.to_thread(env.start_sim)
    sem = asyncio.Semaphore(concurrency)
    phases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    try:
        headers = {"Authorization": f"Bearer {sim.service_key}"}
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency),
                                         timeout=aiohttp.ClientTimeout(total=120)) as s:

            async def req(method: str, path: str, body: Any = None) -> Any:
                async with sem, s.request(method, sim.base_url + path, json=body) as r:
                    statuses[r.status] += 1
                    return await r.json(content_type=None)

            list_every = n // plan["lists"] if plan["lists"] else 0

            async def one(i: int) -> None:
                if list_every and i % list_every == 0 and i // list_every < plan["lists"]:
                    await req("GET", "?" + plan["list_query"] if plan["list_query"] else "")
                pid = ""
                posted = 0.0
                for j, (method, route) in enumerate(chain):
                    if route == "create":
                        body = copy.deepcopy(plan["create_body"])
                        body["name"] = f"floor-p-{i:05d}"
                        answer = await req("POST", "", body)
                        pid = ((answer or {}).get("data") or {}).get("id", "")
                        posted = time.monotonic()
                        continue
                    if route == "list":
                        await req("GET", "?" + plan["list_query"] if plan["list_query"] else "")
                        continue
                    if j == last_status:
                        await asyncio.sleep(max(0.0, posted + DEPLOY_SECONDS - time.monotonic()))
                    path = f"{pid}/" if route in ("get", "put", "patch", "delete") else f"{pid}/{route}/"
                    answer = await req(method, path)
                    if j == last_status:
                        phases[str(((answer or {}).get("data") or {}).get("status"))] += 1

            t0 = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(n)))
            seconds = time.monotonic() - t0
    finally:
        await asyncio.to_thread(sim.stop)
    requests = sum(statuses.values())
    return {"seconds": round(seconds, 2), "objects": n, "concurrency": concurrency, "requests": requests,
            "chain": [f"{m} {r}" for m, r in chain], "shared_lists": plan["lists"],
            "last_status_read_phases": dict(phases), "statuses": {str(k): v for k, v in statuses.items()}}
