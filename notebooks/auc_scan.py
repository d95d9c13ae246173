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
# # The adjacent-bin PFN scan
#
# For every random sample of the selected events, a Particle Flow Network learns to tell the
# jets of one m_jj bin from the jets of the next; without new physics its AUC averages 0.5 and
# its spread over samples is the null uncertainty. Injected signal events change one bin's jet
# composition and move that pair's AUC (`scan` stage: `auc_scan.json`, `sensitivity.json`).

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
import numpy as np

from analysis.scan_plots import auc_figure, z_figure

scan = json.loads((RESULTS / "scan" / "auc_scan.json").read_text())
print("bins (GeV):", scan["bin_edges"], "| seed", scan["seed"], "| injection", scan["injection"])

# %% [markdown]
# ## Null AUCs per bin pair

# %%
auc_figure(scan)
plt.show()
for block in scan["sizes"]:
    for pair in block["pairs"]:
        aucs = np.asarray(pair["aucs"])
        stderr = aucs.std(ddof=1) / np.sqrt(len(aucs)) if len(aucs) > 1 else float("nan")
        print(f"{block['events']} events, bins {pair['bins']}: AUC {aucs.mean():.3f} +- {stderr:.3f} (mean +- s.e.)")

# %% [markdown]
# ## Sensitivity: Z versus injected events for the affected pair

# %%
sens = json.loads((RESULTS / "scan" / "sensitivity.json").read_text())
(pfn,) = [m for m in sens["methods"] if m["method"] == "pfn_auc"]
print(f"pair {pfn['bins']}, {pfn['sample_events']} events x {pfn['n_samples']} samples")
z_figure(pfn["points"], pfn["n_signal_3sigma"], pfn["n_signal_5sigma"], f"{pfn['kind']}, bins {pfn['bins']}")
plt.show()
