"""Classical baselines on binned mass spectra: BumpHunter and a background + Gaussian fit.

* :func:`bump_hunt` runs pyBumpHunter's 1D scan of ``data`` against a reference (the
  background-only histogram or its fit): the most significant window's local p-value and the
  global p-value from background-only pseudo-experiments (look-elsewhere effect included).
* :func:`fit_significance` fits a smooth background model alone and with a Gaussian signal of
  known mass and width (amplitude >= 0) by binned Poisson likelihood; the local significance is
  ``Z = sqrt(q0)``, ``q0 = 2 (NLL_b - NLL_s+b)`` (Wilks, one-sided).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

Model = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BumpResult:
    """BumpHunter's most significant window and its local/global significance."""

    low: float
    high: float
    local_p: float
    local_z: float
    global_p: float
    global_z: float
    n_pseudo: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def z_from_p(p: float) -> float:
    """One-sided significance of a p-value (0 for p >= 0.5); p = 0 is clipped at 1e-300."""
    return float(max(stats.norm.isf(max(p, 1e-300)), 0.0))


def bump_hunt(
    data: np.ndarray,
    reference: np.ndarray,
    edges: np.ndarray,
    *,
    n_pseudo: int = 2000,
    seed: int = 0,
    width_min: int = 2,
    width_max: int | None = None,
) -> BumpResult:
    """Scan ``data`` against ``reference`` (same binning ``edges``) with pyBumpHunter."""
    from pyBumpHunter import BumpHunter1D

    data, reference, edges = (np.asarray(a, dtype=float) for a in (data, reference, edges))
    if data.shape != reference.shape or edges.shape != (data.size + 1,):
        raise ValueError("data, reference and edges must describe the same binning")
    width_max = width_max or max(width_min, data.size // 4)
    hunter = BumpHunter1D(
        rang=(edges[0], edges[-1]), bins=edges, width_min=width_min, width_max=width_max,
        width_step=1, scan_step=1, npe=n_pseudo, nworker=1, seed=seed, mode="excess",
    )  # fmt: skip
    state = np.random.get_state()  # pyBumpHunter seeds numpy's global generator: restore it
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hunter.bump_scan(data, reference, is_hist=True)
    finally:
        np.random.set_state(state)
    local_p = float(hunter.min_Pval_ar[0])
    loc, width = int(hunter.min_loc_ar[0]), int(hunter.min_width_ar[0])
    global_p = float(hunter.global_Pval)
    # with no pseudo-experiment at least as extreme, quote the bound 1/n_pseudo
    global_z = z_from_p(global_p if global_p > 0 else 1.0 / n_pseudo)
    return BumpResult(
        low=float(edges[loc]), high=float(edges[loc + width]), local_p=local_p, local_z=z_from_p(local_p),
        global_p=global_p, global_z=global_z, n_pseudo=n_pseudo,
    )  # fmt: skip


@dataclass(frozen=True)
class FitResult:
    """Background-only and background + signal fits of one spectrum."""

    q0: float
    z: float
    signal_events: float
    background_params: list[float]
    chi2_ndf: float

    def to_dict(self) -> dict[str, float | list[float]]:
        return asdict(self)


def poisson_nll(expected: np.ndarray, observed: np.ndarray) -> float:
    """Binned Poisson negative log-likelihood (up to a constant)."""
    expected = np.clip(expected, 1e-12, None)
    return float(np.sum(expected - observed * np.log(expected)))


def gaussian_bins(edges: np.ndarray, mass: float, width: float) -> np.ndarray:
    """Fraction of a unit Gaussian (mean ``mass``, sigma ``width``) in each bin."""
    cdf = special.ndtr((np.asarray(edges) - mass) / width)
    return np.diff(cdf)


def fit_significance(
    counts: np.ndarray,
    edges: np.ndarray,
    model: Model,
    start: np.ndarray | Sequence[np.ndarray],
    *,
    mass: float,
    width: float,
) -> FitResult:
    """Local significance of a Gaussian bump at ``mass`` over the background ``model``.

    ``start`` is one starting point of the background parameters or several: flexible
    background models have local minima, and q0 = 2 (NLL_b - NLL_s+b) needs the best minimum
    of both fits, so each fit keeps the best of all its starts (the signal yield also starts
    from zero, from the excess over the background-only fit and from twice that).
    """
    counts = np.asarray(counts, dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    shape = gaussian_bins(edges, mass, width)
    starts = [np.asarray(start, dtype=float)] if np.ndim(start[0]) == 0 else [np.asarray(s, dtype=float) for s in start]

    def nll_b(theta: np.ndarray) -> float:
        return poisson_nll(model(theta, centres), counts)

    def nll_sb(theta: np.ndarray) -> float:
        return poisson_nll(model(theta[:-1], centres) + theta[-1] * shape, counts)

    fit_b = min((_minimise(nll_b, s) for s in starts), key=lambda r: r.fun)
    s0 = max(float(np.sum((counts - model(fit_b.x, centres)) * shape) / np.sum(shape**2)), 0.0)
    bounds = [(None, None)] * len(fit_b.x) + [(0.0, None)]
    sb_starts = [np.append(theta, s) for theta in (fit_b.x, *starts) for s in {0.0, s0, 2.0 * s0}]
    fit_sb = min((_minimise(nll_sb, s, bounds=bounds) for s in sb_starts), key=lambda r: r.fun)
    q0 = max(2.0 * (fit_b.fun - fit_sb.fun), 0.0)
    expected = model(fit_b.x, centres)
    used = expected > 0
    chi2 = float(np.sum((counts[used] - expected[used]) ** 2 / expected[used]))
    return FitResult(
        q0=q0, z=float(np.sqrt(q0)), signal_events=float(fit_sb.x[-1]),
        background_params=[float(v) for v in fit_b.x], chi2_ndf=chi2 / max(int(used.sum()) - len(fit_b.x), 1),
    )  # fmt: skip


def _minimise(func: Callable[[np.ndarray], float], x0: np.ndarray, bounds=None) -> optimize.OptimizeResult:
    """Nelder-Mead to get near, then L-BFGS-B to polish (robust for these smooth fits)."""
    options = {"maxiter": 20_000, "xatol": 1e-8, "fatol": 1e-10}
    coarse = optimize.minimize(func, x0, method="Nelder-Mead", bounds=bounds, options=options)
    fine = optimize.minimize(func, coarse.x, method="L-BFGS-B", bounds=bounds)
    return fine if fine.fun <= coarse.fun else coarse


def exponential_model(theta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """``exp(a - b m)``: log-amplitude and slope (positive by construction)."""
    return np.exp(theta[0] - theta[1] * mass)


def exponential_start(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Starting values from a straight-line fit of log counts."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    good = counts > 0
    slope, intercept = np.polyfit(centres[good], np.log(counts[good]), 1)
    return np.array([intercept, -slope])
