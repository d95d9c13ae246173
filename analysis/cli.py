"""The command line: one subcommand per working stage, exit status 0 / 1 / 2.

Each module in :mod:`analysis.commands` defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``main(args) -> int``; its docstring is the subcommand's description.

Errors are one line on stderr (``error: ...``), whatever the exception's text holds (uproot and
others raise multi-line messages): ConfigError exits 2, InputError and anything unexpected 1,
an interrupt 130; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from analysis.core.errors import DijetscanError

MAX_MESSAGE = 2000  # characters of an error line


def one_line(text: object) -> str:
    """``text`` on one line: whitespace runs (newlines too) become one space; very long text is cut."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


COMMAND_MODULES = (
    "run", "generate", "import_mod", "process", "scan", "build_dataset", "train_ae", "pvalue_scan", "bumphunt", "plot",
    "session", "serve",
)


def _commands() -> list:
    return [importlib.import_module(f"analysis.commands.{name}") for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_analysis.py",
        description=(
            "dijetscan: model-agnostic searches for new resonances in dijet mass spectra. "
            "Without a subcommand, runs the default chain on configs/default.yaml."
        ),
        epilog="Run 'run_analysis.py COMMAND --help' for the options of a command.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(
            module.NAME, help=module.HELP, description=doc, parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        module.add_arguments(cmd)
        cmd.set_defaults(func=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    names = {module.NAME for module in _commands()}
    if not argv or (argv[0] not in names and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # bare `run_analysis.py [run options]` runs the default chain
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DijetscanError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = f"{type(exc).__name__}: {one_line(exc)} (run with --debug for the traceback)"
        print(f"error: {message}", file=sys.stderr)
        return 1
