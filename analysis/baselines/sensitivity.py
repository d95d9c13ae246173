"""Classical baselines on the protocol's realisations: BumpHunter and the dijet-function mass scan.

Every realisation spectrum (r, N) of :class:`~analysis.sensitivity.realizations.Realizations`
(its m_jj counts over ``real.edges``) is analysed as a real search would analyse data:

1. the background-only fit of *that* spectrum (:mod:`analysis.baselines.background_fit`, dijet function
   x turn-on, iminuit; MIGRAD starts from the sample's fit, the spectrum's own minimum is kept);
2. **bumphunter**: pyBumpHunter's window scan (excess; widths ``baselines.width_min..width_max``
   bins) against that fit. Local p: the most significant window's Poisson p; statistic
   ``t = -ln p``; global p: ``t`` against ``baselines.n_pseudo`` background-only
   pseudo-experiments (Poisson toys of the sample's background model over the range), each
   refitted and scanned exactly like a realisation, through
   :class:`~analysis.sensitivity.tails.NullDistribution` (empirical, a fitted tail past the
   toys, or a bound);
3. **dijet_fit**: background + Gaussian fits at mass hypotheses spaced ``baselines.fit_mass_step``
   GeV (sigma = ``fit_relative_width`` x mass, the resolution), turn-on fixed to the spectrum's
   own background-only fit; local p of the best mass from q0 (Wilks, one-sided); global p: the
   largest q0 against the first ``min(n_pseudo, fit_toys)`` of the same pseudo-experiments
   (a scan costs ~20 fits) through NullDistribution (why not
   Gross-Vitells: :mod:`analysis.baselines.searches`; its estimate is kept in the details as a check).

The toys and the realisations have the same distribution (Poisson about the same model in every
bin), so both global p-values are calibrated: uniform on background-only realisations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.baselines.background_fit import BackgroundFit, fit_background
from analysis.baselines.searches import BumpScanner, GrossVitells, local_p, mass_hypotheses, mass_scan
from analysis.core.atomic import write_json
from analysis.core.binning import bin_centres
from analysis.core.config import AnalysisConfig, BaselinesConfig
from analysis.sensitivity.model import MethodEntry, merge_entries
from analysis.sensitivity.plots import sensitivity_figure
from analysis.sensitivity.realizations import Realizations
from analysis.sensitivity.summary import MethodResult, summarise
from analysis.sensitivity.tails import NullDistribution

BUMP_METHOD, FIT_METHOD = "bumphunter", "dijet_fit"
TURN_ON_MODES = ("spectrum", "sample")
_TOY_STREAM = 0xB0B


@dataclass
class Searches:
    """Both methods' results on a stack of spectra (shape realisations x sizes), and their nulls."""

    t: np.ndarray  # BumpHunter -ln(local p)
    bump_p_local: np.ndarray
    bump_underflow: np.ndarray
    window: np.ndarray  # (..., 2) GeV
    q_max: np.ndarray  # the mass scan's statistic: largest signed q0
    best_mass: np.ndarray
    signal_yield: np.ndarray  # fitted Gaussian events at the best mass
    chi2_ndf: np.ndarray  # background-only fit of each spectrum
    bump_null: NullDistribution
    fit_null: NullDistribution
    gross_vitells: GrossVitells  # cross-check of fit_null's tail
    masses: np.ndarray
    turn_on: str  # spectrum | sample (SpectrumSearch)
    seconds: dict[str, float | None] = field(default_factory=dict)

    def bump_pvalues(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(p_local, p_global, bound_local, bound_global) of BumpHunter."""
        p_global, bound = self.bump_null.p_value(self.t.ravel())
        return (self.bump_p_local, p_global.reshape(self.t.shape), self.bump_underflow, bound.reshape(self.t.shape))

    def fit_pvalues(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p_local, p_global, bound_global) of the mass scan."""
        p_global, bound = self.fit_null.p_value(self.q_max.ravel())
        return np.asarray(local_p(np.clip(self.q_max, 0, None))), p_global.reshape(self.q_max.shape), bound.reshape(self.q_max.shape)


class SpectrumSearch:
    """The analysis of one spectrum over fixed bins: refit, BumpHunter scan, mass scan.

    ``settings.turn_on``: ``spectrum`` fits the turn-on of every spectrum with its dijet
    coefficients; ``sample`` (the default) keeps the sample's (``start``'s) turn-on and fits only
    the dijet coefficients, the turn-on treated as a known property of the selection. For a
    signal near the low edge of the range this decides the sensitivity (module docstring of
    :mod:`analysis.baselines.searches`).
    """

    def __init__(self, edges: np.ndarray, start: BackgroundFit, settings: BaselinesConfig) -> None:
        turn_on = settings.turn_on
        if turn_on not in TURN_ON_MODES:
            raise ValueError(f"turn_on must be one of {TURN_ON_MODES} (got {turn_on!r})")
        self.turn_on = turn_on
        self.edges = np.asarray(edges, dtype=float)
        self.centres = bin_centres(self.edges)
        self.start = start
        self.settings = settings
        self.scanner = BumpScanner(self.edges, settings.width_min, settings.width_max)
        self.masses = mass_hypotheses(self.edges[0], self.edges[-1], settings.fit_relative_width, settings.fit_mass_step)

    def background(self, counts: np.ndarray) -> BackgroundFit:
        """The spectrum's own background-only fit over every bin of the range."""
        return fit_background(counts, self.edges, self.start.sqrt_s, self.start.turn_on, start=self.start,
                              trim=False, hesse=False, fix_turn_on=self.turn_on == "sample")  # fmt: skip

    def analyse(self, counts: np.ndarray, fit: bool = True) -> dict[str, Any]:
        """Refit, scan and (``fit``) mass-scan one spectrum."""
        background = self.background(counts)
        bump = self.scanner.scan(counts, background.expected(self.centres))
        out = {"background": background, "bump": bump}
        if fit:
            out["scan"] = mass_scan(counts, self.edges, background, self.masses, self.settings.fit_relative_width)
        return out


def null_toys(search: SpectrumSearch, expected: np.ndarray, n_toys: int, n_fit_toys: int,
              seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float | None]]:  # fmt: skip
    """BumpHunter's t of ``n_toys`` Poisson toys of ``expected``, the signed q0 curves of the
    first ``n_fit_toys`` of them (each toy analysed like a realisation), and the seconds spent."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _TOY_STREAM]))
    t, curves = np.empty(n_toys), np.empty((n_fit_toys, len(search.masses)))
    seconds = {"with_scan": 0.0, "bump_only": 0.0}
    for i in range(n_toys):
        started = time.perf_counter()
        res = search.analyse(rng.poisson(expected).astype(float), fit=i < n_fit_toys)
        seconds["with_scan" if i < n_fit_toys else "bump_only"] += time.perf_counter() - started
        t[i] = res["bump"].t
        if i < n_fit_toys:
            curves[i] = res["scan"].signed
    per_bump = seconds["bump_only"] / (n_toys - n_fit_toys) if n_toys > n_fit_toys else None
    per_scan = seconds["with_scan"] / n_fit_toys if n_fit_toys else None
    return t, curves, {"toys": seconds["with_scan"] + seconds["bump_only"], "per_toy_refit_and_bumphunter": per_bump,
                       "per_toy_with_mass_scan": per_scan}  # fmt: skip


def search_spectra(spectra: np.ndarray, expected: np.ndarray, edges: np.ndarray, start: BackgroundFit,
                   settings: BaselinesConfig, *, seed: int, tail_fraction: float = 0.05,
                   max_extrapolation: float = 1000.0) -> Searches:  # fmt: skip
    """Both methods on ``spectra`` (realisations x sizes x bins) with nulls from ``settings.n_pseudo``
    Poisson toys of ``expected`` (the background model over ``edges``; ``start`` its fit); the
    mass scan's null uses the first ``settings.fit_toys`` of them. The turn-on: see
    :class:`SpectrumSearch`."""
    spectra = np.asarray(spectra, dtype=float)
    search = SpectrumSearch(edges, start, settings)
    n_fit_toys = min(settings.fit_toys, settings.n_pseudo)
    shape = spectra.shape[:2]
    t, p_bump, under, q_max, mass, yields, chi2 = (np.empty(shape) for _ in range(7))
    window = np.empty((*shape, 2))
    started = time.perf_counter()
    for idx in np.ndindex(*shape):
        res = search.analyse(spectra[idx])
        bump, scan, background = res["bump"], res["scan"], res["background"]
        t[idx], p_bump[idx], under[idx], window[idx] = bump.t, bump.local_p, bump.underflow, (bump.low, bump.high)
        q_max[idx], mass[idx], yields[idx] = scan.statistic, scan.masses[scan.best], scan.signal[scan.best]
        chi2[idx] = background.chi2_ndf
    spectra_s = time.perf_counter() - started
    toys_t, curves, toy_seconds = null_toys(search, expected, settings.n_pseudo, n_fit_toys, seed)
    return Searches(
        t=t, bump_p_local=p_bump, bump_underflow=under.astype(bool), window=window, q_max=q_max, best_mass=mass,
        signal_yield=yields, chi2_ndf=chi2,
        bump_null=NullDistribution.fit(toys_t, tail_fraction, max_extrapolation),
        fit_null=NullDistribution.fit(curves.max(axis=1), tail_fraction, max_extrapolation),
        gross_vitells=GrossVitells.from_toys(np.clip(curves, 0, None)), masses=search.masses, turn_on=settings.turn_on,
        seconds={"spectra": spectra_s, "per_spectrum": spectra_s / max(t.size, 1), **toy_seconds},
    )  # fmt: skip


def run_baselines(real: Realizations, cfg: AnalysisConfig, out_dir: Path, quiet: bool = False) -> list[MethodEntry]:
    """Both methods on every realisation and N: sensitivity.json entries, baselines.json, plots."""
    out_dir = Path(out_dir)
    bl, sens = cfg.baselines, cfg.sensitivity
    spectra = real.spectra()
    found = search_spectra(spectra, real.expected_background(), real.edges, real.model, bl, seed=real.seed,
                           tail_fraction=sens.tail_fraction, max_extrapolation=sens.max_extrapolation)  # fmt: skip
    entries = [_bump_entry(real, found, bl), _fit_entry(real, found, bl)]
    merge_entries(out_dir / "sensitivity.json", entries, real.protocol())
    write_json(out_dir / "baselines.json", {
        "signal": real.signal, "range_gev": [float(real.edges[0]), float(real.edges[-1])],
        "bin_width_gev": float(real.edges[1] - real.edges[0]), "realizations": real.n_realizations,
        "n_signal": list(real.n_signal), "background_model": real.model.to_dict(), "turn_on": found.turn_on,
        "methods": {e.method: _method_summary(e) for e in entries}, "timings_s": found.seconds,
    })  # fmt: skip
    from analysis.core.plots import save

    sample = np.histogram(real.background_mjj, real.edges)[0].astype(float)
    reference = SpectrumSearch(real.edges, real.model, bl).background(spectra[0, -1])
    save(spectrum_figure(real, sample, spectra[0, -1], reference, found), out_dir / "spectrum_fit.png")
    for entry in entries:
        save(sensitivity_figure(entry), out_dir / f"sensitivity_{entry.method}.png")
    if not quiet:
        for e in entries:
            print(f"[baselines] {e.method}: {e.realizations} realisations, global 3 sigma at {e.crossing_text(3)}, "
                  f"5 sigma at {e.crossing_text(5)} events (local {e.crossing_text(3, 'local')} / "
                  f"{e.crossing_text(5, 'local')}); {found.seconds['per_spectrum'] * 1e3:.0f} ms per spectrum, "
                  f"{found.seconds['toys']:.0f} s of toys", flush=True)  # fmt: skip
    return entries


def _per_size(values: np.ndarray, digits: int = 4) -> list[list[float]]:
    """Per realisation, per N, rounded (JSON details)."""
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def _bump_entry(real: Realizations, found: Searches, bl: BaselinesConfig) -> MethodEntry:
    p_local, p_global, b_local, b_global = found.bump_pvalues()
    scanner = BumpScanner(real.edges, bl.width_min, bl.width_max)
    widths = f"{scanner.width_min}-{scanner.width_max} bins of {real.edges[1] - real.edges[0]:g} GeV"
    meaning = (f"BumpHunter's look-elsewhere effect over every window ({widths}, every position): the most "
               f"significant window's t = -ln p_local against {bl.n_pseudo} background-only pseudo-experiments of "
               "the background model, each refitted and scanned like a realisation; past the toys a fitted "
               "exponential tail, or a bound")  # fmt: skip
    details = {
        "null": found.bump_null.summary(), "t": _per_size(found.t), "window_gev": np.asarray(found.window).tolist(),
        "reference": f"background-only fit of each spectrum (dijet function x turn-on, iminuit; {_turn_on_text(found)})",
        "reference_chi2_ndf": _per_size(found.chi2_ndf, 3), "width_bins": [scanner.width_min, scanner.width_max],
        "n_pseudo": bl.n_pseudo,
    }  # fmt: skip
    notes = ["local p: Poisson p of the most significant window (minimum over windows, no look-elsewhere effect)"]
    result = MethodResult(BUMP_METHOD, real.signal, list(real.n_signal), p_local, p_global, b_local, b_global)
    return summarise(result, background_events=real.background_events, fingerprint=real.fingerprint,
                     z_global_meaning=meaning, s_over_b=real.s_over_b(), notes=notes, details=details)  # fmt: skip


def _fit_entry(real: Realizations, found: Searches, bl: BaselinesConfig) -> MethodEntry:
    p_local, p_global, b_global = found.fit_pvalues()
    masses = found.masses
    meaning = (f"the mass scan's look-elsewhere effect over {len(masses)} Gaussian hypotheses "
               f"({masses[0]:.0f}-{masses[-1]:.0f} GeV every {bl.fit_mass_step:g} GeV, sigma = "
               f"{bl.fit_relative_width:g} x mass): the largest q0 (signed: -q0 for a fitted deficit) against {found.fit_null.n_toys} background-only "
               "pseudo-experiments, each refitted and scanned like a realisation; past the toys a fitted "
               "exponential tail, or a bound")  # fmt: skip
    gv = found.gross_vitells
    details = {
        "null": found.fit_null.summary(), "masses_gev": np.round(masses, 2).tolist(), "q_max": _per_size(found.q_max),
        "gross_vitells_check": {"level_c0": gv.level, "mean_upcrossings": gv.mean_upcrossings,
                                "levels": gv.compare(found.fit_null.values)},
        "best_mass_gev": _per_size(found.best_mass, 1), "signal_events_fitted": _per_size(found.signal_yield, 1),
        "background_chi2_ndf": _per_size(found.chi2_ndf, 3), "relative_width": bl.fit_relative_width,
        "model": f"dijet function (4 free) x turn-on ({_turn_on_text(found)}) + Gaussian",
    }  # fmt: skip
    notes = ["local p: 0.5 P(chi2_1 > q0) at the best mass (Wilks, signal yield >= 0); conservative here, as the "
             "turn-on is fixed from a fit of the same spectrum (the global p does not use it)"]
    result = MethodResult(FIT_METHOD, real.signal, list(real.n_signal), p_local, p_global, None, b_global)
    return summarise(result, background_events=real.background_events, fingerprint=real.fingerprint,
                     z_global_meaning=meaning, s_over_b=real.s_over_b(), notes=notes, details=details)  # fmt: skip


def _turn_on_text(found: Searches) -> str:
    if found.turn_on == "sample":
        return "turn-on fixed to the background sample's fit, the realisations' model: a selection property taken as known"
    return "turn-on fitted per spectrum; the mass scan keeps it fixed at the spectrum's background-only fit"


def _method_summary(entry: MethodEntry) -> dict[str, Any]:
    """A method's headline numbers and its null for baselines.json."""
    return {
        "z_global_meaning": entry.z_global_meaning, "null": entry.details.get("null"),
        "null_ks_pvalue": entry.null_ks_pvalue,
        "n_signal_3sigma": entry.n_signal_3sigma.model_dump(by_alias=True),
        "n_signal_5sigma": entry.n_signal_5sigma.model_dump(by_alias=True),
        "points": [p.model_dump() for p in entry.points],
    }  # fmt: skip


