"""CWoLa hunting with an event-level PFN (method ``cwola_pfn``) on the protocol's realisations.

Collins, Howe, Nachman (arXiv:1805.02664, 1902.02634): a classifier trained to tell a
signal region (SR) of m_jj from its sidebands (SB) learns nothing but statistical noise from a
smooth background, and learns the signal's features when a resonance sits in the SR. Cutting
on it enriches the SR in signal without sculpting the background's spectrum, whose fit to the
selected events' sidebands predicts the SR count.

For every realisation r < ``cwola.realizations`` and injected size N of ``real.n_signal`` the
events are those of the pseudo-dataset (r, N) (:mod:`analysis.sensitivity.realizations`):
every background event with its Poisson multiplicity (copies), plus the nested signal draw.
For every window (:func:`signal_windows`: an SR of ``sr_width`` sliding from ``sr_min`` in
steps of ``sr_step`` up to ``sr_max``, with sidebands of ``sb_width`` on both sides inside the
searched range):

1. **k-fold training** (``cwola.folds``, by event: all copies of an event share its fold). The
   model of fold f is an :class:`models.pfn.EventPFN` (one shared Phi on both jets' constituents,
   the two latent sums joined before F; no m_jj, inputs preprocessed as the scan's) trained on
   the window's events of the other folds, copies included, SR = 1 and SB = 0, and it scores
   the events of fold f only: no event is scored by a model that saw it. Every finished
   training is a checkpoint (its fold's scores), so ``resume`` is exact.
2. **Selection**: for each efficiency epsilon the top epsilon of each fold's events (counted
   with their copies) by that fold's score; together epsilon of the window's events (per fold,
   because the k models' score scales differ).
3. **Fit**: the selected m_jj spectrum of the window's sidebands (the SR bins masked) is fitted
   by the ``dijet_fit`` background model, the dijet function x turn-on
   (:mod:`analysis.baselines.background_fit`, iminuit's ExtendedBinnedNLL with a mask). Start and shape
   come from the background-only fit of the realisation's inclusive spectrum over the whole
   range, exactly the one ``dijet_fit`` makes (turn-on per ``baselines.turn_on``: the sample's,
   or refitted per spectrum); the selected spectrum keeps that turn-on and that shape up to a
   free normalisation and, where the deviance drops by more than 3.84 (the chi2_1 95 % point)
   when it is freed and each sideband holds at least 10 selected events, a free slope: the
   first two dijet coefficients in decorrelated coordinates (a smooth efficiency of the cut
   versus m_jj). A free curvature, fitted on two sidebands only, bends the prediction into the
   SR without limit, and so does a slope fitted to one populated sideband.
4. **Local p of a window and epsilon**: p of the observed SR count against the fit's prediction
   b with its uncertainty sigma_b (HESSE covariance propagated to the SR sum): a negative
   binomial of mean b and variance ``phi b + sigma_b^2``, ``p = P(n >= n_obs)``, one-sided (for
   phi = 1 a Poisson whose mean is Gamma-distributed about b with the fit's variance,
   Cousins-Highland). phi (:func:`selection_dispersion`, ~1.9) is the realisations' own excess
   variance of selected counts: a cut keeps or drops every copy of a sample event together, so
   the selected spectra scatter twice as much as Poisson counts about a smooth curve (the fits
   treat the counts as quasi-Poisson with that dispersion). Discrete, so conservative. No
   sideband events, no positive prediction or an invalid fit: p = 1.

Local p of (r, N): the smallest over windows and efficiencies; global p: Sidak over those
``W x E`` trials, ``1 - (1 - p_min)^(W E)``, conservative since the trials are positively
correlated (the same events at every epsilon, overlapping windows). No bounds: the p-values are
analytic. Sculpting: on every background-only realisation the selected spectrum of every window
and epsilon is fitted over the whole window (SR included); its chi2/ndf (Poisson deviance / phi) is in
the entry's details and ``cwola_sculpting.png``. Truth: for the window around the signal peak
(r = 0, the largest N), the ROC and the significance improvement SIC = eps_S / sqrt(eps_B) of
the SR events (signal vs background by truth), and the SR's S/B before and after each cut
(``cwola_roc_sic.png``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from analysis.core.atomic import write_json
from analysis.core.binning import bin_centres
from analysis.core.errors import ConfigError, InputError
from analysis.pfn.scan import ScanInputs, train_tasks, trainings_line
from analysis.sensitivity.model import MethodEntry, merge_entries
from analysis.sensitivity.plots import sensitivity_figure
from analysis.sensitivity.realizations import Realizations
from analysis.sensitivity.summary import MethodResult, summarise
from models.batches import PackedJets
from models.settings import TrainSettings

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster

METHOD = "cwola_pfn"
CHECKPOINTS = Path("cwola_pfn") / "checkpoints"
PLOT = "sensitivity_cwola_pfn.png"
TIMING = Path("cwola_pfn") / "timing.json"
SCULPTING_PLOT = "cwola_sculpting.png"
ROC_PLOT = "cwola_roc_sic.png"
_STREAM = 0xC30A  # seed stream of this method's folds and trainings
_FOLD_STREAM = 1
CHI2_1_95 = float(stats.chi2.isf(0.05, 1))  # deviance drop that frees one more fit parameter
MAX_FREE = 2  # free dijet coefficients of a selected spectrum: normalisation and slope
MIN_SIDEBAND_EVENTS = 10  # the slope is free only when each sideband holds this many selected events
MIN_SIC_BACKGROUND = 10.0  # the SIC maximum is taken where at least this many background events pass
NETWORK_FIELDS = ("phi_sizes", "f_sizes", "epochs", "batch_size", "learning_rate")


# -- windows ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """A signal region and its two sidebands (GeV), on bin edges of the searched range."""

    index: int
    sr: tuple[float, float]
    low: tuple[float, float]  # lower sideband
    high: tuple[float, float]  # upper sideband

    @property
    def span(self) -> tuple[float, float]:
        return self.low[0], self.high[1]

    def region(self, mjj: np.ndarray) -> np.ndarray:
        """1 in the SR, 0 in a sideband, -1 outside the window (intervals [low, high))."""
        mjj = np.asarray(mjj, dtype=float)
        inside = (mjj >= self.low[0]) & (mjj < self.high[1])
        return np.where(inside, ((mjj >= self.sr[0]) & (mjj < self.sr[1])).astype(int), -1)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "sr": list(self.sr), "sidebands": [list(self.low), list(self.high)]}


def signal_windows(cw: Any, edges: np.ndarray) -> list[Window]:
    """The sliding windows of ``cw`` (a CwolaConfig) whose sidebands lie inside ``edges``; every
    boundary is moved to the nearest bin edge (the selected spectra are histograms on ``edges``)."""
    edges = np.asarray(edges, dtype=float)

    def snap(value: float) -> float:
        return float(edges[np.argmin(np.abs(edges - value))])

    windows, tol = [], 1e-6 * float(edges[1] - edges[0])
    low = float(cw.sr_min)
    while low + cw.sr_width <= cw.sr_max + tol:
        sr = (snap(low), snap(low + cw.sr_width))
        sb_low, sb_high = snap(low - cw.sb_width), snap(low + cw.sr_width + cw.sb_width)
        fits = low - cw.sb_width >= edges[0] - tol and low + cw.sr_width + cw.sb_width <= edges[-1] + tol
        if fits and sb_low < sr[0] < sr[1] < sb_high:
            windows.append(Window(len(windows), sr, (sb_low, sr[0]), (sr[1], sb_high)))
        low += cw.sr_step
    if not windows:
        raise ConfigError(
            f"cwola: no signal region of {cw.sr_width:g} GeV in {cw.sr_min:g}-{cw.sr_max:g} GeV has "
            f"sidebands of {cw.sb_width:g} GeV inside the searched range {edges[0]:g}-{edges[-1]:g} GeV"
        )  # fmt: skip
    return windows


def signal_window(windows: list[Window], peak: float) -> Window:
    """The window whose SR centre lies nearest ``peak`` (the signal's median m_jj)."""
    return min(windows, key=lambda w: abs(0.5 * (w.sr[0] + w.sr[1]) - peak))


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowEvents:
    """The distinct events of one window of one realisation (ascending ids)."""

    ids: np.ndarray  # background index, or n_background + pool index
    weight: np.ndarray  # copies in the realisation (1 for signal)
    mjj: np.ndarray
    label: np.ndarray  # 1: SR, 0: sideband
    signal: np.ndarray  # truth: injected event
    fold: np.ndarray  # k-fold part, by event

    def __len__(self) -> int:
        return len(self.ids)


def realization_events(real: Realizations, r: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct events of the pseudo-dataset (r, N): ids, copies and m_jj."""
    weights = real.weights(r)
    background = np.nonzero(weights > 0)[0]
    signal = np.sort(np.asarray(real.signal_events(r, n), dtype=np.int64))
    ids = np.concatenate([background, len(weights) + signal])
    return ids, np.concatenate([weights[background], np.ones(len(signal), np.int64)]), np.concatenate(
        [real.background_mjj[background], real.pool_mjj[signal]]
    )


def window_events(real: Realizations, window: Window, r: int, n: int, folds: int, seed: int) -> WindowEvents:
    """The events of (r, N) in ``window``, each assigned to one of ``folds`` parts (balanced,
    seeded by (seed, r, N, window))."""
    ids, weight, mjj = realization_events(real, r, n)
    region = window.region(mjj)
    keep = region >= 0
    ids, weight, mjj, label = ids[keep], weight[keep], mjj[keep], region[keep]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM, _FOLD_STREAM, r, n, window.index]))
    fold = np.empty(len(ids), dtype=np.int64)
    fold[rng.permutation(len(ids))] = np.arange(len(ids)) % folds
    return WindowEvents(ids, weight, mjj, label, ids >= len(real.background_mjj), fold)


def event_units(inputs: ScanInputs, ids: np.ndarray, event_jets: int) -> PackedJets:
    """EventPFN inputs of the events ``ids`` (ascending, repeats are copies), in that order."""
    from models.pfn import pack_events

    ids = np.asarray(ids, dtype=np.int64)
    n_background = len(inputs.background)
    parts = [inputs.background.jets_of(ids[ids < n_background])[0]]
    if inputs.pool is not None and (ids >= n_background).any():
        parts.append(inputs.pool.jets_of(ids[ids >= n_background] - n_background)[0])
    return pack_events(PackedJets.concatenate(parts), event_jets)


def jets_per_event(inputs: ScanInputs) -> int:
    """The (common) number of jets of every event; the EventPFN needs the same for all."""
    pools = [p for p in (inputs.background, inputs.pool) if p is not None]
    counts = np.concatenate([np.diff(p.jet_offsets) for p in pools])
    if not len(counts) or counts.min() != counts.max() or counts[0] < 1:
        raise InputError(f"{METHOD}: the events must all hold the same number of jets (selection.n_jets)")
    return int(counts[0])


# -- trainings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CwolaTask:
    """One training: realisation, injected size, window, held-out fold."""

    realization: int
    n_signal: int
    window: int
    fold: int

    @property
    def name(self) -> str:
        return f"r{self.realization:04d}_n{self.n_signal}_w{self.window}_f{self.fold}"


def task_seed(seed: int, task: CwolaTask) -> int:
    """The seed of one training, from (run seed, r, N, window, fold) only."""
    ss = np.random.SeedSequence([seed, _STREAM, task.realization, task.n_signal, task.window, task.fold])
    return int(ss.generate_state(1, dtype=np.uint32)[0] % 2**31)


def train_settings(cfg: Any, event_jets: int) -> TrainSettings:
    """The trainings' settings: the scan's network and optimiser (``cfg.scan``),
    each overridden by a field of the same name in ``cfg.cwola`` where that section has one and
    it is set; no per-epoch validation (no early stopping); the event-level PFN."""
    from models.pfn import resolve_phi_dtype

    def pick(name: str) -> Any:
        value = getattr(cfg.cwola, name, None)
        return getattr(cfg.scan, name) if value is None else value

    return TrainSettings(
        phi_sizes=tuple(int(s) for s in pick("phi_sizes")), f_sizes=tuple(int(s) for s in pick("f_sizes")),
        epochs=int(pick("epochs")), batch_size=int(pick("batch_size")), learning_rate=float(pick("learning_rate")),
        backend="ours", validate=False, phi_dtype=resolve_phi_dtype(cfg.scan.phi_dtype), event_jets=int(event_jets),
    )  # fmt: skip


def fold_parts(events: WindowEvents, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``events``) of the training events of fold model ``fold`` (the other
    folds) and of the events it scores (its own fold)."""
    return np.nonzero(events.fold != fold)[0], np.nonzero(events.fold == fold)[0]


def run_task(inputs: ScanInputs, events: WindowEvents, settings: TrainSettings, task: CwolaTask,
             seed: int) -> dict[str, Any]:  # fmt: skip
    """Train the fold model of one task and score its held-out fold: the checkpoint record."""
    from models.training import predict_pfn, train_pfn

    started = time.perf_counter()
    train, scored = fold_parts(events, task.fold)
    copies = np.repeat(train, events.weight[train])  # every copy of a training event, in id order
    labels = events.label[copies]
    if len(np.unique(labels)) < 2:
        raise InputError(f"{task.name}: the training events hold only the signal region or only sidebands")
    event_jets = settings.event_jets
    task_rng_seed = task_seed(seed, task)
    model = train_pfn(event_units(inputs, events.ids[copies], event_jets), labels, settings,
                      task_rng_seed, reuse=True)  # fmt: skip
    probs, used = predict_pfn(model, event_units(inputs, events.ids[scored], event_jets))
    scores = np.full(len(scored), np.nan)
    scores[used] = probs[:, 1]
    return {
        "realization": task.realization, "n_signal": task.n_signal, "window": task.window, "fold": task.fold,
        "seed": task_rng_seed, "n_train_events": len(train), "n_train_copies": len(copies),
        "n_train_sr": int(labels.sum()), "n_scored": len(scored), "scores": [float(v) for v in scores],
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip


def window_scores(events: WindowEvents, records: list[dict[str, Any]], name: str) -> np.ndarray:
    """Every event's score, from the record of its fold's model."""
    scores = np.full(len(events), np.nan)
    for fold, rec in enumerate(records):
        scored = fold_parts(events, fold)[1]
        if len(rec["scores"]) != len(scored):
            have = len(rec["scores"])
            raise InputError(f"{name}: a checkpoint holds {have} scores for {len(scored)} events")
        scores[scored] = rec["scores"]
    if np.isnan(scores).any():
        raise InputError(f"{name}: events without a score")
    return scores


# -- selection, fits and p-values ------------------------------------------------------------
def fold_ranks(scores: np.ndarray, weight: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each event's rank within its fold: the share of the fold's events (with copies) that score
    higher; an event passes the cut at efficiency epsilon when its rank is below epsilon."""
    rank = np.empty(len(scores))
    for f in np.unique(fold):
        members = np.nonzero(fold == f)[0]
        order = members[np.argsort(-scores[members], kind="stable")]
        w = weight[order].astype(float)
        rank[order] = (np.cumsum(w) - w) / w.sum()
    return rank


@dataclass(frozen=True)
class WindowFit:
    """A fit of a selected spectrum: the SR prediction with its uncertainty, the goodness of fit."""

    expected_sr: float
    sigma_sr: float
    n_free: int  # free dijet coefficients (the turn-on is fixed)
    chi2: float  # Poisson deviance of the fitted bins / dispersion
    ndf: int
    valid: bool
    dispersion: float = 1.0  # the counts' variance / mean assumed by the fit
    expected: np.ndarray | None = None  # fitted expectation of every bin (masked ones too)

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / max(self.ndf, 1)


def fit_selected(counts: np.ndarray, edges: np.ndarray, start: np.ndarray, sqrt_s: float, turn_on: str,
                 masked: np.ndarray | None = None, sr: tuple[int, int] | None = None,
                 dispersion: float = 1.0, max_free: int = MAX_FREE) -> WindowFit:  # fmt: skip
    """Fit the dijet function x turn-on to ``counts`` on ``edges`` (the bins ``masked`` left out),
    starting from ``theta = start`` whose turn-on is kept; the first MAX_FREE dijet coefficients
    in decorrelated coordinates (normalisation, then slope) are freed one by one while the
    deviance drops by more than CHI2_1_95; the others keep ``start``'s shape. (A free curvature
    fitted on two sidebands can bend the prediction into the masked SR without limit: it did,
    to zero, on background-only QCD; so can a slope when one sideband is empty, hence
    ``max_free``.) Returns the
    expectation of bins ``sr`` = [first, last) and its HESSE uncertainty. ``dispersion``: the
    counts' variance / mean (quasi-Poisson: the deviance is divided by it, the covariance
    multiplied)."""
    from iminuit import Minuit, cost

    from analysis.baselines.background_fit import SpectrumModel, dijet_turnon, migrad

    counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    centres = bin_centres(edges)
    model = SpectrumModel(centres, sqrt_s, turn_on, dijet_turnon(start, centres, sqrt_s, turn_on))
    fitted = np.ones(len(counts), bool) if masked is None else ~np.asarray(masked, bool)
    first, last = sr if sr is not None else (0, len(counts))
    best, best_free = None, 0
    for n_free in range(1, max_free + 1):
        nll = cost.ExtendedBinnedNLL(counts, edges, model, grad=model.grad, name=model.names)
        if masked is not None:
            nll.mask = fitted
        m = Minuit(nll, *model.to_fit(start))
        m.errors = [1.0] * 4 + [5.0, 0.2]
        for name in model.names[n_free:]:
            m.fixed[name] = True
        m.strategy = 0
        m = migrad(m, hesse=True)
        if best is not None and not (m.valid and (best.fval - m.fval) / dispersion > CHI2_1_95):
            break
        best, best_free = m, n_free
    if counts[fitted].sum() <= 0 or best is None or best.covariance is None:
        return WindowFit(0.0, 0.0, best_free, float("nan"), int(fitted.sum()) - best_free, False, dispersion)
    par = np.asarray(best.values)
    cdf, grad = model(edges, *par), model.grad(edges, *par)
    expected = float(cdf[last] - cdf[first])
    g = grad[:, last] - grad[:, first]
    cov = dispersion * np.asarray(best.covariance, dtype=float)
    sigma = float(np.sqrt(max(g @ cov @ g, 0.0)))
    return WindowFit(expected, sigma, best_free, float(best.fval) / dispersion, int(fitted.sum()) - best_free,
                     bool(best.valid), dispersion, np.diff(cdf))  # fmt: skip


def excess_pvalue(n_obs: float, expected: float, sigma: float, dispersion: float = 1.0) -> float:
    """One-sided p of observing at least ``n_obs`` events where ``expected`` +- ``sigma`` are
    predicted, for counts of variance ``dispersion`` x mean: a negative binomial of mean
    ``expected`` and variance ``dispersion * expected + sigma^2`` (for dispersion 1 exactly a
    Poisson whose mean is Gamma-distributed with mean ``expected`` and variance sigma^2);
    Poisson when that variance is ``expected``."""
    n_obs = round(float(n_obs))
    if n_obs <= 0:
        return 1.0
    if expected <= 0:
        return 0.0
    extra = (dispersion - 1.0) * expected + sigma**2  # variance beyond the Poisson
    if extra <= 0:
        return float(stats.poisson.sf(n_obs - 1, expected))
    shape = expected**2 / extra
    return float(stats.nbinom.sf(n_obs - 1, shape, shape / (shape + expected)))


def selection_dispersion(real: Realizations, window: Window, efficiency: float) -> float:
    """Variance / mean of a selected count of the realisations, about the smooth background.

    A realisation holds sample event e w_e ~ Poisson(lambda_e) times, and a cut keeps or drops
    all copies of an event: the selected count of a bin is a sum over the sample events that
    pass, so the background sample's own fluctuation of which events pass (frozen in every
    realisation) adds to the realisation's Poisson one. With ``model_poisson`` (the bin's sample
    count fixed) the count of a share epsilon of the events has variance
    ``mean x (1 + (1 - epsilon) sum lambda^2 / sum lambda)``, ~2 for small epsilon; with plain
    ``poisson`` resampling ``1 + sum lambda^2 / sum lambda`` (= 2). Real data, one draw without
    copies, have 1: the factor corrects the emulation, and costs the method about 1/sqrt(2) of
    its Z here."""
    rates = real.rates[window.region(real.background_mjj) >= 0]
    ratio = float((rates**2).sum() / rates.sum()) if rates.sum() > 0 else 1.0
    return 1.0 + ratio * (1.0 if real.resampling == "poisson" else 1.0 - efficiency)


@dataclass
class WindowResult:
    """One window of one (r, N): per efficiency the SR count, its prediction and p, the
    whole-window fit (sculpting check), and truth counts."""

    n_sr: list[int]
    expected_sr: list[float]
    sigma_sr: list[float]
    n_free: list[int]
    p: list[float]
    sculpting: list[WindowFit]
    spectra: list[np.ndarray]
    whole_window_expected: list[np.ndarray]


def inclusive_fit(real: Realizations, cfg: Any, spectrum: np.ndarray) -> Any:
    """The background-only fit of a realisation's inclusive spectrum over the searched range:
    ``dijet_fit``'s (turn-on per ``baselines.turn_on``)."""
    from analysis.baselines.sensitivity import SpectrumSearch

    return SpectrumSearch(real.edges, real.model, cfg.baselines).background(spectrum)


