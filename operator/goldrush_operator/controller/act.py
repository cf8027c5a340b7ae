"""Act on the plan: bring the remote configuration to the spec, or say why nothing is written.

Called by `loop.Controller` after it has found (or created) the remote pipeline. `Act.apply_config` compares
the desired payload with the remote (`payload.compute_diff`), lets `decide.config_calls` plan the calls and
sends them (PATCH, then PUT status for pause/resume) through `external.External`; management policies without
Update and dry-run mode record what was not sent instead (`not_applied`). `not_found` and `would_create` are the
passes that end without a remote pipeline: no Create in the policies, and a create announced in dry-run mode.
"""

from __future__ import annotations

from typing import Any

from goldrush_operator import conditions as cond
from goldrush_operator.controller import decide, status
from goldrush_operator.controller.external import External, adopted_secrets_note, trusted_hashes
from goldrush_operator.controller.inputs import Desired
from goldrush_operator.controller.observe import Observer
from goldrush_operator.controller.outcome import InputProblem, Stall
from goldrush_operator.controller.ports import Metrics
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.controller.timing import Timing
from goldrush_operator.goldrush_api import GoldRushClient, NotFoundError
from goldrush_operator.payload import PayloadDiff, compute_diff
from goldrush_operator.resource import ANNOTATION_PIPELINE_ID
from goldrush_operator.state import NOTHING


