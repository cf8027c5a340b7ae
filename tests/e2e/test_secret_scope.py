"""E2E: only referenced Secrets reach the operator. A canary value in an unreferenced Secret (in the watched
namespace itself) is never in the operator's debug log, and the operator's own request log to the apiserver
shows Secrets listed and watched as metadata only and read (GET) only by the names pipelines reference;
rotation of a referenced Secret still reaches the API within seconds."""

from __future__ import annotations

import re
from collections.abc import Callable

from pipelines import pipeline_manifest, secret_manifest, wait_phase, writes

from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

UNRELATED_CANARY = "unrelated-canary-7f3a9c1e"


def test_unreferenced_secret_values_never_enter_the_operator(
    kubectl: Kubectl, sim: SimProcess, start_operator: Callable[..., OperatorProcess]
) -> None:
    kubectl.apply(secret_manifest("unrelated", {"token": UNRELATED_CANARY}))
    kubectl.apply(secret_manifest())  # "dest", referenced
    operator = start_operator(env={"GOLDRUSH_LOG_LEVEL": "DEBUG"})
    kubectl.apply(pipeline_manifest("p1"))
    wait_phase(kubectl, "p1", "RUNNING", ready="True")
    for i in range(3):  # unrelated churn: no read, no wake-up
        kubectl.apply(secret_manifest("unrelated", {"token": f"{UNRELATED_CANARY}-{i}"}))
    kubectl.apply(secret_manifest("dest", {"password": "rotated-password-1"}))
    wait_for(lambda: len(writes(sim, "patch")) == 1, 20, message="the rotation PATCH")
    operator.stop()
    log = operator.log

    assert UNRELATED_CANARY not in log
    gets = set(re.findall(r"GET secret [^/\s]+/(\S+)", log))
    assert gets == {"dest"}, gets
    collection = re.findall(r"GET (/api/v1/(?:namespaces/[^/]+/)?secrets\?\S*) \(Accept: (\S+)\)", log)
    assert collection, "the operator's request log shows no Secret list or watch"
    assert all(accept.startswith("PartialObjectMetadata") for _, accept in collection), collection
    assert any("watch=true" in path for path, _ in collection)
    # Exactly one PATCH, carrying the new value only to the API.
    assert len(writes(sim, "patch")) == 1
