"""Classical baselines on the processor's injected m_jj spectra (design section 6).

For the background-only spectrum and every injected spectrum (background + k signal events,
``mjj_injected_<kind>_<k>`` of ``histograms.root``, the same events the other methods use):

* **BumpHunter** (pyBumpHunter) against the reference = the smooth background fit
  (:mod:`analysis.background_fit`, dijet function x turn-on) of the background-only spectrum;
  local and global significance of the most significant window;
* **background + Gaussian fit**: the same background model, its dijet-function parameters
  free and its turn-on (a property of the jet-pT selection) fixed to the background-only fit,
  plus a Gaussian of free normalisation at the signal's reconstructed mass and width; the local
  significance from the profile likelihood ratio. (With a free turn-on, a Gaussian at the
  spectrum's maximum is nearly degenerate with the turn-on and the fit loses most of its power.)

Z versus k gives each method's ``n_signal_3sigma`` / ``n_signal_5sigma`` (local Z, linearly
interpolated) in ``sensitivity.json`` as methods ``bumphunter`` and ``dijet_fit``. The
BumpHunter global Z is recorded per point; it saturates near sqrt(2) erfinv(1 - 2/n_pseudo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.atomic import write_json
from analysis.config import AnalysisConfig
from analysis.errors import InputError
from analysis.sensitivity import crossing, merge_method

BUMP_METHOD, FIT_METHOD = "bumphunter", "dijet_fit"
_INJECTED = re.compile(r"^mjj_injected_(?P<kind>[a-z_]+)_(?P<k>\d+)$")


@dataclass(frozen=True)
class InjectedSpectra:
    """The background-only spectrum, the injected ones by k, and the signal template."""

    edges: np.ndarray
    background: np.ndarray
    injected: dict[int, np.ndarray]
    signal: np.ndarray  # sum of the injected signal histograms (shape only)
    kind: str


def read_injected(histograms: Path) -> InjectedSpectra:
    """``mjj_background``, ``mjj_injected_<kind>_<k>`` and ``mjj_signal_<kind>_<k>`` of a
    processing directory's histograms.root."""
    from analysis.dataset import read_histograms

    hists = read_histograms(histograms)
    if "mjj_background" not in hists:
        raise InputError(f"{histograms}: no mjj_background histogram (was the processing run with an injection?)")
    counts, edges = hists["mjj_background"]
    injected, signal, kinds = {}, np.zeros_like(counts), set()
    for name, (values, _) in hists.items():
        if match := _INJECTED.match(name):
            kinds.add(match["kind"])
            injected[int(match["k"])] = values
            signal = signal + hists.get(name.replace("_injected_", "_signal_"), (values - counts, None))[0]
    if not injected:
        raise InputError(f"{histograms}: no mjj_injected_<kind>_<k> histograms to search")
    return InjectedSpectra(edges, counts, dict(sorted(injected.items())), signal, "/".join(sorted(kinds)))


