"""`goldrush-operator logs` and `describe`: live views of one object's remote pipeline, for people.

Called by `cli.main`. Reads the object and its Secrets through `kube.Kube`, then the API through
`api.GoldRushClient` with the object's own service key: its `serviceKeySecretRef`, the key of the credentials
object its `credentialsRef` names (a ClusterGoldRushCredentials' Secret in POD_NAMESPACE, default
goldrush-system), or the operator's. What it prints (worker logs, the destination probe's error, API errors) is
scrubbed of that key and of the values the object's `spec.destination.secretRefs` name (`_destination_secrets`),
as the operator scrubs what it writes: a failing probe's DSN or a worker's error can carry the password.
`describe` reads the metrics
twice, `trend_seconds` apart, and prints them as a table with the change of each (`metrics_table`);
a countdown on stderr (terminals only, `progress.Progress`) shows what it is waiting for.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import ValidationError

from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.credentials import SecretData, resolve_destination_secrets
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError, PipelineMetrics
from goldrush_operator.kube import Kube, KubeError, NotFound, current_namespace
from goldrush_operator.progress import ARROWS, Progress, arrows_for, trend
from goldrush_operator.resource import ANNOTATION_PIPELINE_ID, PipelineSpec
from goldrush_operator.resource_credentials import (
    KIND_CLUSTER_CREDENTIALS,
    PLURAL_CLUSTER_CREDENTIALS,
    PLURAL_CREDENTIALS,
)
from goldrush_operator.secret_values import Scrubber


def _value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def metrics_table(
    after: PipelineMetrics, before: PipelineMetrics | None = None, arrows: dict[str, str] = ARROWS
) -> list[str]:
    """Rows `FIELD VALUE [TREND]` of a metrics answer; the trend compares with the earlier sample `before`."""
    fields = [f for f in PipelineMetrics.model_fields if f != "uid"]
    rows = [("FIELD", "VALUE", "TREND" if before is not None else "")]
    for field in fields:
        now = getattr(after, field)
        change = trend(getattr(before, field), now, arrows) if before is not None else ""
        rows.append((field, _value(now), change))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return [f"  {f:<{width[0]}}  {v:>{width[1]}}  {t}".rstrip() for f, v, t in rows]


async def inspect_command(
    command: str, name: str, namespace: str | None, settings: Settings, trend_seconds: float = 0.0
) -> int:
    """Print logs or a description; returns the exit status (1 with a clear message on any problem)."""
    progress = Progress()
    try:
        return await _inspect(command, name, namespace, settings, trend_seconds, progress)
    finally:
        progress.done()


async def _destination_secrets(kube: Kube, namespace: str, obj: dict[str, Any]) -> list[str]:
    """The values `spec.destination.secretRefs` names (`credentials.resolve_destination_secrets`), to scrub
    from what is printed.

    Best effort: a spec that does not parse, or a Secret that is missing or that the caller may not read, adds
    nothing (the field-name scrub still covers `"password": "..."` forms); never a reason to fail the command.
    """
    try:
        spec = PipelineSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return []
    found: dict[str, SecretData | None] = {}
    for name in {ref.name for ref in (spec.destination.secret_refs or {}).values()}:
        try:
            found[name] = await kube.get_secret_data(namespace, name)
        except KubeError:
            found[name] = None
    return list(resolve_destination_secrets(spec, found, b"").values.values())


def _error(progress: Progress, message: str) -> int:
    progress.done()
    print(f"error: {message}", file=sys.stderr)
    return 1


async def _inspect(
    command: str, name: str, namespace: str | None, settings: Settings, trend_seconds: float, progress: Progress
) -> int:
    ns = namespace or current_namespace()
    try:
        kube = Kube(workers=2)
    except Exception as exc:  # the kubernetes library's config errors (kube.py is its only importer)
        return _error(progress, f"cannot load the Kubernetes configuration (KUBECONFIG or in-cluster): {exc}")
    try:
        progress.update(f"reading GoldRushPipeline {ns}/{name}")
        try:
            obj = await kube.get_pipeline_object(ns, name)
        except NotFound:
            return _error(progress, f"GoldRushPipeline {ns}/{name} not found")
        pipeline_id = (obj.get("status") or {}).get("pipelineId") or (
            (obj.get("metadata") or {}).get("annotations") or {}
        ).get(ANNOTATION_PIPELINE_ID)
        if not pipeline_id:
            return _error(progress, f"GoldRushPipeline {ns}/{name} has no remote pipeline yet")
        ref = (obj.get("spec") or {}).get("serviceKeySecretRef")
        key_ns = ns
        creds_ref = (obj.get("spec") or {}).get("credentialsRef")
        if creds_ref and not ref:
            ref, key_ns = await _credentials_key_ref(kube, ns, creds_ref, settings.operator_namespace)
            if ref is None:
                return 1
        if ref:
            try:
                key = (await kube.get_secret_data(key_ns, ref["name"])).get(ref["key"])
            except NotFound:
                key = None
            if not key:
                return _error(progress, f"service key Secret {ref['name']!r} key {ref['key']!r} not found in {key_ns}")
        else:
            key = ServiceKeySource(settings).get()
            if not key:
                return _error(progress, "no service key: set GOLDRUSH_SERVICE_KEY_FILE or GOLDRUSH_SERVICE_KEY")
        secrets = [key, *await _destination_secrets(kube, ns, obj)]
        scrub = Scrubber(secrets)
        async with GoldRushClient(settings.api_url, key, rate_limit=0) as client:
            progress.update(f"reading pipeline {pipeline_id} from the GoldRush API")
            try:
                if command == "logs":
                    logs = await client.get_logs(pipeline_id, secrets=secrets)
                    progress.done()
                    for pod in logs.pods:
                        print(f"==> {pod.pod} <==")
                        print(scrub(pod.logs))
                    return 0
                status = await client.get_status(pipeline_id, secrets=secrets)
                health = await client.get_destination_health(pipeline_id, secrets=secrets)
                before: PipelineMetrics | None = None
                metrics = await client.get_metrics(pipeline_id, secrets=secrets)
                if trend_seconds > 0:
                    before = metrics
                    await progress.countdown(trend_seconds, "reading the metrics again for their trend")
                    metrics = await client.get_metrics(pipeline_id, secrets=secrets)
            except GoldRushError as exc:
                return _error(progress, f"GoldRush API: {scrub(str(exc))}")
        progress.done()
        print(f"Name:         {ns}/{name}")
        print(f"Pipeline:     {pipeline_id}")
        print(f"Phase:        {status.status}")
        print(f"Replicas:     {status.ready}/{status.replicas} ready")
        print(f"Started:      {status.start_time or '-'}")
        verdict = "not probed yet" if health.healthy is None else "healthy" if health.healthy else "unhealthy"
        print(f"Destination:  {verdict}"
              + (f" ({scrub(health.last_error)})" if health.last_error else ""))
        print("Metrics:" + (f"      trend over {trend_seconds:g}s" if before is not None else ""))
        for line in metrics_table(metrics, before, arrows_for(sys.stdout)):
            print(line)
        return 0
    except KubeError as exc:
        return _error(progress, str(exc))
    finally:
        kube.close()


async def _credentials_key_ref(
    kube: Kube, namespace: str, creds_ref: dict[str, Any], operator_namespace: str
) -> tuple[dict[str, Any] | None, str]:
    """The Secret key reference and its namespace of the credentials object a pipeline names."""
    kind, name = str(creds_ref.get("kind")), str(creds_ref.get("name"))
    cluster = kind == KIND_CLUSTER_CREDENTIALS
    plural = PLURAL_CLUSTER_CREDENTIALS if cluster else PLURAL_CREDENTIALS
    try:
        creds = await kube.get_credentials_object(plural, None if cluster else namespace, name)
    except NotFound:
        print(f"error: {kind} {name!r} not found (spec.credentialsRef)", file=sys.stderr)
        return None, namespace
    ref = (creds.get("spec") or {}).get("serviceKeySecretRef") or {}
    return dict(ref), operator_namespace if cluster else namespace
