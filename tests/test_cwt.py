"""The CWT modulus of a single Gaussian peaks at its mass and at the scale matching its width."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.toys.definitions import parse_entries
from analysis.toys.spectra import signal_counts
from analysis.wavelets.cwt import cwt_modulus


def analytic_peak_scale(sigma: float, bandwidth: float, centre_frequency: float, scales: np.ndarray) -> float:
    """Scale maximising |W(s)| at the Gaussian's centre, from the closed-form integral.

    For g(t) = exp(-t^2 / 2 sigma^2) and pywt's cmorB-C, psi(t) = exp(-t^2/B) exp(2 pi i C t) / sqrt(pi B),
    W(s) = s^-1/2 int g(t) psi*(t/s) dt = s^-1/2 (pi B)^-1/2 sqrt(pi/a) exp(-(pi C / s)^2 / a),
    with a = 1/(2 sigma^2) + 1/(B s^2).
    """
    fine = np.linspace(scales[0], scales[-1], 20_000)
    a = 1 / (2 * sigma**2) + 1 / (bandwidth * fine**2)
    w = fine**-0.5 * np.sqrt(np.pi / a) * np.exp(-((np.pi * centre_frequency / fine) ** 2) / a)
    return float(fine[np.argmax(w)])


@pytest.mark.parametrize(("bandwidth", "centre_frequency", "width"), [(1.5, 1.0, 4.0), (1.0, 0.5, 3.0), (2.0, 1.0, 6.0)])
def test_single_gaussian_peaks_at_mass_and_matching_scale(bandwidth: float, centre_frequency: float, width: float) -> None:
    wavelet = parse_entries("wavelets", [{"id": 0, "bandwidth": bandwidth, "center_frequency": centre_frequency,
                                          "scale_min": 1, "scale_max": 48, "n_scales": 48}], "w")[0]  # fmt: skip
    signal = parse_entries("signals", [{"id": 0, "center": 250.5, "height": 100, "width": width}], "s")[0]
    mass = np.arange(512) + 0.5  # 1 GeV bins: scales in bins equal scales in GeV
    modulus = cwt_modulus(signal_counts(signal, mass), wavelet)
    assert modulus.shape == (48, 512)
    scale_index, mass_index = np.unravel_index(np.argmax(modulus), modulus.shape)
    assert abs(mass[mass_index] - 250.5) <= 1.0
    expected = analytic_peak_scale(width, bandwidth, centre_frequency, wavelet.scales)
    assert abs(wavelet.scales[scale_index] - expected) <= max(1.0, 0.1 * expected)


def test_stack_matches_single_transforms() -> None:
    wavelet = parse_entries("wavelets", [{"id": 0, "n_scales": 8, "scale_max": 16}], "w")[0]
    spectra = np.random.default_rng(1).poisson(50, size=(3, 128)).astype(float)
    stacked = cwt_modulus(spectra, wavelet)
    assert stacked.shape == (3, 8, 128)
    for k in range(3):
        np.testing.assert_allclose(stacked[k], cwt_modulus(spectra[k], wavelet), rtol=1e-10)
