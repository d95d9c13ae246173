"""Classical searches on a binned m_jj spectrum: BumpHunter and the dijet-function mass scan.

Both compare a spectrum with its own background-only fit (:mod:`analysis.baselines.background_fit`,
dijet function x turn-on), as a real search does; neither sees the truth.

* :class:`BumpScanner` runs pyBumpHunter's window scan (mode ``excess``) of the spectrum against
  that fit and returns the most significant window: its Poisson p-value is BumpHunter's local
  p, and ``t = -ln p`` its test statistic. Only the scan runs (``do_pseudo=False``): the
  pseudo-experiments of the global p are the caller's, each refitted like the data.
* :func:`mass_scan` fits background + Gaussian at each mass hypothesis (sigma = relative width x
  mass, a resolution, not the true signal shape); the dijet coefficients float, the turn-on is
  fixed to the spectrum's own background-only fit (free, a Gaussian near the low edge is nearly
  degenerate with it). ``q0(m) = 2 (NLL_b - NLL_s+b)``, one-sided (``q0 = 0`` when the fitted
  yield is negative, which equals the fit with yield >= 0), local ``p = 0.5 chi2_1.sf(q0)``.
  The flip side of fitting the spectrum itself: a broad bump within ~2 sigma of the low edge is
  partly taken up by the background-only fit's turn-on (m0 moves into the range), and the
  fixed-turn-on scan cannot recover it; a bump in the middle of the range is found.
* global p of the scan's maximum ``q_max`` (its look-elsewhere effect): the caller's
  background-only toys, each refitted and scanned like the data, through
  :class:`~analysis.sensitivity.tails.NullDistribution` (empirical, a exponential tail
  past the toys, or a bound). :class:`GrossVitells` (arXiv:1005.1891) is kept as a cross-check
  in the method's details, not used for p.

Why toys and not Gross-Vitells. Measured on 2000 toys of a spectrum like the default one (72
bins of 10 GeV, ~9000 events, 23 hypotheses every 20 GeV, sigma = 8 % x mass): the local q0 at a
fixed mass is *not* 0.5 chi2_1 -- P(q0 > 2.71) is 0.004-0.03 instead of 0.05, because the
turn-on is fixed to a fit of the same spectrum -- so the asymptotic inputs of Gross-Vitells do
not hold: with the upcrossings of c0 = 1 counted on 500 toys its p is 1.6-3.7x the toys' at
q_max = 4-12 (p = 0.04-0.0005), conservative rather than calibrated; the toys' tail falls like
exp(-c / 1.8), not exp(-c / 2). NullDistribution's tail fit measures that slope. Cost: a scan is
~25 fits (~30 ms), so the fit's null uses the first ``FIT_TOYS`` (1000) of BumpHunter's toys
(:mod:`analysis.baselines.sensitivity`), ~30 s; Gross-Vitells would have needed a few hundred.
The asymptotic local p (as defined above) is conservative for the same reason; the global p does
not use it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from analysis.baselines.background_fit import BackgroundFit, SpectrumModel, migrad, minimise, minuit
from analysis.core.binning import bin_centres

P_FLOOR = 1e-300  # local p-values below this are reported as this value, flagged as bounds


def gaussian_bins(edges: np.ndarray, mass: float, width: float) -> np.ndarray:
    """Fraction of a unit Gaussian (mean ``mass``, sigma ``width``) in each bin."""
    return np.diff(special.ndtr((np.asarray(edges, dtype=float) - mass) / width))


# -- BumpHunter --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BumpScan:
    """The most significant window of a BumpHunter scan (edges in GeV, position and width in bins)."""

    low: float
    high: float
    local_p: float
    first_bin: int
    width: int
    underflow: bool = False  # the window's p was below P_FLOOR: local_p is an upper bound

    @property
    def t(self) -> float:
        """BumpHunter's test statistic, -ln(local p)."""
        return float(-np.log(self.local_p))


