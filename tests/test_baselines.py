"""The classical baselines: iminuit background fit, BumpHunter scan, background + Gaussian mass scan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.baselines.background_fit import (
    BackgroundFit,
    SpectrumModel,
    dijet_turnon,
    fit_background,
    minimise,
    turn_on_limits,
)
from analysis.baselines.searches import BumpScanner, gaussian_bins, local_p, mass_hypotheses, mass_scan
from analysis.baselines.sensitivity import SpectrumSearch
from analysis.core.config import BaselinesConfig

EDGES = np.arange(760.0, 1481.0, 10.0)  # the protocol's default search range
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
SETTINGS = BaselinesConfig(n_pseudo=100, fit_mass_step=20.0, fit_relative_width=0.08)


def selected_shape(mass: np.ndarray) -> np.ndarray:
    """A selected-dijet-like falling spectrum with the end of the turn-on at the low edge
    (dijet function with p3 != 0 times a logistic: not the fit model's own form)."""
    x = mass / 7000
    return (1 - x) ** 8 / x ** (6 + 0.3 * np.log(x)) / (1 + np.exp(-(mass - 720) / 18))


@pytest.fixture(scope="module")
def model() -> BackgroundFit:
    """The background model of a ~9000-event sample (cold multi-start fit)."""
    mu = selected_shape(CENTRES)
    return fit_background(np.random.default_rng(0).poisson(9000 * mu / mu.sum()), EDGES)


def test_gaussian_bins_integrate_to_one() -> None:
    assert gaussian_bins(np.linspace(0, 512, 1000), 256, 8).sum() == pytest.approx(1.0, abs=1e-12)


def test_model_gradient_matches_finite_differences(model: BackgroundFit) -> None:
    template = gaussian_bins(EDGES, 1000.0, 80.0)
    spectrum = SpectrumModel(CENTRES, 7000.0, model.turn_on, model.expected(CENTRES), template=template)
    par = np.append(spectrum.to_fit(model.theta), 50.0)
    assert spectrum.to_theta(par) == pytest.approx(np.asarray(model.theta))
    grad = spectrum.grad(EDGES, *par)
    for i in range(par.size):
        step = 1e-6 * max(1.0, abs(par[i]))
        up, down = par.copy(), par.copy()
        up[i] += step
        down[i] -= step
        numeric = (spectrum(EDGES, *up) - spectrum(EDGES, *down)) / (2 * step)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-6 * np.abs(numeric).max()), spectrum.names[i]


def test_background_fit_describes_the_sample_and_has_hesse_errors(model: BackgroundFit) -> None:
    assert model.valid
    assert abs(model.chi2_ndf - 1) < 4 * np.sqrt(2 / model.ndf)
    assert len(model.errors) == 6 and all(np.isfinite(e) and e > 0 for e in model.errors)
    assert model.to_dict()["errors"] == model.errors
    # warm start (a realisation near the model): the same minimum as the cold multi-start
    counts = np.random.default_rng(1).poisson(model.expected(CENTRES))
    cold = fit_background(counts, EDGES, turn_on=model.turn_on, trim=False)
    warm = fit_background(counts, EDGES, start=model, trim=False, hesse=False)
    assert warm.turn_on == model.turn_on and np.isnan(warm.errors).all()
    assert warm.chi2 == pytest.approx(cold.chi2, abs=0.05)


