"""mplhep plots of p-value maps and of the autoencoder scan; each function returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.figure import Figure

from analysis.plots import MASS_LABEL, style
from analysis.sensitivity import P_3SIGMA, P_5SIGMA


def map_figure(neg_log_p: np.ndarray, mass_range: tuple[float, float], scale_range: tuple[float, float], title: str) -> Figure:
    """A -ln p map (scales x mass blocks) with a colour bar."""
    style()
    fig, ax = plt.subplots(figsize=(11, 7))
    image = ax.imshow(
        neg_log_p, aspect="auto", origin="lower", cmap="magma", vmin=0,
        extent=(mass_range[0], mass_range[1], scale_range[0], scale_range[1]),
    )  # fmt: skip
    fig.colorbar(image, ax=ax, label=r"$-\ln p$ (local)")
    ax.set_xlabel(MASS_LABEL)
    ax.set_ylabel("Scale [bins]")
    ax.set_title(title, fontsize=18)
    return fig


def plot_pvalue_map(
    setup, rng: np.random.Generator, n_reference: int = 1000, shape: Sequence[int] = (48, 64)
) -> Figure:
    """-ln p map of one Poisson toy of ``setup``'s background + signal (as defined, not rescaled)
    against ``n_reference`` background-only toys, for a :class:`analysis.toys.ToySetup`."""
    from analysis.pvalues import ModulusMaps, build_reference
    from analysis.spectra import background_counts, clean_spectrum

    background = background_counts(setup.background)
    maps = ModulusMaps(setup.wavelet, len(background), (int(shape[0]), int(shape[1])))
    reference = build_reference(background, n_reference, rng, maps)
    toy = rng.poisson(clean_spectrum(setup.background, setup.signal))[None, :].astype(float)
    neg_log_p = reference.neg_log_p(maps(toy))[0]
    scales = setup.wavelet.scales
    b = setup.background.binning
    title = f"Local p-values: signal {setup.signal.id}, background {setup.background.id}, {n_reference} toys"
    return map_figure(neg_log_p, (b.low, b.high), (scales[0], scales[-1]), title)


def pvalue_vs_signal_figure(sizes: Sequence[float], models: Sequence[dict], n_background: int, title: str = "") -> Figure:
    """Efficiency p-value versus signal size for every model (log scale; p = 0 drawn at 1/N)."""
    style()
    fig, ax = plt.subplots(figsize=(10, 7))
    floor = 1.0 / n_background
    for model in models:
        p = np.maximum(np.asarray(model["p_values"], dtype=float), floor)
        ax.plot(sizes, p, marker="o", lw=2, label=model["name"])
    for value, label in ((P_3SIGMA, r"3$\sigma$"), (P_5SIGMA, r"5$\sigma$")):
        ax.axhline(value, color="grey", ls="--", lw=1)
        ax.text(sizes[-1], value * 1.3, label, ha="right", fontsize=14, color="grey")
    ax.axhline(floor, color="black", ls=":", lw=1, label=f"1/N (N = {n_background})")
    ax.set_yscale("log")
    ax.set_ylim(min(floor, P_5SIGMA) * 0.3, 1.5)
    ax.set_xlabel("Signal size [events]")
    ax.set_ylabel("Efficiency p-value")
    ax.set_title(title or "Autoencoder p-value versus signal size", fontsize=18)
    ax.legend(fontsize=13)
    return fig


def loss_figure(name: str, background: np.ndarray, signals: dict[float, np.ndarray]) -> Figure:
    """Reconstruction-loss distributions: test backgrounds and each signal size."""
    style()
    fig, ax = plt.subplots(figsize=(10, 7))
    everything = np.concatenate([background, *signals.values()])
    edges = np.linspace(everything.min(), np.quantile(everything, 0.999), 60)
    hep.histplot(np.histogram(background, edges)[0], edges, ax=ax, label="test backgrounds", lw=3, color="black", density=True)
    for size, losses in signals.items():
        hep.histplot(np.histogram(losses, edges)[0], edges, ax=ax, label=f"signal {size:g}", lw=1.5, density=True)
    ax.set_xlabel("Reconstruction MSE")
    ax.set_ylabel("Density")
    ax.set_title(f"{name}: loss distributions", fontsize=18)
    ax.legend(fontsize=13)
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
