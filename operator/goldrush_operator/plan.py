"""`goldrush-operator plan -f FILE|DIR|-`: the GoldRush API calls the operator would make for each manifest.

Called by `cli.main`. Read-only: the API client is built in dry-run mode (it refuses every request but GET)
and Kubernetes is only read. For each `GoldRushPipeline` in the manifests it runs the operator's own steps:
`controller.inputs.Inputs.read` (the desired payload, with Secrets from the manifests first, then from the
cluster), the operator's lookup rule (`controller.decide.lookup`), `payload.compute_diff` against the live
pipeline and `controller.decide.config_calls`, so the plan and the operator cannot disagree.

The live object (read from the cluster when reachable) supplies the remote id, the recorded secret hashes
and the uid that keys them; secret values are compared by those keyed hashes only (`GOLDRUSH_HASH_KEY` must
be the operator's) and shown as `changed`/`unchanged`/`new`, or `unknown` when the cluster is unreachable.
`--delete` plans the deletion of the objects (what `kubectl delete -f` would cause).

Exit status: 0 no changes pending, 2 changes pending, 1 an error (unreadable manifest, invalid spec, a name
conflict, an unreachable API...).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from goldrush_operator import conditions as cond
from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.controller import decide
from goldrush_operator.controller.inputs import Desired, Inputs, Missing, parse_spec
from goldrush_operator.controller.outcome import InputProblem, Stall, classify
from goldrush_operator.controller.status import Pass
from goldrush_operator.credentials import applied_hashes_from_status
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError, NotFoundError, Pipeline
from goldrush_operator.kube import Kube, KubeError, NotFound, current_namespace
from goldrush_operator.payload import compute_diff
from goldrush_operator.resource import (
    ANNOTATION_ADOPT,
    ANNOTATION_PAUSE_RECONCILIATION,
    API_VERSION,
    KIND,
)
from goldrush_operator.state import ObjectRecord, Store, snapshot_of

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


@dataclass
class ObjectPlan:
    """The plan of one object: the calls, secret states, and a note or an error."""

    namespace: str
    name: str
    pipeline_id: str | None = None
    calls: list[decide.Call] = field(default_factory=list)
    secrets: list[dict[str, str]] = field(default_factory=list)
    note: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "pipelineId": self.pipeline_id,
                               "calls": [c.to_json() for c in self.calls], "secrets": self.secrets}
        if self.note:
            out["note"] = self.note
        if self.error:
            out["error"] = self.error
        return out


# ---------------------------------------------------------------------------------------------- input


def load_documents(sources: Iterable[str], stdin: TextIO | None = None) -> list[dict[str, Any]]:
    """Every object in the files (`-` is stdin; a directory: its .yaml/.yml/.json files, sorted)."""
    texts: list[str] = []
    for source in sources:
        if source == "-":
            texts.append((stdin or sys.stdin).read())
            continue
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
            texts.extend(p.read_text() for p in files)
        else:
            texts.append(path.read_text())
    docs: list[dict[str, Any]] = []
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "List":
                docs.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
            elif isinstance(doc, dict):
                docs.append(doc)
    return docs


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(str(v)).decode("utf-8", "replace") for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return data


class _Reader:
    """The KubePort reads of `Inputs`: Secrets of the manifests first, then the cluster (None: unreachable)."""

    def __init__(self, kube: Kube | None, manifest_secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.kube = kube
        self.manifest_secrets = manifest_secrets
        self.unknown = False  # a Secret could not be read (no cluster): secret states are unknown

    async def get_secret(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        if (namespace, name) in self.manifest_secrets:
            return dict(self.manifest_secrets[(namespace, name)]), ""
        if self.kube is None:
            self.unknown = True
            raise NotFound("no cluster: Secret unknown", 404)
        return await self.kube.get_secret(namespace, name)

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        if self.kube is None:
            raise NotFound(f"ConfigMap {name!r}: no cluster to read it from", 404)
        return await self.kube.get_configmap_data(namespace, name)

    async def patch_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *,
        finalizers: list[str] | None = None, resource_version: str | None = None,
    ) -> None:
        raise RuntimeError("plan never writes")

    async def remove_finalizer(self, namespace: str, name: str, index: int, finalizer: str) -> None:
        raise RuntimeError("plan never writes")

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        raise RuntimeError("plan never writes")

    async def post_event(self, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        raise RuntimeError("plan never writes")


# ---------------------------------------------------------------------------------------------- plan


class Planner:
    """Plans objects against one API and (optionally) one cluster."""

    def __init__(self, settings: Settings, kube: Kube | None, manifest_secrets: dict[tuple[str, str], dict[str, str]],
                 *, delete: bool = False) -> None:
        self.settings = settings
        self.kube = kube
        self.reader = _Reader(kube, manifest_secrets)
        self.key_source = ServiceKeySource(settings)
        self.delete = delete
        self._clients: dict[str, GoldRushClient] = {}

    def client(self, key: str) -> GoldRushClient:
        if key not in self._clients:
            self._clients[key] = GoldRushClient(self.settings.api_url, key, rate_limit=self.settings.rate_limit,
                                                timeout=self.settings.request_timeout, dry_run=True)
        return self._clients[key]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def _live(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.kube is None:
            return None
        try:
            return await self.kube.get_pipeline_object(namespace, name)
        except NotFound:
            return None

    async def plan(self, doc: Mapping[str, Any], namespace: str) -> ObjectPlan:
        meta = doc.get("metadata") or {}
        ns, name = str(meta.get("namespace") or namespace), str(meta.get("name") or "")
        out = ObjectPlan(ns, name)
        if not name:
            out.error = "metadata.name is missing"
            return out
        try:
            live = await self._live(ns, name)
        except KubeError as exc:
            out.error = f"cannot read the live object: {exc}"
            return out
        live_meta = (live or {}).get("metadata") or {}
        annotations = {**(live_meta.get("annotations") or {}), **(meta.get("annotations") or {})}
        body = {"metadata": {"namespace": ns, "name": name, "uid": live_meta.get("uid") or "",
                             "generation": live_meta.get("generation") or 1,
                             "deletionTimestamp": live_meta.get("deletionTimestamp"), "annotations": annotations},
                "spec": doc.get("spec") or {}, "status": (live or {}).get("status") or {}}
        record = ObjectRecord(key=(ns, name), uid=str(live_meta.get("uid") or ""))
        record.set_snapshot(snapshot_of(body))
        p = Pass.of(record)
        try:
            await self._plan(p, out, delete=self.delete or bool(live_meta.get("deletionTimestamp")))
        except Missing as missing:
            out.note = f"the operator would wait ({missing.reason}): {missing.message}"
        except (InputProblem, GoldRushError, ValueError) as exc:
            outcome = classify(exc, p.scrub)
            out.error = f"{outcome.reason}: {outcome.message}"
        return out

    async def _plan(self, p: Pass, out: ObjectPlan, *, delete: bool) -> None:
        spec = parse_spec(p)
        if p.annotations.get(ANNOTATION_PAUSE_RECONCILIATION) == "true":
            out.note = f"reconciliation paused ({ANNOTATION_PAUSE_RECONCILIATION}): nothing is sent"
            return
        inputs = Inputs(self.reader, Store(), self.key_source, self.settings.hash_key)
        try:
            d = await inputs.read(p, spec)
        except Missing:
            if not self.reader.unknown:
                raise
            # No cluster: plan without the values of the Secrets it cannot read (their state is unknown).
            d = await inputs.read(p, spec.model_copy(update={"management_policies": ["Observe"]}))
            d.spec = spec
        client = self.client(d.service_key)
        pipeline_id = out.pipeline_id = p.target_id()  # the controller's rule (a fresh record: no memory)
        if delete:
            self._plan_delete(spec.deletes_remote(), out)
            return
        remote: Pipeline | None = None
        if pipeline_id:
            try:
                remote = await client.get_pipeline(str(pipeline_id))
            except NotFoundError:
                out.pipeline_id, remote = None, None
                out.note = f"remote pipeline {pipeline_id} no longer exists"
        if remote is None:
            named = [i async for i in client.list_pipelines()
                     if i.name == d.payload["name"] and i.project == d.payload["project"]]
            verdict = decide.lookup(named, spec, p.annotations.get(ANNOTATION_ADOPT) == "true")
            if verdict == "create":
                out.calls.append(decide.create_call(d.payload))
                out.secrets = [self._secret(u.field, u.name, u.key, "set") for u in d.resolved.uses]
                return
            if verdict == "not-found":
                out.note = "no remote pipeline to observe (spec.managementPolicies do not include Create)"
                return
            if verdict in ("conflict", "ambiguous"):
                ids = ", ".join(sorted(i.id for i in named))
                raise InputProblem(classify_conflict(d, ids))
            remote = named[0]
            out.pipeline_id = remote.id
        self._plan_config(p, d, remote, out)

    def _plan_config(self, p: Pass, d: Desired, remote: Pipeline, out: ObjectPlan) -> None:
        applied = applied_hashes_from_status(p.current.get("secrets"))
        known = applied if applied or d.spec.allows("Update") else d.resolved.hashes
        remote_json = remote.model_dump(mode="json")
        diff = compute_diff(d.payload, remote_json, d.resolved.hashes, known)
        plan = decide.config_calls(remote.id, diff, d.spec, remote_json.get("status"))
        if plan.immutable:
            raise InputProblem(Stall(cond.IMMUTABLE_FIELD_CHANGED,
                                      f"remote pipeline {remote.id} differs in fields that cannot change: "
                                      + ", ".join(plan.immutable)))
        out.calls.extend(plan.calls)
        if plan.blocked:
            out.note = f"differs in {', '.join(plan.blocked)}; not written (spec.managementPolicies lack Update)"
        for use in d.resolved.uses:
            state = ("unknown" if self.reader.unknown else "unchanged" if applied.get(use.field) == use.hash
                     else "changed" if use.field in applied else "new")
            out.secrets.append(self._secret(use.field, use.name, use.key, state))
        if self.reader.unknown:
            for ref_field, ref in sorted((d.spec.destination.secret_refs or {}).items()):
                if ref_field not in d.resolved.hashes:
                    out.secrets.append(self._secret(ref_field, ref.name, ref.key, "unknown"))

    def _plan_delete(self, deletes: bool, out: ObjectPlan) -> None:
        if not out.pipeline_id:
            out.note = "deleted: no remote pipeline to delete"
        elif deletes:
            out.calls.append(decide.delete_call(out.pipeline_id))
        else:
            out.note = f"deleted: remote pipeline {out.pipeline_id} is left in place (Orphan / no Delete policy)"

    @staticmethod
    def _secret(field_name: str, secret: str, key: str, state: str) -> dict[str, str]:
        return {"field": field_name, "secret": secret, "key": key, "state": state}


def classify_conflict(d: Desired, ids: str) -> Stall:
    return Stall(cond.NAME_CONFLICT, f"a pipeline named {d.payload['name']!r} in project {d.payload['project']!r} "
                                      f"already exists ({ids}) and was not created or adopted by this object")


# ---------------------------------------------------------------------------------------------- output


def render_text(plans: list[ObjectPlan]) -> str:
    lines: list[str] = []
    for plan in plans:
        head = f"{plan.namespace}/{plan.name}" + (f" ({plan.pipeline_id})" if plan.pipeline_id else "")
        if plan.error:
            lines.append(f"{head}: error: {plan.error}")
            continue
        lines.append(f"{head}: " + (f"{len(plan.calls)} call(s)" if plan.calls else "no changes"))
        lines.extend(f"  {call.describe()}" for call in plan.calls)
        lines.extend(f"  secret {s['field']} (Secret {s['secret']} key {s['key']}): {s['state']}"
                     for s in plan.secrets)
        if plan.note:
            lines.append(f"  note: {plan.note}")
    pending = sum(1 for p in plans if p.calls and not p.error)
    errors = sum(1 for p in plans if p.error)
    lines.append(f"Plan: {pending} object(s) with changes, {len(plans) - pending - errors} without, {errors} error(s).")
    return "\n".join(lines) + "\n"


def exit_code(plans: list[ObjectPlan]) -> int:
    if any(p.error for p in plans):
        return EXIT_ERROR
    return EXIT_CHANGES if any(p.calls for p in plans) else EXIT_NO_CHANGES


async def plan_command(sources: list[str], namespace: str | None, settings: Settings, *, output: str = "text",
                       delete: bool = False, stdout: TextIO | None = None) -> int:
    """Plan every GoldRushPipeline of the manifests; print the plan; the exit status (0, 1 or 2)."""
    out = stdout or sys.stdout
    try:
        docs = load_documents(sources)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"error: cannot read the manifests: {exc}", file=sys.stderr)
        return EXIT_ERROR
    kube: Kube | None
    try:
        kube = Kube(workers=2)
    except Exception as exc:  # the kubernetes library's config errors (kube.py is its only importer)
        print(f"note: no Kubernetes cluster ({type(exc).__name__}): Secrets only from the manifests, secret "
              "states of other Secrets unknown", file=sys.stderr)
        kube = None
    ns = namespace or (current_namespace() if kube is not None else "default")
    secrets = {(str((d.get("metadata") or {}).get("namespace") or ns), str((d.get("metadata") or {}).get("name"))):
               _secret_data(d) for d in docs if d.get("kind") == "Secret" and d.get("apiVersion") == "v1"}
    planner = Planner(settings, kube, secrets, delete=delete)
    try:
        plans = [await planner.plan(d, ns) for d in docs
                 if d.get("kind") == KIND and d.get("apiVersion") == API_VERSION]
    finally:
        await planner.aclose()
        if kube is not None:
            kube.close()
    if output == "json":
        out.write(json.dumps({"objects": [p.to_json() for p in plans], "exitCode": exit_code(plans)}, indent=2) + "\n")
    else:
        out.write(render_text(plans))
    return exit_code(plans)

