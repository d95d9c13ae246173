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
# # The adjacent-bin PFN scan
#
# For every random sample of the selected events, a Particle Flow Network learns to tell the
# jets of one m_jj bin from the jets of the next; without new physics its AUC averages 0.5 and
# its spread over samples is the null uncertainty. Injected signal events change one bin's jet
# composition and move that pair's AUC. On the sensitivity protocol's realisations every pair is
# trained at every injected N; a pair's null is its own background-only AUCs (the null AUC of two
# neighbouring bins is not exactly 0.5: their jet mix changes with m_jj) (`scan` stage:
# `auc_scan.json`, `sensitivity.json`).

# %%
import os
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()
# the results directory of `python run_analysis.py` (DIJETSCAN_RESULTS points elsewhere)
RESULTS = Path(os.environ.get("DIJETSCAN_RESULTS", ROOT / "results" / "default"))


import matplotlib.pyplot as plt
import numpy as np

from analysis.pfn.scan import AucScan
from analysis.pfn.scan_plots import auc_figure

scan = AucScan.read(RESULTS / "scan" / "auc_scan.json")
print("bins (GeV):", scan.bin_edges, "| seed", scan.seed, "| injection", scan.injection)

# %% [markdown]
# ## Null AUCs per bin pair

# %%
auc_figure(scan)
plt.show()
for block in scan.sizes:
    for pair in block.pairs:
        aucs = np.asarray(pair.aucs)
        stderr = aucs.std(ddof=1) / np.sqrt(len(aucs)) if len(aucs) > 1 else float("nan")
        print(f"{block.events} events, bins {pair.bins}: AUC {aucs.mean():.3f} +- {stderr:.3f} (mean +- s.e.)")

# %% [markdown]
# ## Sensitivity on the protocol's realisations: every pair, trials over pairs in the global Z

# %%
from analysis.sensitivity.model import Sensitivity
from analysis.sensitivity.plots import sensitivity_figure

for pfn in [m for m in Sensitivity.read(RESULTS / "scan" / "sensitivity.json").methods if m.method == "pfn_auc"]:
    for p in pfn.points:
        print(f"{pfn.signal}, N = {p.n_signal:>5}: median Z local {p.z_local.median:+.2f}, "
              f"global {p.z_global.median:+.2f} [{p.z_global.lo:+.2f}, {p.z_global.hi:+.2f}]")  # fmt: skip
    sensitivity_figure(pfn)
    plt.show()
