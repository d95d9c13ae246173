"""Train autoencoders on the background maps of a p-value dataset (build-dataset).

Models: dense, sparse_l1, sparse_kl (KL-divergence sparsity), conv, conv_l1, conv_kl. Maps are
divided by ln(N+1) (N: the dataset's reference toys) so they lie in (0, 1]; the last
autoencoders.validation_fraction of train_backgrounds.npy is the validation set of the early
stopping. Writes per model --out/<name>_ae/: <name>_ae.keras (loadable in safe mode),
training.csv (loss and val_loss per epoch), train.json; and --out/run.json. A model already
trained with the same dataset and settings is reused.

Example:
  python run_analysis.py train-ae --dataset data/ds --out results/ae --models dense,conv_kl --epochs 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.core.provenance import RunRecord

NAME = "train-ae"
HELP = "train the map autoencoders (dense, sparse_l1, sparse_kl, conv, conv_l1, conv_kl)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory of build-dataset")
    parser.add_argument("--out", type=Path, required=True, help="models directory")
    parser.add_argument("--models", default=None, help="comma-separated models (default: autoencoders.models)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: config)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: config)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the config's seed)")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")


def main(args: argparse.Namespace) -> int:
    from analysis.wavelets.autoencoders import model_names, train_models

    for flag in ("epochs", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} {value}: must be at least 1")
    check_out_dir(args.out)
    config = load_config(args.config)
    ae = config.autoencoders
    names = model_names(args.models.split(",") if args.models else ae.models)
    seed = config.seed if args.seed is None else args.seed
    record = RunRecord(args.out, "train-ae", config.to_dict(), seed)
    with record.stage("train-ae"):
        ae = ae.model_copy(update={"epochs": args.epochs or ae.epochs, "batch_size": args.batch_size or ae.batch_size})
        results = train_models(args.dataset, args.out, ae, seed=seed, quiet=args.quiet, names=names)
    record.add(models={r["name"]: {"epochs_run": r["epochs_run"], "best_val_loss": r["best_val_loss"]} for r in results})
    record.write()
    if not args.quiet:
        for r in results:
            print(f"{args.out / r['name']}: {r['epochs_run']} epochs, best val_loss {r['best_val_loss']:.4g}")
    return 0