def analyse_window(
    events: WindowEvents, scores: np.ndarray, window: Window, edges: np.ndarray, start: Any,
    efficiencies: list[float], dispersions: list[float], sculpting: bool,
) -> WindowResult:  # fmt: skip
    """Select, fit and test one window at every efficiency (``start``: the inclusive fit;
    ``dispersions``: the selected counts' variance / mean at each efficiency)."""
    i0, i1 = (int(np.argmin(np.abs(edges - v))) for v in window.span)
    w_edges = edges[i0 : i1 + 1]
    s0, s1 = (int(np.argmin(np.abs(w_edges - v))) for v in window.sr)
    masked = np.zeros(len(w_edges) - 1, bool)
    masked[s0:s1] = True
    rank = fold_ranks(scores, events.weight, events.fold)
    total = float(events.weight.sum())
    out = WindowResult([], [], [], [], [], [], [], [])
    for eps, dispersion in zip(efficiencies, dispersions, strict=True):
        chosen = rank < eps
        counts = np.histogram(events.mjj[chosen], w_edges, weights=events.weight[chosen])[0].astype(float)
        theta = np.asarray(start.theta, dtype=float).copy()
        theta[0] += np.log(max(counts.sum(), 1.0) / total)
        sidebands = min(counts[:s0].sum(), counts[s1:].sum())
        fit = fit_selected(counts, w_edges, theta, start.sqrt_s, start.turn_on, masked, (s0, s1), dispersion,
                           max_free=MAX_FREE if sidebands >= MIN_SIDEBAND_EVENTS else 1)  # fmt: skip
        n_sr = int(counts[s0:s1].sum())
        usable = fit.valid and counts[~masked].sum() > 0 and fit.expected_sr > 0
        p = excess_pvalue(n_sr, fit.expected_sr, fit.sigma_sr, dispersion) if usable else 1.0
        out.n_sr.append(n_sr)
        out.expected_sr.append(fit.expected_sr)
        out.sigma_sr.append(fit.sigma_sr)
        out.n_free.append(fit.n_free)
        out.p.append(p)
        out.spectra.append(counts)
        if sculpting:
            whole = fit_selected(counts, w_edges, theta, start.sqrt_s, start.turn_on, dispersion=dispersion)
            out.sculpting.append(whole)
    return out


