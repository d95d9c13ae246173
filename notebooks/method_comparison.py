# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Method comparison
#
# The same background sample and the same injected signal events, analysed four ways: the
# adjacent-bin PFN (AUC), autoencoders on wavelet p-value maps, BumpHunter and a background +
# Gaussian fit. `sensitivity.json` holds, per method, Z versus the number of injected events and
# the numbers needed for 3 and 5 sigma.

# %%
import os
import sys
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()
sys.path.insert(0, str(ROOT))
# the results directory of `python run_analysis.py` (DIJETSCAN_RESULTS points elsewhere)
RESULTS = Path(os.environ.get("DIJETSCAN_RESULTS", ROOT / "results" / "default"))

import json

import matplotlib.pyplot as plt

from analysis.report import comparison_figure

methods = json.loads((RESULTS / "sensitivity.json").read_text())["methods"]


def fmt(n):
    return "not reached" if n is None else f"{n:.0f}"


print(f"{'method':<14} {'N(3 sigma)':>12} {'N(5 sigma)':>12}   stage")
for m in methods:
    print(f"{m['method']:<14} {fmt(m['n_signal_3sigma']):>12} {fmt(m['n_signal_5sigma']):>12}   {m.get('stage', '')}")

# %%
comparison_figure(methods)
plt.show()

# %% [markdown]
# BumpHunter's local Z uses the background fit of the background-only spectrum as a fixed
# reference, so it is the most optimistic; its global Z (look-elsewhere effect included) is
# limited by the number of pseudo-experiments. The autoencoders' p-values are floored at one
# over the number of background test maps.

# %%
for m in methods:
    if "bump" in m["method"]:
        for p in m["points"]:
            print(f"k = {p['n_signal']:>5}: local Z {p['z']:.2f}, global Z {p['z_global']:.2f}, window {p['window_gev']} GeV")
