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
# # Wavelet p-value maps and autoencoders on the processed spectra
#
# Each m_jj spectrum becomes the modulus of its continuous wavelet transform (complex Morlet),
# rebinned, and every cell a local p-value against background-only toys of the smooth
# background model (fitted over the searched range, where it describes the sample).
# Autoencoders trained on background maps reconstruct signal maps poorly. Every autoencoder is
# scored on the sensitivity protocol's realisations: the same background events and nested signal
# draws as every other method (`autoencoders` stage: `dataset/`, `models/`, `pvalue_vs_signal.json`).

# %%
import os
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()
# the results directory of `python run_analysis.py` (DIJETSCAN_RESULTS points elsewhere)
RESULTS = Path(os.environ.get("DIJETSCAN_RESULTS", ROOT / "results" / "default"))

import json

import matplotlib.pyplot as plt
import numpy as np

from analysis.core.config import AnalysisConfig
from analysis.sensitivity.realizations import load_realizations
from analysis.wavelets.dataset import load_dataset
from analysis.wavelets.plots import pvalue_vs_signal_figure

ae_dir = RESULTS / "autoencoders"
data = load_dataset(ae_dir / "dataset")
fit = data.config["source"]["background_fit"]
print(f"background model: {fit['model']}, chi2/ndf = {fit['chi2_ndf']:.2f}")
config = AnalysisConfig.model_validate(json.loads((RESULTS / "run.json").read_text())["config"])
real = load_realizations(config, RESULTS / "process")
largest = real.n_signal[-1]
spectra = real.spectra(1)[0]  # realisation 0 at every injected N
maps = data.neg_log_p_maps(spectra)
print("map shape", data.train.shape[1:], "| injected N", real.n_signal)

# %% [markdown]
# ## -ln p maps: background-only toys and realisation 0 with the largest injection
# The signal's smallest p-values sit at its mass and at the scales that match its width.

# %%
fig, axes = plt.subplots(1, 2, figsize=(16, 6), sharey=True)
panels = [("mean of background-only toys", data.test_backgrounds.mean(axis=0)),
          (f"realisation 0, {largest} signal events", maps[-1])]  # fmt: skip
for ax, (title, image_data) in zip(axes, panels, strict=True):
    image = ax.imshow(image_data, origin="lower", aspect="auto", cmap="viridis")
    ax.set_title(f"-ln p, {title}")
    ax.set_xlabel("m_jj block")
fig.colorbar(image, ax=axes, label="-ln p")
axes[0].set_ylabel("wavelet scale index")
plt.show()

# %% [markdown]
# ## A trained autoencoder, loaded in safe mode

# %%
from analysis.wavelets.autoencoders import find_models
from models.ae_training import load_model, reconstruction_mse

models = find_models(ae_dir / "models")
name, path = next(iter(models.items()))
model = load_model(path)
bg_loss = reconstruction_mse(model, data.test_backgrounds / data.scale)
real_loss = reconstruction_mse(model, maps / data.scale)
print(f"{name}: median null loss {np.median(bg_loss):.4g}; realisation 0: "
      + ", ".join(f"N = {n}: {loss:.4g}" for n, loss in zip(real.n_signal, real_loss, strict=True)))  # fmt: skip
fig, ax = plt.subplots(figsize=(12, 7))
ax.hist(bg_loss, 40, histtype="step", color="black", label="background-only test maps")
for n, loss in zip(real.n_signal, real_loss, strict=True):
    ax.axvline(loss, linestyle="--", color=plt.get_cmap("viridis")(n / largest), label=f"realisation 0, N = {n}")
ax.set_xlabel("reconstruction MSE")
ax.set_ylabel("maps")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## p-value versus injected events, every model (median over realisations, 16-84 % band)

# %%
summary = json.loads((ae_dir / config.injection.label / "pvalue_vs_signal.json").read_text())  # the first signal's
pvalue_vs_signal_figure(summary["signal_sizes"], summary["models"], len(data.test_backgrounds))
plt.show()