def truth_diagnostics(events: WindowEvents, scores: np.ndarray, efficiencies: list[float]) -> dict[str, Any]:
    """ROC and SIC of the SR events (signal vs background by truth; background with copies),
    ranked as the selection ranks them, and the SR's S/B before and after each cut."""
    from sklearn.metrics import roc_auc_score

    rank = fold_ranks(scores, events.weight, events.fold)
    sr = events.label == 1
    w, sig, r = events.weight[sr].astype(float), events.signal[sr], rank[sr]
    n_s, n_b = float(w[sig].sum()), float(w[~sig].sum())
    if n_s <= 0 or n_b <= 0:
        return {"note": "the signal region holds no signal or no background events"}
    order = np.argsort(r, kind="stable")
    eff_s = np.cumsum(np.where(sig[order], w[order], 0.0)) / n_s
    pass_b = np.cumsum(np.where(sig[order], 0.0, w[order]))
    eff_b = pass_b / n_b
    sic = np.where(eff_b > 0, eff_s / np.sqrt(np.where(eff_b > 0, eff_b, 1.0)), 0.0)
    usable = pass_b >= min(MIN_SIC_BACKGROUND, n_b)
    best = int(np.argmax(np.where(usable, sic, -1.0)))
    before = n_s / n_b
    cuts = []
    for eps in efficiencies:
        chosen = r < eps
        s, b = float(w[chosen & sig].sum()), float(w[chosen & ~sig].sum())
        after = s / b if b > 0 else None
        cuts.append({"efficiency": eps, "signal": s, "background": b, "s_over_b": after,
                     "gain": None if after is None else after / before})  # fmt: skip
    # the curve, thinned to at most ~200 points for the JSON
    grid = np.linspace(0, len(order) - 1, min(len(order), 200)).astype(int)
    keep = np.unique(np.concatenate([grid, [best]]))
    return {
        "auc": float(roc_auc_score(sig, -r, sample_weight=w)), "sr_signal": n_s, "sr_background": n_b,
        "s_over_b_before": before, "max_sic": float(sic[best]), "max_sic_eff_s": float(eff_s[best]),
        "max_sic_eff_b": float(eff_b[best]), "max_sic_min_background": MIN_SIC_BACKGROUND, "cuts": cuts,
        "roc": {"eff_s": np.round(eff_s[keep], 5).tolist(), "eff_b": np.round(eff_b[keep], 6).tolist()},
    }  # fmt: skip


