"""`goldrush-operator import` (and `kubectl goldrush import`): list, filter, convert, write; progress on stderr.

`add_arguments()` declares the sub-command's flags (called by `cli._build_parser`); `run()` executes it
(called by `cli.main`). The conversion itself is `importer.import_pipeline` (pure); this module does the I/O:

1. lists every pipeline the service key sees (all pages; `GOLDRUSH_API_URL`, `GOLDRUSH_SERVICE_KEY_FILE` or
   `GOLDRUSH_SERVICE_KEY`), with a progress bar on a terminal and a line every few seconds otherwise;
2. derives object names from the whole listing (so that filters never change a name), then filters by
   `--project`, `--name` (glob on the remote name) and leaves out pipelines that a GoldRushPipeline in the
   cluster already manages (its `goldrush.dev/pipeline-id`), unless `--include-managed`; a pipeline whose name is
   taken in the target namespace by an object of another pipeline is refused (applying would re-point it);
3. writes the manifests to stdout or, with `-o DIR`, one file per pipeline (`DIR/<name>.yaml`), and a summary
   with the Secrets to create on stderr. No secret value is ever read from anywhere, so none can be written.

Exit status: 0 when every selected pipeline was imported, 1 when some could not be expressed exactly (listed
on stderr, left out of the output) or on an error, 2 on bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from goldrush_operator.config import ServiceKeySource, Settings

if TYPE_CHECKING:
    from goldrush_operator.goldrush_api import Pagination
    from goldrush_operator.importer import Imported

PROGRESS_LINE_SECONDS = 2.0
BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `import` (kubectl-like where kubectl has the same idea)."""
    parser.add_argument("--namespace", "-n", default=None, metavar="NS",
                        help="namespace of the generated objects (default: the kubeconfig context's)")
    parser.add_argument("--project", action="append", default=[], metavar="PROJECT",
                        help="only pipelines of this GoldRush project (repeatable)")
    parser.add_argument("--name", action="append", default=[], metavar="PATTERN",
                        help="only pipelines whose remote name matches this glob, e.g. 'prod-*' (repeatable)")
    parser.add_argument("--observe", action="store_true",
                        help='write managementPolicies: ["Observe"]: mirror the pipelines, never write to them')
    parser.add_argument("--output", "-o", default=None, metavar="DIR",
                        help="write one file per pipeline into DIR (created if missing) instead of stdout")
    parser.add_argument("--deletion-policy", choices=("Delete", "Orphan"), default=None,
                        help="spec.deletionPolicy of the generated objects (default: the CRD's, Delete)")
    parser.add_argument("--service-key-secret", default=None, metavar="SECRET/KEY",
                        help="write spec.serviceKeySecretRef naming this Secret key (default: the operator's key)")
    parser.add_argument("--include-managed", action="store_true",
                        help="also import pipelines that a GoldRushPipeline in the cluster already manages")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


class Progress:
    """Listing progress on stderr: a redrawn bar on a terminal, otherwise a line every few seconds."""

    def __init__(self, stream: IO[str], *, tty: bool | None = None, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic, every: float = PROGRESS_LINE_SECONDS) -> None:
        self._stream, self._quiet, self._clock, self._every = stream, quiet, clock, every
        self._tty = stream.isatty() if tty is None else tty
        self._last = -1e9
        self.total: int | None = None
        self.done = 0

    def page(self, pagination: Pagination | None) -> None:
        """A page header arrived: remember the total the API reports."""
        if pagination is not None and pagination.total_count is not None:
            self.total = pagination.total_count

    def item(self) -> None:
        self.done += 1
        self._show(final=False)

    def finish(self) -> None:
        self._show(final=True)

    def _text(self) -> str:
        if self.total:
            return f"{self.done}/{max(self.total, self.done)}"
        return str(self.done)

    def _show(self, *, final: bool) -> None:
        if self._quiet:
            return
        now = self._clock()
        if self._tty:
            if not final and now - self._last < 0.1:
                return
            if self.total:
                filled = BAR_WIDTH if final else BAR_WIDTH * self.done // max(self.total, self.done)
                line = f"listing pipelines [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._text()}"
            else:  # the API did not say how many: a counter
                line = f"listing pipelines: {self._text()}"
            self._stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self._stream.write(f"listed {self.done} pipelines\n")
        elif now - self._last >= self._every:
            self._stream.write(f"listing pipelines: {self._text()}\n")
        else:
            return
        self._last = now
        self._stream.flush()


