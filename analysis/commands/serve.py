"""Serve the workbench: a local web app to edit the toy signals, backgrounds and wavelets, see
their spectra and |CWT| maps, save and load sessions, run build-dataset / train-ae /
pvalue-scan jobs and browse results.

It binds 127.0.0.1 by default (a non-local --host prints a warning), refuses requests for other
Host names and state-changing requests without its CSRF token, and edits only the config's
directory, --sessions-dir and --results-dir.

Example:
  python run_analysis.py serve            # then open http://127.0.0.1:8765/
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "serve"
HELP = "the workbench web app (definitions, plots, sessions, jobs, results)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--sessions-dir", type=Path, default=Path("sessions"), help="where sessions live")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="results root (jobs write here)")


def main(args: argparse.Namespace) -> int:
    from analysis.workbench.server import serve

    serve(args.host, args.port, args.config, args.sessions_dir, args.results_dir, quiet=args.quiet)
    return 0
