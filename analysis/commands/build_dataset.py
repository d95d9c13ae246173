"""Build a p-value map dataset for the autoencoders (the reference tool's file layout).

Each spectrum (toys: a Poisson toy of the chosen background + signal definitions; with
--histograms: of a smooth fit to the background m_jj histogram over the searched range,
sensitivity.mjj_min..mjj_max, + the xgg histogram) goes through the continuous wavelet
transform of the chosen wavelet; the |CWT| (scales x bins) is rebinned by averaging adjacent
cells (48x512 -> 48x64 for toys, dataset.shape; dataset.histogram_shape for histograms) and each
cell becomes -ln p, p = (k+1)/(N+1) the fraction of N background-only toys at least as large.
A signal size is a number of signal events (the template normalised to that integral).
(`run` builds its dataset from the sensitivity protocol's realisations instead.)

Writes to --out: dataset_config.json (every parameter), reference_backgrounds.npy (the N toys'
|CWT| maps), train_backgrounds.npy, test_backgrounds.npy, test_signals_<size>.npy (size 0:
background only; float32 maps), run.json. A rerun with the same parameters reuses finished
arrays (and gives identical arrays); a directory built with other parameters is an error naming
the first differing one (unless the build that wrote its dataset_config.json failed before its
first array: then there is nothing to keep, and the config is replaced).

Bounds (exit 2 naming the flag, before anything is written): --toys at most 200,000, --train
500,000, --test 200,000, at most 50 finite, non-negative, distinct signal sizes of at most 1e12
events, and at most 16 GiB for the dataset's maps (48x64 float32 maps are 12 KiB each; the build
holds the reference toys twice, and train-ae/pvalue-scan load every array).

Examples:
  python run_analysis.py build-dataset --out data/ds --toys 1000 --train 2000 --test 500 \\
      --signal-sizes 0,250,500,1000 --seed 1
  python run_analysis.py build-dataset --out data/ds_hist --histograms results/default/process/histograms.root
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.core.provenance import RunRecord

NAME = "build-dataset"
HELP = "build p-value map datasets (train/test backgrounds, test signals per size)"


def parse_sizes(text: str | None) -> list[float] | None:
    """``0,250,500`` -> [0.0, 250.0, 500.0]; a ConfigError names the flag and a bad entry (not a
    number, not finite, negative, beyond the bound, repeated; or too many sizes)."""
    from analysis.wavelets.dataset import check_signal_sizes

    if text is None:
        return None
    try:
        sizes = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--signal-sizes {text!r}: expected comma-separated numbers of signal events") from None
    if not sizes:
        raise ConfigError(f"--signal-sizes {text!r}: expected comma-separated numbers of signal events")
    return check_signal_sizes(sizes, f"--signal-sizes {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset directory")
    parser.add_argument("--toys", type=int, default=None, help="background toys of the p-value reference (default: config)")
    parser.add_argument("--train", type=int, default=None, help="training background maps (default: config)")
    parser.add_argument("--test", type=int, default=None, help="maps per test array (default: config)")
    parser.add_argument("--signal-sizes", default=None, help="comma-separated signal sizes in events, e.g. 0,250,500")
    parser.add_argument("--seed", type=int, default=None, help="dataset seed (default: the config's seed)")
    parser.add_argument("--signal-id", type=int, default=None, help="toys: signal entry id (default: config)")
    parser.add_argument("--bg-id", type=int, default=None, help="toys: background entry id (default: config)")
    parser.add_argument("--wavelet-id", type=int, default=None, help="wavelet entry id (default: config)")
    parser.add_argument("--histograms", type=Path, default=None, help="processed spectra: histograms.root of `process`")
    parser.add_argument("--background-hist", default=None, help="with --histograms: background TH1 (default: the mjj_* qcd one)")
    parser.add_argument("--signal-hist", default=None, help="with --histograms: signal TH1 (default: the mjj_* xgg one)")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")


def main(args: argparse.Namespace) -> int:
    from analysis.wavelets.dataset import (
        MAX_TEST,
        MAX_TOYS,
        MAX_TRAIN,
        build_dataset_from_histograms,
        build_toy_dataset,
        check_count,
        check_plan,
    )

    # every bound before anything is written (the directory included)
    for flag, limit in (("toys", MAX_TOYS), ("train", MAX_TRAIN), ("test", MAX_TEST)):
        value = getattr(args, flag)
        if value is not None:
            check_count(f"--{flag}", value, limit)
    sizes = parse_sizes(args.signal_sizes)
    if args.histograms is None and (args.background_hist or args.signal_hist):
        raise ConfigError("--background-hist/--signal-hist need --histograms")
    config = load_config(args.config)
    ds = config.dataset
    if args.histograms is None:
        shape, default_sizes = ds.shape, list(ds.signal_sizes)
    else:
        shape, default_sizes = ds.histogram_shape, [0.0, *config.injection.sizes]
    names = {k: f"--{k}" if getattr(args, k) is not None else f"dataset.{k}" for k in ("toys", "train", "test")}
    names["signal_sizes"] = "--signal-sizes" if sizes is not None else "the default signal sizes"
    check_plan(
        ds.toys if args.toys is None else args.toys, ds.train if args.train is None else args.train,
        ds.test if args.test is None else args.test, default_sizes if sizes is None else sizes, tuple(shape), names,
    )  # fmt: skip
    check_out_dir(args.out)
    seed = config.seed if args.seed is None else args.seed
    options = {
        "toys": args.toys, "train": args.train, "test": args.test, "signal_sizes": sizes,
        "seed": seed, "wavelet_id": args.wavelet_id, "quiet": args.quiet,
    }  # fmt: skip
    record = RunRecord(args.out, "build-dataset", config.to_dict(), seed)
    with record.stage("build-dataset"):
        if args.histograms is not None:
            params = build_dataset_from_histograms(
                args.histograms, args.out, config, background_hist=args.background_hist,
                signal_hist=args.signal_hist, **options,
            )  # fmt: skip
        else:
            params = build_toy_dataset(config, args.out, signal_id=args.signal_id, bg_id=args.bg_id, **options)
    record.add(dataset={k: params[k] for k in ("toys", "train", "test", "signal_sizes", "map_shape")})
    record.write()
    if not args.quiet:
        sizes = ", ".join(f"{s:g}" for s in params["signal_sizes"])
        print(f"{args.out}: {params['train']} train, {params['test']} test maps per array, signal sizes {sizes}, "
              f"maps {params['map_shape'][0]}x{params['map_shape'][1]} against {params['toys']} toys")  # fmt: skip
    return 0
