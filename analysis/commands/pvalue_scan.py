"""Score trained autoencoders on a p-value dataset: p-value versus signal size.

Per model: every test map's reconstruction MSE; per signal size the efficiency p-value (the
fraction of test-background losses >= the median signal loss, as the reference tool) and the
ROC AUC (signal against background losses). Writes to --out:
  pvalue_vs_signal.json   {"signal_sizes": [..], "models": [{"name": "conv_kl_ae", "p_values": [..],
                          "aucs": [..], "median_losses": [..]}], ...}
  pvalue_vs_signal.png    p-value versus signal size, every model, log scale
  losses_<name>.png, reconstruction_<name>.png
  sensitivity.json        one entry per model ("<name>_ae"): signal sizes reaching 3 and 5 sigma
  run.json

Example:
  python run_analysis.py pvalue-scan --dataset data/ds --models-dir results/ae --out results/ae
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config import load_config
from analysis.provenance import RunRecord

NAME = "pvalue-scan"
HELP = "p-value versus signal size of trained autoencoders (pvalue_vs_signal.json, plots)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory of build-dataset")
    parser.add_argument("--models-dir", type=Path, required=True, help="models directory of train-ae")
    parser.add_argument("--out", type=Path, required=True, help="results directory")
    parser.add_argument("--models", default=None, help="comma-separated models (default: every trained one)")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (recorded in run.json)")


def main(args: argparse.Namespace) -> int:
    from analysis.ae_scan import pvalue_scan

    config = load_config(args.config)
    record = RunRecord(args.out, "pvalue-scan", config.to_dict(), None)
    names = args.models.split(",") if args.models else None
    with record.stage("pvalue-scan"):
        summary = pvalue_scan(args.dataset, args.models_dir, args.out, names, quiet=args.quiet)
    record.add(pvalue_vs_signal=summary)
    record.write()
    if not args.quiet:
        print(f"wrote {args.out / 'pvalue_vs_signal.json'} ({len(summary['models'])} models)")
    return 0
