"""The GoldRush side of the contract: observe, create (crash-safe, adopt), update, set paused, delete.

Called by `loop.Controller` (passes and deletion). Each write is fenced by crash points (`crash.STEPS`).
Rules (design.md section 5):
- finalizer: the operator's own (`goldrush.dev/finalizer`, not kopf's), added in the same patch as the intent
  mark (or alone before an adoption records an id), removed by `release` when the deletion is done;
- create: the intent mark (`goldrush.dev/create-pending` with the keyed hashes of the secrets it sends) is
  written before the POST, the id right after it (status first, then the annotation); a pending mark
  without an id is resolved by looking the pipeline up (name + project + topic, created after the mark),
  never by a second POST;
- name rule: a remote pipeline with the object's name and project that the object did not create or adopt
  is a `NameConflict` whatever its topic (`goldrush.dev/adopt: "true"` takes it over);
- adoption (`goldrush.dev/adopt: "true"`, by name or with `goldrush.dev/pipeline-id`) takes the remote over as
  it is: a secret field the remote already holds (masked, so its value cannot be compared) is taken to hold
  the referenced Secret's current value (`trusted_hashes`); its hash is recorded without a PATCH, and only a
  later change of the Secret is sent. A field the remote lacks, or holds unmasked with another value, is sent;
- update: one PATCH with only the changed fields; pause/resume: one PUT;
- management policies without Create: `find_existing` looks the pipeline up by name and project instead
  (`decide.lookup`); dry-run mode: `create_or_adopt` raises `WouldWrite` before the intent mark.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, Protocol, TypeVar

from goldrush_operator import conditions as cond
from goldrush_operator.controller import decide
from goldrush_operator.controller import status as rules
from goldrush_operator.controller.inputs import Desired
from goldrush_operator.controller.listing import Listings
from goldrush_operator.controller.outcome import InputProblem, Stall
from goldrush_operator.controller.ports import KubePort
from goldrush_operator.controller.status import Pass, StatusWriter
from goldrush_operator.crash import crash_point
from goldrush_operator.credentials import ResolvedSecrets, get_dotted
from goldrush_operator.goldrush_api import (
    ApiError,
    ConnectError,
    DryRunRefusedError,
    GoldRushClient,
    GoldRushError,
    MaskedSecretError,
    NotFoundError,
    Pipeline,
)
from goldrush_operator.kube import KubeError, NotFound
from goldrush_operator.resource import ANNOTATION_ADOPT, ANNOTATION_CREATE_PENDING, ANNOTATION_PIPELINE_ID, FINALIZER
from goldrush_operator.secret_values import MASK
from goldrush_operator.state import ObjectRecord

log = logging.getLogger("goldrush_operator.controller")

# How long after a POST's request timeout the API may still commit the create it received (an assumption:
# the API documents none; bench/README "B14's floor").
LANDING_MARGIN_SECONDS = 5.0
# Written with the create-pending mark: the keyed hashes of the secret values the POST sends, so that a
# pipeline adopted after an interrupted create is not PATCHed with the same secrets again.
ANNOTATION_CREATE_PENDING_SECRETS = "goldrush.dev/create-pending-secrets"
# Written with the create-pending mark: the remote name the POST sends. `spec.pipelineName` may change before an
# interrupted create is resolved; the pipeline that create left carries this name, not the new one.
ANNOTATION_CREATE_PENDING_NAME = "goldrush.dev/create-pending-name"
PENDING_ANNOTATIONS = (ANNOTATION_CREATE_PENDING, ANNOTATION_CREATE_PENDING_SECRETS, ANNOTATION_CREATE_PENDING_NAME)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> dt.datetime | None:
    """An aware datetime from an ISO 8601 string (status, annotations) or a parsed wire datetime; else None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def refused_for_sure(exc: GoldRushError) -> bool:
    """Whether a failed POST certainly created nothing: the API answered with an error below 500 (a 5xx to a
    write is an unknown outcome), or the request never left (no connection, a mask or dry-run refusal)."""
    if isinstance(exc, ApiError):
        return exc.status is not None and exc.status < 500
    return isinstance(exc, ConnectError | MaskedSecretError | DryRunRefusedError)


def _not_before_mark(items: list[Pipeline], pending: str) -> list[Pipeline]:
    """The pipelines an interrupted create marked at `pending` can have made: not created more than 5 s
    (clock skew between the operator and the API) before its mark; all of them when a time is unknown."""
    mark = parse_time(pending)
    if mark is None:
        return items
    floor = mark - dt.timedelta(seconds=5)
    return [i for i in items if (parse_time(i.created_at) or floor) >= floor]


