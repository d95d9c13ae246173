"""Continuous wavelet transforms of mass spectra (PyWavelets).

Scales are in units of bins. Many spectra are transformed in one vectorised call (``axis=-1``).
"""

from __future__ import annotations

import numpy as np
import pywt

from analysis.definitions import WaveletDef


def cwt_modulus(spectra: np.ndarray, wavelet: WaveletDef) -> np.ndarray:
    """|CWT| of one spectrum (scales x bins) or a stack of spectra (n x scales x bins)."""
    spectra = np.asarray(spectra, dtype=float)
    coef, _ = pywt.cwt(spectra, wavelet.scales, wavelet.pywt_name, method="fft", axis=-1)
    modulus = np.abs(coef)
    # pywt puts the scale axis first; move it next to the bin axis for stacks
    return modulus if spectra.ndim == 1 else np.moveaxis(modulus, 0, -2)
