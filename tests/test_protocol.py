"""The sensitivity protocol: shared realisations, crossings, bands and sensitivity.json format 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis.baselines.background_fit import dijet_turnon
from analysis.core.errors import ConfigError, InputError
from analysis.sensitivity.model import Sensitivity, merge_entries
from analysis.sensitivity.realizations import build_realizations, range_edges
from analysis.sensitivity.summary import MethodResult, crossing, quantile_bound, summarise

EDGES = np.arange(760.0, 1481.0, 10.0)
THETA = np.array([0.0, 10.0, 5.0, 0.0, 780.0, np.log(60.0)])


def falling_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """m_jj drawn from a dijet x turn-on density (inverse CDF on a 1 GeV grid)."""
    grid = np.arange(700.0, 1600.0, 1.0)
    density = dijet_turnon(THETA, grid)
    cdf = np.cumsum(density) / density.sum()
    return np.interp(rng.random(n), cdf, grid)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return falling_sample(9000, rng), rng.normal(900.0, 50.0, 1200)


def realizations(synthetic, resampling: str = "model_poisson", n: int = 300, seed: int = 5):
    background, pool = synthetic
    return build_realizations(background, pool, seed=seed, n_realizations=n, n_signal=[0, 100, 300], resampling=resampling,
                              edges=EDGES, sqrt_s=7000.0, signal="xgg_m900")  # fmt: skip


def test_model_poisson_realisations_scatter_about_the_model_with_poisson_spread(synthetic) -> None:
    real = realizations(synthetic)
    spectra = np.stack([real.background_spectrum(r) for r in range(real.n_realizations)])
    mu = real.model.expected(real.centres)
    used = mu > 20  # bins where the sample has events (a bin the sample left empty cannot be filled)
    # the realisations' mean is the model, their variance Poisson's (both within a few per cent)
    mean, var = spectra.mean(axis=0), spectra.var(axis=0, ddof=1)
    pulls = (mean[used] - mu[used]) / np.sqrt(mu[used] / real.n_realizations)
    assert abs(pulls.mean()) < 0.5 and np.std(pulls) < 1.4
    assert 0.9 < np.mean(var[used] / mu[used]) < 1.1
    # each realisation's chi2 about the model has the Poisson expectation: ndf
    chi2 = (((spectra - mu) ** 2)[:, used] / mu[used]).sum(axis=1) / used.sum()
    assert 0.9 < chi2.mean() < 1.1


def test_plain_bootstrap_doubles_the_variance_about_the_model(synthetic) -> None:
    """Why model_poisson is the default: plain bootstrap realisations carry the sample's own
    fluctuation in every realisation on top of a fresh one."""
    real = realizations(synthetic, "poisson")
    spectra = np.stack([real.background_spectrum(r) for r in range(real.n_realizations)])
    truth = 9000 * np.diff(np.interp(EDGES, *_cdf()))
    used = truth > 20
    chi2 = (((spectra - truth) ** 2)[:, used] / truth[used]).sum(axis=1) / used.sum()
    assert 1.6 < chi2.mean() < 2.4


def _cdf() -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(700.0, 1600.0, 1.0)
    density = dijet_turnon(THETA, grid)
    return grid, np.cumsum(density) / density.sum()


def test_signal_draws_are_nested_seeded_and_differ_between_realisations(synthetic) -> None:
    real = realizations(synthetic, n=4)
    big, small = real.signal_events(2, 300), real.signal_events(2, 100)
    np.testing.assert_array_equal(big[:100], small)
    assert len(set(big)) == 300
    assert not np.array_equal(real.signal_events(1, 100), small)
    np.testing.assert_array_equal(realizations(synthetic, n=4).signal_events(2, 300), big)
    np.testing.assert_array_equal(realizations(synthetic, n=4).weights(3), real.weights(3))
    spectra = real.spectra()
    np.testing.assert_array_equal(spectra[2, 2] - spectra[2, 0], real.signal_spectrum(2, 300))
    assert real.fingerprint == realizations(synthetic, n=4).fingerprint != realizations(synthetic, n=4, seed=6).fingerprint
    with pytest.raises(ConfigError, match="pool holds 1200"):
        real.signal_events(0, 5000)


def test_signal_region_and_s_over_b(synthetic) -> None:
    real = realizations(synthetic, n=2)
    lo, hi = real.signal_region()
    assert 830 < lo < 870 and 930 < hi < 970
    sob = real.s_over_b()
    inside = (real.background_mjj >= lo) & (real.background_mjj < hi)
    assert sob[0] == 0 and sob[2] == pytest.approx(300 * 0.68 / real.rates[inside].sum(), rel=0.05)


def test_range_edges_are_histogram_edges() -> None:
    edges = range_edges(500, 1500, 10, 760, 1480)
    assert edges[0] == 760 and edges[-1] == 1480 and len(edges) == 73
    with pytest.raises(ConfigError, match="fewer than 10"):
        range_edges(500, 1500, 50, 760, 900)


def test_crossing_skips_an_upward_fluctuation_at_zero_and_never_reads_a_bound() -> None:
    n = [0, 100, 300, 1000]
    # the old crossing() returned 0 here: Z(0) = 3.2 is a fluctuation, not a detection
    assert crossing(n, [3.2, 2.0, 4.0, 6.0], [False] * 4, 3.0) == (200.0, None)
    assert crossing(n, [0.0, 1.0, 2.0, 2.5], [False] * 4, 3.0) == (None, None)
    assert crossing(n, [0.0, 2.0, 3.7, 4.0], [False, False, True, True], 3.0) == (None, 300.0)
    value, _ = crossing(n, [0.0, 1.0, 5.0, 6.0], [False] * 4, 3.0)
    assert value == pytest.approx(100 + 0.5 * 200)


def test_quantiles_with_bounds() -> None:
    z = np.r_[np.linspace(0, 2, 8), np.full(12, 3.7)]
    bound = np.r_[np.zeros(8, bool), np.ones(12, bool)]
    assert quantile_bound(z, bound, 0.5) == (3.7, True)  # 60 % are bounds: the median is one
    value, is_bound = quantile_bound(z, bound, 0.16)
    assert not is_bound and value == pytest.approx(np.quantile(z, 0.16))


def test_summary_medians_bands_ks_and_format_2_round_trip(tmp_path: Path, synthetic) -> None:
    rng = np.random.default_rng(3)
    r, sizes = 200, [0, 100, 300]
    p_null = rng.random(r)
    p_global = np.stack([p_null, stats.norm.sf(rng.normal(2.0, 1.0, r)), stats.norm.sf(rng.normal(6.0, 1.0, r))], axis=1)
    p_local = p_global / 5
    entry = summarise(MethodResult("toy", "xgg_m900", sizes, p_local, p_global), background_events=9000,
                      fingerprint="abc", z_global_meaning="test")  # fmt: skip
    assert entry.point(0).z_global.median == pytest.approx(np.median(stats.norm.isf(p_null)), abs=1e-12)
    assert entry.point(100).z_global.lo < entry.point(100).z_global.median < entry.point(100).z_global.hi
    assert entry.null_ks_pvalue > 0.01
    assert 100 < entry.n_signal_3sigma.global_ < 300  # median Z 2 at 100, 6 at 300: 3 at 150
    assert entry.n_signal_3sigma.global_ == pytest.approx(100 + (3 - entry.point(100).z_global.median)
                                                          / (entry.point(300).z_global.median - entry.point(100).z_global.median) * 200)  # fmt: skip
    lo, hi = entry.n_signal_3sigma_band.global_
    assert lo < entry.n_signal_3sigma.global_ < hi
    path = tmp_path / "sensitivity.json"
    merge_entries(path, [entry], realizations(synthetic, n=2).protocol())
    raw = json.loads(path.read_text())
    assert raw["format_version"] == 2 and raw["methods"][0]["n_signal_3sigma"]["global"] == entry.n_signal_3sigma.global_
    back = Sensitivity.read(path)
    assert back.methods[0] == entry and back.protocol.realizations == 2


def test_sensitivity_json_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sensitivity.json"
    path.write_text(json.dumps({"methods": []}))
    with pytest.raises(InputError, match=r"sensitivity\.json: format_version None, expected 2"):
        Sensitivity.read(path)
    path.write_text("{")
    with pytest.raises(InputError, match=r"not a readable sensitivity\.json"):
        Sensitivity.read(path)


def test_crossing_text_reads_values_bounds_and_misses() -> None:
    rng = np.random.default_rng(4)
    null, strong = rng.random(50), np.full(50, 1e-9)
    p_global = np.stack([null, null, strong], axis=1)
    bound = np.stack([null < 0, null < 0, strong > 0], axis=1)  # every N = 300 p is only a bound
    entry = summarise(MethodResult("toy", "xgg_m900", [0, 100, 300], p_global / 10, p_global, bound_global=bound),
                      background_events=9000, fingerprint="abc", z_global_meaning="test")  # fmt: skip
    assert entry.crossing_text(3) == "< 300 (bound)"  # never read off the bound
    assert entry.crossing_text(3, "local") == f"{entry.n_signal_3sigma.local:.0f}"  # local: no bounds, a value
    flat = summarise(MethodResult("toy", "xgg_m900", [0, 100], np.stack([null, null], 1), np.stack([null, null], 1)),
                     background_events=9000, fingerprint="abc", z_global_meaning="test")  # fmt: skip
    assert flat.crossing_text(5) == "not reached"


def test_report_flags_a_null_that_is_not_calibrated() -> None:
    """Background-only global p-values far from uniform (the study's cwola_pfn: 0.0014, 0.014,
    0.20) mark the method's row and add a warning; uniform ones do not."""
    from analysis.report import method_table, null_failure, signal_sections
    from analysis.sensitivity.model import Sensitivity

    def entry(method: str, null: list[float]) -> object:
        null_p = np.array(null)
        p = np.stack([null_p, null_p / 100], axis=1)
        return summarise(MethodResult(method, "wprime_m900", [0, 1000], p, p), background_events=9000,
                         fingerprint="f", z_global_meaning="toy")  # fmt: skip

    biased = entry("biased", [0.0014, 0.014, 0.20])
    calibrated = entry("calibrated", list(np.linspace(0.05, 0.95, 20)))
    assert null_failure(calibrated) is None
    assert "median global Z +2.20 at N = 0" in null_failure(biased)
    _, rows = method_table([biased, calibrated])
    assert rows[0][0] == "biased (null not calibrated)" and rows[1][0] == "calibrated"
    (comparison, _) = signal_sections(Sensitivity(methods=[biased, calibrated]))
    assert any(p.startswith("NULL NOT CALIBRATED — biased: median global Z") for p in comparison.paragraphs)