class BumpScanner:
    """pyBumpHunter's 1D scan (excess mode) of spectra on fixed bins, without pseudo-experiments."""

    def __init__(self, edges: np.ndarray, width_min: int = 2, width_max: int | None = None) -> None:
        from pyBumpHunter import BumpHunter1D

        self.edges = np.asarray(edges, dtype=float)
        bins = self.edges.size - 1
        self.width_max = min(width_max or max(width_min, bins // 4), bins)
        self.width_min = min(width_min, self.width_max)
        self._hunter = BumpHunter1D(
            rang=(self.edges[0], self.edges[-1]), bins=self.edges, width_min=self.width_min,
            width_max=self.width_max, width_step=1, scan_step=1, npe=0, nworker=1, seed=0, mode="excess",
        )  # fmt: skip

    def scan(self, data: np.ndarray, reference: np.ndarray) -> BumpScan:
        """The most significant excess of ``data`` over ``reference`` (both counts per bin)."""
        data, reference = np.asarray(data, dtype=float), np.asarray(reference, dtype=float)
        if data.shape != reference.shape or data.size != self.edges.size - 1:
            raise ValueError("data, reference and edges must describe the same binning")
        state = np.random.get_state()  # bump_scan seeds numpy's global generator: restore it
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self._hunter.bump_scan(data, reference, is_hist=True, do_pseudo=False)
        finally:
            np.random.set_state(state)
        p = float(self._hunter.min_Pval_ar[0])
        loc, width = int(self._hunter.min_loc_ar[0]), int(self._hunter.min_width_ar[0])
        return BumpScan(low=float(self.edges[loc]), high=float(self.edges[loc + width]), local_p=max(p, P_FLOOR),
                        first_bin=loc, width=width, underflow=p < P_FLOOR)  # fmt: skip


# -- background + Gaussian mass scan -----------------------------------------------------------


def mass_hypotheses(low: float, high: float, relative_width: float, step: float, margin: float = 1.5) -> np.ndarray:
    """Masses spaced ``step`` GeV whose Gaussian keeps ``margin`` sigmas inside [low, high]."""
    first = low / (1.0 - margin * relative_width)
    last = high / (1.0 + margin * relative_width)
    if last < first:
        raise ValueError(f"no mass hypothesis fits {low:g}-{high:g} GeV with sigma = {relative_width:g} x mass")
    return first + step * np.arange(int(np.floor((last - first) / step + 1e-9)) + 1)


@dataclass(frozen=True)
class MassScan:
    """q0 and the fitted signal yield at every mass hypothesis of one spectrum.

    ``signed``: q0 where the fitted yield is positive, -2 (NLL_b - NLL_s+b) where it is negative.
    Its maximum is the scan's test statistic: equal to the largest q0 whenever some mass has an
    excess, and it still orders the spectra without any (instead of tying them at q0 = 0, an
    atom that would make the toys' p-values lumpy).
    """

    masses: np.ndarray
    signed: np.ndarray
    signal: np.ndarray  # fitted Gaussian yield (events)
    deviance_b: float  # background-only deviance (turn-on fixed), the reference of q0

    @property
    def q0(self) -> np.ndarray:
        """One-sided q0 (0 where the fitted yield is negative)."""
        return np.clip(self.signed, 0.0, None)

    @property
    def best(self) -> int:
        return int(np.argmax(self.signed))

    @property
    def statistic(self) -> float:
        """The largest signed q0: the global test statistic."""
        return float(self.signed[self.best])

    @property
    def q_max(self) -> float:
        return max(self.statistic, 0.0)

    @property
    def local_p(self) -> float:
        """Local p of the most significant mass: 0.5 chi2_1.sf(q0) (one-sided)."""
        return float(local_p(self.q_max))


def local_p(q0: np.ndarray | float) -> np.ndarray | float:
    """One-sided asymptotic p of q0 (Wilks with the yield >= 0): 0.5 P(chi2_1 > q0), 0.5 at q0 = 0."""
    return 0.5 * stats.chi2.sf(np.clip(q0, 0.0, None), 1)


def mass_scan(counts: np.ndarray, edges: np.ndarray, background: BackgroundFit, masses: Sequence[float],
              relative_width: float) -> MassScan:  # fmt: skip
    """Background + Gaussian fits of ``counts`` at each mass, the turn-on fixed to ``background``
    (a fit of the same spectrum over the same bins, e.g. ``fit_background(..., trim=False)``)."""
    counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    centres = bin_centres(edges)
    b = background.expected(centres)
    fixed = ("m0", "ln_w")
    reference = SpectrumModel(centres, background.sqrt_s, background.turn_on, b)
    start = reference.to_fit(background.theta)
    fit_b = minimise(reference, counts, edges, start, fixed=fixed)
    start = np.asarray(fit_b.values)
    signed, yields = np.zeros(len(masses)), np.zeros(len(masses))
    model = SpectrumModel(centres, background.sqrt_s, background.turn_on, b, template=np.zeros_like(b))
    fit = minuit(model, counts, edges, np.append(model.to_fit(reference.to_theta(start)), 0.0), fixed=fixed)
    for i, mass in enumerate(masses):  # one Minuit for every mass: the template changes in place
        template = gaussian_bins(edges, float(mass), relative_width * float(mass))
        model.template[:] = template
        peak = template > 1e-3 * template.max()
        s0 = float(np.sum((counts - b) * template) / np.sum(template**2))
        floor = -0.9 * float(np.min(b[peak] / template[peak]))  # keeps mu > 0 near the start
        fit.values = np.append(start, max(s0, 0.5 * floor))
        fit.errors["signal"] = float(np.sqrt(np.sum(b * template) + 1.0) / np.sum(template**2) ** 0.5)
        fit.limits["signal"] = (floor, None)
        migrad(fit)
        yields[i] = fit.values["signal"]
        signed[i] = np.copysign(max(fit_b.fval - fit.fval, 0.0), yields[i])
    return MassScan(np.asarray(masses, dtype=float), signed, yields, float(fit_b.fval))


def upcrossings(q0: np.ndarray, level: float) -> np.ndarray:
    """Upcrossings of ``level`` along the last axis of q0 curves (one count per curve)."""
    above = np.asarray(q0) >= level
    return np.sum(~above[..., :-1] & above[..., 1:], axis=-1)


@dataclass(frozen=True)
class GrossVitells:
    """Gross-Vitells estimate of P(q_max > c) from the upcrossings of a low level c0 on toys:
    ``0.5 chi2_1.sf(c) + E[N_up(c0)] exp(-(c - c0) / 2)`` (a cross-check of the toys' tail)."""

    level: float  # c0
    mean_upcrossings: float  # E[N_up(c0)] over the toys

    @classmethod
    def from_toys(cls, q0_curves: np.ndarray, level: float = 1.0) -> GrossVitells:
        """From the q0 curves of background-only toys (shape toys x masses)."""
        q0_curves = np.asarray(q0_curves, dtype=float)
        if q0_curves.ndim != 2 or q0_curves.shape[0] < 1:
            raise ValueError(f"Gross-Vitells needs q0 curves of toys (got shape {q0_curves.shape})")
        return cls(float(level), float(upcrossings(q0_curves, level).mean()))

    def p_value(self, c: np.ndarray | float) -> np.ndarray:
        """The estimate at ``c`` (clipped at 1; valid for c above c0)."""
        c = np.asarray(c, dtype=float)
        return np.minimum(local_p(c) + self.mean_upcrossings * np.exp(-(c - self.level) / 2.0), 1.0)

    def compare(self, toys_q_max: np.ndarray, levels: Sequence[float] = (4.0, 6.0, 8.0)) -> list[dict[str, float]]:
        """The estimate against the toys' fraction beyond each level (JSON-able)."""
        toys_q_max = np.asarray(toys_q_max, dtype=float)
        return [{"q_max": float(c), "p_toys": float(np.mean(toys_q_max >= c)), "p_gross_vitells": float(self.p_value(c))}
                for c in levels]  # fmt: skip
