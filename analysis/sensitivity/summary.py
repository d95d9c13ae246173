"""From per-realisation p-values to a method's entry: medians, bands, crossings, null calibration.

A method hands over, for every realisation r and injected size N, its local and global p-value
and whether each is only an upper bound (a p past what its toys or tail fit support). Z is the
one-sided ``norm.isf(p)`` (negative for p > 0.5, so a calibrated null has median Z = 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.sensitivity.model import Band, Crossing, CrossingBand, MethodEntry, Point

QUANTILES = (0.16, 0.5, 0.84)


def z_from_p(p: np.ndarray | float) -> np.ndarray:
    """One-sided significance of p-values (p clipped to [1e-300, 1 - 1e-12]: Z stays finite)."""
    return stats.norm.isf(np.clip(np.asarray(p, dtype=float), 1e-300, 1.0 - 1e-12))


def quantile_bound(z: np.ndarray, bound: np.ndarray, q: float) -> tuple[float, bool]:
    """The q-quantile of Z over realisations, and whether it is only a lower bound.

    A bounded realisation's Z is at least its bound value; the bounds sit at the top of the
    distribution, so the quantile is exact while the bounded share is at most ``1 - q``.
    """
    z, bound = np.asarray(z, dtype=float), np.asarray(bound, dtype=bool)
    value = float(np.quantile(z, q))
    is_bound = bool(bound.mean() > 1.0 - q + 1e-12)
    if is_bound:
        value = float(np.min(z[bound]))
    return value, is_bound


def band(z: np.ndarray, bound: np.ndarray) -> tuple[Band, dict[float, bool]]:
    """Median and 16/84 % band of Z over realisations, with which quantiles are bounds."""
    values, bounds = {}, {}
    for q in QUANTILES:
        values[q], bounds[q] = quantile_bound(z, bound, q)
    return Band(median=values[0.5], lo=values[0.16], hi=values[0.84]), bounds


def crossing(n_signal: Sequence[float], z: Sequence[float], bound: Sequence[bool], threshold: float) -> tuple[float | None, float | None]:
    """Where a Z curve first rises through ``threshold``: (crossing, limit).

    The crossing is interpolated linearly between the last grid point below the threshold and
    the next one at or above it. Points at the start of the grid that already reach the
    threshold (an upward fluctuation at N = 0) are skipped: a crossing needs a point below it
    first. When the first point at or above the threshold is only a bound, the crossing is not
    read off it: ``(None, N_i)`` says that it lies below N_i. ``(None, None)``: not reached.
    """
    below_seen = False
    for i, (n, value, is_bound) in enumerate(zip(n_signal, z, bound, strict=True)):
        if value < threshold:
            below_seen = True
            continue
        if not below_seen:
            continue
        if is_bound:
            return None, float(n)
        n0, z0 = float(n_signal[i - 1]), float(z[i - 1])
        return float(n0 + (threshold - z0) / (value - z0) * (float(n) - n0)), None
    return None, None


@dataclass(frozen=True)
class MethodResult:
    """A method's p-values on the realisations (arrays of shape realisations x sizes)."""

    method: str
    signal: str
    n_signal: Sequence[int]
    p_local: np.ndarray
    p_global: np.ndarray
    bound_local: np.ndarray | None = None
    bound_global: np.ndarray | None = None


def summarise(
    result: MethodResult, *, background_events: int, fingerprint: str, z_global_meaning: str,
    s_over_b: Sequence[float | None] | None = None, luminosity_fraction: float = 1.0,
    notes: Sequence[str] = (), details: dict | None = None,
) -> MethodEntry:  # fmt: skip
    """The ``sensitivity.json`` entry of a method from its per-realisation p-values."""
    p_local, p_global = np.asarray(result.p_local, dtype=float), np.asarray(result.p_global, dtype=float)
    if p_local.shape != p_global.shape or p_local.shape[1] != len(result.n_signal):
        raise ValueError(f"{result.method}: p-values of shape {p_local.shape} / {p_global.shape} for {len(result.n_signal)} sizes")
    b_local = np.zeros(p_local.shape, bool) if result.bound_local is None else np.asarray(result.bound_local, bool)
    b_global = np.zeros(p_global.shape, bool) if result.bound_global is None else np.asarray(result.bound_global, bool)
    z_local, z_global = z_from_p(p_local), z_from_p(p_global)
    points, curves = [], {("global", q): [] for q in QUANTILES} | {("local", q): [] for q in QUANTILES}
    bounds = {key: [] for key in curves}
    for k, n in enumerate(result.n_signal):
        zl, bl = band(z_local[:, k], b_local[:, k])
        zg, bg = band(z_global[:, k], b_global[:, k])
        for kind, b, flags in (("local", zl, bl), ("global", zg, bg)):
            for q, value in zip(QUANTILES, (b.lo, b.median, b.hi), strict=True):
                curves[(kind, q)].append(value)
                bounds[(kind, q)].append(flags[q])
        sob = None if s_over_b is None else s_over_b[k]
        points.append(Point(n_signal=int(n), z_local=zl, z_global=zg, bound=bg[0.5], bound_local=bl[0.5], s_over_b=sob))

    def crossings(threshold: float) -> tuple[Crossing, CrossingBand, Crossing]:
        found = {key: crossing(result.n_signal, curves[key], bounds[key], threshold) for key in curves}
        median = Crossing(**{"global": found[("global", 0.5)][0], "local": found[("local", 0.5)][0]})
        limit = Crossing(**{"global": found[("global", 0.5)][1], "local": found[("local", 0.5)][1]})
        # the 84 % curve reaches the threshold first: the band's lower end
        spread = CrossingBand(
            **{kind: (found[(kind, 0.84)][0], found[(kind, 0.16)][0]) for kind in ("global", "local")},
            **{f"{kind}_limit": (found[(kind, 0.84)][1], found[(kind, 0.16)][1]) for kind in ("global", "local")},
        )
        return median, spread, limit

    c3, b3, l3 = crossings(3.0)
    c5, b5, l5 = crossings(5.0)
    null = [i for i, n in enumerate(result.n_signal) if n == 0]
    null_p = p_global[:, null[0]] if null else np.zeros(0)
    ks = float(stats.kstest(null_p, "uniform").pvalue) if len(null_p) >= 2 else None
    return MethodEntry(
        method=result.method, signal=result.signal, background_events=int(background_events),
        realizations=int(p_local.shape[0]), fingerprint=fingerprint, luminosity_fraction=luminosity_fraction,
        points=points, null_p_global=[float(p) for p in null_p], null_ks_pvalue=ks,
        n_signal_3sigma=c3, n_signal_5sigma=c5, n_signal_3sigma_band=b3, n_signal_5sigma_band=b5,
        n_signal_3sigma_limit=l3, n_signal_5sigma_limit=l5, z_global_meaning=z_global_meaning,
        notes=list(notes), details=details or {},
    )  # fmt: skip
