"""The default analysis chain run by ``run_analysis.py`` / ``make run``.

Stages run in order, each timed into ``run.json``; a stage returns a short summary line.
Stages reuse what earlier runs finished (cached events, finished trainings), so a rerun is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.atomic import write_npy
from analysis.config import AnalysisConfig
from analysis.provenance import RunRecord


@dataclass
class RunOptions:
    """Command-line choices that do not change the physics result."""

    executor: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    resume: bool = False
    quiet: bool = False


@dataclass
class RunContext:
    config: AnalysisConfig
    out_dir: Path
    record: RunRecord
    options: RunOptions = field(default_factory=RunOptions)

    def say(self, message: str) -> None:
        if not self.options.quiet:
            print(message, flush=True)


def toy_stage(ctx: RunContext) -> str:
    """Clean and fluctuated toy spectra of the configured entries, with their CWT plots."""
    from analysis.cwt import cwt_modulus
    from analysis.plots import save
    from analysis.spectra import clean_spectrum, fluctuate
    from analysis.toy_plots import PLOT_KINDS, toy_figure
    from analysis.toys import toy_setup

    cfg = ctx.config
    setup = toy_setup(cfg)
    out = ctx.out_dir / "toys"
    clean = clean_spectrum(setup.background, setup.signal)
    toys = fluctuate(clean, np.random.default_rng(cfg.seed), size=cfg.toys.n_fluctuations)
    write_npy(out / "mass_edges.npy", setup.background.binning.edges)
    write_npy(out / "clean_spectrum.npy", clean)
    write_npy(out / "fluctuated_spectra.npy", toys)
    write_npy(out / "cwt_clean.npy", cwt_modulus(clean, setup.wavelet))
    for kind in PLOT_KINDS:
        save(toy_figure(kind, setup, cfg.seed, cfg.toys.n_fluctuations), out / f"{kind}.png")
    return f"toy spectra and {len(PLOT_KINDS)} plots in {out}"


Stage = tuple[str, Callable[[RunContext], str]]
STAGES: list[Stage] = [("toys", toy_stage)]


def run_chain(ctx: RunContext, stages: list[Stage] | None = None) -> None:
    """Run the stages in order, recording timings in run.json after each."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    ctx.record.write()
    for name, func in stages or STAGES:
        ctx.say(f"[{name}] ...")
        with ctx.record.stage(name):
            summary = func(ctx)
        ctx.say(f"[{name}] {summary} ({ctx.record.data['timings_s'][name]:.1f} s)")
