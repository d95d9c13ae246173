"""p-value maps and datasets: exact survival function, calibration, signal localisation,
file contracts, resume, the background fit of processed spectra, datasets of the sensitivity
protocol's realisations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.core.errors import ConfigError, InputError
from analysis.toys.definitions import parse_entries
from analysis.wavelets.cwt import CwtPlan, cwt_modulus, rebin
from analysis.wavelets.dataset import (
    build_dataset,
    build_dataset_from_histograms,
    build_dataset_from_realizations,
    load_dataset,
    signal_file,
    toy_inputs,
)
from analysis.wavelets.pvalues import ModulusMaps, Reference, build_reference, pvalue_maps

WAVELET = parse_entries("wavelets", [{"id": 0}], "w")[0]  # cmor1.5-1.0, scales 1..48
BACKGROUND = parse_entries("backgrounds", [{"id": 0, "kind": "exponential", "amplitude": 1000, "rate": 0.005}], "b")[0]
SIGNAL = parse_entries("signals", [{"id": 0, "center": 256, "height": 150, "width": 3}], "s")[0]
SIZES = [0.0, 150.0, 3000.0]


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pvalue_ds")
    build_dataset(out, toy_inputs(SIGNAL, BACKGROUND, WAVELET), toys=1000, train=120, test=200,
                  signal_sizes=SIZES, seed=5, shape=(48, 64), quiet=True)  # fmt: skip
    return out


def test_fast_cwt_matches_pywt_and_rebin_averages() -> None:
    spectra = np.random.default_rng(0).poisson(np.linspace(900, 20, 512), size=(5, 512)).astype(float)
    exact = cwt_modulus(spectra, WAVELET)
    fast = CwtPlan(WAVELET, 512).modulus(spectra)
    np.testing.assert_allclose(fast, exact, rtol=1e-3, atol=1e-4 * exact.max())
    np.testing.assert_allclose(CwtPlan(WAVELET, 512, dtype=np.complex128).modulus(spectra), exact, rtol=1e-9)
    blocks = rebin(exact, (48, 64))
    assert blocks.shape == (5, 48, 64)
    np.testing.assert_allclose(blocks[:, :, 3], exact[:, :, 24:32].mean(axis=-1))
    with pytest.raises(ValueError, match="must divide"):
        rebin(exact, (48, 60))


def test_survival_function_equals_brute_force_count() -> None:
    rng = np.random.default_rng(3)
    reference = rng.exponential(size=(300, 4, 5)).astype(np.float32)
    reference[:20, 0, 0] = 1.0  # ties: values equal to a query count as "at least as large"
    maps = rng.exponential(size=(50, 4, 5)).astype(np.float32)
    maps[:5, 0, 0] = 1.0
    maps[5] = reference[7]  # a map equal to a reference toy
    counts = Reference(reference).counts(maps)
    brute = np.array([[[np.sum(reference[:, i, j] >= maps[m, i, j]) for j in range(5)] for i in range(4)]
                      for m in range(50)])  # fmt: skip
    np.testing.assert_array_equal(counts, brute)
    p = Reference(reference).p_values(maps)
    np.testing.assert_allclose(p, (brute + 1) / 301)
    assert p.min() > 0 and p.max() <= 1


def test_background_maps_are_calibrated(toy_dataset: Path) -> None:
    data = load_dataset(toy_dataset)
    p = np.exp(-np.concatenate([data.test_backgrounds, data.signals[0.0]]).astype(float))
    # each map is independent of the 1000 reference toys, so P(p <= a) = floor(a * 1001) / 1001
    # exactly per cell. Cells of one map are correlated: count each of the 400 maps as a single
    # draw (conservative), plus the reference's own finite-N spread: sd <= sqrt(a(1-a)(1/400 + 1/1000)).
    for a in (0.1, 0.5):
        sd = np.sqrt(a * (1 - a) * (1 / 400 + 1 / 1000))
        assert abs(np.mean(p <= a) - a) < 4 * sd
    assert abs(np.mean(-np.log(p)) - 1.0) < 0.1  # -ln p ~ Exp(1)


def test_strong_signal_is_most_significant_at_its_mass_and_scale(toy_dataset: Path) -> None:
    data = load_dataset(toy_dataset)
    mean_map = data.signals[150.0].mean(axis=0)  # the 3000-event maps saturate at -ln p = ln(1001)
    scale_index, block = np.unravel_index(np.argmax(mean_map), mean_map.shape)
    mass_lo, mass_hi = block * 8, block * 8 + 8  # 1 GeV bins, 8 bins per block
    assert mass_lo - 8 <= 256 <= mass_hi + 8
    # matching scale: where the expected spectrum's |CWT| stands furthest above the background
    # toys' spread in the signal's column (an independent, Gaussian estimate of the significance)
    maps = ModulusMaps(WAVELET, 512, (48, 64))
    background = np.asarray(data.config["background_expected"])
    toys = maps(np.random.default_rng(9).poisson(background, size=(300, 512)).astype(float))[:, :, block]
    clean = maps((background + 150 * np.asarray(data.config["signal_template"]))[None])[0, :, block]
    best_scale = np.argmax((clean - toys.mean(axis=0)) / toys.std(axis=0))
    assert 3 <= best_scale <= 44  # inside the scale range: a real test of the scale
    # the significance is broad in scale: the expected best scale must sit on the map's plateau,
    # and the small scales (a narrower structure than the signal) must be clearly less significant
    assert mean_map[best_scale, block] >= 0.9 * mean_map.max()
    assert mean_map.max() > mean_map[:4, block].max() + 0.5
    assert mean_map.max() > 2 * data.test_backgrounds.mean()  # mean -ln p of background cells is 1
    strong = data.signals[3000.0]
    assert np.median(strong[:, scale_index, block]) == pytest.approx(np.log(1001), rel=1e-5)  # p = 1/(N+1)


def test_dataset_file_contract(toy_dataset: Path) -> None:
    names = sorted(p.name for p in toy_dataset.iterdir())
    expected = ["dataset_config.json", "reference_backgrounds.npy", "test_backgrounds.npy", "train_backgrounds.npy",
                *[signal_file(s) for s in SIZES]]  # fmt: skip
    assert names == sorted(expected)
    assert signal_file(0.0) == "test_signals_0.npy" and signal_file(250.0) == "test_signals_250.npy"
    config = json.loads((toy_dataset / "dataset_config.json").read_text())
    for key in ("seed", "toys", "train", "test", "signal_sizes", "signal_size_unit", "map_shape", "cwt_shape",
                "rebin", "wavelet", "source", "mass_edges", "background_expected", "signal_template"):  # fmt: skip
        assert key in config, key
    assert config["map_shape"] == [48, 64] and config["cwt_shape"] == [48, 512]
    assert config["signal_sizes"] == SIZES and config["source"]["kind"] == "toys"
    assert abs(sum(config["signal_template"]) - 1) < 1e-9
    for name, n in (("train_backgrounds.npy", 120), ("test_backgrounds.npy", 200), ("test_signals_150.npy", 200)):
        array = np.load(toy_dataset / name, allow_pickle=False)
        assert array.dtype == np.float32 and array.shape == (n, 48, 64)
        assert array.min() >= 0 and array.max() <= np.log(1001) + 1e-5


def test_resume_gives_identical_arrays_and_mismatch_is_an_error(toy_dataset: Path, tmp_path: Path) -> None:
    inputs = toy_inputs(SIGNAL, BACKGROUND, WAVELET)
    kwargs = {"toys": 1000, "train": 120, "test": 200, "signal_sizes": SIZES, "seed": 5, "shape": (48, 64), "quiet": True}
    out = tmp_path / "resumed"
    out.mkdir()
    for name in ("dataset_config.json", "train_backgrounds.npy", "test_signals_150.npy"):
        (out / name).write_bytes((toy_dataset / name).read_bytes())  # an interrupted build
    build_dataset(out, inputs, **kwargs)
    for name in ("reference_backgrounds.npy", "train_backgrounds.npy", "test_backgrounds.npy",
                 *(signal_file(s) for s in SIZES)):  # fmt: skip
        np.testing.assert_array_equal(np.load(out / name), np.load(toy_dataset / name), err_msg=name)
    before = (out / "test_backgrounds.npy").stat().st_mtime_ns
    build_dataset(out, inputs, **kwargs)  # complete: nothing recomputed
    assert (out / "test_backgrounds.npy").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="seed"):
        build_dataset(out, inputs, **{**kwargs, "seed": 6})
    with pytest.raises(ConfigError, match="must divide"):
        build_dataset(tmp_path / "bad", inputs, **{**kwargs, "shape": (48, 60)})


def test_pvalue_map_of_single_toys_matches_reference_counts() -> None:
    maps = ModulusMaps(WAVELET, 512, (48, 64))
    expected = toy_inputs(SIGNAL, BACKGROUND, WAVELET).background
    reference = build_reference(expected, 200, np.random.default_rng(1), maps)
    out = pvalue_maps(expected, 3, np.random.default_rng(2), maps, reference)
    toys = np.random.default_rng(2).poisson(expected, size=(3, 512)).astype(float)
    ref_maps = maps(np.random.default_rng(1).poisson(expected, size=(200, 512)).astype(float))
    direct = np.array([[[np.sum(ref_maps[:, i, j] >= m[i, j]) for j in range(64)] for i in range(48)] for m in maps(toys)])
    np.testing.assert_allclose(out, -np.log((direct + 1) / 201), rtol=1e-6)


# -- processed spectra -------------------------------------------------------------------------
EDGES = np.arange(500.0, 1501.0, 10.0)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])


def rising_falling(total: float) -> np.ndarray:
    """A selected-dijet-like shape (dijet function with p3 != 0 times a logistic rise), not the
    fit model's own erf form."""
    x = CENTRES / 7000
    shape = (1 - x) ** 8 / x ** (6 + 0.3 * np.log(x)) / (1 + np.exp(-(CENTRES - 720) / 18))
    return total * shape / shape.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_fit_describes_a_rising_falling_spectrum(seed: int) -> None:
    from analysis.baselines.background_fit import fit_background

    counts = np.random.default_rng(seed).poisson(rising_falling(20000))
    fit = fit_background(counts, EDGES)
    # the deviance of a correct model is ~chi2(ndf): mean ndf, sd sqrt(2 ndf)
    assert abs(fit.chi2_ndf - 1) < 4 * np.sqrt(2 / fit.ndf)
    pull = (fit.expected(CENTRES) - rising_falling(20000)) / np.sqrt(rising_falling(20000) + 1)
    assert np.max(np.abs(pull[CENTRES > 700])) < 1.0