class Dated(Protocol):
    """What the name rule reads of a listed pipeline (a `Pipeline`, or `name_audit`'s lighter record of one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def project(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime | None: ...


D = TypeVar("D", bound=Dated)


def keeps_the_name(other: Dated, ours: Dated) -> bool:
    """Whether `other`, of the same name and project, keeps the name rather than `ours` (this object's).

    `ours` keeps it only when it was created first for certain: the API gives creation times to the second,
    and a check may run before a pipeline created in the same second exists. So `other` keeps it unless
    `ours` is strictly older. Whoever was created later always sees the older one (its check's listing began
    after its own POST), so two pipelines never both stay; two of the same second that see each other both
    yield, and their objects' retries (backoff with jitter) let one create first.
    """
    mine, theirs = parse_time(ours.created_at), parse_time(other.created_at)
    return mine is None or theirs is None or not mine < theirs


def first_keeper(items: Iterable[D], ours: Dated) -> D | None:
    """Another listed pipeline of `ours`'s name and project (as the remote holds them: a rename may have followed
    the create) that keeps the name rather than `ours` (`keeps_the_name`); None when the name is `ours`'s."""
    return next((i for i in items if i.id != ours.id and i.name == ours.name and i.project == ours.project
                 and keeps_the_name(i, ours)), None)


