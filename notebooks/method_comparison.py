# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Method comparison
#
# Every method (CWoLa hunting and the adjacent-bin PFN, autoencoders on wavelet p-value maps,
# BumpHunter and a background + Gaussian mass scan) runs on the same background realisations with
# the same nested signal draws, for each signal (X -> gg and W' -> WZ). `sensitivity.json`
# (format 2) holds, per method and signal, the median local and global Z with its 16-84 % band at
# every injected N, the N needed for 3 and 5 sigma, and the global p-values of the
# background-only realisations (the null calibration).

# %%
import os
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()
# the results directory of `python run_analysis.py` (DIJETSCAN_RESULTS points elsewhere)
RESULTS = Path(os.environ.get("DIJETSCAN_RESULTS", ROOT / "results" / "default"))

import matplotlib.pyplot as plt

from analysis.report import calibration_figure, comparison_figure, method_table, signal_names
from analysis.sensitivity.model import Sensitivity

data = Sensitivity.read(RESULTS / "sensitivity.json")
by_signal = {s: [m for m in data.methods if m.signal == s] for s in signal_names(data)}
for signal, entries in by_signal.items():
    head, rows = method_table(entries)
    print(f"\n{signal}\n" + " | ".join(head))
    for row in rows:
        print(" | ".join(row))

# %%
for signal, entries in by_signal.items():
    comparison_figure(entries, "global", signal)
    plt.show()

# %% [markdown]
# A method's null is calibrated when its global p on background-only realisations is uniform:
# the empirical CDF follows the diagonal.

# %%
signal, entries = next(iter(by_signal.items()))
calibration_figure(entries, signal)
plt.show()

# %% [markdown]
# What "global" means differs by method: BumpHunter's pseudo-experiments over its windows, the
# fit's scan over mass hypotheses, the PFN's trials over bin pairs; an autoencoder's whole-map
# p-value is already global.

# %%
for m in next(iter(by_signal.values())):
    print(f"{m.method:>12}: {m.z_global_meaning}")
