"""Smooth background model of the selected m_jj spectrum, fitted by binned Poisson likelihood.

The 350-450 GeV jet-pT window makes the selected spectrum *rise* (two jets of at least 350 GeV
cannot be light) before it falls. The standard dijet function alone,
``f(x) = p0 (1-x)^p1 / x^(p2 + p3 ln x)``, ``x = m / sqrt(s)``, describes only the falling part,
so the model multiplies it by a turn-on, an error function or a logistic::

    mu(m) = f(m / sqrt(s)) * (1 + erf((m - m0) / w)) / 2      (turn_on="erf")
    mu(m) = f(m / sqrt(s)) / (1 + exp(-(m - m0) / w))          (turn_on="logistic")

with parameters ``theta = (ln p0, p1, p2, p3, m0, ln w)`` (logs keep p0 and w positive). The two
differ in the low-mass tail (Gaussian against exponential); ``turn_on="auto"`` fits both and
keeps the one with the smaller deviance (same number of parameters). The fit
minimises the Poisson negative log-likelihood over the bins from the first to the last
non-empty one; its goodness of fit is the Poisson deviance (Baker-Cousins chi2) per degree of
freedom, ~1 for a good description. ``model(theta, mass)`` has the signature of
:func:`analysis.baselines.fit_significance`'s model, so the classical fit can use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

from analysis.baselines import _minimise

N_PARAMS = 6


def dijet_turnon(theta: np.ndarray, mass: np.ndarray, sqrt_s: float = 7000.0, turn_on: str = "erf") -> np.ndarray:
    """Expected counts per bin at ``mass`` (GeV) for ``theta = (ln p0, p1, p2, p3, m0, ln w)``."""
    ln_p0, p1, p2, p3, m0, ln_w = theta
    x = np.asarray(mass, dtype=float) / sqrt_s
    log_x = np.log(x)
    log_f = ln_p0 + p1 * np.log1p(-x) - (p2 + p3 * log_x) * log_x
    z = (np.asarray(mass, dtype=float) - m0) / np.exp(ln_w)
    rise = 0.5 * special.erfc(-z) if turn_on == "erf" else special.expit(z)
    return np.exp(np.clip(log_f, -700, 700)) * rise


def poisson_deviance(counts: np.ndarray, expected: np.ndarray) -> float:
    """Baker-Cousins chi2: 2 sum(mu - n + n ln(n / mu))."""
    mu = np.clip(expected, 1e-300, None)
    n = np.asarray(counts, dtype=float)
    log_term = np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0) / mu), 0.0)
    return float(2.0 * np.sum(mu - n + log_term))


@dataclass(frozen=True)
class BackgroundFit:
    """Fitted parameters, goodness of fit and the fit range (bin indices [first, last])."""

    theta: list[float]
    sqrt_s: float
    turn_on: str
    chi2: float
    ndf: int
    first_bin: int
    last_bin: int

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / max(self.ndf, 1)

    def expected(self, mass: np.ndarray) -> np.ndarray:
        return dijet_turnon(np.asarray(self.theta), mass, self.sqrt_s, self.turn_on)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "chi2_ndf": self.chi2_ndf, "model": f"dijet function x {self.turn_on} turn-on",
                "parameters": ["ln_p0", "p1", "p2", "p3", "m0", "ln_w"]}  # fmt: skip


def start_values(counts: np.ndarray, centres: np.ndarray, sqrt_s: float) -> np.ndarray:
    """Turn-on at the half-maximum of the rise, width from the rise, p0 from the total."""
    peak = int(np.argmax(counts))
    half = np.nonzero(counts[: peak + 1] >= 0.5 * counts[peak])[0]
    m0 = float(centres[half[0]]) if half.size else float(centres[peak])
    width = max(float(centres[peak] - m0), float(centres[1] - centres[0]))
    theta = np.array([0.0, 10.0, 5.0, 0.0, m0, np.log(width)])
    shape = dijet_turnon(theta, centres, sqrt_s)
    theta[0] = np.log(max(counts.sum(), 1.0) / max(shape.sum(), 1e-300))
    return theta


def fit_background(counts: np.ndarray, edges: np.ndarray, sqrt_s: float = 7000.0, turn_on: str = "auto") -> BackgroundFit:
    """Fit the model to a histogram (``counts`` per bin of ``edges``, GeV); ``turn_on`` is
    ``erf``, ``logistic`` or ``auto`` (both, the better fit kept)."""
    if turn_on == "auto":
        fits = [fit_background(counts, edges, sqrt_s, kind) for kind in ("erf", "logistic")]
        return min(fits, key=lambda f: f.chi2)
    if turn_on not in ("erf", "logistic"):
        raise ValueError(f"turn_on must be erf, logistic or auto (got {turn_on!r})")
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    filled = np.nonzero(counts > 0)[0]
    if filled.size < N_PARAMS + 2:
        raise ValueError(f"a background fit needs at least {N_PARAMS + 2} non-empty bins (got {filled.size})")
    first, last = int(filled[0]), int(filled[-1])
    centres = 0.5 * (edges[1:] + edges[:-1])
    n, m = counts[first : last + 1], centres[first : last + 1]

    def nll(theta: np.ndarray) -> float:
        mu = np.clip(dijet_turnon(theta, m, sqrt_s, turn_on), 1e-300, None)
        value = float(np.sum(mu - n * np.log(mu)))
        return value if np.isfinite(value) else 1e300

    best = None
    start = start_values(n, m, sqrt_s)
    for p1, p2 in ((10.0, 5.0), (5.0, 7.0), (20.0, 3.0)):  # a few shapes: the fit has local minima
        theta0 = start.copy()
        theta0[1:3] = p1, p2
        theta0[0] = np.log(n.sum() / max(dijet_turnon(np.r_[0.0, theta0[1:]], m, sqrt_s, turn_on).sum(), 1e-300))
        result = _minimise(nll, theta0)
        if best is None or result.fun < best.fun:
            best = result
    chi2 = poisson_deviance(n, dijet_turnon(best.x, m, sqrt_s, turn_on))
    return BackgroundFit([float(v) for v in best.x], float(sqrt_s), turn_on, chi2, int(n.size - N_PARAMS), first, last)
