"""The ``sa-explain`` command: ``demo`` and ``analyze``.

Thin by design: each subcommand lives in its own module and registers its arguments
here; this module only dispatches and turns expected failures into one-line errors
with a non-zero exit status (never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CLIError(Exception):
    """An expected failure: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from sa_explain import __version__

    parser = argparse.ArgumentParser(
        prog="sa-explain",
        description="Explain SQLAlchemy ObjectDeletedError / StaleDataError incidents.",
    )
    parser.add_argument("--version", action="version", version=f"sa-explain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="reproduce the two incidents on SQLite and explain them")
    demo.add_argument("--json", action="store_true", help="print the explanations as JSON lines")
    demo.add_argument("--no-color", action="store_true", help="plain text output")

    # analyze/generate register themselves with set_defaults(func=...); importing the
    # module is cheap (DuckDB is imported only when a command runs).
    from sa_explain.analyze import cli as analyze_cli

    analyze_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from sa_explain.demo import run

            return run(json_output=args.json, color=not args.no_color and sys.stdout.isatty())
        func = getattr(args, "func", None)
        if func is not None:
            return int(func(args))
        parser.print_help()
        return 2
    except CLIError as exc:
        print(f"sa-explain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