def test_iminuit_fit_agrees_with_scipy_on_the_same_likelihood(model: BackgroundFit) -> None:
    counts = np.random.default_rng(2).poisson(model.expected(CENTRES)).astype(float)
    fit = fit_background(counts, EDGES, start=model, trim=False)

    def nll(theta: np.ndarray) -> float:  # independent: theta coordinates, scipy's Poisson log-pmf
        mu = dijet_turnon(np.concatenate([theta[:4], fit.theta[4:]]) if theta.size == 4 else theta, CENTRES,
                          7000.0, fit.turn_on)  # fmt: skip
        return float(-stats.poisson.logpmf(counts, np.clip(mu, 1e-300, None)).sum())

    # the four dijet coefficients with the turn-on fixed: a convex problem, scipy from its own start
    start = np.linalg.lstsq(np.column_stack([np.ones_like(CENTRES), np.log1p(-CENTRES / 7000), -np.log(CENTRES / 7000),
                            -np.log(CENTRES / 7000) ** 2]), np.log(counts + 0.5), rcond=None)[0]  # fmt: skip
    best = optimize.minimize(nll, start, method="BFGS", options={"gtol": 1e-6, "maxiter": 10_000})
    best = optimize.minimize(nll, best.x, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 50_000, "maxfev": 50_000})  # fmt: skip
    assert best.fun == pytest.approx(nll(np.asarray(fit.theta)), abs=2e-3)
    mu_scipy = dijet_turnon(np.concatenate([best.x, fit.theta[4:]]), CENTRES, 7000.0, fit.turn_on)
    assert mu_scipy == pytest.approx(fit.expected(CENTRES), rel=2e-3)
    # all six parameters (turn-on within the fit's limits): from a displaced point scipy finds nothing
    # better than MIGRAD
    limits = turn_on_limits(CENTRES)
    bounds = [(None, None)] * 4 + [limits["m0"], limits["ln_w"]]
    displaced = np.clip(np.asarray(fit.theta) + np.array([0.0, 0.0, 0.0, 0.0, 5.0, 0.1]), *np.transpose(
        [(-np.inf if lo is None else lo, np.inf if hi is None else hi) for lo, hi in bounds]))  # fmt: skip
    six = optimize.minimize(nll, displaced, method="Nelder-Mead", bounds=bounds,
                            options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 50_000, "maxfev": 50_000})  # fmt: skip
    assert six.fun >= nll(np.asarray(fit.theta)) - 2e-3
    # ExtendedBinnedNLL's value at the minimum is the Poisson deviance of the same likelihood
    saturated = float(-stats.poisson.logpmf(counts, np.clip(counts, 1e-300, None)).sum())
    assert fit.chi2 == pytest.approx(2 * (nll(np.asarray(fit.theta)) - saturated), rel=1e-6)


def test_mass_scan_q0_is_the_likelihood_ratio_of_its_fits(model: BackgroundFit) -> None:
    counts = np.random.default_rng(3).poisson(model.expected(CENTRES) + 400 * gaussian_bins(EDGES, 1100, 88)).astype(float)
    background = fit_background(counts, EDGES, start=model, trim=False, hesse=False)
    scan = mass_scan(counts, EDGES, background, [1100.0], 0.08)
    # refit s+b at the scan's signal yield with scipy and recompute 2 (NLL_b - NLL_s+b) from log-pmfs
    template = gaussian_bins(EDGES, 1100.0, 88.0)
    turn_on = np.asarray(background.theta[4:])

    def nll(theta: np.ndarray, signal: float) -> float:
        mu = dijet_turnon(np.concatenate([theta, turn_on]), CENTRES, 7000.0, background.turn_on) + signal * template
        return float(-stats.poisson.logpmf(counts, mu).sum())

    b_only = optimize.minimize(nll, background.theta[:4], args=(0.0,), method="BFGS", options={"gtol": 1e-7})
    s_b = optimize.minimize(nll, background.theta[:4], args=(scan.signal[0],), method="BFGS", options={"gtol": 1e-7})
    assert scan.q0[0] == pytest.approx(2 * (b_only.fun - s_b.fun), abs=5e-3)