def test_dataset_from_histograms(tmp_path: Path) -> None:
    import uproot

    from analysis.core.config import load_config

    rng = np.random.default_rng(4)
    signal = 5000 * np.diff(__import__("scipy").stats.norm.cdf(EDGES, 900, 40))
    path = tmp_path / "histograms.root"
    with uproot.recreate(path) as fh:
        fh["mjj_qcd"] = (rng.poisson(rising_falling(20000)).astype(float), EDGES)
        fh["mjj_xgg_900"] = (rng.poisson(signal).astype(float), EDGES)
        fh["mjj_bins_qcd"] = (np.ones(5), np.array([660.0, 760, 860, 960, 1060, 1160]))
    out = tmp_path / "ds"
    params = build_dataset_from_histograms(path, out, load_config(), toys=300, train=20, test=100,
                                           signal_sizes=[0, 2000], seed=1, quiet=True)  # fmt: skip
    assert params["source"]["background_hist"] == "mjj_qcd" and params["source"]["signal_hist"] == "mjj_xgg_900"
    assert abs(params["source"]["background_fit"]["chi2_ndf"] - 1) < 0.5
    assert params["source"]["mjj_range_gev"] == [760.0, 1480.0]  # the searched range (sensitivity.mjj_min/max)
    data = load_dataset(out)
    assert data.train.shape == (20, 48, 36)
    strong = data.signals[2000.0].mean(axis=0)
    block = np.unravel_index(np.argmax(strong), strong.shape)[1]
    assert 860 <= 760 + 20 * block <= 940  # blocks of 2 bins of 10 GeV from 760 GeV
    with pytest.raises(ConfigError, match="no histogram"):
        build_dataset_from_histograms(path, tmp_path / "x", load_config(), signal_hist="mjj_nope", quiet=True)


