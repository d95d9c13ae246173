"""The toy plot kinds of ``run_analysis.py plot``: spectra and their wavelet transforms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from analysis.core.plots import cwt_figure, spectrum_figure
from analysis.toys.selection import ToySetup
from analysis.toys.spectra import background_counts, clean_spectrum, fluctuate, signal_counts
from analysis.wavelets.cwt import cwt_modulus


def _label(setup: ToySetup) -> str:
    return f"signal {setup.signal.id}, background {setup.background.id}"


def _signal(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    counts = signal_counts(setup.signal, setup.background.binning.centers)
    return spectrum_figure(setup.background.binning, {"signal": counts}, f"Signal {setup.signal.id}", log=False)


def _background(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    b = setup.background
    return spectrum_figure(b.binning, {"background": background_counts(b)}, f"Background {b.id}")


def _clean(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    b = setup.background
    curves = {"background + signal": clean_spectrum(b, setup.signal), "background": background_counts(b)}
    return spectrum_figure(b.binning, curves, f"Clean spectrum ({_label(setup)})")


def _fluctuations(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    expected = clean_spectrum(setup.background, setup.signal)
    curves = {f"Poisson toy {i}": toy for i, toy in enumerate(fluctuate(expected, rng, size=n))}
    curves["expected"] = expected
    return spectrum_figure(setup.background.binning, curves, f"Fluctuated spectra ({_label(setup)})")


def _cwt_clean(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    modulus = cwt_modulus(clean_spectrum(setup.background, setup.signal), setup.wavelet)
    return cwt_figure(setup.background.binning, setup.wavelet, modulus, f"CWT, clean ({_label(setup)})")


def _cwt_fluctuations(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    toy = fluctuate(clean_spectrum(setup.background, setup.signal), rng)
    modulus = cwt_modulus(toy, setup.wavelet)
    return cwt_figure(setup.background.binning, setup.wavelet, modulus, f"CWT, fluctuated ({_label(setup)})")


def _pvalue(setup: ToySetup, rng: np.random.Generator, n: int) -> Figure:
    from analysis.wavelets.plots import plot_pvalue_map

    return plot_pvalue_map(setup, rng, n_reference=PVALUE_REFERENCE_TOYS)


PVALUE_REFERENCE_TOYS = 1000  # background-only toys behind the `pvalue` map's local p-values
PLOT_KINDS: dict[str, Callable[[ToySetup, np.random.Generator, int], Figure]] = {
    "signal": _signal,
    "background": _background,
    "clean": _clean,
    "fluctuations": _fluctuations,
    "cwt-clean": _cwt_clean,
    "cwt-fluctuations": _cwt_fluctuations,
    "pvalue": _pvalue,
}


def toy_figure(kind: str, setup: ToySetup, seed: int, n_fluctuations: int = 3) -> Figure:
    """Build the figure of one plot kind; fluctuations are drawn from ``seed``."""
    return PLOT_KINDS[kind](setup, np.random.default_rng(seed), n_fluctuations)