@pytest.mark.parametrize("seed", [4, 5])
def test_strong_injection_is_found_at_its_mass(model: BackgroundFit, seed: int) -> None:
    mass, width, injected = 1100.0, 0.05, 800
    settings = SETTINGS.model_copy(update={"fit_relative_width": width})
    rng = np.random.default_rng(seed)
    signal = np.histogram(rng.normal(mass, width * mass, injected), EDGES)[0]
    counts = rng.poisson(model.expected(CENTRES)) + signal
    result = SpectrumSearch(EDGES, model, settings).analyse(counts.astype(float))
    bump, scan = result["bump"], result["scan"]
    assert bump.low <= mass <= bump.high and bump.local_p < 1e-8
    assert abs(scan.masses[scan.best] - mass) <= 2 * settings.fit_mass_step
    assert scan.q_max > 50 and scan.local_p == pytest.approx(stats.norm.sf(np.sqrt(scan.q_max)))
    # the fitted yield is the injected one within its statistical error (~sqrt of the events under the
    # Gaussian) and what the four free dijet coefficients absorb of a bump this broad
    under = float(np.sum(model.expected(CENTRES) * gaussian_bins(EDGES, mass, width * mass)))
    assert scan.signal[scan.best] == pytest.approx(signal.sum(), abs=3 * np.sqrt(under + injected) + 0.1 * injected)


def test_background_only_scans_are_quiet_and_deficits_are_not_excesses(model: BackgroundFit) -> None:
    rng = np.random.default_rng(6)
    search = SpectrumSearch(EDGES, model, SETTINGS)
    expected = model.expected(CENTRES)
    q_max = [search.analyse(rng.poisson(expected).astype(float))["scan"].q_max for _ in range(6)]
    assert np.median(q_max) < 4  # null: ~0.5 chi2_1 per mass, a handful of effective trials
    # a deficit at the hypothesis: negative yield, signed statistic below 0, q0 = 0, local p = 1/2
    deficit = np.round(expected - 300 * gaussian_bins(EDGES, 1100, 55))
    background = fit_background(deficit, EDGES, start=model, trim=False, hesse=False)
    scan = mass_scan(deficit, EDGES, background, [1100.0], 0.05)
    assert scan.signal[0] < 0 and scan.statistic < -1 and scan.q_max == 0 and scan.q0[0] == 0
    assert scan.local_p == 0.5 and local_p(0.0) == 0.5


def test_bump_scanner_is_pybumphunters_scan_and_leaves_numpys_generator_alone(model: BackgroundFit) -> None:
    from pyBumpHunter import BumpHunter1D

    rng = np.random.default_rng(7)
    reference = model.expected(CENTRES)
    data = rng.poisson(reference + 300 * gaussian_bins(EDGES, 1000, 30)).astype(float)
    np.random.seed(11)
    before = np.random.get_state()[1].copy()
    scan = BumpScanner(EDGES, 2, 18).scan(data, reference)
    assert np.array_equal(np.random.get_state()[1], before)
    full = BumpHunter1D(rang=(EDGES[0], EDGES[-1]), bins=EDGES, width_min=2, width_max=18, width_step=1, scan_step=1,
                        npe=20, nworker=1, seed=0, mode="excess")  # fmt: skip
    full.bump_scan(data, reference, is_hist=True)
    assert scan.local_p == pytest.approx(full.min_Pval_ar[0], rel=1e-12)
    assert (scan.first_bin, scan.width) == (full.min_loc_ar[0], full.min_width_ar[0])
    assert scan.t == pytest.approx(-np.log(scan.local_p)) and scan.low <= 1000 <= scan.high


def test_mass_hypotheses_keep_the_gaussian_inside_the_range() -> None:
    masses = mass_hypotheses(760, 1480, 0.08, 20)
    assert np.all(masses * (1 - 1.5 * 0.08) >= 760 - 1e-9) and np.all(masses * (1 + 1.5 * 0.08) <= 1480 + 1e-9)
    assert np.allclose(np.diff(masses), 20) and len(masses) == 23
    with pytest.raises(ValueError, match="no mass hypothesis"):
        mass_hypotheses(760, 800, 0.08, 20)


def test_fit_background_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="turn_on"):
        fit_background(np.ones(20), np.arange(21.0) * 10 + 800, turn_on="step")
    with pytest.raises(ValueError, match="non-empty bins"):
        fit_background(np.r_[np.zeros(15), np.ones(5)], np.arange(21.0) * 10 + 800)