class Act:
    """The configuration step of a pass; one per `loop.Controller`."""

    def __init__(
        self, external: External, writer: StatusWriter, metrics: Metrics, observer: Observer, timing: Timing,
    ) -> None:
        self.external, self.writer, self.metrics, self.observer = external, writer, metrics, observer
        self.timing = timing

    async def apply_config(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, remote: Any,
        applied: dict[str, str], created: bool, adopting: bool = False,
    ) -> bool | None:
        """Plan and act on the configuration; None when the remote is gone (recreate next pass).

        `adopting`: the object takes over this pipeline now (`external.trusted_hashes` says which secrets).
        """
        record = p.record
        if remote is None:
            remote = await self.external.fetch(client, pipeline_id, p.secrets)
            if remote is None:
                await self.observer.remote_gone(p, d, pipeline_id)
                return None
        if adopting:
            applied = trusted_hashes(d.resolved, remote.destination_config)
            record.pipeline_id, record.applied_hashes = pipeline_id, applied
            p.out["pipelineId"] = pipeline_id
            p.out["secrets"] = [u.to_status() for u in d.resolved.uses if u.field in applied]
            await self.external.event(p, "Adopted", f"adopted pipeline {pipeline_id}" + adopted_secrets_note(applied))
        remote_json = remote.model_dump(mode="json")
        # Secret values an object never applied cannot be compared (the API masks them): without Update they
        # count as unchanged instead of as a difference that could never be resolved.
        known = applied if applied or d.spec.allows("Update") else d.resolved.hashes
        diff = compute_diff(d.payload, remote_json, d.resolved.hashes, known)
        plan = decide.config_calls(pipeline_id, diff, d.spec, remote_json.get("status"))
        if plan.blocked or (client.dry_run and plan.calls):
            return self.not_applied(p, d, pipeline_id, plan)
        record.announced = NOTHING
        if not d.spec.allows("Update"):
            p.out["pipelineName"] = d.payload["name"]
            record.synced_generation = p.generation
            record.not_applied = (d.fingerprint(p.generation), None, "", None)  # in sync; secrets not comparable
            p.in_sync = True
            return True
        record.not_applied = None
        if diff.immutable:
            fields = ", ".join(f"{name} (remote {r!r}, spec {w!r})" for name, (w, r) in sorted(diff.immutable.items()))
            msg = f"remote pipeline {pipeline_id} differs in fields that cannot change: {fields}"
            raise InputProblem(Stall(cond.IMMUTABLE_FIELD_CHANGED, msg))
        if (diff.patch or diff.status is not None) and p.applied_generation() != p.generation and not created:
            status.update_pending(p, pipeline_id)
            await self.writer.write(p)  # what GitOps tools read while the write is under way
        try:
            await self._send(p, d, client, pipeline_id, diff, applied, created)
        except NotFoundError:  # a write answered 404: gone only if `GET /{id}/` says so too
            if await self.external.fetch(client, pipeline_id, p.secrets) is not None:
                raise  # the 404 is the write's own answer: a stall
            await self.observer.remote_gone(p, d, pipeline_id)  # deleted since it was read
            return None
        p.out["secrets"] = d.resolved.status_entries()
        p.out["pipelineName"] = d.payload["name"]
        record.synced_generation = p.generation
        p.in_sync = True
        return True

    async def _send(
        self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str, diff: PayloadDiff,
        applied: dict[str, str], created: bool,
    ) -> None:
        """The PATCH (with the Event that says why), then the pause/resume PUT."""
        if diff.patch:
            in_sync_before = p.applied_generation() == p.generation and d.resolved.hashes == applied
            rotated = sorted({u.name for u in d.resolved.uses if applied.get(u.field) != u.hash})
            await self.external.update(client, pipeline_id, diff.patch, p.secrets)
            fields = ", ".join(diff.changed_fields)
            if not created and in_sync_before:
                self.metrics.drift_corrected()
                await self.external.event(p, "DriftCorrected", f"corrected out-of-band changes to: {fields}")
            elif rotated and d.resolved.hashes != applied:
                self.metrics.secret_rotated()
                await self.external.event(p, "SecretRotated", f"applied new values from Secret(s) {', '.join(rotated)}")
            else:
                await self.external.event(p, "Updated", f"updated pipeline {pipeline_id}: {fields}")
        p.record.applied_hashes = d.resolved.hashes
        if diff.status is not None:
            await self.external.set_paused(p, client, pipeline_id, diff.status == "paused")

    def not_applied(self, p: Pass, d: Desired, pipeline_id: str, plan: decide.ConfigPlan) -> bool:
        """The remote differs and nothing is sent: the policies forbid it, or dry-run mode (announced)."""
        if plan.blocked:
            p.not_applied = (cond.UPDATE_NOT_ALLOWED,
                             f"remote pipeline {pipeline_id} differs from the spec in: {', '.join(plan.blocked)}; "
                             "not written: spec.managementPolicies do not include Update")
        else:
            p.not_applied = (cond.DRY_RUN, "dry run (GOLDRUSH_DRY_RUN): would send "
                             + "; ".join(c.describe() for c in plan.calls))
            p.dry_calls = list(plan.calls)
        p.remote_paused = plan.remote_status == "paused"
        p.record.synced_generation = None
        p.record.not_applied = (d.fingerprint(p.generation), *p.not_applied, p.remote_paused)
        p.in_sync = False
        return True

    async def not_found(self, p: Pass, d: Desired) -> tuple[float, str]:
        """Without Create and no remote pipeline to observe: say so and look again (at most every status poll)."""
        msg = (f"no remote pipeline named {d.payload['name']!r} in project {d.payload['project']!r} (and no "
               f"{ANNOTATION_PIPELINE_ID} annotation); spec.managementPolicies do not include Create")
        status.not_found(p, msg)
        p.out["phase"] = "PENDING"
        await self.external.warn_once(p, cond.NOT_FOUND, msg)
        await self.writer.write(p)
        return max(self.timing.intervals()[0], self.timing.settings.poll_status_max_seconds), "not_found"

    async def would_create(self, p: Pass, call: decide.Call) -> tuple[float, str]:
        """Dry run: the create is announced (once), not sent; nothing is marked on the object."""
        await self.external.announce(p, [call])
        msg = f"dry run (GOLDRUSH_DRY_RUN): would send {call.describe()}"
        for ctype in (cond.READY, cond.SYNCED):
            p.set(ctype, False, cond.DRY_RUN, msg)
        p.set(cond.RECONCILING, False, cond.DRY_RUN, "")
        p.out["phase"] = "PENDING"
        await self.writer.write(p)
        return self.timing.intervals()[0], "dry_run"