def signal_peak(signal: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Reconstructed mass (median) and width (half the 16-84 % spread) of the signal histogram."""
    cdf = np.concatenate([[0.0], np.cumsum(np.clip(signal, 0, None))])
    if cdf[-1] <= 0:
        raise InputError("the injected signal histograms are empty")
    q16, q50, q84 = np.interp([0.16 * cdf[-1], 0.5 * cdf[-1], 0.84 * cdf[-1]], cdf, edges)
    return float(q50), float(max(0.5 * (q84 - q16), edges[1] - edges[0]))


def run_baselines(histograms: Path, out_dir: Path, cfg: AnalysisConfig, quiet: bool = False) -> list[dict[str, Any]]:
    """Both baselines at every injection size; writes baselines.json, sensitivity.json and plots."""
    from analysis.background_fit import dijet_turnon, fit_background
    from analysis.baselines import bump_hunt, fit_significance
    from analysis.plots import save
    from analysis.scan_plots import z_figure

    spectra = read_injected(Path(histograms))
    bl = cfg.baselines
    keep = (spectra.edges[:-1] >= bl.mjj_min) & (spectra.edges[1:] <= bl.mjj_max)
    first, last = np.flatnonzero(keep)[[0, -1]] if keep.any() else (0, -1)
    if not keep.any() or last - first < 8:
        raise InputError(f"{histograms}: fewer than 9 m_jj bins in baselines range {bl.mjj_min:g}-{bl.mjj_max:g} GeV")
    edges = spectra.edges[first : last + 2]
    window = slice(first, last + 1)
    try:
        fit = fit_background(spectra.background[window], edges, cfg.generation.sqrt_s)
    except ValueError as exc:
        raise InputError(f"{histograms}: mjj_background: {exc}") from None
    centres = 0.5 * (edges[1:] + edges[:-1])
    reference = fit.expected(centres)
    turn_on = np.asarray(fit.theta[4:])  # m0, ln w: fixed to the background-only fit (a property of the selection)

    def model(theta: np.ndarray, m: np.ndarray) -> np.ndarray:
        return dijet_turnon(np.concatenate([theta, turn_on]), m, fit.sqrt_s, fit.turn_on)

    mass, width = signal_peak(spectra.signal[window], edges)

    spectra_by_k = {0: spectra.background, **spectra.injected}
    bump_points, fit_points = [], []
    for k, counts in spectra_by_k.items():
        data = counts[window]
        bump = bump_hunt(data, reference, edges, n_pseudo=bl.n_pseudo, seed=cfg.seed + k,
                         width_min=bl.width_min, width_max=bl.width_max)  # fmt: skip
        own = fit_background(data, edges, fit.sqrt_s, fit.turn_on)  # multi-start background-only fit of this spectrum
        starts = [np.asarray(fit.theta[:4]), np.asarray(own.theta[:4])]
        sb = fit_significance(data, edges, model, starts, mass=mass, width=width)
        bump_points.append({"n_signal": k, "z": round(bump.local_z, 4), "z_global": round(bump.global_z, 4),
                            "window_gev": [bump.low, bump.high], "global_p": bump.global_p})  # fmt: skip
        fit_points.append({"n_signal": k, "z": round(sb.z, 4), "signal_events_fitted": round(sb.signal_events, 1)})
        if not quiet:
            print(f"[baselines] k={k}: BumpHunter local Z {bump.local_z:.2f} (global {bump.global_z:.2f}) "
                  f"in {bump.low:.0f}-{bump.high:.0f} GeV; fit Z {sb.z:.2f}", flush=True)  # fmt: skip

    common = {"kind": spectra.kind, "mass_reconstructed_gev": round(mass, 1), "width_gev": round(width, 1)}
    entries = [
        {"method": BUMP_METHOD, "points": bump_points, "n_signal_3sigma": crossing(bump_points, 3.0),
         "n_signal_5sigma": crossing(bump_points, 5.0), "z": "local (global per point)", "n_pseudo": bl.n_pseudo,
         "reference": "background fit of the background-only spectrum", **common},
        {"method": FIT_METHOD, "points": fit_points, "n_signal_3sigma": crossing(fit_points, 3.0),
         "n_signal_5sigma": crossing(fit_points, 5.0), "z": "local, profile likelihood ratio",
         "model": f"dijet function (4 free parameters) x {fit.turn_on} turn-on (fixed from the background-only fit) + Gaussian",
         **common},
    ]  # fmt: skip
    out_dir = Path(out_dir)
    for entry in entries:
        merge_method(out_dir / "sensitivity.json", entry)
        title = f"{spectra.kind}, peak {mass:.0f} GeV"
        fig = z_figure(entry["points"], entry["n_signal_3sigma"], entry["n_signal_5sigma"], title,
                       label=entry["method"], ylabel="local significance Z")  # fmt: skip
        save(fig, out_dir / f"sensitivity_{entry['method']}.png")
    write_json(out_dir / "baselines.json", {
        "histograms": str(Path(histograms).resolve()), "range_gev": [float(edges[0]), float(edges[-1])],
        "background_fit": fit.to_dict(), "signal_mass_gev": mass, "signal_width_gev": width, "methods": entries,
    })  # fmt: skip
    largest = max(spectra.injected)
    save(spectrum_figure(edges, spectra.background[window], spectra_by_k[largest][window], reference,
                         largest, bump_points[-1]["window_gev"], fit.chi2_ndf), out_dir / "spectrum_fit.png")  # fmt: skip
    return entries


def spectrum_figure(edges: np.ndarray, background: np.ndarray, injected: np.ndarray, fit: np.ndarray,
                    k: int, window: list[float], chi2_ndf: float):  # fmt: skip
    """The background-only and injected spectra over the background fit, with the bump window."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    fig, (ax, pull_ax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    hep.histplot(background, edges, ax=ax, label="background only", histtype="step", color="black")
    hep.histplot(injected, edges, ax=ax, label=f"background + {k} injected", histtype="step", color="tab:red")
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.plot(centres, fit, color="tab:blue", label=f"background fit ($\\chi^2$/ndf = {chi2_ndf:.2f})")
    ax.axvspan(*window, color="tab:orange", alpha=0.2, label=f"BumpHunter window ({k} injected)")
    ax.set_yscale("log")
    ax.set_ylabel("events / bin")
    ax.legend()
    pull = (injected - fit) / np.sqrt(np.clip(fit, 1, None))
    pull_ax.bar(centres, pull, width=np.diff(edges), color="tab:red", alpha=0.6)
    pull_ax.axhline(0, color="black", lw=0.8)
    pull_ax.set_ylabel("pull")
    pull_ax.set_xlabel("$m_{jj}$ [GeV]")
    return fig
