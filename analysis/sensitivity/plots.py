"""Plots of one method's entry of ``sensitivity.json`` (every method stage draws the same one)."""

from __future__ import annotations

import numpy as np

from analysis.sensitivity.model import MethodEntry


def sensitivity_figure(entry: MethodEntry):
    """Median local and global Z versus injected events with 16-84 % bands and 3/5 sigma lines;
    a median that is only a lower bound is an open marker with an upward arrow."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    from analysis.core.plots import style

    style()
    fig, ax = plt.subplots(figsize=(9, 7))
    n = np.array([p.n_signal for p in entry.points], dtype=float)
    for kind, colour in (("global", "C0"), ("local", "C1")):
        bands = [p.z_global if kind == "global" else p.z_local for p in entry.points]
        bound = np.array([p.bound if kind == "global" else p.bound_local for p in entry.points])
        median = np.array([b.median for b in bands])
        ax.fill_between(n, [b.lo for b in bands], [b.hi for b in bands], color=colour, alpha=0.2, linewidth=0)
        ax.plot(n, median, "-", color=colour)
        ax.plot(n[~bound], median[~bound], "o", color=colour, label=f"{kind} Z (median, 16-84 %)")
        if bound.any():
            ax.plot(n[bound], median[bound], "o", markerfacecolor="white", color=colour, label=f"{kind} Z: lower bound")
            for x, y in zip(n[bound], median[bound], strict=True):
                ax.annotate("", (x, y + 0.6), (x, y), arrowprops={"arrowstyle": "->", "color": colour})
    for z in (3, 5):
        ax.axhline(z, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"{z}$\\sigma$", (n[-1], z), textcoords="offset points", xytext=(-4, 4), fontsize=13,
                    color="grey", ha="right")  # fmt: skip
    values = np.array([[b.lo, b.hi] for p in entry.points for b in (p.z_local, p.z_global)])
    values = values[np.isfinite(values)]  # p = 1 (below every toy) is Z = -inf
    ax.set_ylim(max(-3.0, values.min() - 0.5), max(6.5, values.max() + 2.5))  # room for the legend above the curves
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"injected {entry.signal} events")
    ax.set_ylabel("Z (one-sided, from p)")
    hep.label.exp_text("dijetscan", f"{entry.method}, {entry.realizations} realisations", ax=ax, loc=0)
    ax.legend(fontsize=14, loc="upper left")
    return fig
