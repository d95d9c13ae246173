"""Run the analysis chain of a config (the default command of run_analysis.py).

Stages (the config's `stages:`, or --stages): toys (toy spectra and CWT plots), generate
(Pythia8 + FastJet samples, cached under generation.data_dir), process (coffea dijet
processor, injected spectra), scan (adjacent-bin PFN AUC scan and its sensitivity),
autoencoders (wavelet p-value maps of the processed spectra, six autoencoders), baselines
(BumpHunter, background + Gaussian fit), report (sensitivity.json, comparison plot,
report.md / report.html). Results go to --out (default: the config's `output`,
results/default) with run.json provenance (resolved config, seed, package versions, git
revision, timings per stage). A stage whose inputs did not change since it finished is reused;
--resume also continues an interrupted stage (finished PFN trainings, datasets, models).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.config import STAGE_NAMES, load_config
from analysis.core.errors import ConfigError

NAME = "run"
HELP = "run the analysis chain of a config (default: configs/default.yaml)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default: config's output)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument(
        "--executor", choices=("iterative", "futures", "dask"), default=None,
        help="dask: one Dask LocalCluster of --workers for every heavy stage (generation, processing, "
             "trainings); iterative or futures: the processing stage's coffea executor (default: from config)",
    )  # fmt: skip
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (tcp://host:port): every heavy stage runs there")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted stage (finished trainings are kept)")
    parser.add_argument("--stages", default=None,
                        help=f"comma-separated stages to run, in order (default: the config's; from {','.join(STAGE_NAMES)})")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from analysis.core.atomic import check_out_dir
    from analysis.core.provenance import RunRecord
    from analysis.pipeline import RunContext, RunOptions, run_chain

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    overrides: dict = {} if args.seed is None else {"seed": args.seed}
    if args.stages is not None:
        overrides["stages"] = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [s for s in overrides["stages"] if s not in STAGE_NAMES]
        if unknown or not overrides["stages"]:
            raise ConfigError(f"--stages {args.stages}: unknown stage(s) {unknown} (choose from {', '.join(STAGE_NAMES)})")
    config = load_config(args.config, overrides)
    out_dir = check_out_dir(args.out or config.output)
    record = RunRecord(out_dir, "run", config.to_dict(), config.seed)
    options = RunOptions(args.executor, args.scheduler, args.workers, args.resume, args.quiet)
    run_chain(RunContext(config, Path(out_dir), record, options))
    if not args.quiet:
        print(f"done: results in {out_dir} (provenance: {record.path})")
    return 0
