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
# # Toy mass spectra and their wavelet transforms
#
# A smooth background, a Gaussian signal and Poisson fluctuations, as defined in
# `configs/backgrounds.yaml`, `configs/signals.yaml` and `configs/wavelets.yaml`; then the
# modulus of their continuous wavelet transform (complex Morlet), where a bump shows up at its
# mass and at the scale that matches its width.

# %%
from pathlib import Path

ROOT = Path.cwd().resolve().parent if Path.cwd().name == "notebooks" else Path.cwd().resolve()

import matplotlib.pyplot as plt
import numpy as np

from analysis.core.config import load_config
from analysis.core.plots import cwt_figure, spectrum_figure
from analysis.toys.selection import toy_setup
from analysis.toys.spectra import background_counts, clean_spectrum, fluctuate, signal_counts
from analysis.wavelets.cwt import cwt_modulus

config = load_config(ROOT / "configs" / "default.yaml")
setup = toy_setup(config)
print(setup.signal.name, "|", setup.background.name, "|", setup.wavelet.pywt_name)

# %% [markdown]
# ## Clean and fluctuated spectra

# %%
binning = setup.background.binning
background = background_counts(setup.background)
signal = signal_counts(setup.signal, binning.centers)
clean = clean_spectrum(setup.background, setup.signal)
toys = fluctuate(clean, np.random.default_rng(config.seed), size=2)
fig = spectrum_figure(binning, {"toy 0": toys[0], "toy 1": toys[1], "expected": clean}, "Background + signal")
plt.show()
print(f"signal events: {signal.sum():.0f}, background events: {background.sum():.0f}")

# %% [markdown]
# ## Wavelet maps
# The clean spectrum's map shows the bump; a fluctuated one adds noise at small scales.

# %%
for title, spectrum in [("clean", clean), ("fluctuated", toys[0])]:
    cwt_figure(binning, setup.wavelet, cwt_modulus(spectrum, setup.wavelet), f"CWT, {title}")
    plt.show()

# %% [markdown]
# The signal alone: the largest coefficient sits at the signal's mass.

# %%
modulus = cwt_modulus(signal, setup.wavelet)
scale_index, mass_index = np.unravel_index(np.argmax(modulus), modulus.shape)
print(f"peak at m = {binning.centers[mass_index]:.1f} GeV, scale = {setup.wavelet.scales[scale_index]:.1f} bins")