def pending_hashes(annotations: Mapping[str, str]) -> dict[str, str]:
    try:
        parsed = json.loads(annotations.get(ANNOTATION_CREATE_PENDING_SECRETS) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def trusted_hashes(resolved: ResolvedSecrets, remote_config: Mapping[str, Any]) -> dict[str, str]:
    """On adoption: `{field: hash}` of the secret values the remote pipeline is taken to hold already.

    A masked remote value is trusted to be the Secret's value (the API never shows it, so nothing else can be
    known); an unmasked one only when it equals the Secret's value; an absent one is not (it must be sent).
    """
    out: dict[str, str] = {}
    for use in resolved.uses:
        found, value = get_dotted(remote_config, use.field)
        if found and value in (MASK, resolved.values.get(use.field)):
            out[use.field] = use.hash
    return out


def adopted_secrets_note(trusted: Mapping[str, str]) -> str:
    """The part of the `Adopted` Event that names the secret fields taken as already applied (names only)."""
    if not trusted:
        return ""
    return f"; secret fields {', '.join(sorted(trusted))} taken as holding the referenced Secrets' values"


class Wait(Exception):
    """The create cannot be decided yet (an earlier POST may still be in flight): look again after `delay`."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"wait {delay}s")
        self.delay = delay


class WouldWrite(Exception):
    """Dry-run mode: the pass would send `call` now (nothing was sent, nothing was marked)."""

    def __init__(self, call: decide.Call) -> None:
        super().__init__(call.describe())
        self.call = call


class External:
    """Remote operations of passes and deletions; one per controller (it shares the listings)."""

    def __init__(
        self, kube: KubePort, status: StatusWriter, *, request_timeout: float, fast: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._status = status
        self._request_timeout = request_timeout
        self._fast = fast
        self._clock = clock
        self.listings = Listings(clock)
        # (key id, name, project) -> the object whose create of that name is in flight in this process.
        self._creating: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.writer_since = clock()  # when this process last became a writer (start, or a Lease taken over)

    def became_writer(self) -> None:
        """This process just took over objects another process wrote (`handlers.take_over`)."""
        self.writer_since = self._clock()

    @staticmethod
    def pending_name(p: Pass) -> str | None:
        """The remote name an interrupted create of this object was sent with (None: not recorded)."""
        return p.record.pending_name or p.annotations.get(ANNOTATION_CREATE_PENDING_NAME) or None

    def create_may_land_for(self, record: ObjectRecord, pending: str) -> float:
        """Seconds during which a POST of the create marked `pending` may still land at the API (0: none can).

        A POST may land until the request timeout plus `LANDING_MARGIN_SECONDS` after it left. One sent by
        this process left before its create call ended (`record.create_call_ended`); one sent by another
        process (an earlier run, or the replica that held the Lease) left before this process became the
        object's writer (`writer_since`). The mark's own age bounds neither: a POST can wait for a rate-limit
        token, a concurrency slot or a Retry-After gate long after its mark was written.
        """
        own_call_ended = record.create_call_ended if record.create_pending == pending else None
        left = own_call_ended if own_call_ended is not None else self.writer_since
        return max(0.0, left + self._request_timeout + LANDING_MARGIN_SECONDS - self._clock())

    async def event(self, p: Pass, reason: str, message: str, *, warning: bool = False) -> None:
        """A scrubbed Event, also logged; a failure to record it is logged, never raised."""
        message = p.scrub(message)
        log.log(logging.WARNING if warning else logging.INFO, "%s: %s", reason, message)
        try:
            await self._kube.post_event(p.body, reason, message, warning=warning)
        except KubeError as exc:
            log.warning("could not record Event %s: %s", reason, exc)

    async def announce(self, p: Pass, calls: list[decide.Call]) -> None:
        """Dry run: one `Would*` Event per change not announced yet (the record remembers the changes)."""
        for call in calls:
            if call.key() not in p.record.announced:
                await self.event(p, call.reason, f"dry run (GOLDRUSH_DRY_RUN): would send {call.describe()}")
        p.record.announced = frozenset(call.key() for call in calls)

    async def warn_once(self, p: Pass, reason: str, message: str) -> None:
        """A Warning Event only when the failure reason changes (never one per poll)."""
        if p.record.last_event_reason != reason:
            p.record.last_event_reason = reason
            await self.event(p, reason, message, warning=True)

    # ------------------------------------------------------------------------------------------ create

    async def _patch_metadata(self, p: Pass, annotations: Mapping[str, str | None]) -> None:
        """Patch annotations and, unless the object carries it, add the finalizer in the same write.

        The finalizer list goes with the observed `resourceVersion` as precondition (another controller's
        finalizers stay); a 409 raises `Wait`: look again once the watch has delivered the newer object.
        """
        extra: dict[str, Any] = {}
        if not p.record.finalized:
            meta = p.body.get("metadata") or {}
            extra = {"finalizers": [*(meta.get("finalizers") or []), FINALIZER],
                     "resource_version": str(meta.get("resourceVersion") or "") or None}
        try:
            await self._kube.patch_annotations(p.namespace, p.name, annotations, **extra)
        except KubeError as exc:
            if exc.status == 409:
                raise Wait(0.5) from None
            raise
        p.record.finalized = True

    async def ensure_finalizer(self, p: Pass) -> None:
        """Add the finalizer before anything remote is recorded on the object (create, adopt, observe).

        The create adds it with its intent mark instead (`_patch_metadata`).
        """
        if not p.record.finalized:
            await self._patch_metadata(p, {})

    async def release(self, p: Pass) -> None:
        """Remove the finalizer (the deletion is done): the object goes away. Gone already counts as done."""
        finalizers = list((p.body.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        with contextlib.suppress(NotFound):
            await self._kube.remove_finalizer(p.namespace, p.name, finalizers.index(FINALIZER), FINALIZER)
        p.record.finalized = False

    async def record_id(
        self, p: Pass, pipeline_id: str, secrets: list[dict[str, str]] | None, *, complete: bool = False
    ) -> None:
        """Record the id right after create/adopt: status (id + secret hashes) first, then the annotations.

        A crash between the two writes leaves a complete record in status; the next pass only finishes the
        annotations (`finish_record`). The other order would lose the hashes and cost a redundant PATCH.
        `complete`: the pass's whole status so far (conditions included) goes with the id, so that the pass's
        own status write after it finds nothing left to change.
        """
        await self.ensure_finalizer(p)  # adoption paths; a create added it with its intent mark
        fields: dict[str, Any] = {"pipelineId": pipeline_id}
        if secrets is not None:
            fields["secrets"] = secrets
        p.out.update(fields)
        if complete:
            fields = self._status.full(p)
        await self._status.record(p, fields)
        crash_point("create.after-record-status")
        await self.finish_record(p, pipeline_id)

    async def finish_record(self, p: Pass, pipeline_id: str) -> None:
        """Annotate the id and drop the create-pending marks."""
        await self._kube.patch_annotations(
            p.namespace, p.name,
            {ANNOTATION_PIPELINE_ID: pipeline_id, **dict.fromkeys(PENDING_ANNOTATIONS)},
        )
        p.record.pipeline_id = pipeline_id
        p.record.create_pending = p.record.pending_hashes = p.record.pending_name = None

    async def forget_id(self, p: Pass, pipeline_id: str, message: str) -> None:
        """The object has no remote pipeline any more (it vanished out of band, or this object deleted its own
        under the name rule): the status describes none (`status.vanished`), the id leaves the cached listings
        (the object's next create must not meet it), the annotation, the status and the record."""
        rules.vanished(p, message)
        self.listings.forget(pipeline_id)
        await self._kube.patch_annotations(p.namespace, p.name, {ANNOTATION_PIPELINE_ID: None})
        await self._status.record(p, {"pipelineId": None, "phase": "PENDING"})
        record = p.record
        record.forgotten_id = pipeline_id
        record.pipeline_id = record.applied_hashes = record.synced_generation = record.not_applied = None
        record.name_check = None
        record.last_status = None

    async def check_name_kept(self, p: Pass, d: Desired, client: GoldRushClient, pipeline_id: str) -> None:
        """The name rule once more after this object's create, on a listing begun after its POST returned.

        The listing a create consults may lack a pipeline of the same name and project: one made within the
        listing's age by hand, by another client, or by another replica (the in-process claim covers only this
        process's creates). The pipeline created first keeps the name (`keeps_the_name`). When that is another
        one, this object's own is deleted, and the object stalls with `NameConflict` as if it had seen the other
        before creating (its next create attempt meets it). Reads a kept listing when one began late enough;
        fetches one only while the key's writes are idle (a burst's POSTs go first), else a later pass looks.
        """
        record = p.record
        since = record.name_check
        if since is None:
            return
        items = self.listings.begun_after(d.key_id, since)
        if items is None:
            if client.writes_flowing():
                return
            items = await self.listings.get(client, d.key_id, fresh=False, since=since)
        ours = next((i for i in items if i.id == pipeline_id), None)
        first = None if ours is None else first_keeper(items, ours)
        if ours is None or first is None:  # the name is this object's (or it is not listed: the status reads see)
            record.name_check = None
            return
        await self._yield_name(p, client, ours, first, recorded=True)

    async def _yield_name(
        self, p: Pass, client: GoldRushClient, ours: Pipeline, first: Pipeline, *, recorded: bool
    ) -> NoReturn:
        """The name rule's verdict after a create: `first` keeps the name, so this object's own pipeline (`ours`)
        is deleted, the object forgets it (its id when `recorded`, else the create-pending marks of the
        interrupted create that left it), one Warning Event names both, and it stalls `NameConflict` (its next
        create attempt meets `first` before any POST). Always raises."""
        name, project = ours.name, ours.project
        msg = (f"a pipeline named {name!r} in project {project!r} ({first.id}), not created by this object, "
               f"was created no later than the one this object created ({ours.id}), which was deleted: one "
               f"name, one pipeline; set spec.pipelineName to another name, or {ANNOTATION_ADOPT}: \"true\" "
               f"to take {first.id} over")
        with contextlib.suppress(NotFoundError):
            await client.delete_pipeline(ours.id, secrets=p.secrets)
        if recorded:
            await self.forget_id(p, ours.id, msg)
        else:
            self.listings.forget(ours.id)
            await self._drop_pending(p)
        await self.event(p, cond.NAME_CONFLICT, msg, warning=True)
        p.record.last_event_reason = cond.NAME_CONFLICT
        raise InputProblem(Stall(cond.NAME_CONFLICT, msg))

    async def create_or_adopt(self, p: Pass, d: Desired, client: GoldRushClient) -> tuple[Pipeline, bool]:
        """Create the remote pipeline exactly once, or adopt the one an interrupted attempt created.

        Returns (remote, created); raises `Wait` while undecided and `InputProblem` (a stall) on a
        conflict.
        """
        record = p.record
        pending = record.create_pending or p.annotations.get(ANNOTATION_CREATE_PENDING)
        name, project = d.payload["name"], d.payload["project"]
        items = await self.listings.get(client, d.key_id, fresh=bool(pending))
        named = [i for i in items if i.name == name and i.project == project]
        if pending:
            sent_as = self.pending_name(p) or name
            same = _not_before_mark([i for i in items if i.name == sent_as and i.project == project
                                     and i.topic == d.payload["topic"]], pending)
            # The listing that shows what the interrupted create left shows every pipeline created before it: the
            # name check that create's pass never ran is made on it, before the pipeline is adopted.
            if len(same) == 1 and (first := first_keeper(items, same[0])) is not None:
                await self._yield_name(p, client, same[0], first, recorded=False)
            found = await self._resolve_pending(p, d, pending, same)
            if found is not None:
                return found
            # Nothing this object sent landed: any pipeline of that name and project is someone else's.
        if named:
            if p.annotations.get(ANNOTATION_ADOPT) == "true" and len(named) == 1:
                trusted = trusted_hashes(d.resolved, named[0].destination_config)
                await self.record_id(p, named[0].id, [u.to_status() for u in d.resolved.uses if u.field in trusted])
                record.applied_hashes = trusted
                await self.event(p, "Adopted", f"adopted existing pipeline {named[0].id} by name"
                                 + adopted_secrets_note(trusted))
                return named[0], False
            ids = ", ".join(sorted(i.id for i in named))
            msg = (f"a pipeline named {name!r} in project {project!r} already exists ({ids}) and was not created "
                   f"by this object; set {ANNOTATION_ADOPT}: \"true\" to take it over")
            await self.warn_once(p, cond.NAME_CONFLICT, msg)
            raise InputProblem(Stall(cond.NAME_CONFLICT, msg))
        if client.dry_run:
            raise WouldWrite(decide.create_call(d.payload))
        claim = (d.key_id, name, project)
        holder = self._creating.get(claim)
        if holder is not None and holder != record.key:
            msg = (f"object {holder[0]}/{holder[1]} is creating a pipeline named {name!r} in project {project!r}; "
                   "two objects cannot share one remote pipeline (set spec.pipelineName)")
            await self.warn_once(p, cond.NAME_CONFLICT, msg)
            raise InputProblem(Stall(cond.NAME_CONFLICT, msg))
        self._creating[claim] = record.key
        try:
            return await self._create(p, d, client)
        finally:
            self._creating.pop(claim, None)

    async def _create(self, p: Pass, d: Desired, client: GoldRushClient) -> tuple[Pipeline, bool]:
        """Mark the intent, POST once, record the id; the new pipeline joins the key's cached listing."""
        record = p.record
        crash_point("create.before-intent")
        mark = now_iso()
        marks = {ANNOTATION_CREATE_PENDING: mark,
                 ANNOTATION_CREATE_PENDING_SECRETS: json.dumps(d.resolved.hashes, sort_keys=True),
                 ANNOTATION_CREATE_PENDING_NAME: d.payload["name"]}
        await self._patch_metadata(p, marks)
        record.create_pending, record.pending_hashes = mark, dict(d.resolved.hashes)
        record.pending_name = d.payload["name"]
        crash_point("create.after-intent")
        try:
            remote = await client.create_pipeline(d.payload, secrets=p.secrets)
        except GoldRushError as exc:
            if refused_for_sure(exc):
                await self._drop_pending(p)
            raise
        finally:
            record.create_call_ended = self._clock()
        crash_point("create.after-post")
        self.listings.created(d.key_id, remote)  # later creates of the same name meet it before the next listing
        record.name_check = record.create_call_ended
        # The id goes into the first full status of the new pipeline: one status write, not two.
        rules.created(p, remote.id)
        p.out.update(createdAt=now_iso(), pipelineName=d.payload["name"])
        await self.record_id(p, remote.id, d.resolved.status_entries(), complete=True)
        crash_point("create.after-record")
        await self.event(p, "Created", f"created pipeline {remote.id}")
        record.applied_hashes = d.resolved.hashes
        return remote, True

    async def _drop_pending(self, p: Pass) -> None:
        """The POST was refused (nothing created, and no earlier attempt can still land: a create is sent only
        once they cannot): the intent mark goes, so it never makes another object's pipeline look like this
        one's (adopted later, or deleted with this object)."""
        try:
            await self._kube.patch_annotations(p.namespace, p.name, dict.fromkeys(PENDING_ANNOTATIONS))
        except KubeError as exc:  # the mark stays; the name rule still guards what it could match
            log.warning("could not drop the create-pending mark of %s/%s: %s", p.namespace, p.name, exc)
            return
        p.record.create_pending = p.record.pending_hashes = p.record.pending_name = None

    async def find_existing(self, p: Pass, d: Desired, client: GoldRushClient) -> Pipeline | None:
        """Without Create: the pipeline with the object's name and project, recorded as its id; None if none.

        Raises `InputProblem` when several match, or when one matches, Update is allowed and the object
        lacks the adopt annotation (the name rule: writes would follow).
        """
        name, project = d.payload["name"], d.payload["project"]
        named = [i for i in await self.listings.get(client, d.key_id, fresh=False)
                 if i.name == name and i.project == project]
        verdict = decide.lookup(named, d.spec, p.annotations.get(ANNOTATION_ADOPT) == "true")
        if verdict == "not-found":
            return None
        if verdict != "observe":
            ids = ", ".join(sorted(i.id for i in named))
            msg = (f"several pipelines named {name!r} in project {project!r} ({ids}); set {ANNOTATION_PIPELINE_ID}"
                   if verdict == "ambiguous" else
                   f"a pipeline named {name!r} in project {project!r} already exists ({ids}) and was not "
                   f"adopted by this object; set {ANNOTATION_ADOPT}: \"true\" to take it over")
            await self.warn_once(p, cond.NAME_CONFLICT, msg)
            raise InputProblem(Stall(cond.NAME_CONFLICT, msg))
        await self.record_id(p, named[0].id, None)
        verb = "adopted" if d.spec.allows("Update") else "observing"
        await self.event(p, "Adopted" if d.spec.allows("Update") else "Observed",
                         f"{verb} existing pipeline {named[0].id} found by name and project")
        return named[0]

    async def _resolve_pending(
        self, p: Pass, d: Desired, pending: str, same: list[Pipeline]
    ) -> tuple[Pipeline, bool] | None:
        """Adopt what an interrupted create left (`same`: the listing's pipelines with the object's name,
        project and topic, created at most 5 s before the mark); None when it never landed (then the name rule
        decides, as for any create)."""
        if len(same) == 1:
            record = p.record
            sent = record.pending_hashes if record.pending_hashes is not None else pending_hashes(p.annotations)
            await self.record_id(p, same[0].id, d.resolved.status_entries() if sent == d.resolved.hashes else None)
            record.applied_hashes = sent
            await self.event(p, "Adopted", f"found pipeline {same[0].id} created by an interrupted attempt")
            return same[0], False
        if len(same) > 1:
            ids = ", ".join(sorted(i.id for i in same))
            msg = f"an interrupted create left several matching pipelines ({ids}); set {ANNOTATION_PIPELINE_ID}"
            await self.warn_once(p, cond.CREATE_INCOMPLETE, msg)
            raise InputProblem(Stall(cond.CREATE_INCOMPLETE, msg))
        if self.create_may_land_for(p.record, pending) > 0:
            raise Wait(self._fast)  # an earlier POST may still land: look again before deciding
        return None

    # ------------------------------------------------------------------------------------------ update

    async def update(
        self, client: GoldRushClient, pipeline_id: str, patch: Mapping[str, Any], secrets: Iterable[str] = (),
    ) -> Pipeline:
        crash_point("update.before-patch")
        remote = await client.update_pipeline(pipeline_id, patch, secrets=secrets)
        crash_point("update.after-patch")
        return remote

    async def set_paused(self, p: Pass, client: GoldRushClient, pipeline_id: str, paused: bool) -> None:
        step = "pause" if paused else "resume"
        crash_point(f"{step}.before-put")
        await client.set_status(pipeline_id, "paused" if paused else "running", secrets=p.secrets)
        crash_point(f"{step}.after-put")
        await self.event(p, "Paused" if paused else "Resumed", f"{step}d pipeline {pipeline_id}")

    # ------------------------------------------------------------------------------------------ delete

    async def find_interrupted(self, client: GoldRushClient, key_id: str, name: str, project: str,
                               topic: str, pending: str) -> str | None:
        """The id of a pipeline an interrupted create may have left (deletion must not orphan it); one
        created well before the mark is someone else's and is never deleted."""
        items = [i for i in await self.listings.get(client, key_id, fresh=True)
                 if i.name == name and i.project == project and i.topic == topic]
        landed = _not_before_mark(items, pending)
        return landed[0].id if landed else None

    @staticmethod
    async def fetch(client: GoldRushClient, pipeline_id: str, secrets: Iterable[str] = ()) -> Pipeline | None:
        """`GET /{id}/`; None when the pipeline is gone. Every "is it really gone?" asks this: a 404 from another
        route (`/status/`, a write) may be that route's own answer. `secrets`: scrubbed from error text."""
        try:
            return await client.get_pipeline(pipeline_id, secrets=secrets)
        except NotFoundError:
            return None

    async def delete(
        self, client: GoldRushClient, pipeline_id: str, *, already_sent: bool, secrets: Iterable[str] = ()
    ) -> bool:
        """Send DELETE once; True when the pipeline is gone (404 counts as gone)."""
        if not already_sent:
            crash_point("delete.before-delete")
            with contextlib.suppress(NotFoundError):
                await client.delete_pipeline(pipeline_id, secrets=secrets)
            crash_point("delete.after-delete")
        return await self.fetch(client, pipeline_id, secrets) is None