# -- running ---------------------------------------------------------------------------------
def run_cwola_sensitivity(
    cfg: Any, inputs: ScanInputs, real: Realizations, out_dir: Path, resume: bool = False,
    quiet: bool = False, null_dir: Path | None = None, cluster: Cluster | None = None,
) -> MethodEntry:  # fmt: skip
    """Train every (realisation, N, window, fold), write the ``cwola_pfn`` entry into
    ``out_dir/sensitivity.json`` with its plots; ``resume`` keeps the finished trainings of an
    interrupted run (same config and events). ``null_dir``: a store of the background-only
    (N = 0) trainings shared by every signal injected into the same events (found there, they
    are not rerun)."""
    out_dir = Path(out_dir)
    inputs.check_realizations(real, METHOD)
    cw = cfg.cwola
    n_real = int(cw.realizations)
    if n_real > real.n_realizations:
        raise ConfigError(f"cwola.realizations: {n_real} exceeds the {real.n_realizations} realisations")
    windows = signal_windows(cw, real.edges)
    event_jets = jets_per_event(inputs)
    settings = train_settings(cfg, event_jets)
    n_signal = list(real.n_signal)
    seed = int(cfg.seed)
    tasks = [CwolaTask(r, n, w.index, f) for r in range(n_real) for n in n_signal for w in windows
             for f in range(cw.folds)]  # fmt: skip
    key = _key(settings, windows, cw.folds, seed, inputs, real)
    shared = None
    if null_dir is not None:
        shared = (Path(null_dir) / CHECKPOINTS, _key(settings, windows, cw.folds, seed, inputs, real, background_only=True))
    cache: dict[tuple[int, int, int], WindowEvents] = {}

    def events_of(r: int, n: int, w: int) -> WindowEvents:
        if (r, n, w) not in cache:
            cache.clear()  # tasks come window by window: keep one
            cache[(r, n, w)] = window_events(real, windows[w], r, n, cw.folds, seed)
        return cache[(r, n, w)]

    def work(task: CwolaTask, _parallel: Any) -> dict[str, Any]:
        return run_task(inputs, events_of(task.realization, task.n_signal, task.window), settings, task, seed)

    def label(task: CwolaTask, rec: dict[str, Any]) -> str:
        return f"r{task.realization} N={task.n_signal} w{task.window} f{task.fold} {rec['seconds']:.1f} s"

    started = time.perf_counter()
    done, n_run = train_tasks(tasks, work, out_dir / CHECKPOINTS, key, resume, settings, shared=shared, quiet=quiet,
                              label=label, desc=f"{METHOD} trainings", cluster=cluster)  # fmt: skip
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    found = analyse(cfg, real, windows, n_real, seed, done)
    analysis_seconds = time.perf_counter() - started
    timing = {"trainings": len(tasks), "run_now": n_run, "training_wall_s": round(train_seconds, 1),
              "per_training_s": round(float(np.mean([done[t.name]["seconds"] for t in tasks])), 3),
              "analysis_s": round(analysis_seconds, 1)}  # fmt: skip
    entry = build_entry(found, real, windows, cw, settings)
    merge_entries(out_dir / "sensitivity.json", [entry], real.protocol())
    write_json(out_dir / TIMING, timing)  # not in the entry: a resumed run's entry is identical
    from analysis.core.plots import save

    save(sensitivity_figure(entry), out_dir / PLOT)
    save(sculpting_figure(found, windows, list(cw.efficiencies), real), out_dir / SCULPTING_PLOT)
    if found["truth"].get("roc"):
        save(roc_figure(found["truth"], real.signal), out_dir / ROC_PLOT)
    if not quiet:
        print(trainings_line(METHOD, entry, len(tasks), n_run, train_seconds), flush=True)
    return entry


