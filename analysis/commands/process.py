"""Run the coffea dijet processor over a fileset: selection, m_jj histograms, injection, Parquet.

Reads the datasets of --fileset (coffea's fileset form, e.g. the fileset.json written by
`generate`, or any CMS NanoAOD files with Jet_* branches) and writes to --out:
  histograms.root          TH1 mjj_<dataset> (uniform bins) and mjj_bins_<dataset> (analysis
                           bins) per dataset; with an injection: mjj_background,
                           mjj_signal_<kind>_<k> and mjj_injected_<kind>_<k> (= background +
                           signal), each also as mjj_bins_...
  cutflow.json             per dataset the cutflow counts; skipped bad files; the injection
  events/<dataset>.parquet selected events: mjj, weight, dataset, event; jets (pt, eta, phi,
                           mass, rapidity, partonFlavour, jetId, tau21 (N-subjettiness ratio;
                           -1 without PF candidates), constituents: pt, rapidity, phi, pdgId)
  run.json                 provenance
The stage itself is analysis.events.processing.process_fileset. Every output is written into a
staging directory first and renamed into place only when all are complete; a failed run leaves
--out as it was, an interrupted one is refused by every reader until `process` runs again
(see analysis.core.atomic). Events with NaN or infinite jet
kinematics or weight are dropped as the cutflow step `finite`, with a warning naming the
dataset and the count. A missing, corrupt or truncated input file, or one whose selected
events have non-finite rapidities or PF candidates, stops the run (exit 1) naming the file,
unless --skip-bad-files, which skips such files and lists them in cutflow.json.

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


