"""Command line entry point `goldrush-operator` (console script).

Sub-commands:
- `run` starts the operator (kopf) with the settings from the `GOLDRUSH_*` environment variables;
- `crd` prints the CustomResourceDefinition generated from the pydantic models;
- `logs NAME [-n NS]` prints the pipeline's recent worker logs from the API;
- `describe NAME [-n NS]` prints live status, metrics and destination health from the API.
`logs` and `describe` use the object's credentials (its `serviceKeySecretRef`, else the operator's key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

from goldrush_operator import __version__
from goldrush_operator.config import ServiceKeySource, Settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goldrush-operator",
        description="Kubernetes operator for GoldRush (Covalent) pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"goldrush-operator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{run,crd,logs,describe}")
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable); default: GOLDRUSH_NAMESPACES or all")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.add_argument("--standalone", action="store_true",
                     help="accepted for clarity: the operator always runs standalone (one active replica)")
    run.add_argument("--liveness", metavar="URL", default=None,
                     help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz (default: GOLDRUSH_HEALTH_PORT)")
    sub.add_parser("crd", help="print the generated CustomResourceDefinition (YAML)")
    for name, text in (("logs", "print the pipeline's recent worker logs"),
                       ("describe", "print live status, metrics and destination health")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", help="GoldRushPipeline name")
        p.add_argument("--namespace", "-n", default=None, help="namespace (default: the kubeconfig's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch to a sub-command; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "crd":
        from goldrush_operator.crdgen import render_crd_yaml

        sys.stdout.write(render_crd_yaml())
        return 0
    if args.command == "run":
        try:
            settings = Settings.from_env()
        except ValueError as exc:
            print(f"goldrush-operator: {exc}", file=sys.stderr)
            return 2
        namespaces = tuple(args.namespace) or (() if args.all_namespaces else settings.namespaces)
        return run(settings, namespaces, verbose=args.verbose, liveness=args.liveness)
    if args.command in ("logs", "describe"):
        from goldrush_operator.introspect import inspect_command

        try:
            settings = Settings.from_env()
        except ValueError as exc:
            print(f"goldrush-operator: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(inspect_command(args.command, args.name, args.namespace, settings))
    parser.print_help()
    return 0 if argv is None and len(sys.argv) <= 1 else 2


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; kopf's per-object records carry namespace/name in `k8s_ref`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            entry["namespace"] = ref.get("namespace")
            entry["name"] = ref.get("name")
        for attr in ("namespace", "name", "pipeline_id"):
            value = getattr(record, attr, None)
            if value is not None:
                entry[attr] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry)


def configure_logging(settings: Settings, verbose: bool) -> None:
    """Text by default, JSON with GOLDRUSH_LOG_FORMAT=json; never logs request or response bodies."""
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level, logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(
    settings: Settings, namespaces: tuple[str, ...], *, verbose: bool = False, liveness: str | None = None
) -> int:
    """Start the operator and block until it stops."""
    from goldrush_operator import handlers
    from goldrush_operator.api import GoldRushClient
    from goldrush_operator.kube import Kube
    from goldrush_operator.metrics import PrometheusMetrics
    from goldrush_operator.reconciler import Reconciler
    from goldrush_operator.registry import Registry

    configure_logging(settings, verbose)
    metrics = PrometheusMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    clients: dict[str, GoldRushClient] = {}

    def client_for(key: str) -> GoldRushClient:
        client = clients.get(key)
        if client is None:
            client = GoldRushClient(
                settings.api_url, key, rate_limit=settings.rate_limit,
                max_concurrency=settings.max_concurrency, timeout=settings.request_timeout,
                on_request=metrics.on_request,
            )
            clients[key] = client
        return client

    kube = Kube()
    registry = Registry()
    reconciler = Reconciler(settings, kube, registry, client_for, ServiceKeySource(settings), metrics)
    handlers.install(handlers.Runtime(reconciler=reconciler, registry=registry))
    if liveness is None and settings.health_port:
        liveness = f"http://0.0.0.0:{settings.health_port}/healthz"
    logging.getLogger("goldrush_operator").info(
        "starting goldrush-operator %s: api %s, namespaces %s", __version__, settings.api_url,
        ",".join(namespaces) or "all",
    )
    try:
        handlers.start(namespaces=namespaces, liveness_endpoint=liveness)
    finally:
        kube.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