def analyse(cfg: Any, real: Realizations, windows: list[Window], n_real: int, seed: int,
            done: dict[str, dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Selections, fits and p-values of every (r, N, window, epsilon) from the fold scores."""
    cw = cfg.cwola
    n_signal = list(real.n_signal)
    efficiencies = [float(e) for e in cw.efficiencies]
    shape = (n_real, len(n_signal), len(windows), len(efficiencies))
    p, n_sr, expected, sigma, n_free = (np.empty(shape) for _ in range(5))
    sculpting = np.full((n_real, len(windows), len(efficiencies)), np.nan)
    sculpting_ndf = np.zeros((n_real, len(windows), len(efficiencies)), dtype=int)
    example: dict[str, Any] = {}
    peak = float(np.median(real.pool_mjj))
    truth_window = signal_window(windows, peak)
    truth: dict[str, Any] = {}
    dispersions = [[selection_dispersion(real, w, e) for e in efficiencies] for w in windows]
    for r in range(n_real):
        background = real.background_spectrum(r)
        for k, n in enumerate(n_signal):
            start = inclusive_fit(real, cfg, background + real.signal_spectrum(r, n))
            for w in windows:
                events = window_events(real, w, r, n, cw.folds, seed)
                name = CwolaTask(r, n, w.index, 0).name
                records = [done[CwolaTask(r, n, w.index, f).name] for f in range(cw.folds)]
                scores = window_scores(events, records, name)
                res = analyse_window(events, scores, w, real.edges, start, efficiencies, dispersions[w.index],
                                     sculpting=n == 0)  # fmt: skip
                idx = (r, k, w.index)
                p[idx], n_sr[idx], expected[idx], sigma[idx], n_free[idx] = (
                    res.p, res.n_sr, res.expected_sr, res.sigma_sr, res.n_free)  # fmt: skip
                if n == 0:
                    sculpting[r, w.index] = [f.chi2_ndf if f.valid else np.nan for f in res.sculpting]
                    sculpting_ndf[r, w.index] = [f.ndf for f in res.sculpting]
                    if r == 0 and w is truth_window:
                        example = {"spectra": res.spectra, "fits": res.sculpting, "start": start, "window": w}
                if r == 0 and n == max(n_signal) and w is truth_window:
                    truth = {"window": w.to_dict(), "realization": 0, "n_signal": n,
                             **truth_diagnostics(events, scores, efficiencies)}  # fmt: skip
    flat = p.reshape(n_real, len(n_signal), -1)
    p_local = flat.min(axis=2)
    trials = flat.shape[2]
    p_global = -np.expm1(trials * np.log1p(-np.minimum(p_local, 1.0 - 1e-16)))
    return {"p": p, "n_sr": n_sr, "expected_sr": expected, "sigma_sr": sigma, "n_free": n_free,
            "p_local": p_local, "p_global": p_global, "trials": trials, "sculpting": sculpting,
            "sculpting_ndf": sculpting_ndf, "dispersions": dispersions, "example": example, "truth": truth,
            "efficiencies": efficiencies}  # fmt: skip


def build_entry(found: dict[str, Any], real: Realizations, windows: list[Window], cw: Any,
                settings: TrainSettings) -> MethodEntry:  # fmt: skip
    """The ``cwola_pfn`` entry from :func:`analyse`'s results."""
    n_signal = list(real.n_signal)
    efficiencies = found["efficiencies"]
    trials = found["trials"]
    meaning = (
        f"Sidak trials factor over {len(windows)} signal-region windows x {len(efficiencies)} efficiencies: "
        f"1 - (1 - p_min)^{trials}, p_min the smallest window-and-efficiency p; conservative, since the "
        "trials share events (every efficiency, overlapping windows) and are positively correlated"
    )  # fmt: skip
    argmin = found["p"].reshape(*found["p"].shape[:2], -1).argmin(axis=2)
    best = [[{"window": int(i // len(efficiencies)), "efficiency": efficiencies[int(i % len(efficiencies))]}
             for i in row] for row in argmin]  # fmt: skip
    sculpt = found["sculpting"]
    finite = sculpt[np.isfinite(sculpt)]
    per_efficiency = [float(np.nanmax(sculpt[..., e])) if np.isfinite(sculpt[..., e]).any() else None
                      for e in range(len(efficiencies))]  # fmt: skip
    ndf = np.where(np.isfinite(sculpt), found["sculpting_ndf"], 0)
    pooled = [float(np.nansum(sculpt[..., e] * ndf[..., e]) / ndf[..., e].sum()) if ndf[..., e].sum()
              else None for e in range(len(efficiencies))]  # fmt: skip
    details = {
        "windows": [w.to_dict() for w in windows], "efficiencies": efficiencies, "folds": int(cw.folds),
        "trials": trials, "settings": settings.to_dict(),
        "fit": "selected sidebands: dijet function x turn-on, the inclusive spectrum's fit (turn-on and "
               "shape) with a free normalisation and, if the deviance / dispersion drops by > 3.84 and each "
               "sideband holds >= 10 selected events, a free slope (n_free); iminuit ExtendedBinnedNLL with "
               "the SR masked, quasi-Poisson (covariance x dispersion)",
        "p_window": "P(n >= n_SR) for a negative binomial of mean b and variance dispersion x b + sigma_b^2 "
                    "(b, sigma_b: the sideband fit's SR prediction and its HESSE uncertainty)",
        "p": np.round(found["p"], 6).tolist(), "n_sr": found["n_sr"].astype(int).tolist(),
        "expected_sr": np.round(found["expected_sr"], 3).tolist(),
        "sigma_sr": np.round(found["sigma_sr"], 3).tolist(),
        "n_free": found["n_free"].astype(int).tolist(), "best": best,
        "dispersion": {
            "values": np.round(found["dispersions"], 4).tolist(),
            "what": "variance / mean of a selected count of the realisations about the smooth background, "
                    "per [window][efficiency]: 1 + (1 - epsilon) sum lambda^2 / sum lambda (model_poisson); "
                    "the copies of a sample event pass or fail together (cwola.selection_dispersion)",
        },
        "sculpting": {
            "what": "background-only realisations: the selected spectrum of every window and efficiency "
                    "fitted over the whole window (SR included); Poisson deviance / dispersion / ndf, shape "
                    "[realisation][window][efficiency]",
            "chi2_ndf": np.round(sculpt, 3).tolist(),
            "raw_chi2_ndf": np.round(sculpt * np.asarray(found["dispersions"])[None], 3).tolist(),
            "ndf": found["sculpting_ndf"].tolist(),
            "max_chi2_ndf": float(finite.max()) if finite.size else None,
            "max_chi2_ndf_per_efficiency": per_efficiency,
            "pooled_chi2_ndf_per_efficiency": pooled,
        },
        "truth": found["truth"],
    }  # fmt: skip
    notes = [
        f"{found['p'].shape[0]} realisations (the first of {real.n_realizations}) x {len(n_signal)} sizes x "
        f"{len(windows)} windows x {cw.folds} folds = {found['p'][..., 0].size * cw.folds} event-level PFN "
        "trainings",
        "local p: the smallest over windows and efficiencies of the SR count's p against the sideband fit",
    ]
    result = MethodResult(METHOD, real.signal, n_signal, found["p_local"], found["p_global"])
    return summarise(
        result, background_events=real.background_events, fingerprint=real.fingerprint,
        z_global_meaning=meaning, s_over_b=real.s_over_b(), notes=notes, details=details,
    )  # fmt: skip


def _key(settings: TrainSettings, windows: list[Window], folds: int, seed: int, inputs: ScanInputs,
         real: Realizations, background_only: bool = False) -> str:  # fmt: skip
    """Hash of what a training's scores depend on besides its own (r, N, window, fold);
    ``background_only``: of an N = 0 training, which does not depend on the signal."""
    events = ([inputs.background_fingerprint, real.background_fingerprint] if background_only
              else [inputs.fingerprint, real.fingerprint])  # fmt: skip
    data = [METHOD, settings.to_dict(), [w.to_dict() for w in windows], folds, seed, inputs.particle_ids, *events]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- plots -----------------------------------------------------------------------------------
def sculpting_figure(found: dict[str, Any], windows: list[Window], efficiencies: list[float],
                     real: Realizations):  # fmt: skip
    """Top: the selected spectra of the signal window (r = 0, N = 0) at every efficiency with their
    whole-window fits; bottom: chi2/ndf of every background-only window fit."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    from analysis.core.plots import style

    style()
    n_eps = len(efficiencies)
    fig = plt.figure(figsize=(6 * max(n_eps, 2), 11))
    grid = fig.add_gridspec(2, n_eps, height_ratios=[3, 2], hspace=0.35)
    example = found["example"]
    if example:
        w = example["window"]
        edges = real.edges[(real.edges >= w.span[0] - 1e-9) & (real.edges <= w.span[1] + 1e-9)]
        for e, eps in enumerate(efficiencies):
            ax = fig.add_subplot(grid[0, e])
            counts, fit = example["spectra"][e], example["fits"][e]
            hep.histplot(counts, edges, yerr=np.sqrt(counts), ax=ax, histtype="errorbar", color="black",
                         markersize=4, label="selected (r = 0, N = 0)")  # fmt: skip
            if fit.expected is not None:
                ax.stairs(fit.expected, edges, color="tab:red", linewidth=2, label="fit, whole window")
            ax.axvspan(*w.sr, color="tab:orange", alpha=0.2, label="signal region")
            title = rf"$\epsilon$ = {eps:g}: $\chi^2$/ndf = {fit.chi2_ndf:.2f} ({fit.ndf} ndf)"
            ax.set_title(title, fontsize=15)
            ax.set_xlabel(r"$m_{jj}$ [GeV]", fontsize=15)
            ax.set_ylabel(f"events / {edges[1] - edges[0]:g} GeV", fontsize=15)
            ax.legend(fontsize=11)
    ax = fig.add_subplot(grid[1, :])
    centres = np.array([0.5 * (w.sr[0] + w.sr[1]) for w in windows])
    sculpt = found["sculpting"]
    for e, eps in enumerate(efficiencies):
        for r in range(sculpt.shape[0]):
            ax.plot(centres + (e - (n_eps - 1) / 2) * 4, sculpt[r, :, e], "o", color=f"C{e}",
                    label=rf"$\epsilon$ = {eps:g}" if r == 0 else None)  # fmt: skip
    ax.axhline(1.0, color="grey", linewidth=1)
    ax.axhline(1.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("signal-region centre [GeV]", fontsize=15)
    ax.set_ylabel(r"$\chi^2$/ndf, whole window", fontsize=15)
    ax.set_title(f"background-only realisations ({sculpt.shape[0]}): fits of the selected spectra",
                 fontsize=15)  # fmt: skip
    ax.legend(fontsize=12, ncol=n_eps)
    return fig


def roc_figure(truth: dict[str, Any], signal: str):
    """ROC (background rejection vs signal efficiency) and SIC of the signal window's SR events."""
    import matplotlib.pyplot as plt

    from analysis.core.plots import style

    style()
    eff_s, eff_b = np.asarray(truth["roc"]["eff_s"]), np.asarray(truth["roc"]["eff_b"])
    fig, (ax, sic_ax) = plt.subplots(1, 2, figsize=(16, 7))
    ok = eff_b > 0
    ax.plot(eff_s[ok], 1.0 / eff_b[ok], color="C0", label=f"CWoLa PFN (AUC {truth['auc']:.3f})")
    grid = np.linspace(0.01, 1, 100)
    ax.plot(grid, 1.0 / grid, color="grey", linestyle="--", label="random")
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.legend(fontsize=14)
    w = truth["window"]["sr"]
    ax.set_title(f"{signal}: SR {w[0]:g}-{w[1]:g} GeV, r = 0, N = {truth['n_signal']}", fontsize=15)
    sic = np.where(ok, eff_s / np.sqrt(np.where(ok, eff_b, 1.0)), 0.0)
    sic_ax.plot(eff_s[ok], sic[ok], color="C0", label=f"max SIC {truth['max_sic']:.2f}")
    sic_ax.plot(grid, np.sqrt(grid), color="grey", linestyle="--", label="random")
    sic_ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    sic_ax.set_ylabel(r"SIC = $\epsilon_S\, / \, \epsilon_B^{1/2}$")
    sic_ax.legend(fontsize=14)
    return fig
