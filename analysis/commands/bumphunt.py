"""Classical baselines on the sensitivity protocol's realisations of a processing directory.

--histograms names the histograms.root of `process`; its directory (events/*.parquet, fileset
metadata) gives the background sample and the signal pool, from which the protocol's
realisations are built (config section `sensitivity:`: realisations, injected N, m_jj range).
On every realisation and N it runs BumpHunter (pyBumpHunter window scan against the spectrum's
own background-only fit) and a background + Gaussian mass scan (dijet function x turn-on,
iminuit), with global p-values from background-only pseudo-experiments (`baselines:` section).
Writes to --out:
  sensitivity.json        methods "bumphunter" and "dijet_fit" (format 2: local and global Z per N,
                          median and 16-84 % band over realisations, N(3 sigma), N(5 sigma))
  baselines.json          the background model of the sample, both methods' nulls and summaries
  spectrum_fit.png, sensitivity_bumphunter.png, sensitivity_dijet_fit.png, run.json

Example:
  python run_analysis.py bumphunt --histograms results/default/process/histograms.root --out results/bh
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import load_config
from analysis.core.errors import InputError
from analysis.core.provenance import RunRecord

NAME = "bumphunt"
HELP = "BumpHunter and a background + Gaussian mass scan on the protocol's realisations (sensitivity.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--histograms", type=Path, required=True,
                        help="histograms.root of `process` (its directory holds the events)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="results directory")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the realisations and pseudo-experiments (default: config)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from analysis.baselines.sensitivity import run_baselines
    from analysis.sensitivity.realizations import load_realizations

    check_out_dir(args.out)
    config = load_config(args.config, {} if args.seed is None else {"seed": args.seed})
    if not args.histograms.is_file():
        raise InputError(f"{args.histograms}: not found (give the histograms.root of a `process` output directory)")
    record = RunRecord(args.out, "bumphunt", config.to_dict(), config.seed)
    with record.stage("bumphunt"):
        real = load_realizations(config, args.histograms.parent)
        entries = run_baselines(real, config, args.out, quiet=args.quiet)
    record.write()
    if not args.quiet:
        for e in entries:
            print(f"{e.method}: global 3 sigma at {e.crossing_text(3)}, 5 sigma at {e.crossing_text(5)} "
                  f"injected events (local {e.crossing_text(3, 'local')}, {e.crossing_text(5, 'local')})")  # fmt: skip
    return 0
