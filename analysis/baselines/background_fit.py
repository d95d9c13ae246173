"""Smooth background model of the selected m_jj spectrum, fitted by binned Poisson likelihood.

The 350-450 GeV jet-pT window makes the selected spectrum *rise* (two jets of at least 350 GeV
cannot be light) before it falls. The standard dijet function alone,
``f(x) = p0 (1-x)^p1 / x^(p2 + p3 ln x)``, ``x = m / sqrt(s)``, describes only the falling part,
so the model multiplies it by a turn-on, an error function or a logistic::

    mu(m) = f(m / sqrt(s)) * (1 + erf((m - m0) / w)) / 2      (turn_on="erf")
    mu(m) = f(m / sqrt(s)) / (1 + exp(-(m - m0) / w))          (turn_on="logistic")

with parameters ``theta = (ln p0, p1, p2, p3, m0, ln w)`` (logs keep p0 and w positive); ``mu``
is the expected count of the bin centred at ``m`` (the bin-centre approximation of its
integral). The two turn-ons differ in the low-mass tail (Gaussian against exponential);
``turn_on="auto"`` fits both and keeps the one with the smaller deviance (same number of
parameters).

The fit is iminuit's ``cost.ExtendedBinnedNLL`` minimised by MIGRAD, with HESSE errors. Two
things make it fast and robust:

* ``ln f`` is linear in the dijet coefficients, but over the narrow x range of a search they are
  correlated to 1e-6; the fit runs in decorrelated coordinates ``phi = R theta_dijet`` (R from
  a QR decomposition of the Fisher-weighted basis, so ``phi`` has unit, uncorrelated errors at
  the start) and maps back. With the turn-on fixed the likelihood is convex in them (a Poisson
  log-linear model), so only the turn-on needs several starts;
* the model hands MIGRAD its analytic gradient. ExtendedBinnedNLL takes a scaled cdf; with the
  bin-centre convention above, the cdf at edge j is the sum of the bins below it, and its
  differences give back each bin's expectation.

A cold fit (no ``start``) tries a few turn-on starts per kind; a fit started from a nearby
solution (``start=``, e.g. the sample's fit for one of its Poisson realisations) is a single
MIGRAD (~5-10 ms for 72 bins). The goodness of fit is the Poisson deviance (Baker-Cousins chi2,
the value of ExtendedBinnedNLL at its minimum) per degree of freedom, ~1 for a good description.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from iminuit import Minuit, cost
from scipy import special

from analysis.core.binning import bin_centres

N_PARAMS = 6
PARAMETERS = ("ln_p0", "p1", "p2", "p3", "m0", "ln_w")
TURN_ONS = ("erf", "logistic")


def dijet_turnon(theta: np.ndarray, mass: np.ndarray, sqrt_s: float = 7000.0, turn_on: str = "erf") -> np.ndarray:
    """Expected counts per bin at ``mass`` (GeV) for ``theta = (ln p0, p1, p2, p3, m0, ln w)``."""
    ln_p0, p1, p2, p3, m0, ln_w = theta
    x = np.asarray(mass, dtype=float) / sqrt_s
    log_x = np.log(x)
    log_f = ln_p0 + p1 * np.log1p(-x) - (p2 + p3 * log_x) * log_x
    z = (np.asarray(mass, dtype=float) - m0) / np.exp(ln_w)
    return np.exp(np.clip(log_f, -700, 700)) * _rise(z, turn_on)[0]


def _rise(z: np.ndarray, turn_on: str) -> tuple[np.ndarray, np.ndarray]:
    """The turn-on factor at ``z = (m - m0) / w`` and its derivative in z."""
    if turn_on == "erf":
        return 0.5 * special.erfc(-z), np.exp(-z * z) / np.sqrt(np.pi)
    rise = special.expit(z)
    return rise, rise * (1.0 - rise)


def dijet_basis(mass: np.ndarray, sqrt_s: float) -> np.ndarray:
    """``ln f = basis @ (ln p0, p1, p2, p3)``: the columns 1, ln(1-x), -ln x, -ln^2 x."""
    x = np.asarray(mass, dtype=float) / sqrt_s
    log_x = np.log(x)
    return np.column_stack([np.ones_like(x), np.log1p(-x), -log_x, -log_x * log_x])


class SpectrumModel:
    """Dijet x turn-on (plus an optional fixed-shape template) on fixed bins, in fit coordinates.

    Parameters seen by Minuit: ``phi0..phi3`` (decorrelated dijet coefficients, see the module
    docstring), ``m0``, ``ln_w`` and, with a ``template`` (expected fraction per bin), its yield
    ``signal``. Callable as ExtendedBinnedNLL's scaled cdf (``model(edges, *par)``) with
    ``grad`` its gradient.
    """

    def __init__(self, centres: np.ndarray, sqrt_s: float, turn_on: str, weights: np.ndarray,
                 template: np.ndarray | None = None) -> None:  # fmt: skip
        if turn_on not in TURN_ONS:
            raise ValueError(f"turn_on must be erf or logistic (got {turn_on!r})")
        self.centres = np.asarray(centres, dtype=float)
        self.sqrt_s, self.turn_on = float(sqrt_s), turn_on
        basis = dijet_basis(self.centres, sqrt_s)
        # R^T R = B^T diag(w) B, the Fisher information of the dijet coefficients for mu = w
        self.r = np.linalg.qr(np.sqrt(np.clip(weights, 1.0, None))[:, None] * basis, mode="r")
        self.r_inv = np.linalg.inv(self.r)
        self.design = basis @ self.r_inv
        self.template = None if template is None else np.asarray(template, dtype=float)
        self.names = ("phi0", "phi1", "phi2", "phi3", "m0", "ln_w") + (() if template is None else ("signal",))
        self._turn_on_key: tuple[float, float] | None = None
        self._turn_on: tuple[Any, ...] = ()  # (rise, d rise / dz, z, width) at _turn_on_key

    def to_fit(self, theta: Sequence[float]) -> np.ndarray:
        """Fit coordinates of ``theta = (ln p0, p1, p2, p3, m0, ln w)``."""
        theta = np.asarray(theta, dtype=float)
        return np.concatenate([self.r @ theta[:4], theta[4:6]])

    def to_theta(self, par: Sequence[float]) -> np.ndarray:
        """``theta`` of fit coordinates (a trailing signal yield is dropped)."""
        par = np.asarray(par, dtype=float)
        return np.concatenate([self.r_inv @ par[:4], par[4:6]])

    def jacobian(self) -> np.ndarray:
        """d theta / d par for the six background parameters."""
        jac = np.eye(N_PARAMS)
        jac[:4, :4] = self.r_inv
        return jac

    def _parts(self, par: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Dijet function, turn-on, its z-derivative, z and the width at ``par``."""
        par = np.asarray(par, dtype=float)
        f = np.exp(np.clip(self.design @ par[:4], -700, 700))
        key = (float(par[4]), float(par[5]))
        if key != self._turn_on_key:  # the turn-on is often fixed: computed once
            width = float(np.exp(par[5]))
            z = (self.centres - par[4]) / width
            self._turn_on_key, self._turn_on = key, (*_rise(z, self.turn_on), z, width)
        return (f, *self._turn_on)

    def expected(self, par: Sequence[float]) -> np.ndarray:
        """Expected counts per bin."""
        f, rise, *_ = self._parts(par)
        mu = f * rise
        return mu if self.template is None else mu + par[6] * self.template

    def __call__(self, edges: np.ndarray, *par: float) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.expected(par))])

    def grad(self, edges: np.ndarray, *par: float) -> np.ndarray:
        """Gradient of the scaled cdf: shape (parameters, edges)."""
        f, rise, slope, z, width = self._parts(par)
        rows = [(f * rise)[None, :] * self.design.T, -(f * slope)[None, :] / width, -(f * slope * z)[None, :]]
        if self.template is not None:
            rows.append(self.template[None, :])
        d = np.concatenate(rows)
        return np.concatenate([np.zeros((d.shape[0], 1)), np.cumsum(d, axis=1)], axis=1)