# -- the sensitivity protocol's realisations ---------------------------------------------------
RANGE = np.arange(760.0, 1481.0, 10.0)
THETA = np.array([0.0, 10.0, 5.0, 0.0, 780.0, np.log(60.0)])  # dijet function x erf turn-on


@pytest.fixture(scope="module")
def realisations():
    from analysis.baselines.background_fit import dijet_turnon
    from analysis.sensitivity.realizations import build_realizations

    rng = np.random.default_rng(8)
    grid = np.arange(700.0, 1600.0, 1.0)
    cdf = np.cumsum(dijet_turnon(THETA, grid))
    background = np.interp(rng.random(6000), cdf / cdf[-1], grid)
    return build_realizations(background, rng.normal(900.0, 30.0, 1500), seed=2, n_realizations=60, n_signal=[0, 500],
                              resampling="model_poisson", edges=RANGE, sqrt_s=7000.0, signal="xgg_m900")  # fmt: skip


def _small_config(**dataset: object):
    from analysis.core.config import load_config

    return load_config(None, {"dataset": {"toys": 400, "train": 10, "test": 50, "histogram_shape": [24, 36], **dataset}})


@pytest.mark.parametrize("normalise", [True, False])
def test_dataset_from_realisations_has_the_model_expectation_and_calibrated_maps(
    realisations, tmp_path: Path, normalise: bool
) -> None:
    real = realisations
    cfg = _small_config()
    params = build_dataset_from_realizations(real, tmp_path / "ds", cfg, quiet=True, normalise=normalise)
    np.testing.assert_allclose(params["background_expected"], real.expected_background(), rtol=1e-12)
    np.testing.assert_allclose(params["background_expected"], real.model.expected(real.centres), rtol=1e-9)
    assert params["mass_edges"] == list(real.edges) and params["signal_sizes"] == [] and params["map_shape"] == [24, 36]
    source = params["source"]
    assert source["kind"] == "realizations" and source["background_fit"] == json.loads(json.dumps(real.model.to_dict()))
    assert source["background_fit"]["chi2_ndf"] == pytest.approx(real.model.chi2_ndf)
    assert (params["normalised_total"] is not None) == normalise
    data = load_dataset(tmp_path / "ds")
    assert data.signals == {} and data.reference.shape == (400, 24, 36) and data.test_backgrounds.shape == (50, 24, 36)
    assert not any(p.name.startswith("test_signals") for p in (tmp_path / "ds").iterdir())
    # the test maps are Poisson toys of the expectation: their spectra are not stored, but mapping
    # fresh toys of it with the stored reference reproduces their distribution (mean -ln p ~ 1)
    toys = np.random.default_rng(0).poisson(real.expected_background(), size=(50, len(real.centres)))
    assert abs(data.neg_log_p_maps(toys).mean() - data.test_backgrounds.mean()) < 0.1
    # the realisations' background-only spectra scatter about the same model: calibrated maps,
    # P(p <= a) = a per cell (60 maps counted as single draws, plus the reference's spread)
    spectra = real.spectra()[:, 0]
    p = np.exp(-data.neg_log_p_maps(spectra).astype(float))
    for a in (0.1, 0.5):
        sd = np.sqrt(a * (1 - a) * (1 / 60 + 1 / 400))
        assert abs(np.mean(p <= a) - a) < 4 * sd, (a, np.mean(p <= a))
    # an injected signal lifts -ln p well above the background-only mean of 1
    assert data.neg_log_p_maps(real.spectra(5)[:, 1]).mean() > 2.0


