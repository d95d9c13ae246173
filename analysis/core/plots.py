"""mplhep plots of toy spectra and their continuous wavelet transforms.

Each function returns a matplotlib Figure; :func:`save` writes PNG or PDF by suffix.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from analysis.core.atomic import atomic_path
from analysis.core.errors import ConfigError
from analysis.toys.definitions import Binning, WaveletDef

FORMATS = (".png", ".pdf")
MASS_LABEL = r"$m$ [GeV]"


def style() -> None:
    """The CMS style of mplhep, used by every plot of the project."""
    hep.style.use("CMS")


def spectrum_figure(binning: Binning, curves: dict[str, np.ndarray], title: str, log: bool = True) -> Figure:
    """Step histograms of one or more spectra on the same binning."""
    style()
    fig, ax = plt.subplots(figsize=(10, 7))
    for label, counts in curves.items():
        bold = label in ("expected", "background")
        hep.histplot(counts, binning.edges, ax=ax, label=label, lw=3 if bold else 1.5,
                     color="black" if label == "expected" else None)
    ax.set_xlabel(MASS_LABEL)
    ax.set_ylabel(f"Events / {binning.edges[1] - binning.edges[0]:g} GeV")
    ax.set_xlim(binning.low, binning.high)
    if log and all(np.all(c >= 0) for c in curves.values()):
        ax.set_yscale("log")
        top = max(float(np.max(c)) for c in curves.values())
        low = min(float(np.min(c[c > 0], initial=top)) for c in curves.values())
        ax.set_ylim(max(0.5 * low, top * 1e-8), top * 5)
    ax.set_title(title, fontsize=18)
    ax.legend(fontsize=16)
    return fig


def map_figure(values: np.ndarray, extent: tuple[float, float, float, float], colour_label: str, title: str,
               *, cmap: str = "viridis", norm: Normalize | None = None) -> Figure:
    """A (mass, scale) map with a colour bar: ``values`` is (scales, mass bins), ``extent`` the
    (mass low, high, scale low, high) edges of the image."""
    style()
    fig, ax = plt.subplots(figsize=(11, 7))
    image = ax.imshow(values, aspect="auto", origin="lower", cmap=cmap, norm=norm, extent=extent)
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set_xlabel(MASS_LABEL)
    ax.set_ylabel("Scale [bins]")
    ax.set_title(title, fontsize=18)
    return fig


def cwt_figure(binning: Binning, wavelet: WaveletDef, modulus: np.ndarray, title: str) -> Figure:
    """The CWT modulus as a (mass, scale) map, on a log colour scale over four decades."""
    scales = wavelet.scales
    half = 0.5 * (scales[1] - scales[0]) if len(scales) > 1 else 0.5
    positive = modulus[modulus > 0]
    norm = LogNorm(vmin=max(positive.min(), positive.max() * 1e-4), vmax=positive.max()) if positive.size else None
    extent = (binning.low, binning.high, scales[0] - half, scales[-1] + half)
    return map_figure(modulus, extent, f"|CWT| ({wavelet.pywt_name})", title, norm=norm)


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` atomically as PNG or PDF (chosen by the suffix) and close it."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        plt.close(fig)
        raise ConfigError(f"{path}: output must end in .png or .pdf")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower().lstrip("."), bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def png_bytes(fig: Figure, dpi: int = 72) -> bytes:
    """``fig`` as PNG bytes (for the workbench's pages), then closed."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()
