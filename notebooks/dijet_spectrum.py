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
# # The dijet mass spectrum with an injected signal
#
# The coffea processor (`process` stage) selects events with exactly two jets of
# 350 <= pT <= 450 GeV, |eta| < 1.9, and fills m_jj histograms per dataset, plus the injected
# spectra background + k signal events drawn from the xgg sample. This notebook reads them from
# `histograms.root` (`analysis.events.histograms.read_spectra`) and draws them CMS-style with mplhep.

# %%
import os
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()
# the results directory of `python run_analysis.py` (DIJETSCAN_RESULTS points elsewhere)
RESULTS = Path(os.environ.get("DIJETSCAN_RESULTS", ROOT / "results" / "default"))

import json

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from analysis.events.histograms import read_spectra

hep.style.use("CMS")
process = RESULTS / "process"
cutflow = json.loads((process / "cutflow.json").read_text())
for name, entry in cutflow["datasets"].items():
    print(name, entry["cutflow"])
print("injection:", cutflow.get("injection"))

# %% [markdown]
# ## Background, signal and injected spectra

# %%
spectra = read_spectra(process / "histograms.root")  # hist histograms with (component, size, m_jj) axes
sizes = spectra.sizes
fig, ax = plt.subplots(figsize=(10, 8))
hep.histplot(spectra.injected("background", sizes[0]), ax=ax, label="background (QCD)", color="black")
for k in sizes:
    hep.histplot(spectra.injected("injected", k), ax=ax, label=f"+ {k} injected", histtype="step")
for edge in (660, 760, 860, 960, 1060, 1160):
    ax.axvline(edge, color="grey", lw=0.5, ls=":")
ax.set_xlabel("$m_{jj}$ [GeV]")
ax.set_ylabel("events / 10 GeV")
ax.set_yscale("log")
ax.legend(fontsize=14)
hep.label.exp_text("dijetscan", "simulation, $\\sqrt{s}$ = 7 TeV", ax=ax, loc=0)
plt.show()

# %% [markdown]
# The injected signal alone: final-state radiation and out-of-cone losses put the reconstructed
# peak below the nominal mass, and the 350-450 GeV jet window shapes its low side.

# %%
signal = spectra.injected("signal", sizes[-1])
values, edges = signal.values(), signal.axes[0].edges
centres = 0.5 * (edges[1:] + edges[:-1])
mean = np.average(centres, weights=values)
print(f"signal events: {values.sum():.0f}, mean m_jj {mean:.0f} GeV, mode {centres[np.argmax(values)]:.0f} GeV")
fig, ax = plt.subplots(figsize=(10, 7))
hep.histplot(signal, ax=ax, label="injected signal", color="tab:red")
ax.set_xlabel("$m_{jj}$ [GeV]")
ax.set_ylabel("events / 10 GeV")
ax.legend()
plt.show()