# -- plots -------------------------------------------------------------------------------------
def spectrum_figure(real: Realizations, sample: np.ndarray, injected: np.ndarray, reference: BackgroundFit,
                    found: Searches):  # fmt: skip
    """The sample's background-only spectrum over the background model, and the largest injection
    of realisation 0 over its own background-only fit (the reference of both methods), with pulls."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    from analysis.core.plots import style

    style()
    edges, centres = real.edges, real.centres
    model, own = real.model.expected(centres), reference.expected(centres)
    n = real.n_signal[-1]
    fig, (ax, pull_ax) = plt.subplots(2, 1, figsize=(9, 9), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.2], "hspace": 0.05})  # fmt: skip
    ax.stairs(model, edges, color="black", linewidth=2, zorder=5, baseline=None,
              label=rf"background model ({real.model.turn_on} turn-on), $\chi^2$/ndf = {real.model.chi2_ndf:.2f}")  # fmt: skip
    ax.stairs(own, edges, color="darkred", linewidth=2, linestyle="--", zorder=5, baseline=None,
              label=rf"its background-only fit, $\chi^2$/ndf = {reference.chi2_ndf:.2f}")  # fmt: skip
    hep.histplot(sample, edges, yerr=np.sqrt(sample), ax=ax, histtype="errorbar", color="black", markersize=4,
                 label="background sample")  # fmt: skip
    hep.histplot(injected, edges, yerr=np.sqrt(injected), ax=ax, histtype="errorbar", color="tab:red", markersize=4,
                 marker="s", label=f"realisation 0 + {n} {real.signal} events")  # fmt: skip
    low, high = found.window[0, -1]
    ax.axvspan(low, high, color="tab:orange", alpha=0.25, label=f"its BumpHunter window, {low:.0f}-{high:.0f} GeV")
    ax.axvline(found.best_mass[0, -1], color="tab:green", linestyle=":", linewidth=2,
               label=f"its best mass hypothesis, {found.best_mass[0, -1]:.0f} GeV")  # fmt: skip
    ax.set_yscale("log")
    top = max(sample.max(), injected.max())
    ax.set_ylim(0.3 * max(min(model.min(), injected.min(), sample.min()), 1.0), top * 40)  # legend above the data
    ax.set_ylabel(f"events / {edges[1] - edges[0]:g} GeV")
    ax.legend(fontsize=12, loc="upper right")
    hep.label.exp_text("dijetscan", f"{len(real.background_mjj)} background events", ax=ax, loc=0)
    largest = 1.0
    for counts, expected, colour, marker in ((sample, model, "black", "o"), (injected, own, "tab:red", "s")):
        scale = np.sqrt(np.clip(expected, 1e-9, None))
        pulls = (counts - expected) / scale
        largest = max(largest, float(np.max(np.abs(pulls) + np.sqrt(counts) / scale)))
        pull_ax.errorbar(centres, pulls, yerr=np.sqrt(counts) / scale, fmt=marker, color=colour, markersize=3)
    pull_ax.axhline(0, color="grey", linewidth=1)
    pull_ax.set_ylim(-largest - 0.3, largest + 2.2)  # room for the caption above the points
    pull_ax.text(0.01, 0.96, "sample vs model;  realisation vs its own fit", transform=pull_ax.transAxes,
                 va="top", fontsize=11)  # fmt: skip
    pull_ax.set_ylabel("(n - μ) / √μ", fontsize=16)
    pull_ax.set_xlabel(r"$m_{jj}$ [GeV]")
    pull_ax.set_xlim(edges[0], edges[-1])
    return fig