def test_minimise_respects_fixed_turn_on(model: BackgroundFit) -> None:
    counts = np.random.default_rng(8).poisson(model.expected(CENTRES)).astype(float)
    spectrum = SpectrumModel(CENTRES, 7000.0, model.turn_on, model.expected(CENTRES))
    start = spectrum.to_fit(model.theta)
    m = minimise(spectrum, counts, EDGES, start, fixed=("m0", "ln_w"))
    assert m.valid and m.values["m0"] == start[4] and m.values["ln_w"] == start[5]


def test_turn_on_modes_for_a_bump_near_the_low_edge(model: BackgroundFit) -> None:
    """A fitted turn-on takes up a bump near the low edge (m0 moves into the range); kept at the
    sample's fit (turn_on="sample": a known selection property), the mass scan finds the bump."""
    mass, width = 844.0, 0.054
    rng = np.random.default_rng(0)
    counts = (rng.poisson(model.expected(CENTRES)) + np.histogram(rng.normal(mass, width * mass, 1000), EDGES)[0])
    settings = SETTINGS.model_copy(update={"fit_relative_width": width})
    own = SpectrumSearch(EDGES, model, settings.model_copy(update={"turn_on": "spectrum"})).analyse(counts.astype(float))
    sample = SpectrumSearch(EDGES, model, settings.model_copy(update={"turn_on": "sample"})).analyse(counts.astype(float))
    assert sample["background"].theta[4:] == model.theta[4:] and sample["background"].ndf == EDGES.size - 1 - 4
    assert own["background"].theta[4] > model.theta[4] + 40
    scan = sample["scan"]
    assert scan.q_max > 15 and abs(scan.masses[scan.best] - mass) <= 2 * settings.fit_mass_step
    assert own["scan"].q_max < scan.q_max
    with pytest.raises(ValueError, match="turn_on"):
        SpectrumSearch(EDGES, model, settings.model_copy(update={"turn_on": "truth"}))


def test_run_baselines_writes_entries_summary_and_plots(tmp_path) -> None:
    import json

    from analysis.baselines.sensitivity import run_baselines
    from analysis.core.config import load_config
    from analysis.sensitivity.model import Sensitivity
    from analysis.sensitivity.realizations import build_realizations

    rng = np.random.default_rng(9)
    grid = np.linspace(700, 2000, 20001)
    cdf = np.cumsum(selected_shape(grid))
    background = np.interp(rng.random(12000), cdf / cdf[-1], grid)
    pool = rng.normal(1100, 60, 500)
    real = build_realizations(background, pool, seed=3, n_realizations=3, n_signal=[0, 400], resampling="model_poisson",
                              edges=EDGES, sqrt_s=7000.0, signal="xgg_m1100")  # fmt: skip
    cfg = load_config(None, {"baselines": {"n_pseudo": 30}})  # the realisations come from `real`
    entries = run_baselines(real, cfg, tmp_path, quiet=True)
    data = Sensitivity.read(tmp_path / "sensitivity.json")
    assert [e.method for e in data.methods] == ["bumphunter", "dijet_fit"] == [e.method for e in entries]
    for entry in data.methods:
        assert entry.realizations == 3 and entry.fingerprint == real.fingerprint and len(entry.null_p_global) == 3
        assert entry.details["null"]["toys"] == 30 and "look-elsewhere" in entry.z_global_meaning
        assert entry.point(400).z_local.median > entry.point(0).z_local.median
    assert data.protocol.n_signal == [0, 400]
    summary = json.loads((tmp_path / "baselines.json").read_text())
    assert summary["background_model"]["chi2_ndf"] == pytest.approx(real.model.chi2_ndf)
    assert set(summary["methods"]) == {"bumphunter", "dijet_fit"} and summary["turn_on"] == "sample"
    for name in ("spectrum_fit", "sensitivity_bumphunter", "sensitivity_dijet_fit"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_bumphunt_command_names_a_missing_histograms_file(tmp_path) -> None:
    import argparse

    from analysis.commands import bumphunt
    from analysis.core.errors import InputError

    args = argparse.Namespace(histograms=tmp_path / "nowhere" / "histograms.root", out=tmp_path / "out", config=None,
                              seed=None, quiet=True)  # fmt: skip
    with pytest.raises(InputError, match="nowhere"):
        bumphunt.main(args)
