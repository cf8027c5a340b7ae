"""`goldrush-operator logs` and `describe`: live views of one object's remote pipeline, for people.

Called by `cli.main`. Reads the object and its Secrets through `kube.Kube`, then the API through
`api.GoldRushClient` with the object's own service key: its `serviceKeySecretRef`, the key of the credentials
object its `credentialsRef` names (a ClusterGoldRushCredentials' Secret in POD_NAMESPACE, default
goldrush-system), or the operator's.
"""

from __future__ import annotations

import sys
from typing import Any

from goldrush_operator.config import ServiceKeySource, Settings
from goldrush_operator.goldrush_api import GoldRushClient, GoldRushError
from goldrush_operator.kube import Kube, KubeError, NotFound, current_namespace
from goldrush_operator.resource import ANNOTATION_PIPELINE_ID
from goldrush_operator.resource_credentials import (
    KIND_CLUSTER_CREDENTIALS,
    PLURAL_CLUSTER_CREDENTIALS,
    PLURAL_CREDENTIALS,
)
from goldrush_operator.secret_values import scrub


async def inspect_command(command: str, name: str, namespace: str | None, settings: Settings) -> int:
    """Print logs or a description; returns the exit status (1 with a clear message on any problem)."""
    ns = namespace or current_namespace()
    try:
        kube = Kube(workers=2)
    except Exception as exc:  # the kubernetes library's config errors (kube.py is its only importer)
        print(f"error: cannot load the Kubernetes configuration (KUBECONFIG or in-cluster): {exc}", file=sys.stderr)
        return 1
    try:
        try:
            obj = await kube.get_pipeline_object(ns, name)
        except NotFound:
            print(f"error: GoldRushPipeline {ns}/{name} not found", file=sys.stderr)
            return 1
        pipeline_id = (obj.get("status") or {}).get("pipelineId") or (
            (obj.get("metadata") or {}).get("annotations") or {}
        ).get(ANNOTATION_PIPELINE_ID)
        if not pipeline_id:
            print(f"error: GoldRushPipeline {ns}/{name} has no remote pipeline yet", file=sys.stderr)
            return 1
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
                print(f"error: service key Secret {ref['name']!r} key {ref['key']!r} not found in {key_ns}",
                      file=sys.stderr)
                return 1
        else:
            key = ServiceKeySource(settings).get()
            if not key:
                print("error: no service key: set GOLDRUSH_SERVICE_KEY_FILE or GOLDRUSH_SERVICE_KEY",
                      file=sys.stderr)
                return 1
        async with GoldRushClient(settings.api_url, key, rate_limit=0) as client:
            try:
                if command == "logs":
                    logs = await client.get_logs(pipeline_id)
                    for pod in logs.pods:
                        print(f"==> {pod.pod} <==")
                        print(scrub(pod.logs, [key]))
                    return 0
                status = await client.get_status(pipeline_id)
                metrics = await client.get_metrics(pipeline_id)
                health = await client.get_destination_health(pipeline_id)
            except GoldRushError as exc:
                print(f"error: GoldRush API: {scrub(str(exc), [key])}", file=sys.stderr)
                return 1
        print(f"Name:         {ns}/{name}")
        print(f"Pipeline:     {pipeline_id}")
        print(f"Phase:        {status.status}")
        print(f"Replicas:     {status.ready}/{status.replicas} ready")
        print(f"Started:      {status.start_time or '-'}")
        print(f"Destination:  {'healthy' if health.healthy else 'unhealthy'}"
              + (f" ({scrub(health.last_error, [key])})" if health.last_error else ""))
        print("Metrics:")
        for field, value in metrics.model_dump(exclude={"uid"}).items():
            print(f"  {field + ':':22}{value}")
        return 0
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
