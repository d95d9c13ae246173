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
# # Wavelet p-value maps and autoencoders on the processed spectra
#
# Each m_jj spectrum becomes the modulus of its continuous wavelet transform (complex Morlet),
# rebinned, and every cell a local p-value against background-only toys drawn from a smooth fit
# of the background histogram. Autoencoders trained on background maps reconstruct signal maps
# poorly; the efficiency p-value of the reconstruction error measures that
# (`autoencoders` stage: `dataset/`, `models/`, `pvalue_vs_signal.json`).

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

from analysis.dataset import load_dataset
from analysis.pvalue_plots import pvalue_vs_signal_figure

ae_dir = RESULTS / "autoencoders"
data = load_dataset(ae_dir / "dataset")
fit = data.config["source"]["background_fit"]
print(f"background model: {fit['model']}, chi2/ndf = {fit['chi2_ndf']:.2f}")
print("map shape", data.train.shape[1:], "| signal sizes", sorted(data.signals))

# %% [markdown]
# ## -ln p maps: background only and the largest signal
# The signal's smallest p-values sit at its mass and at the scales that match its width.

# %%
largest = max(data.signals)
fig, axes = plt.subplots(1, 2, figsize=(16, 6), sharey=True)
panels = [("background only", data.test_backgrounds), (f"{largest:g} signal events", data.signals[largest])]
for ax, (title, maps) in zip(axes, panels, strict=True):
    image = ax.imshow(maps.mean(axis=0), origin="lower", aspect="auto", cmap="viridis")
    ax.set_title(f"mean -ln p, {title}")
    ax.set_xlabel("m_jj block")
fig.colorbar(image, ax=axes, label="-ln p")
axes[0].set_ylabel("wavelet scale index")
plt.show()

# %% [markdown]
# ## A trained autoencoder, loaded in safe mode

# %%
from analysis.ae_scan import find_models
from models.ae_training import load_model, reconstruction_mse

models = find_models(ae_dir / "models")
name, path = next(iter(models.items()))
model = load_model(path)
bg_loss = reconstruction_mse(model, data.test_backgrounds / data.scale)
sig_loss = reconstruction_mse(model, data.signals[largest] / data.scale)
print(f"{name}: median loss background {np.median(bg_loss):.4g}, signal ({largest:g}) {np.median(sig_loss):.4g}")
fig, ax = plt.subplots(figsize=(10, 7))
bins = np.histogram_bin_edges(np.concatenate([bg_loss, sig_loss]), 40)
ax.hist(bg_loss, bins, histtype="step", label="background", density=True)
ax.hist(sig_loss, bins, histtype="step", label=f"{largest:g} signal events", density=True)
ax.set_xlabel("reconstruction MSE")
ax.legend()
plt.show()

# %% [markdown]
# ## p-value versus signal size, every model

# %%
summary = json.loads((ae_dir / "pvalue_vs_signal.json").read_text())
pvalue_vs_signal_figure(summary["signal_sizes"], summary["models"], len(data.test_backgrounds))
plt.show()
