"""Adjacent-bin PFN scan of processed events (CWoLa-style), with injection and sensitivity.

Reads a `process` output directory (--events: cutflow.json + events/*.parquet), draws
--samples random samples of every size in --sizes from the background events (plus N injected
events with --inject resonance:N or gluon_pairs:N), splits each into the m_jj bins
(histograms.analysis_bins) and trains one PFN per adjacent bin pair; the AUC on held-out jets
measures how different the two bins' jets are (0.5 without new physics). Writes to --out:
  auc_scan.json     AUCs per size, pair and sample, with mean and std over samples
  auc_scan.png      AUC mean +- std per bin pair and sample size
  checkpoints/      one JSON per finished training (--resume continues from them)
  run.json          provenance
With --sensitivity: instead of the scan, the method pfn_auc on the sensitivity protocol's
realisations (analysis.pfn.sensitivity): for each of the first sensitivity.pfn_realizations
realisations and each N of sensitivity.n_signal, one PFN per adjacent bin pair; local and global
(Sidak over the pairs) p-values against the N = 0 AUCs. Writes sensitivity.json (pfn_auc entry,
format 2), sensitivity_pfn_auc.png and pfn_auc/checkpoints/ (--resume continues from them).

Trainings spread over all visible GPUs (one per device); --cpu-devices N splits the CPU into N
logical devices. The Keras backend follows KERAS_BACKEND (tensorflow by default, or jax).

Example:
  python run_analysis.py scan --events results/process --out results/scan --sizes 5000 --samples 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.config import load_config
from analysis.core.errors import ConfigError

NAME = "scan"
HELP = "adjacent-bin PFN scan of processed events (AUC per bin pair; injection; sensitivity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, required=True, help="`process` output directory (cutflow.json, events/)")
    parser.add_argument("--out", type=Path, required=True, help="results directory")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--sizes", default=None, help="comma-separated events per sample (default: scan.sizes)")
    parser.add_argument("--samples", type=int, default=None, help="random samples per size (default: scan.n_samples)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: scan.epochs)")
    parser.add_argument("--inject", default=None, metavar="KIND:N", help="inject N events: resonance:N or gluon_pairs:N")
    parser.add_argument("--resume", action="store_true", help="keep finished trainings of an interrupted scan")
    parser.add_argument("--sensitivity", action="store_true", help="the pfn_auc method on the sensitivity realisations (kind from --inject or injection.kind)")
    parser.add_argument("--cpu-devices", type=int, default=None, help="split the CPU into N logical devices (TensorFlow)")
    parser.add_argument("--data-parallel", action="store_true", help="split every training over all devices")


def parse_sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--sizes {text!r}: expected comma-separated integers") from None
    if not sizes or min(sizes) < 2:
        raise ConfigError(f"--sizes {text!r}: sizes must be integers >= 2")
    return sizes


def main(args: argparse.Namespace) -> int:
    from analysis.core.atomic import check_out_dir
    from analysis.core.provenance import RunRecord
    from analysis.pfn.scan import parse_inject, scan_stage
    from analysis.pfn.sensitivity import pfn_sensitivity_of_processed

    for flag, value in (("--samples", args.samples), ("--epochs", args.epochs), ("--cpu-devices", args.cpu_devices)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be at least 1")
    sizes = parse_sizes(args.sizes)
    kind, n_inject = parse_inject(args.inject)
    check_out_dir(args.out)
    overrides = {} if args.seed is None else {"seed": args.seed}
    cfg = load_config(args.config, overrides)
    if args.sensitivity and kind == "none":
        kind = cfg.injection.kind
        if kind == "none":
            raise ConfigError("--sensitivity: give --inject KIND:0 or set injection.kind (resonance|gluon_pairs)")
    if not args.events.exists():
        raise ConfigError(f"--events {args.events}: no such directory")
    if args.cpu_devices:
        from models.devices import split_cpu

        split_cpu(args.cpu_devices)
    record = RunRecord(args.out, "scan", cfg.to_dict(), cfg.seed)
    with record.stage("scan"):
        if args.sensitivity:
            summary = pfn_sensitivity_of_processed(
                cfg, args.events, args.out, kind, epochs=args.epochs, resume=args.resume, quiet=args.quiet,
                data_parallel=args.data_parallel,
            )  # fmt: skip
        else:
            summary = scan_stage(
                cfg, args.events, args.out, kind=kind, n_inject=n_inject, sizes=sizes, n_samples=args.samples,
                epochs=args.epochs, resume=args.resume, quiet=args.quiet, data_parallel=args.data_parallel,
            )  # fmt: skip
    if not args.quiet:
        print(summary)
    return 0
