"""Toy mass spectra: smooth backgrounds, Gaussian signal trains, Poisson fluctuations.

All functions return expected (or drawn) counts per bin of the background's binning.
"""

from __future__ import annotations

import numpy as np

from analysis.toys.definitions import DijetBackground, ExponentialBackground, SignalDef

Background = ExponentialBackground | DijetBackground


def background_counts(background: Background) -> np.ndarray:
    """Expected background counts at the bin centres of the background's binning."""
    return background.counts()


def signal_counts(signal: SignalDef, mass: np.ndarray) -> np.ndarray:
    """Expected signal counts at ``mass``: sum over periods of decaying Gaussians."""
    n = np.arange(signal.periods, dtype=float)
    center = signal.expression("center")(n)
    height = signal.expression("height")(n) * np.exp(-signal.decay_rate * n)
    width = signal.expression("width")(n)
    if np.any(width <= 0):
        raise ValueError(f"signal id={signal.id}: width must be positive for every n")
    m = np.asarray(mass, dtype=float)[:, None]
    return np.sum(height * np.exp(-0.5 * ((m - center) / width) ** 2), axis=1)


def clean_spectrum(background: Background, signal: SignalDef | None) -> np.ndarray:
    """Background plus signal expectation (no fluctuations)."""
    counts = background_counts(background)
    if signal is not None:
        counts = counts + signal_counts(signal, background.binning.centers)
    return counts


def fluctuate(expected: np.ndarray, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Independent Poisson draws per bin: one spectrum, or ``size`` spectra stacked on axis 0."""
    shape = np.shape(expected) if size is None else (size, *np.shape(expected))
    return rng.poisson(np.broadcast_to(expected, shape)).astype(float)
