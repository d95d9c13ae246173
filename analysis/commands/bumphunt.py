"""Classical baselines on a processing directory's injected m_jj spectra.

Reads histograms.root of `process` (mjj_background, mjj_injected_<kind>_<k>,
mjj_signal_<kind>_<k>) and, for the background-only spectrum and every injected one, runs
BumpHunter (pyBumpHunter; reference = the smooth background fit of the background-only
spectrum) and a background + Gaussian fit (profile likelihood ratio at the signal's
reconstructed mass). Writes to --out:
  baselines.json          background fit, signal peak, both methods' points
  sensitivity.json        methods "bumphunter" and "dijet_fit": Z versus injected events,
                          n_signal_3sigma / n_signal_5sigma (local Z; BumpHunter's global Z per point)
  sensitivity_<method>.png, spectrum_fit.png, run.json
The searched range and the number of pseudo-experiments are the config's `baselines:` section.

Example:
  python run_analysis.py bumphunt --histograms results/default/process/histograms.root --out results/bh
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config import load_config
from analysis.provenance import RunRecord

NAME = "bumphunt"
HELP = "BumpHunter and a background + Gaussian fit on injected m_jj spectra (sensitivity.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--histograms", type=Path, required=True, help="histograms.root of `process`")
    parser.add_argument("--out", type=Path, required=True, help="results directory")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the pseudo-experiments (default: config)")


def main(args: argparse.Namespace) -> int:
    from analysis.baseline_sensitivity import run_baselines

    config = load_config(args.config, {} if args.seed is None else {"seed": args.seed})
    record = RunRecord(args.out, "bumphunt", config.to_dict(), config.seed)
    with record.stage("bumphunt"):
        entries = run_baselines(args.histograms, args.out, config, quiet=args.quiet)
    record.write()
    if not args.quiet:
        for e in entries:
            print(f"{e['method']}: 3 sigma at {e['n_signal_3sigma']}, 5 sigma at {e['n_signal_5sigma']} injected events")
    return 0
