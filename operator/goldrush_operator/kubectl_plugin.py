"""`kubectl-goldrush`, the kubectl plugin (krew name `goldrush`): `kubectl goldrush import|plan|describe|logs`.

Console script; kubectl runs it for `kubectl goldrush ...` when it is on PATH. Every sub-command is the
`goldrush-operator` one (`cli.main`, same flags, same output, same exit status); the plugin only adds kubectl's
global flags, accepted anywhere on the line: `--kubeconfig FILE`, `--context NAME` and `-n/--namespace NS`,
which go to `kube.select()` (the namespace becomes the default of the sub-command's own `-n`). The GoldRush
settings come from the same `GOLDRUSH_*` variables as the operator's (`GOLDRUSH_API_URL`,
`GOLDRUSH_SERVICE_KEY_FILE` or `GOLDRUSH_SERVICE_KEY`).

A sub-command listed in `PLUGIN_COMMANDS` is offered as soon as `cli.main` knows it (`cli.commands()`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from goldrush_operator import __version__, cli, kube

PLUGIN_COMMANDS: Final = ("import", "plan", "describe", "logs")
HELP: Final = {
    "import": "write manifests that adopt the pipelines the service key sees",
    "plan": "print the API calls the operator would make for manifests (exit 2 when changes are pending)",
    "describe": "print a pipeline's live status, metrics and destination health",
    "logs": "print a pipeline's recent worker logs",
}


def _globals() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    parser.add_argument("--namespace", "-n", default=None)
    return parser


def _usage(available: tuple[str, ...]) -> str:
    lines = [
        "Manage GoldRush pipelines (GoldRushPipeline objects) from kubectl.",
        "",
        "Usage: kubectl goldrush COMMAND [flags] [--kubeconfig FILE] [--context NAME] [-n NAMESPACE]",
        "",
        "Commands:",
    ]
    lines += [f"  {name:10}{HELP[name]}" for name in PLUGIN_COMMANDS if name in available]
    lines += ["", "Run 'kubectl goldrush COMMAND --help' for the flags of a command.",
              "GoldRush API settings: GOLDRUSH_API_URL, GOLDRUSH_SERVICE_KEY_FILE or GOLDRUSH_SERVICE_KEY."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Apply kubectl's global flags, then run the sub-command as `goldrush-operator` would."""
    args = list(sys.argv[1:] if argv is None else argv)
    known, rest = _globals().parse_known_args(args)
    available = tuple(c for c in cli.commands() if c in PLUGIN_COMMANDS)
    if not rest or rest[0] in ("-h", "--help"):
        sys.stdout.write(_usage(available))
        return 0
    if rest[0] == "--version":
        print(f"kubectl-goldrush {__version__}")
        return 0
    command = rest.pop(0)
    if command not in available:
        print(f"error: unknown command {command!r} for kubectl goldrush (commands: {', '.join(available)})",
              file=sys.stderr)
        return 2
    kube.select(kubeconfig=known.kubeconfig, context=known.context, namespace=known.namespace)
    return cli.main([command, *rest])


if __name__ == "__main__":
    raise SystemExit(main())