def _service_key_ref(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    name, sep, key = text.partition("/")
    if not (sep and name and key):
        raise ValueError(f"--service-key-secret must be SECRET/KEY, got {text!r}")
    return name, key


def matches(remote: dict[str, Any], projects: Sequence[str], patterns: Sequence[str]) -> bool:
    """The `--project` and `--name` filters (each repeatable: any of its values matches)."""
    if projects and remote.get("project") not in projects:
        return False
    return not patterns or any(fnmatch.fnmatchcase(str(remote.get("name") or ""), p) for p in patterns)


async def _cluster_objects(namespace: str, err: IO[str]) -> list[dict[str, Any]] | None:
    """`metadata` of the GoldRushPipelines (all namespaces, else `namespace`); None when they cannot be listed."""
    from goldrush_operator.kube import Kube, KubeError

    try:
        kube = Kube(workers=1)
    except Exception as exc:  # the kubernetes library's config errors (kube.py is its only importer)
        err.write(f"warning: no Kubernetes configuration ({type(exc).__name__}); pipelines that are already "
                  "managed cannot be left out (--include-managed to silence)\n")
        return None
    try:
        try:
            return await kube.list_pipeline_metadata(())
        except KubeError as exc:
            if exc.status != 403:
                raise
            metas = await kube.list_pipeline_metadata((namespace,))  # allowed to list one namespace only
            err.write(f"note: only namespace {namespace} was checked for pipelines that are already managed "
                      "(listing all namespaces is forbidden)\n")
            return metas
    except KubeError as exc:
        err.write(f"warning: cannot list GoldRushPipelines ({exc}); pipelines that are already managed "
                  "cannot be left out (--include-managed to silence)\n")
        return None
    finally:
        kube.close()


def managed_ids(metas: Sequence[dict[str, Any]]) -> set[str]:
    """Pipeline ids recorded on GoldRushPipeline objects (annotation `goldrush.dev/pipeline-id`)."""
    from goldrush_operator.resource import ANNOTATION_PIPELINE_ID

    return {str(v) for m in metas if (v := (m.get("annotations") or {}).get(ANNOTATION_PIPELINE_ID))}


async def _list(settings: Settings, key: str, progress: Progress) -> list[dict[str, Any]]:
    from goldrush_operator.goldrush_api import GoldRushClient

    items: list[dict[str, Any]] = []
    async with GoldRushClient(settings.api_url, key, rate_limit=settings.rate_limit,
                              timeout=settings.request_timeout) as client:
        async for pipeline in client.list_pipelines(on_page=progress.page):
            items.append(pipeline.model_dump(mode="json"))
            progress.item()
    progress.finish()
    return items


def _write(items: Sequence[Imported], output: str | None, out: IO[str]) -> None:
    from goldrush_operator.importer import render, render_all

    if output is None:
        if items:
            out.write(render_all(items))
        return
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        (directory / f"{item.name}.yaml").write_text(render(item))


def _summary(items: Sequence[Imported], skipped_managed: int, failed: int, output: str | None, err: IO[str]) -> None:
    where = f" into {output}" if output else ""
    err.write(f"imported {len(items)} pipelines{where}")
    if skipped_managed:
        err.write(f"; left out {skipped_managed} already managed by a GoldRushPipeline")
    if failed:
        err.write(f"; {failed} could not be imported exactly (see above)")
    err.write("\n")
    with_secrets = [i for i in items if i.secret_name]
    if with_secrets:
        err.write("Create these Secrets (values are never exported) before or after applying; until they exist "
                  "the objects wait with reason SecretNotFound and send nothing:\n")
        for item in with_secrets:
            keys = ", ".join(k.key for k in item.secret_keys)
            err.write(f"  {item.namespace}/{item.secret_name}: {keys}\n")


async def import_pipelines(args: argparse.Namespace, settings: Settings, out: IO[str], err: IO[str]) -> int:
    """The whole command; returns the exit status."""
    from goldrush_operator.goldrush_api import GoldRushError
    from goldrush_operator.importer import NotImportable, Options, import_pipeline, object_names
    from goldrush_operator.kube import current_namespace
    from goldrush_operator.secret_values import scrub

    try:
        options = Options(namespace=args.namespace or current_namespace(), observe=args.observe,
                          deletion_policy=args.deletion_policy,
                          service_key_ref=_service_key_ref(args.service_key_secret))
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return 2
    key = ServiceKeySource(settings).get()
    if not key:
        err.write("error: no service key: set GOLDRUSH_SERVICE_KEY_FILE or GOLDRUSH_SERVICE_KEY\n")
        return 2
    progress = Progress(err, quiet=args.quiet)
    try:
        remotes = await _list(settings, key, progress)
    except GoldRushError as exc:
        err.write(f"\nerror: GoldRush API: {scrub(str(exc), [key])}\n")
        return 1
    names = object_names(((r["id"], str(r.get("name") or "")) for r in remotes), options.namespace)
    selected = [r for r in remotes if matches(r, args.project, args.name)]
    metas = [] if args.include_managed else (await _cluster_objects(options.namespace, err) or [])
    managed = managed_ids(metas)
    taken = {str(m.get("name")) for m in metas if m.get("namespace") == options.namespace}
    skipped = [r for r in selected if r["id"] in managed]
    items: list[Imported] = []
    failed = 0
    for remote in sorted((r for r in selected if r["id"] not in managed), key=lambda r: names[r["id"]]):
        try:
            if names[remote["id"]] in taken:  # applying would take that object over for another pipeline
                raise NotImportable(remote["id"], [
                    f"a GoldRushPipeline {options.namespace}/{names[remote['id']]} already exists for another "
                    "pipeline; import into another namespace"])
            items.append(import_pipeline(remote, names[remote["id"]], options))
        except NotImportable as exc:
            failed += 1
            err.write(f"skipped {exc.pipeline_id} {remote.get('name')!r}: cannot be expressed exactly:\n")
            err.writelines(f"  - {problem}\n" for problem in exc.problems)
    _write(items, args.output, out)
    _summary(items, len(skipped), failed, args.output, err)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Entry point from `cli.main`."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"goldrush-operator: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(import_pipelines(args, settings, sys.stdout, sys.stderr))
