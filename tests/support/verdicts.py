"""Argo CD's and Flux kstatus's verdicts on a live object, and whether the two agree.

Argo CD's verdict is deploy/argocd/health.lua run by Argo CD's own Go code (`support.argocd`); kstatus's is
`sigs.k8s.io/cli-utils` kstatus, which Flux uses (`support.kstatus`). The two vocabularies map as
`AGREEMENT` says:

| Argo CD     | kstatus                 | why                                                                   |
|-------------|-------------------------|-----------------------------------------------------------------------|
| Healthy     | Current                 | reconciled and working                                                |
| Progressing | InProgress, Terminating | on its way; Argo CD shows an object being deleted as Progressing      |
| Degraded    | Failed                  | needs a human (kstatus: `Stalled=True`)                               |
| Suspended   | Current, InProgress     | kstatus has no paused state: a pipeline paused by `spec.paused` and   |
|             |                         | reconciled is Current; an object under the pause-reconciliation       |
|             |                         | annotation has `Ready=False ReconcilePaused`, so InProgress (nothing  |
|             |                         | reconciles it; Flux waits, as for any object no controller serves)    |
| Missing     | NotFound                | the object does not exist                                             |
| Unknown     | Unknown                 | no verdict                                                            |

Callers: tests/unit/test_argocd_health.py, and the e2e tests that record snapshots of live objects into
deploy/argocd/testdata/ and check that both tools agree on each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from support import argocd, kstatus

AGREEMENT: dict[str, frozenset[str]] = {
    "Healthy": frozenset({"Current"}),
    "Progressing": frozenset({"InProgress", "Terminating"}),
    "Degraded": frozenset({"Failed"}),
    "Suspended": frozenset({"Current", "InProgress"}),
    "Missing": frozenset({"NotFound"}),
    "Unknown": frozenset({"Unknown"}),
}


@dataclass(frozen=True)
class Verdicts:
    """Both tools' results on one object: `argo` is `{"status", "message", "error"}` (support.argocd),
    `kstatus` is `{"status", "message", "conditions"}` (support.kstatus)."""

    argo: dict[str, str]
    kstatus: dict[str, Any]

    @property
    def agree(self) -> bool:
        return agree(self.argo, self.kstatus)


def _status(verdict: str | Mapping[str, Any]) -> str:
    return verdict if isinstance(verdict, str) else str(verdict["status"])


def agree(argo: str | Mapping[str, Any], kstatus_verdict: str | Mapping[str, Any]) -> bool:
    """True when Argo CD's status (or its result dict) and kstatus's say the same thing (see `AGREEMENT`)."""
    return _status(kstatus_verdict) in AGREEMENT.get(_status(argo), frozenset())


def verdicts_many(objects: list[dict[str, Any]]) -> list[Verdicts]:
    """Both verdicts on each object, in order (one Argo CD probe process for all of them)."""
    argo_bin, kstatus_bin = argocd.ensure_binary(), kstatus.ensure_binary()
    argo = argocd.compute_many(argo_bin, objects)
    return [Verdicts(a, kstatus.compute(kstatus_bin, obj)) for a, obj in zip(argo, objects, strict=True)]


def verdicts(obj: dict[str, Any]) -> Verdicts:
    """Both verdicts on one live object (a dict as `kubectl get -o json` prints it)."""
    return verdicts_many([obj])[0]
