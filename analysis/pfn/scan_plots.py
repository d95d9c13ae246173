"""Plots of the PFN scan: AUC mean +- std per bin pair and sample size; Z versus injected events."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.figure import Figure

from analysis.core.plots import style

if TYPE_CHECKING:
    from analysis.pfn.scan import AucScan


def auc_figure(scan: AucScan) -> Figure:
    """AUC mean +- std (over samples) of every adjacent bin pair, one series per sample size."""
    style()
    fig, ax = plt.subplots(figsize=(10, 7))
    edges = scan.bin_edges
    labels: dict[tuple[int, int], str] = {}
    n_sizes = max(1, len(scan.sizes))
    for i, entry in enumerate(scan.sizes):
        pairs = [p.bins for p in entry.pairs]
        for a, b in pairs:
            labels[(a, b)] = f"{edges[a]:g}-{edges[a + 1]:g}\nvs {edges[b]:g}-{edges[b + 1]:g}"
        x = np.array([a for a, _ in pairs], dtype=float) + 0.08 * (i - (n_sizes - 1) / 2)
        ax.errorbar(
            x, [p.auc_mean for p in entry.pairs], yerr=[p.auc_std for p in entry.pairs],
            fmt="o", capsize=4, label=f"{entry.events} events x {entry.n_samples} samples",
        )  # fmt: skip
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ticks = sorted(labels)
    ax.set_xticks([a for a, _ in ticks], [labels[t] for t in ticks], fontsize=12)
    ax.set_xlabel("adjacent $m_{jj}$ bins [GeV]")
    ax.set_ylabel("PFN AUC (mean $\\pm$ std over samples)")
    inj = scan.injection
    title = "no injection" if inj.kind == "none" else f"{inj.n_events} {inj.kind} events injected"
    hep.label.exp_text("dijetscan", title, ax=ax, loc=0)
    ax.legend(fontsize=14)
    return fig