@dataclass(frozen=True)
class BackgroundFit:
    """Fitted parameters with HESSE errors, goodness of fit and the fit range (bins [first, last])."""

    theta: list[float]
    sqrt_s: float
    turn_on: str
    chi2: float  # Poisson deviance at the minimum
    ndf: int
    first_bin: int
    last_bin: int
    errors: list[float] = field(default_factory=list)  # HESSE, per theta parameter
    valid: bool = True  # MIGRAD converged (re-checked after HESSE when errors were asked for)

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / max(self.ndf, 1)

    def expected(self, mass: np.ndarray) -> np.ndarray:
        return dijet_turnon(np.asarray(self.theta), mass, self.sqrt_s, self.turn_on)

    def to_dict(self) -> dict[str, object]:
        errors = [e if np.isfinite(e) else None for e in self.errors]  # JSON: no NaN
        return {**asdict(self), "errors": errors, "chi2_ndf": self.chi2_ndf, "model": f"dijet function x {self.turn_on} turn-on",
                "parameters": list(PARAMETERS), "minimiser": "iminuit MIGRAD + HESSE (ExtendedBinnedNLL)"}  # fmt: skip


def linear_start(counts: np.ndarray, centres: np.ndarray, sqrt_s: float, turn_on: str, m0: float,
                 ln_w: float) -> np.ndarray:  # fmt: skip
    """``theta`` with the given turn-on and the dijet coefficients from a weighted least-squares
    fit of ln(counts / rise) (weights ~ counts): the Poisson fit's answer to first order."""
    rise = np.clip(_rise((centres - m0) / np.exp(ln_w), turn_on)[0], 1e-12, None)
    n = np.asarray(counts, dtype=float)
    weight = np.sqrt(n + 0.5) * (rise > 1e-3)
    basis = dijet_basis(centres, sqrt_s)
    coef = np.linalg.lstsq(weight[:, None] * basis, weight * np.log((n + 0.5) / rise), rcond=None)[0]
    return np.concatenate([coef, [m0, ln_w]])


