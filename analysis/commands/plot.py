"""Plot toy spectra and their continuous wavelet transforms.

Kinds: signal, background, clean (background + signal), fluctuations (Poisson toys),
cwt-clean and cwt-fluctuations (|CWT| maps with a colour bar), pvalue (the -ln p map of one
fluctuated spectrum: every rebinned |CWT| cell against 1000 background-only toys). Entries are picked by id from
the definition files of the config (or from --signals/--backgrounds/--wavelets files);
an unknown id is an error listing the valid ids. The output format follows --out's suffix
(.png or .pdf).

Example:
  python run_analysis.py plot cwt-clean --signal-id 1 --wavelet-id 0 --out cwt.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.atomic import check_out_file, remove_stale
from analysis.core.config import load_config
from analysis.core.errors import ConfigError

NAME = "plot"
HELP = "plot toy spectra, their wavelet transforms and p-value maps"
MAX_TOYS = 1000  # fluctuated spectra drawn in one figure
SEED_MAX = 2**63 - 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from analysis.toys.plots import PLOT_KINDS

    parser.add_argument("kind", choices=list(PLOT_KINDS), help="what to plot")
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")
    parser.add_argument("--signal-id", type=int, default=None, help="signal entry id (default: from config)")
    parser.add_argument("--bg-id", type=int, default=None, help="background entry id (default: from config)")
    parser.add_argument("--wavelet-id", type=int, default=None, help="wavelet entry id (default: from config)")
    parser.add_argument("--signals", type=Path, default=None, help="signal definitions file instead of the config's")
    parser.add_argument("--backgrounds", type=Path, default=None, help="background definitions file")
    parser.add_argument("--wavelets", type=Path, default=None, help="wavelet definitions file")
    parser.add_argument("--seed", type=int, default=None, help="seed of the Poisson fluctuations (default: config)")
    parser.add_argument("--n-toys", type=int, default=None, help="fluctuated spectra to overlay (default: config)")
    parser.add_argument("--out", type=Path, default=None, help="output file, .png or .pdf (default: KIND.png)")


def main(args: argparse.Namespace) -> int:
    from analysis.core.plots import FORMATS, save
    from analysis.toys.plots import toy_figure
    from analysis.toys.selection import toy_setup

    out = args.out or Path(f"{args.kind}.png")
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {out}: the file name must end in .png or .pdf")
    if args.n_toys is not None and not 1 <= args.n_toys <= MAX_TOYS:
        raise ConfigError(f"--n-toys {args.n_toys}: must be between 1 and {MAX_TOYS}")
    if args.seed is not None and not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed {args.seed}: must be between 0 and {SEED_MAX}")
    check_out_file(out)
    config = load_config(args.config)
    setup = toy_setup(
        config, signal_id=args.signal_id, bg_id=args.bg_id, wavelet_id=args.wavelet_id,
        files={"signals": args.signals, "backgrounds": args.backgrounds, "wavelets": args.wavelets},
    )  # fmt: skip
    seed = config.seed if args.seed is None else args.seed
    n_toys = config.toys.n_fluctuations if args.n_toys is None else args.n_toys
    remove_stale(out.parent, names=[out.name])  # a killed plot's half-written file
    save(toy_figure(args.kind, setup, seed, n_toys), out)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