def test_normalised_maps_see_shapes_only(realisations) -> None:
    spectrum = realisations.expected_background()[None]
    maps = ModulusMaps(WAVELET, spectrum.shape[1], (24, 36), total=float(spectrum.sum()))
    scaled, base = maps(1.3 * spectrum), maps(spectrum)  # float32 CWT: ~1e-4 of the largest value
    np.testing.assert_allclose(scaled, base, rtol=1e-3, atol=1e-4 * base.max())
    plain = ModulusMaps(WAVELET, spectrum.shape[1], (24, 36))
    scaled, base = plain(1.3 * spectrum), plain(spectrum)
    np.testing.assert_allclose(scaled, 1.3 * base, rtol=1e-3, atol=1e-4 * scaled.max())
    assert not np.allclose(scaled, base, rtol=0.1)  # without normalisation the maps see the total


def test_dataset_from_realisations_errors(realisations, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="histogram_shape"):
        build_dataset_from_realizations(realisations, tmp_path / "a", _small_config(histogram_shape=[48, 50]), quiet=True)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "dataset_config.json").write_text(json.dumps({"format_version": 1, "signal_sizes": [], "map_shape": [1, 1]}))
    with pytest.raises(InputError, match="format 1"):
        load_dataset(tmp_path / "old")


def test_dataset_from_realisations_replaces_a_stale_dataset(realisations, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset_from_realizations(realisations, out, _small_config(), quiet=True, normalise=True)
    (out / "notes.txt").write_text("mine")
    params = build_dataset_from_realizations(realisations, out, _small_config(test=20), quiet=True, normalise=False)
    assert params["normalised_total"] is None and load_dataset(out).test_backgrounds.shape[0] == 20
    assert (out / "notes.txt").read_text() == "mine"  # only the dataset's own files are replaced
