"""The histogram methods' global p-values are calibrated on background-only realisations.

Fast toys stand in for the realisations: Poisson draws of a smooth selected-dijet-like
expectation (~9000 events over 760-1480 GeV, 20 GeV bins), its background model fitted once
(as the protocol's ``real.model``), each spectrum analysed exactly as ``run_baselines`` does
(own background-only fit, BumpHunter scan, mass scan), with null distributions from separate toys.
A calibrated global p has P(p <= alpha) = alpha; the local p of BumpHunter's best window,
which ignores the look-elsewhere effect, is the check that this test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.baselines.background_fit import fit_background
from analysis.baselines.sensitivity import search_spectra
from analysis.core.config import BaselinesConfig

EDGES = np.arange(760.0, 1481.0, 20.0)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
REALIZATIONS = 200
TOYS, FIT_TOYS = 1000, 500  # every realisation is compared with the same toys: few toys correlate the fractions
SETTINGS = BaselinesConfig(n_pseudo=TOYS, fit_toys=FIT_TOYS, width_min=1, width_max=9, fit_relative_width=0.06, fit_mass_step=40.0)


def selected_shape(mass: np.ndarray) -> np.ndarray:
    x = mass / 7000
    return (1 - x) ** 8 / x ** (6 + 0.3 * np.log(x)) / (1 + np.exp(-(mass - 720) / 18))


@pytest.fixture(scope="module")
def global_p() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    shape = selected_shape(CENTRES)
    model = fit_background(rng.poisson(9000 * shape / shape.sum()), EDGES, trim=False)
    expected = model.expected(CENTRES)
    spectra = rng.poisson(expected, size=(REALIZATIONS, 1, expected.size)).astype(float)
    found = search_spectra(spectra, expected, EDGES, model, SETTINGS, seed=5)
    p_local, p_bump, _, _ = found.bump_pvalues()
    _, p_fit, _ = found.fit_pvalues()
    return {"bumphunter": p_bump[:, 0], "dijet_fit": p_fit[:, 0], "bumphunter_local": p_local[:, 0]}


@pytest.mark.parametrize("method", ["bumphunter", "dijet_fit"])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_global_p_is_calibrated(global_p: dict[str, np.ndarray], method: str, alpha: float) -> None:
    p = global_p[method]
    assert p.shape == (REALIZATIONS,) and np.all((p > 0) & (p <= 1))
    fraction = np.mean(p <= alpha)
    error = np.sqrt(alpha * (1 - alpha) / REALIZATIONS)
    assert abs(fraction - alpha) <= 3 * error, f"{method}: P(p <= {alpha}) = {fraction:.3f}"


def test_local_p_is_not_a_global_p(global_p: dict[str, np.ndarray]) -> None:
    """The best window's own p ignores the trials over windows: far below uniform (the test has teeth)."""
    assert np.mean(global_p["bumphunter_local"] <= 0.05) > 0.05 + 3 * np.sqrt(0.05 * 0.95 / REALIZATIONS)
