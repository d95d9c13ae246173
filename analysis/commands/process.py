"""Run the coffea dijet processor over a fileset: selection, m_jj histograms, injection, Parquet.

Reads the datasets of --fileset (coffea's fileset form, e.g. the fileset.json written by
`generate`, or any CMS NanoAOD files with Jet_* branches) and writes histograms.root,
cutflow.json, events/<dataset>.parquet and run.json to --out: the stage
analysis.events.processing.process_fileset, whose docstring lists the outputs. A failed run
leaves --out as it was (exit 1 naming the file at fault, unless --skip-bad-files, which skips
missing, corrupt or truncated files and lists them in cutflow.json).

Example:
  python run_analysis.py process --fileset data/qcd/fileset.json data/xgg/fileset.json \\
      --out results/process --executor dask --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import load_config
from analysis.events.processing import check_bounds, process_fileset

NAME = "process"
HELP = "run the coffea dijet processor over a fileset (histograms, cutflow, Parquet events)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fileset", type=Path, nargs="+", required=True,
        help="fileset.json (coffea's fileset form); several are merged (e.g. qcd and xgg samples)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)"
    )
    parser.add_argument(
        "--executor", choices=("iterative", "futures", "dask"), default=None,
        help="coffea executor (default: config processing.executor)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: config, else all cores)"
    )
    parser.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)"
    )
    parser.add_argument("--chunksize", type=int, default=None, help="events per chunk (default: config)")
    parser.add_argument(
        "--skip-bad-files", action="store_true", default=None,
        help="skip missing/corrupt/truncated files (listed in cutflow.json) instead of failing",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    check_bounds(args.workers, args.chunksize)
    overrides = {} if args.chunksize is None else {"processing": {"chunksize": args.chunksize}}
    config = load_config(args.config, overrides)
    check_out_dir(args.out)
    result = process_fileset(
        args.fileset, args.out, config, executor=args.executor, workers=args.workers,
        scheduler=args.scheduler, skip_bad_files=args.skip_bad_files, quiet=args.quiet,
    )  # fmt: skip
    if not args.quiet:
        print(result.summary_line())
    return 0


