"""Command line entry point `goldrush-operator` (console script).

Sub-commands: `run` (the operator), `crd` (print the generated CRD). Filled in by the lifecycle work.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch to a sub-command; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    print("usage: goldrush-operator {run,crd} [options]")
    return 0 if args[:1] in ([], ["--help"], ["-h"]) else 2


if __name__ == "__main__":
    raise SystemExit(main())
