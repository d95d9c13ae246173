"""Run the analysis chain of a config (the default command of run_analysis.py).

Today the chain computes the toy spectra (clean and Poisson-fluctuated) of the configured
signal/background/wavelet entries and their CWT maps and plots. Results go to --out (default:
the config's `output`, results/default), with run.json provenance (resolved config, seed,
package versions, git revision, timings per stage).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.config import load_config
from analysis.errors import ConfigError

NAME = "run"
HELP = "run the analysis chain of a config (default: configs/default.yaml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default: config's output)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument(
        "--executor", choices=("iterative", "futures", "dask"), default=None,
        help="coffea executor for the processing stage (default: from config)",
    )  # fmt: skip
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="reuse finished work of an interrupted run")


def main(args: argparse.Namespace) -> int:
    from analysis.pipeline import RunContext, RunOptions, run_chain
    from analysis.provenance import RunRecord

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    overrides = {} if args.seed is None else {"seed": args.seed}
    config = load_config(args.config, overrides)
    out_dir = args.out or config.output
    record = RunRecord(out_dir, "run", config.to_dict(), config.seed)
    options = RunOptions(args.executor, args.scheduler, args.workers, args.resume, args.quiet)
    run_chain(RunContext(config, Path(out_dir), record, options))
    if not args.quiet:
        print(f"done: results in {out_dir} (provenance: {record.path})")
    return 0