def turn_on_starts(counts: np.ndarray, centres: np.ndarray) -> list[tuple[float, float]]:
    """(m0, ln w) starts: the half-maximum of a visible rise, and turn-ons below the first bin
    (a spectrum that only falls shows the end of the rise as a flattening of its first bins)."""
    step = float(centres[1] - centres[0])
    peak = int(np.argmax(counts))
    starts = []
    if peak > 0:
        half = np.nonzero(counts[: peak + 1] >= 0.5 * counts[peak])[0]
        m0 = float(centres[half[0]])
        starts.append((m0, float(np.log(max(float(centres[peak]) - m0, step)))))
    first = float(centres[0])
    for width in (2.0 * step, 5.0 * step):
        for depth in (1.0, 2.5):  # rise(first bin) ~ 0.85 and ~ 0.99
            starts.append((first - depth * width, float(np.log(width))))
    return starts


def turn_on_limits(centres: np.ndarray) -> dict[str, tuple[float, float]]:
    """Turn-on limits that keep the model finite: m0 within a range-width of the bins, w from a
    quarter bin to the range width."""
    step, span = float(centres[1] - centres[0]), float(centres[-1] - centres[0] + (centres[1] - centres[0]))
    return {"m0": (float(centres[0]) - span, float(centres[-1])), "ln_w": (float(np.log(0.25 * step)), float(np.log(span)))}


def minuit(model: SpectrumModel, counts: np.ndarray, edges: np.ndarray, start: Sequence[float], *,
           fixed: Sequence[str] = (), limits: dict[str, tuple[float | None, float | None]] | None = None) -> Minuit:  # fmt: skip
    """Minuit on ExtendedBinnedNLL for ``model`` (analytic gradient) from ``start`` (fit coordinates)."""
    nll = cost.ExtendedBinnedNLL(np.asarray(counts, dtype=float), edges, model, grad=model.grad, name=model.names)
    m = Minuit(nll, *np.asarray(start, dtype=float))
    m.errors = [1.0] * 4 + [5.0, 0.2] + [max(1.0, float(np.sqrt(abs(start[-1]) + 1.0)))] * (len(model.names) - 6)
    for name, lim in (limits or {}).items():
        m.limits[name] = lim
    for name in fixed:
        m.fixed[name] = True
    m.strategy = 0
    return m


