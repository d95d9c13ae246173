"""Score trained autoencoders on a toy p-value dataset: p-value versus signal size.

Per model: every test map's reconstruction MSE; per signal size the efficiency p-value (the
p of the median signal loss among the test-background losses, as the reference tool, but past
the test maps from a fitted exponential tail of their losses, or an upper bound where
that tail is not trusted: never floored at 1/N_test; sensitivity.tail_fraction and
max_extrapolation of the config) and the ROC AUC (signal against background losses).
Writes to --out:
  pvalue_vs_signal.json   {"signal_sizes": [..], "models": [{"name": "conv_kl_ae", "p_values": [..],
                          "bound": [..], "aucs": [..], "median_losses": [..], "null": {..}}], ...}
                          (bound: true marks a p that is only an upper bound)
  pvalue_vs_signal.png    p-value versus signal size, every model, log scale, bounds as arrows
  losses_<name>.png, reconstruction_<name>.png
  run.json
The chain's sensitivity.json entries come from the protocol's realisations (`run`), not from
toy datasets. Every model must have been trained on --dataset: its train.json records the
dataset's fingerprint and map shape; a model of another dataset, of another map shape or without
that record is refused (exit 1 naming the model directory and the dataset) before anything is
written.

Example:
  python run_analysis.py pvalue-scan --dataset data/ds --models-dir results/ae --out results/ae
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import load_config
from analysis.core.provenance import RunRecord

NAME = "pvalue-scan"
HELP = "p-value versus signal size of trained autoencoders (pvalue_vs_signal.json, plots)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory of build-dataset")
    parser.add_argument("--models-dir", type=Path, required=True, help="models directory of train-ae")
    parser.add_argument("--out", type=Path, required=True, help="results directory")
    parser.add_argument("--models", default=None, help="comma-separated models (default: every trained one)")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (tail fit settings; recorded in run.json)")


def main(args: argparse.Namespace) -> int:
    from analysis.wavelets.autoencoders import pvalue_scan

    check_out_dir(args.out)
    config = load_config(args.config)
    record = RunRecord(args.out, "pvalue-scan", config.to_dict(), None)
    names = args.models.split(",") if args.models else None
    with record.stage("pvalue-scan"):
        summary = pvalue_scan(
            args.dataset, args.models_dir, args.out, names, quiet=args.quiet,
            tail_fraction=config.sensitivity.tail_fraction, max_extrapolation=config.sensitivity.max_extrapolation,
        )  # fmt: skip
    record.add(pvalue_vs_signal=summary)
    record.write()
    if not args.quiet:
        print(f"wrote {args.out / 'pvalue_vs_signal.json'} ({len(summary['models'])} models)")
    return 0
