"""mplhep plots of p-value maps and of the autoencoder scan; each function returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from analysis.core.plots import map_figure as image_map
from analysis.core.plots import style
from analysis.sensitivity import P_3SIGMA, P_5SIGMA

COLOURS = tuple(plt.get_cmap("tab10").colors)  # distinct: one colour per model (or per N)


def map_figure(neg_log_p: np.ndarray, mass_range: tuple[float, float], scale_range: tuple[float, float], title: str) -> Figure:
    """A -ln p map (scales x mass blocks) with a colour bar."""
    from matplotlib.colors import Normalize

    extent = (mass_range[0], mass_range[1], scale_range[0], scale_range[1])
    return image_map(neg_log_p, extent, r"$-\ln p$ (local)", title, cmap="magma", norm=Normalize(vmin=0))


def plot_pvalue_map(
    setup, rng: np.random.Generator, n_reference: int = 1000, shape: Sequence[int] = (48, 64)
) -> Figure:
    """-ln p map of one Poisson toy of ``setup``'s background + signal (as defined, not rescaled)
    against ``n_reference`` background-only toys, for a :class:`analysis.toys.selection.ToySetup`."""
    from analysis.toys.spectra import background_counts, clean_spectrum
    from analysis.wavelets.pvalues import ModulusMaps, build_reference

    background = background_counts(setup.background)
    maps = ModulusMaps(setup.wavelet, len(background), (int(shape[0]), int(shape[1])))
    reference = build_reference(background, n_reference, rng, maps)
    toy = rng.poisson(clean_spectrum(setup.background, setup.signal))[None, :].astype(float)
    neg_log_p = reference.neg_log_p(maps(toy))[0]
    scales = setup.wavelet.scales
    b = setup.background.binning
    title = f"Local p-values: signal {setup.signal.id}, background {setup.background.id}, {n_reference} toys"
    return map_figure(neg_log_p, (b.low, b.high), (scales[0], scales[-1]), title)


def _outside_legend(ax, fig: Figure) -> None:
    """The legend right of the axes: it never covers data."""
    ax.legend(fontsize=12, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()


def pvalue_vs_signal_figure(
    sizes: Sequence[float], models: Sequence[dict], n_background: int | None = None, title: str = ""
) -> Figure:
    """p-value versus signal size for every model (log scale), one colour per model.

    ``models``: dicts with ``name`` and ``p_values``; optionally ``p_lo``/``p_hi`` (a band, drawn
    shaded) and ``bound`` (``bound_lo``) flags: a bounded p is only an upper limit and is drawn as
    a downward triangle with an arrow, never as a point of the curve. Models are drawn slightly
    apart in N so that equal values (e.g. bounds at the same limit) stay visible.
    ``n_background``: test-background maps; 1/(M+1) marks their resolution (below it the p come
    from the fitted tail, or are bounds)."""
    style()
    fig, ax = plt.subplots(figsize=(13, 7))
    x0 = np.asarray(sizes, dtype=float)
    dodge = 0.012 * (np.ptp(x0) or 1.0)
    smallest, any_bound = [P_5SIGMA], False
    for i, model in enumerate(models):
        colour = COLOURS[i % len(COLOURS)]
        x = x0 + (i - 0.5 * (len(models) - 1)) * dodge
        p = np.asarray(model["p_values"], dtype=float)
        bound = np.asarray(model.get("bound", np.zeros(len(p))), dtype=bool)
        smallest.append(float(p.min()))
        if "p_lo" in model and "p_hi" in model:
            lo, hi = np.asarray(model["p_lo"], dtype=float), np.asarray(model["p_hi"], dtype=float)
            ax.fill_between(x, lo, hi, color=colour, alpha=0.12, lw=0)
            smallest.append(float(lo.min()))
            low_bound = np.asarray(model.get("bound_lo", np.zeros(len(lo))), dtype=bool)
            ax.plot(x[low_bound], lo[low_bound], ls="none", marker="v", ms=6, mfc="none", color=colour)
        ax.plot(x, p, lw=1, ls=":", color=colour)
        ax.plot(x[~bound], p[~bound], marker="o", lw=2, color=colour, label=model["name"])
        if bound.any():
            any_bound = True
            ax.plot(x[bound], p[bound], ls="none", marker="v", ms=11, color=colour)
            for xi, pi in zip(x[bound], p[bound], strict=True):
                ax.annotate("", xy=(xi, pi / 6), xytext=(xi, pi), arrowprops={"arrowstyle": "->", "color": colour})
            smallest.append(float(p[bound].min()) / 8)
    if any_bound:
        ax.plot([], [], ls="none", marker="v", ms=11, color="grey", label="median p is an upper bound")
    if any("bound_lo" in m and any(m["bound_lo"]) for m in models):
        ax.plot([], [], ls="none", marker="v", ms=6, mfc="none", color="grey", label="band edge is a bound")
    for value, label in ((P_3SIGMA, r"3$\sigma$"), (P_5SIGMA, r"5$\sigma$")):
        ax.axhline(value, color="grey", ls="--", lw=1)
        ax.text(x0[0], value * 1.3, label, ha="left", fontsize=13, color="grey")
    if n_background:
        ax.axhline(1.0 / (n_background + 1), color="black", ls=":", lw=1, label=f"1/(M+1), M = {n_background} null maps")
    ax.set_yscale("log")
    ax.set_ylim(min(smallest) * 0.3, 1.5)
    ax.set_xlabel("Injected signal events $N$", fontsize=18)
    banded = any("p_lo" in m for m in models)
    ax.set_ylabel("p-value (median, 16-84 % band)" if banded else "p-value", fontsize=18)
    ax.set_title(title or "Autoencoder p-value versus signal size", fontsize=16)
    _outside_legend(ax, fig)
    return fig


def null_loss_figure(name: str, curve: dict, sizes: Sequence[int]) -> Figure:
    """Reconstruction losses: the null's survival function (test-background maps, and its fitted
    tail past them) and every realisation's loss at its p, one colour per injected N; bounds drawn
    as downward triangles; the background sample's own spectrum as a star."""
    style()
    fig, ax = plt.subplots(figsize=(13, 7))
    null = curve["null"]
    values = np.sort(np.asarray(curve["null_losses"], dtype=float))
    m = len(values)
    survival = (m - np.arange(m)) / (m + 1.0)  # P(null >= value_i), the (k+1)/(M+1) convention
    ax.step(values, survival, where="post", color="black", lw=2, label=f"null: {m} test-background maps")
    losses, p, bound = curve["losses"], curve["p"], curve["bound"]
    top = max(float(losses.max()), float(values[-1]), curve["sample"][0])
    if null.trusted_tail:
        grid = np.linspace(null.threshold, top * 1.02, 400)
        tail, beyond = null.p_value(grid)  # drawn down to p_min only: below it a p is a bound
        ax.plot(grid[~beyond], tail[~beyond], color="black", ls="--", lw=1.5,
                label=f"exponential tail (scale {null.scale:.2g}, KS p = {null.gof_pvalue:.2f})")  # fmt: skip
    low = min(float(p.min()), curve["sample"][1], 1.0 / (len(values) + 1))
    if bound.any() or curve["sample"][2] or null.p_min > 0.01 * low:
        ax.axhline(null.p_min, color="grey", ls=":", lw=1, label=f"p_min = {null.p_min:.1e} (below: bounds)")
        low = min(low, null.p_min)
    for k, n in enumerate(sizes):
        colour = COLOURS[k % len(COLOURS)]
        ok = ~bound[:, k]
        ax.plot(losses[ok, k], p[ok, k], ls="none", marker="o", ms=7, color=colour, alpha=0.8, label=f"realisations, N = {n}")
        ax.plot(losses[~ok, k], p[~ok, k], ls="none", marker="v", ms=9, mfc="none", color=colour)
    if bound.any():
        ax.plot([], [], ls="none", marker="v", ms=9, mfc="none", color="grey", label="p only an upper bound")
    sample_loss, sample_p, sample_bound = curve["sample"]
    ax.plot([sample_loss], [sample_p], ls="none", marker="v" if sample_bound else "*", ms=16, color="magenta",
            mec="black", label=f"background sample: p = {'<' if sample_bound else ''}{sample_p:.2g}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(low * 0.3, 1.5)
    if top / max(float(values[0]), 1e-12) > 20:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a short decade span
    ax.set_xlabel("Reconstruction MSE", fontsize=18)
    ax.set_ylabel("P(null loss $\\geq$ loss)", fontsize=18)
    ax.set_title(f"{name}: losses of the null and of the realisations", fontsize=16)
    _outside_legend(ax, fig)
    return fig


def loss_figure(name: str, background: np.ndarray, signals: dict[float, np.ndarray]) -> Figure:
    """Reconstruction-loss distributions of a toy dataset: test backgrounds and each signal size."""
    style()
    fig, ax = plt.subplots(figsize=(12, 7))
    everything = np.concatenate([background, *signals.values()])
    edges = np.linspace(everything.min(), np.quantile(everything, 0.999), 60)
    hep.histplot(np.histogram(background, edges)[0], edges, ax=ax, label="test backgrounds", lw=3, color="black", density=True)
    for size, losses in signals.items():
        hep.histplot(np.histogram(losses, edges)[0], edges, ax=ax, label=f"signal {size:g}", lw=1.5, density=True)
    ax.set_xlabel("Reconstruction MSE", fontsize=18)
    ax.set_ylabel("Density", fontsize=18)
    ax.set_title(f"{name}: loss distributions", fontsize=16)
    _outside_legend(ax, fig)
    return fig


def reconstruction_figure(name: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Input and reconstruction side by side for each labelled map (values in -ln p / ln(N+1))."""
    style()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(14, 4.5 * len(pairs)), squeeze=False)
    top = max(float(max(a.max(), b.max())) for a, b in pairs.values())
    for row, (label, (given, output)) in zip(axes, pairs.items(), strict=True):
        for ax, image, what in ((row[0], given, "input"), (row[1], output, "reconstruction")):
            shown = ax.imshow(image, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=top)
            ax.set_title(f"{label}: {what}", fontsize=14)
            ax.set_xlabel("mass block")
            ax.set_ylabel("scale index")
        fig.colorbar(shown, ax=row.tolist(), label=r"$-\ln p / \ln(N+1)$")
    fig.suptitle(name, fontsize=18)
    return fig


def reconstructions_figure(inputs: dict[str, np.ndarray], outputs: dict[str, dict[str, np.ndarray]], what: str) -> Figure:
    """One row per input map: the input, then every model's reconstruction (one colour scale)."""
    style()
    cols = 1 + len(outputs)
    fig, axes = plt.subplots(len(inputs), cols, figsize=(3.2 * cols + 1.5, 3.6 * len(inputs)), squeeze=False,
                             sharex=True, sharey=True)  # fmt: skip
    top = max(float(a.max()) for a in inputs.values())
    for row, (label, given) in zip(axes, inputs.items(), strict=True):
        panels = [("input", given), *((name, out[label]) for name, out in outputs.items())]
        for ax, (title, image) in zip(row, panels, strict=True):
            shown = ax.imshow(image, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=top)
            ax.set_title(f"{label}: {title}", fontsize=10)
            ax.tick_params(labelsize=9)
        row[0].set_ylabel("scale index", fontsize=11)
    for ax in axes[-1]:
        ax.set_xlabel("mass block", fontsize=11)
    fig.colorbar(shown, ax=axes.ravel().tolist(), label=r"$-\ln p / \ln(N+1)$")
    fig.suptitle(f"Input maps ({what}) and their reconstructions", fontsize=14)
    return fig