def migrad(m: Minuit, hesse: bool = False) -> Minuit:
    """MIGRAD (strategy 0), then optionally HESSE (polishing with its Hessian where needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m.migrad()
        if hesse:
            m.hesse()
            if m.fmin.is_above_max_edm:  # strategy 0's approximate Hessian stopped short: polish with HESSE's
                m.migrad()
                m.hesse()
    return m


def minimise(model: SpectrumModel, counts: np.ndarray, edges: np.ndarray, start: Sequence[float], *,
             fixed: Sequence[str] = (), limits: dict[str, tuple[float | None, float | None]] | None = None,
             hesse: bool = False) -> Minuit:  # fmt: skip
    """:func:`minuit` then :func:`migrad`."""
    return migrad(minuit(model, counts, edges, start, fixed=fixed, limits=limits), hesse=hesse)


def fit_background(counts: np.ndarray, edges: np.ndarray, sqrt_s: float = 7000.0, turn_on: str = "auto", *,
                   start: BackgroundFit | Sequence[float] | None = None, trim: bool = True,
                   hesse: bool = True, fix_turn_on: bool = False) -> BackgroundFit:  # fmt: skip
    """Fit the model to a histogram (``counts`` per bin of ``edges``, GeV).

    ``turn_on`` is ``erf``, ``logistic`` or ``auto`` (both, the better fit kept; with a
    BackgroundFit as ``start``, its kind). ``start``: a nearby solution (a BackgroundFit or a
    theta) for a single MIGRAD instead of the cold multi-start. ``trim``: fit from the first to the
    last non-empty bin (a histogram over a wider range than the spectrum); ``False`` fits every
    bin (a search range, where an empty bin is an observation). ``hesse``: HESSE errors (off for
    toys, which need only the minimum; ``errors`` are then NaN). ``fix_turn_on``: keep the
    start's m0 and w, fit only the dijet coefficients (the turn-on as a known property of the
    selection; needs ``start``).
    """
    if fix_turn_on and start is None:
        raise ValueError("fix_turn_on needs a start (the turn-on to keep)")
    if isinstance(start, BackgroundFit):
        turn_on = start.turn_on if turn_on == "auto" else turn_on
        start = start.theta
    if turn_on == "auto":
        fits = [fit_background(counts, edges, sqrt_s, kind, start=start, trim=trim, hesse=hesse, fix_turn_on=fix_turn_on)
                for kind in TURN_ONS]  # fmt: skip
        return min(fits, key=lambda f: f.chi2)
    if turn_on not in TURN_ONS:
        raise ValueError(f"turn_on must be erf, logistic or auto (got {turn_on!r})")
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    filled = np.nonzero(counts > 0)[0]
    if filled.size < N_PARAMS + 2:
        raise ValueError(f"a background fit needs at least {N_PARAMS + 2} non-empty bins (got {filled.size})")
    first, last = (int(filled[0]), int(filled[-1])) if trim else (0, counts.size - 1)
    centres = bin_centres(edges)
    n, m, e = counts[first : last + 1], centres[first : last + 1], edges[first : last + 2]
    if start is not None:
        thetas = [np.asarray(start, dtype=float)]
    else:
        thetas = [linear_start(n, m, sqrt_s, turn_on, m0, ln_w) for m0, ln_w in turn_on_starts(n, m)]
    weights = dijet_turnon(thetas[0], m, sqrt_s, turn_on) if start is not None else n
    model = SpectrumModel(m, sqrt_s, turn_on, weights)
    limits = turn_on_limits(m)
    fixed = ("m0", "ln_w") if fix_turn_on else ()
    best = None
    for theta in thetas:
        par = model.to_fit(theta)
        if not fix_turn_on:
            par[4] = float(np.clip(par[4], *limits["m0"]))
            par[5] = float(np.clip(par[5], *limits["ln_w"]))
        fit = minimise(model, n, e, par, fixed=fixed, limits=None if fix_turn_on else limits)
        if best is None or fit.fval < best.fval:
            best = fit
    errors = np.full(N_PARAMS, np.nan)
    if hesse:
        best = minimise(model, n, e, np.asarray(best.values), fixed=fixed, limits=None if fix_turn_on else limits,
                        hesse=True)  # fmt: skip
        if best.covariance is not None:
            jac = model.jacobian()
            errors = np.sqrt(np.clip(np.diag(jac @ np.asarray(best.covariance) @ jac.T), 0, None))
    theta = model.to_theta(best.values)
    return BackgroundFit(
        [float(v) for v in theta], float(sqrt_s), turn_on, float(best.fval), int(n.size - N_PARAMS + len(fixed)),
        first, last,
        errors=[float(v) for v in errors], valid=bool(best.valid),
    )  # fmt: skip
