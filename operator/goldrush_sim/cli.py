"""Command line entry point `goldrush-sim` (console script) for the GoldRush API simulator.

Parses the options into a `SimConfig`, serves `goldrush_sim.app.make_app(config)` with
aiohttp, prints exactly one line `goldrush-sim listening on http://HOST:PORT` to stdout when
ready (logs go to stderr) and stops cleanly on SIGTERM/SIGINT, flushing `--state-file`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from goldrush_sim.app import make_app
from goldrush_sim.config import DEFAULT_GROUP, DEFAULT_SERVICE_KEY, SimConfig, parse_service_key


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="goldrush-sim",
        description="Local simulator of the GoldRush Pipeline REST API (see docs/simulator.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=18080, help="port to bind; 0 picks a free port (default 18080)")
    p.add_argument(
        "--service-key",
        action="append",
        default=[],
        metavar="KEY[=GROUP]",
        help=f"accepted ServiceKey and its group (default group {DEFAULT_GROUP}); repeatable. "
        f"Without any, '{DEFAULT_SERVICE_KEY}' in '{DEFAULT_GROUP}' exists",
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="regular API key (answered 403); repeatable",
    )
    p.add_argument("--latency-ms", type=int, default=0, help="added latency per Pipeline API request")
    p.add_argument("--deploy-seconds", type=float, default=2.0, help="DEPLOYING duration (default 2.0)")
    p.add_argument("--stop-seconds", type=float, default=1.0, help="STOPPING duration on pause (default 1.0)")
    p.add_argument(
        "--bounded-run-seconds",
        type=float,
        default=30.0,
        help="RUNNING time of bounded pipelines (default 30)",
    )
    p.add_argument(
        "--delete-seconds",
        type=float,
        default=0.0,
        help="STOPPING window after DELETE before 404 (default 0)",
    )
    p.add_argument("--default-page-size", type=int, default=10, help="list page_size default (10)")
    p.add_argument("--max-page-size", type=int, default=100, help="list page_size maximum, larger is clamped (100)")
    p.add_argument("--state-file", default=None, metavar="PATH", help="persist pipelines to this JSON file")
    p.add_argument("--journal-size", type=int, default=100_000, help="request journal ring buffer size")
    p.add_argument(
        "--immutable-patch",
        choices=["reject", "ignore"],
        default="reject",
        help="PATCH changing project/topic/destination_type/execution_mode: 422 or silently ignored",
    )
    p.add_argument(
        "--patch-merge",
        choices=["replace", "deep"],
        default="replace",
        help="PATCH object fields replace the stored value (default) or are deep-merged",
    )
    p.add_argument("--create-status", type=int, choices=[200, 201], default=201, help="create status code")
    p.add_argument("--rate-limit-rps", type=float, default=None, help="requests/second per key before 429")
    p.add_argument(
        "--status-without-runtime",
        choices=["phase", "404"],
        default="phase",
        help="/status/ of a PAUSED or STOPPED pipeline (no runtime): its phase (default) or 404",
    )
    p.add_argument(
        "--echo-defaults",
        action="store_true",
        help="reads fill in the documented defaults of destination settings the pipeline leaves out",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for fault probabilities (default 0)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> SimConfig:
    """Parse the command line into a `SimConfig` (exits with status 2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    keys = dict(parse_service_key(spec) for spec in args.service_key) or {DEFAULT_SERVICE_KEY: DEFAULT_GROUP}
    try:
        return SimConfig(
            host=args.host,
            port=args.port,
            service_keys=keys,
            api_keys=list(args.api_key),
            latency_ms=args.latency_ms,
            deploy_seconds=args.deploy_seconds,
            stop_seconds=args.stop_seconds,
            bounded_run_seconds=args.bounded_run_seconds,
            delete_seconds=args.delete_seconds,
            default_page_size=args.default_page_size,
            max_page_size=args.max_page_size,
            state_file=args.state_file,
            journal_size=args.journal_size,
            immutable_patch=args.immutable_patch,
            patch_merge=args.patch_merge,
            create_status=args.create_status,
            rate_limit_rps=args.rate_limit_rps,
            status_without_runtime=args.status_without_runtime,
            echo_defaults=args.echo_defaults,
            seed=args.seed,
            log_level=args.log_level,
        )
    except ValidationError as exc:
        parser.error(str(exc))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(config: SimConfig) -> None:
    """Run until SIGTERM/SIGINT."""
    app = make_app(config)
    access_log = logging.getLogger("aiohttp.access") if config.log_level == "debug" else None
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=1.0)
    await runner.setup()
    sock = _bind(config.host, config.port)
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"goldrush-sim listening on http://{_url_host(config.host)}:{port}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        logging.getLogger("goldrush_sim").info("shutting down")
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Start the simulator; returns the process exit status."""
    config = config_from_args(argv)
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"goldrush-sim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
