"""Command line entry point `goldrush-operator` (console script).

Sub-commands:
- `run` starts the operator (kopf) with the settings from the `GOLDRUSH_*` environment variables;
- `crd` prints the CustomResourceDefinitions generated from the pydantic models (pipelines, credentials);
- `logs NAME [-n NS]` prints the pipeline's recent worker logs from the API;
- `describe NAME [-n NS]` prints live status, metrics and destination health from the API;
- `import [-n NS] [--project P] [--name GLOB] [--observe] [-o DIR]` writes manifests that adopt the pipelines
  the service key sees (`import_command`).
- `plan -f FILE|DIR|- [-n NS] [-o text|json] [--delete]` prints the API calls the operator would make for the
  manifests, read-only (`plan.py`); exit status 2 when changes are pending, 0 when none, 1 on error.
`logs` and `describe` use the object's credentials (its `serviceKeySecretRef` or `credentialsRef`, else the
operator's key).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from goldrush_operator import __version__, import_command
from goldrush_operator.config import LeaseSettings, ServiceKeySource, Settings
from goldrush_operator.logcontext import current_object

if TYPE_CHECKING:
    from goldrush_operator.election import Election
    from goldrush_operator.kube import Kube
    from goldrush_operator.metrics import PrometheusMetrics
    from goldrush_operator.state import Store


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goldrush-operator",
        description="Kubernetes operator for GoldRush (Covalent) pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"goldrush-operator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{run,crd,plan,logs,describe,import}")
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable); default: GOLDRUSH_NAMESPACES or all")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.add_argument("--standalone", action="store_true",
                     help="accepted for clarity: kopf always runs standalone (no kopf peering); replicas "
                          "coordinate through Leases (GOLDRUSH_LEADER_ELECTION)")
    run.add_argument("--liveness", metavar="URL", default=None,
                     help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz (default: GOLDRUSH_HEALTH_PORT)")
    sub.add_parser("crd", help="print the generated CustomResourceDefinitions (YAML)")
    plan = sub.add_parser("plan", help="print the API calls the operator would make for manifests (read-only)")
    plan.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
                      help="manifest file, directory or - for stdin (repeatable)")
    plan.add_argument("--namespace", "-n", default=None, help="namespace of objects without one")
    plan.add_argument("--output", "-o", choices=("text", "json"), default="text")
    plan.add_argument("--delete", action="store_true", help="plan the deletion of the objects instead")
    for name, text in (("logs", "print the pipeline's recent worker logs"),
                       ("describe", "print live status, metrics and destination health")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", help="GoldRushPipeline name")
        p.add_argument("--namespace", "-n", default=None, help="namespace (default: the kubeconfig's)")
        if name == "describe":
            p.add_argument("--trend-seconds", type=float, default=3.0, metavar="S",
                           help="read the metrics twice, S seconds apart, for their trend (0: once)")
    import_command.add_arguments(sub.add_parser("import", help="write manifests that adopt existing pipelines"))
    return parser


def commands() -> tuple[str, ...]:
    """The sub-commands `main` knows (the kubectl plugin exposes those of them it offers)."""
    for action in _build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return tuple(action.choices)
    return ()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch to a sub-command; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "crd":
        from goldrush_operator.crdgen import KINDS, render_crd_yaml

        sys.stdout.write("---\n".join(render_crd_yaml(kind) for kind in KINDS))
        return 0
    if args.command == "run":
        try:
            settings = Settings.from_env()
            LeaseSettings.from_env()
        except ValueError as exc:
            print(f"goldrush-operator: {exc}", file=sys.stderr)
            return 2
        namespaces = tuple(args.namespace) or (() if args.all_namespaces else settings.namespaces)
        return run(settings, namespaces, verbose=args.verbose, liveness=args.liveness)
    if args.command == "plan":
        from goldrush_operator.plan import plan_command

        try:
            settings = Settings.from_env()
        except ValueError as exc:
            print(f"goldrush-operator: {exc}", file=sys.stderr)
            return 1
        return asyncio.run(plan_command(args.filename, args.namespace, settings, output=args.output,
                                        delete=args.delete))
    if args.command in ("logs", "describe"):
        from goldrush_operator.introspect import inspect_command

        try:
            settings = Settings.from_env()
        except ValueError as exc:
            print(f"goldrush-operator: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(inspect_command(args.command, args.name, args.namespace, settings,
                                           trend_seconds=max(0.0, getattr(args, "trend_seconds", 0.0))))
    if args.command == "import":
        return import_command.run(args)
    parser.print_help()
    return 0 if argv is None and len(sys.argv) <= 1 else 2




class ObjectFields(logging.Filter):
    """Gives every record about one GoldRushPipeline `namespace`, `name` and (when known) `pipeline_id`.

    Sources, first match wins: `extra={"namespace": ..., "object_name": ..., "pipeline_id": ...}` (`name` is
    taken by the logger name); the object whose reconcile pass or deletion is running
    (`logcontext.current_object`, set by the controller); kopf's per-object `k8s_ref`. `pipeline_id_of` looks
    the remote id up for a (namespace, name).
    """

    def __init__(self, pipeline_id_of: Callable[[str, str], str | None] | None = None) -> None:
        super().__init__()
        self._pipeline_id_of = pipeline_id_of

    def filter(self, record: logging.LogRecord) -> bool:
        namespace, name = getattr(record, "namespace", None), getattr(record, "object_name", None)
        if namespace is None or name is None:
            namespace, name = self._object_of(record)
        if namespace is None or name is None:
            return True
        record.namespace, record.object_name = namespace, name
        if getattr(record, "pipeline_id", None) is None and self._pipeline_id_of is not None:
            try:
                record.pipeline_id = self._pipeline_id_of(namespace, name)
            except Exception:  # never let a lookup break logging
                record.pipeline_id = None
        return True

    @staticmethod
    def _object_of(record: logging.LogRecord) -> tuple[str | None, str | None]:
        current = current_object.get()
        if current is not None:
            return current
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            return (str(ref["namespace"]) if ref.get("namespace") else None), str(ref["name"])
        return None, None


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and namespace/name/pipeline_id when known."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        namespace = getattr(record, "namespace", None)
        name = getattr(record, "object_name", None)
        if namespace is not None or name is not None:
            entry["namespace"] = namespace
            entry["name"] = name
        pipeline_id = getattr(record, "pipeline_id", None)
        if pipeline_id is not None:
            entry["pipeline_id"] = pipeline_id
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception texts may quote request bodies; they are scrubbed where they are raised.
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(
    settings: Settings, verbose: bool, pipeline_id_of: Callable[[str, str], str | None] | None = None
) -> None:
    """Text by default, JSON with GOLDRUSH_LOG_FORMAT=json; never logs request or response bodies."""
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level, logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ObjectFields(pipeline_id_of))
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
        # Everything the process prints goes through logging, so that every line is one JSON object.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("goldrush_operator").critical("operator crashed: %s", kind.__name__, exc_info=(kind, value, tb))


def run(
    settings: Settings, namespaces: tuple[str, ...], *, verbose: bool = False, liveness: str | None = None
) -> int:
    """Start the operator and block until it stops."""
    from goldrush_operator import handlers
    from goldrush_operator.controller.creds import CredentialsController
    from goldrush_operator.controller.loop import Controller
    from goldrush_operator.goldrush_api import GoldRushClient, open_pool, reset_shared_state
    from goldrush_operator.keyring import Keyring
    from goldrush_operator.kube import Kube
    from goldrush_operator.metrics import PrometheusMetrics
    from goldrush_operator.scheduler import Scheduler
    from goldrush_operator.secretwatch import SecretWatch
    from goldrush_operator.state import Store

    store = Store()

    def pipeline_id_of(namespace: str, name: str) -> str | None:
        record = store.get((namespace, name))
        return record.pipeline_id if record is not None else None

    configure_logging(settings, verbose, pipeline_id_of)
    metrics = PrometheusMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    metrics.watched.set_function(lambda: len(store.records))
    kube = Kube()
    election = _election(kube, store, metrics)
    write_guard = election.check_write if election is not None else None
    clients: dict[str, GoldRushClient] = {}
    timeout = settings.request_timeout  # every client's and their shared pool's (`open_pool` at start-up)

    def client_for(key: str) -> GoldRushClient:
        client = clients.get(key)
        if client is None:
            client = GoldRushClient(
                settings.api_url, key, rate_limit=settings.rate_limit,
                max_concurrency=settings.max_concurrency, timeout=timeout,
                on_request=metrics.on_request, dry_run=settings.dry_run, write_guard=write_guard,
            )
            clients[key] = client
        return client

    kube.write_guard = write_guard
    if election is None:
        metrics.leadership(True, 1)  # one replica, no Lease: it is the writer
    else:
        metrics.pipelines.visible = election.admits  # per-pipeline series only of the objects it reconciles
    keyring = Keyring(settings.operator_namespace)
    controller = Controller(settings, kube, store, client_for, ServiceKeySource(settings), metrics, keyring=keyring)
    scheduler = Scheduler(controller.run_pass, workers=settings.workers,
                          admit=election.admits if election is not None else None)
    credentials = CredentialsController(keyring, store, kube, client_for, controller.inputs.read_secret,
                                        scheduler.wake, recheck_seconds=settings.poll_slow_seconds,
                                        tick=settings.poll_fast_seconds)
    controller.on_auth_failed = credentials.auth_failed
    controller.audit.wake = scheduler.wake
    runtime = handlers.Runtime(controller=controller, store=store, scheduler=scheduler,
                               list_versions=kube.list_pipeline_versions, on_loop_lag=metrics.loop_lag,
                               secret_watch=SecretWatch(kube, store, scheduler.wake, credentials.on_secret_changed),
                               election=election,
                               credentials=credentials, operator_namespace=settings.operator_namespace,
                               close_writes=kube.aclose,
                               open_pool=lambda: open_pool(settings.api_url, timeout=timeout),
                               close_pools=reset_shared_state)
    if election is not None:
        timing = election.timing
        kube.lease_timeout = min(5.0, timing.renew_deadline / 2)
        election.configure_takeover(
            lambda admitted: handlers.take_over(runtime, admitted, timing.renew_deadline / 3), scheduler.readmit)
        if election.shards > 1:
            runtime.sharded_watch = handlers.ShardedWatch(election.shards, kube.serves_shard_selectors)
    if liveness is None and settings.health_port:
        liveness = f"http://0.0.0.0:{settings.health_port}/healthz"
    logging.getLogger("goldrush_operator").info(
        "starting goldrush-operator %s: api %s, namespaces %s", __version__, settings.api_url,
        ",".join(namespaces) or "all",
    )
    if settings.dry_run:
        logging.getLogger("goldrush_operator").warning(
            "GOLDRUSH_DRY_RUN=true: no write is sent to the GoldRush API; Would* Events say what would be sent")
    try:
        handlers.start(runtime, namespaces=namespaces, liveness_endpoint=liveness)
    finally:
        kube.close()
    return 0


def _election(kube: Kube, store: Store, metrics: PrometheusMetrics) -> Election | None:
    """The `election.Election` of this replica, or None when leader election is off (GOLDRUSH_LEADER_ELECTION)."""
    from goldrush_operator.election import Election, holder_identity
    from goldrush_operator.kube import current_namespace

    lease = LeaseSettings.from_env()
    if not lease.enabled:
        return None

    def uid_of(key: tuple[str, str]) -> str | None:
        record = store.get(key)
        return record.uid if record is not None else None

    return Election(kube, lease.namespace or current_namespace(), holder_identity(), lease.timing, uid_of,
                    shards=lease.shards, report=metrics.leadership)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
