"""Toy spectra against independent formulas, and the Poisson statistics of fluctuations."""

from __future__ import annotations

import numpy as np

from analysis.toys.definitions import parse_entries
from analysis.toys.spectra import background_counts, clean_spectrum, fluctuate, signal_counts


def one(kind: str, entry: dict):
    return parse_entries(kind, [entry], f"{kind}.yaml")[0]


def test_exponential_background_formula() -> None:
    bg = one("backgrounds", {"id": 0, "kind": "exponential", "amplitude": 300, "rate": 0.02,
                             "binning": {"low": 10, "high": 30, "bins": 4}})  # fmt: skip
    centres = np.array([12.5, 17.5, 22.5, 27.5])
    np.testing.assert_allclose(background_counts(bg), 300 * np.exp(-0.02 * centres))


def test_dijet_background_formula() -> None:
    bg = one("backgrounds", {"id": 0, "kind": "dijet", "p0": 3.0, "p1": 8.0, "p2": 4.5, "p3": 0.3,
                             "sqrt_s": 7000, "binning": {"low": 700, "high": 1100, "bins": 2}})  # fmt: skip
    x = np.array([800.0, 1000.0]) / 7000
    np.testing.assert_allclose(background_counts(bg), 3.0 * (1 - x) ** 8.0 / x ** (4.5 + 0.3 * np.log(x)))


def test_signal_train_sums_decaying_gaussians() -> None:
    sig = one("signals", {"id": 1, "periods": 3, "center": "40*n + 20", "height": "10 + n",
                          "width": "2 + n", "decay_rate": 0.5})  # fmt: skip
    m = np.linspace(0, 120, 61)
    expected = sum(
        (10 + k) * np.exp(-0.5 * k) * np.exp(-0.5 * ((m - (40 * k + 20)) / (2 + k)) ** 2) for k in range(3)
    )
    np.testing.assert_allclose(signal_counts(sig, m), expected, rtol=1e-12)


def test_clean_is_background_plus_signal() -> None:
    bg = one("backgrounds", {"id": 0, "kind": "exponential", "amplitude": 100, "rate": 0.01})
    sig = one("signals", {"id": 0, "center": 200, "height": 50, "width": 5})
    np.testing.assert_allclose(
        clean_spectrum(bg, sig), background_counts(bg) + signal_counts(sig, bg.binning.centers)
    )
    np.testing.assert_allclose(clean_spectrum(bg, None), background_counts(bg))


def test_fluctuations_have_poisson_mean_and_variance() -> None:
    expected = np.array([0.5, 3.0, 20.0, 150.0, 1000.0])
    toys = fluctuate(expected, np.random.default_rng(7), size=40_000)
    assert toys.shape == (40_000, 5)
    assert np.all(toys == np.round(toys)) and np.all(toys >= 0)
    n = toys.shape[0]
    # mean: standard error sqrt(lambda/n); variance: standard error ~ lambda*sqrt(2/n) (+ 1/n term)
    np.testing.assert_array_less(np.abs(toys.mean(axis=0) - expected), 5 * np.sqrt(expected / n))
    var_err = np.sqrt((expected + 2 * expected**2) / n)
    np.testing.assert_array_less(np.abs(toys.var(axis=0, ddof=1) - expected), 5 * var_err)
    # bins are independent: correlation between neighbouring bins is compatible with zero
    corr = np.corrcoef(toys[:, 2], toys[:, 3])[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)


def test_fluctuations_are_seeded() -> None:
    expected = np.full(50, 10.0)
    a = fluctuate(expected, np.random.default_rng(3), size=4)
    b = fluctuate(expected, np.random.default_rng(3), size=4)
    c = fluctuate(expected, np.random.default_rng(4), size=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
