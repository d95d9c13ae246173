"""The six map autoencoders: training, safe-mode round trip, p-values past the test maps (tail
or bound, never 1/N_test), scoring on the sensitivity protocol's realisations, the CLI chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from analysis.baselines.background_fit import dijet_turnon
from analysis.core.config import AutoencodersConfig
from analysis.core.errors import InputError
from analysis.sensitivity.model import Sensitivity
from analysis.sensitivity.realizations import build_realizations
from analysis.sensitivity.tails import NullDistribution
from analysis.toys.definitions import parse_entries
from analysis.wavelets.autoencoders import (
    MODEL_NAMES,
    ae_sensitivity,
    efficiency_p_value,
    pvalue_scan,
    train_models,
)
from analysis.wavelets.dataset import build_dataset, build_dataset_from_realizations, load_dataset, toy_inputs

REPO = Path(__file__).resolve().parent.parent
WAVELET = parse_entries("wavelets", [{"id": 0}], "w")[0]
BACKGROUND = parse_entries("backgrounds", [{"id": 0, "kind": "exponential", "amplitude": 1000, "rate": 0.005}], "b")[0]
SIGNAL = parse_entries("signals", [{"id": 0, "center": 256, "height": 150, "width": 3}], "s")[0]
SIZES = [0.0, 100.0, 2000.0]
SHAPE = (12, 16)  # tiny maps (48x512 CWT averaged in 4x32 blocks): fast trainings


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ae_ds")
    build_dataset(out, toy_inputs(SIGNAL, BACKGROUND, WAVELET), toys=500, train=300, test=200,
                  signal_sizes=SIZES, seed=11, shape=SHAPE, quiet=True)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def trained(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ae_models")
    ae = AutoencodersConfig(models=list(MODEL_NAMES), epochs=4, batch_size=32, patience=4, learning_rate=2e-3,
                            code_size=8, validation_fraction=0.2)  # fmt: skip
    train_models(small_dataset, out, ae, seed=3, quiet=True)
    return out


def test_efficiency_p_value_is_the_reference_definition_past_the_toys_a_tail_or_a_bound() -> None:
    background = np.arange(10.0)
    null = NullDistribution.fit(background, 0.05, 1000.0)  # too few toys for a tail
    assert efficiency_p_value(null, np.array([6.5, 7.0, 100.0])) == (4 / 11, False)  # 7, 8, 9 >= 7.0: (3+1)/(10+1)
    assert efficiency_p_value(null, np.array([100.0])) == (1 / 11, True)  # past every toy: only p < 1/11 is known
    # with a trusted tail, a loss past the largest toy gets a p below 1/(M+1) from the tail, not a floor
    toys = np.random.default_rng(1).exponential(size=2000)
    tailed = NullDistribution.fit(toys, 0.05, 1000.0)
    assert tailed.trusted_tail
    p, bound = efficiency_p_value(tailed, np.array([toys.max() + 1.0]))
    assert not bound and p < 1 / 2001 and p == pytest.approx(np.exp(-(toys.max() + 1.0)), rel=1.0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_and_round_trips(name: str, trained: Path, small_dataset: Path) -> None:
    from models.ae_training import load_model, reconstruct

    info = json.loads((trained / f"{name}_ae" / "train.json").read_text())
    loss = info["history"]["loss"]
    assert loss[-1] < loss[0], loss
    log = (trained / f"{name}_ae" / "training.csv").read_text().splitlines()
    assert log[0].split(",")[:2] == ["epoch", "loss"] and "val_loss" in log[0] and len(log) == len(loss) + 1
    model = load_model(trained / f"{name}_ae" / f"{name}_ae.keras")  # safe mode
    data = load_dataset(small_dataset)
    maps = data.test_backgrounds[:16] / data.scale
    again = load_model(trained / f"{name}_ae" / f"{name}_ae.keras")
    out = reconstruct(model, maps)
    assert out.shape == maps.shape and np.all((out >= 0) & (out <= 1))
    np.testing.assert_array_equal(out, reconstruct(again, maps))
    # not collapsed (dead ReLUs make the reconstruction exactly independent of the input)
    assert out.std(axis=0).max() > 1e-5, name


def test_reload_matches_the_trained_model(small_dataset: Path, tmp_path: Path) -> None:
    from models.ae_training import AESettings, load_model, reconstruct, save_model, train_autoencoder

    data = load_dataset(small_dataset)
    x = data.train / data.scale
    for name in ("sparse_kl", "conv_kl"):  # the custom KL regulariser must deserialise in safe mode
        model, _ = train_autoencoder(name, x[:100], x[100:150], AESettings(epochs=1, batch_size=50, code_size=8),
                                     tmp_path / f"{name}.csv", seed=1)  # fmt: skip
        path = save_model(model, tmp_path / f"{name}.keras")
        np.testing.assert_array_equal(reconstruct(model, x[:8]), reconstruct(load_model(path), x[:8]))
    with pytest.raises(ValueError, match="unknown autoencoder"):
        train_autoencoder("lstm", x[:10], x[10:20], AESettings(epochs=1), tmp_path / "x.csv")


def test_training_is_seeded(small_dataset: Path, tmp_path: Path) -> None:
    from models.ae_training import AESettings, train_autoencoder

    data = load_dataset(small_dataset)
    x = data.train / data.scale
    runs = [train_autoencoder("dense", x[:100], x[100:150], AESettings(epochs=2, batch_size=25, code_size=8),
                              tmp_path / f"{i}.csv", seed=4)[1]["loss"] for i in range(2)]  # fmt: skip
    assert runs[0] == runs[1]


def test_scan_p_values_and_outputs(trained: Path, small_dataset: Path, tmp_path: Path) -> None:
    summary = pvalue_scan(small_dataset, trained, tmp_path, quiet=True)
    data = json.loads((tmp_path / "pvalue_vs_signal.json").read_text())
    assert data["signal_sizes"] == SIZES and [m["name"] for m in data["models"]] == [f"{n}_ae" for n in MODEL_NAMES]
    n_bg = 200
    for model in summary["models"]:
        p, bound = model["p_values"], model["bound"]
        # background only: p = P(background loss >= median of an independent sample) ~ 0.5,
        # sd ~ sqrt(0.25/200 + 0.25/200 * pi/2) ~ 0.05 -> 4 sd
        assert abs(p[0] - 0.5) < 0.2, (model["name"], p)
        assert p[2] < 0.05 and p[2] <= p[0], (model["name"], p)  # a 2000-event signal is obvious
        assert model["aucs"][2] > 0.9 and abs(model["aucs"][0] - 0.5) < 0.15
        # past the test maps: a tail-fitted p below their resolution, or a bound; never 1/N_test as a value
        null = model["null"]
        if model["median_losses"][2] > null["tail_threshold"] and not bound[2]:
            assert null["trusted_tail"], model["name"]
        if bound[2]:
            assert p[2] <= 1 / (n_bg + 1)
        assert not (p[2] == 1 / n_bg and not bound[2])
    assert not (tmp_path / "sensitivity.json").exists()  # toy datasets are not the protocol's realisations
    for name in ("pvalue_vs_signal.png", "losses_dense_ae.png", "reconstruction_conv_kl_ae.png"):
        assert (tmp_path / name).stat().st_size > 1000


# -- the sensitivity protocol's realisations ---------------------------------------------------
EDGES = np.arange(760.0, 1481.0, 10.0)
THETA = np.array([0.0, 10.0, 5.0, 0.0, 780.0, np.log(60.0)])  # dijet function x erf turn-on
REAL_SIZES = [0, 150, 1500]


def falling_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """m_jj drawn from a dijet x turn-on density (inverse CDF on a 1 GeV grid)."""
    grid = np.arange(700.0, 1600.0, 1.0)
    cdf = np.cumsum(dijet_turnon(THETA, grid))
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def small_config(**sensitivity: float):
    from analysis.core.config import load_config

    return load_config(None, {
        "dataset": {"toys": 300, "train": 150, "test": 400, "histogram_shape": [12, 18]},
        "autoencoders": {"epochs": 2, "batch_size": 32, "code_size": 8},
        "sensitivity": {"realizations": 8, "n_signal": REAL_SIZES, "tail_fraction": 0.1, **sensitivity},
    })  # fmt: skip


@pytest.fixture(scope="session")
def protocol(tmp_path_factory: pytest.TempPathFactory):
    """Small realisations (4000 background events, a narrow 900 GeV signal pool), their dataset
    (12x18 maps) and the six models trained on it for 2 epochs."""
    rng = np.random.default_rng(21)
    real = build_realizations(falling_sample(4000, rng), rng.normal(900.0, 25.0, 2000), seed=3, n_realizations=8,
                              n_signal=REAL_SIZES, resampling="model_poisson", edges=EDGES, sqrt_s=7000.0,
                              signal="xgg_m900")  # fmt: skip
    cfg = small_config()
    out = tmp_path_factory.mktemp("ae_protocol")
    build_dataset_from_realizations(real, out / "dataset", cfg, quiet=True)
    ae = cfg.autoencoders
    train_models(out / "dataset", out / "models", ae, seed=cfg.seed, quiet=True, names=list(MODEL_NAMES))
    return real, cfg, out


def test_realisations_are_scored_with_a_format_2_entry_per_model(protocol, tmp_path: Path) -> None:
    real, cfg, out = protocol
    entries = ae_sensitivity(real, out / "dataset", out / "models", tmp_path, cfg, quiet=True)
    data = Sensitivity.read(tmp_path / "sensitivity.json")  # the one reader validates format 2
    assert [e.method for e in data.methods] == [f"{n}_ae" for n in MODEL_NAMES] == [e.method for e in entries]
    assert data.protocol == real.protocol()
    m = len(load_dataset(out / "dataset").test_backgrounds)
    for entry in data.methods:
        assert entry.signal == "xgg_m900" and entry.fingerprint == real.fingerprint and entry.realizations == 8
        assert entry.background_events == real.background_events
        assert [pt.n_signal for pt in entry.points] == REAL_SIZES
        assert "global" in entry.z_global_meaning and len(entry.null_p_global) == 8
        for pt in entry.points:  # p_local = p_global: the whole map is the search region
            assert pt.z_local == pt.z_global
        # the strong injection: a small p for every model (past the test maps: a tail or a bound)
        strong = entry.point(1500)
        assert strong.z_global.median > 2.3, (entry.method, strong)
        # the background-only realisations are not flagged: p of a calibrated null
        assert abs(entry.point(0).z_global.median) < 1.5, (entry.method, entry.point(0))
        sample = entry.details["sample_background"]
        assert 0 < sample["p"] <= 1 and isinstance(sample["bound"], bool)
        null = entry.details["null"]
        assert null["toys"] == m and null["p_min"] <= 1 / (m + 1)
    summary = json.loads((tmp_path / "pvalue_vs_signal.json").read_text())
    assert summary["signal_sizes"] == REAL_SIZES and len(summary["models"]) == 6
    for model in summary["models"]:
        p, lo, hi = (np.asarray(model[k]) for k in ("p_values", "p_lo", "p_hi"))
        assert p.shape == (3,) and np.all(lo <= p + 1e-15) and np.all(p <= hi + 1e-15)
        assert p[2] < p[0] and len(model["bound"]) == 3
    for name in ("pvalue_vs_signal.png", "losses_conv_kl_ae.png", "reconstructions.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_losses_past_the_null_are_tail_fitted_or_bounds(protocol) -> None:
    """Per realisation: a loss above every test-background loss gets p < 1/(M+1) from the fitted
    tail, or is flagged as a bound; the floor 1/M (or 1/(M+1)) is never reported as a value."""
    from analysis.wavelets.autoencoders import _score
    from models.ae_training import load_model

    real, _, out = protocol
    data = load_dataset(out / "dataset")
    spectra = real.spectra()
    maps = data.neg_log_p_maps(spectra.reshape(-1, spectra.shape[-1])) / data.scale
    beyond = 0
    for name in ("dense", "conv_kl"):
        model = load_model(out / "models" / f"{name}_ae" / f"{name}_ae.keras")
        for tail_fraction in (0.02, 0.1):  # 8 exceedances (no tail: bounds) and 40 (a tail, if it fits)
            sc = _score(model, data.test_backgrounds / data.scale, maps, tail_fraction, 1000.0)
            past = sc["losses"] > sc["null_losses"].max()
            beyond += int(past.sum())
            m = len(sc["null_losses"])
            assert np.all(sc["bound"][past] | (sc["p"][past] < 1 / (m + 1))), name
            assert not np.any(~sc["bound"][past] & np.isclose(sc["p"][past], 1 / m))
            if not sc["null"].trusted_tail:
                assert np.all(sc["bound"][past])
    assert beyond > 0  # the strong injections are past the null


def test_scoring_needs_the_realisations_dataset(protocol, tmp_path: Path) -> None:
    real, cfg, out = protocol
    other = build_realizations(real.background_mjj[:3000], real.pool_mjj, seed=3, n_realizations=8, n_signal=REAL_SIZES,
                               resampling="model_poisson", edges=EDGES, sqrt_s=7000.0, signal="xgg_m900")  # fmt: skip
    with pytest.raises(InputError, match="another background model"):
        ae_sensitivity(other, out / "dataset", out / "models", tmp_path, cfg, quiet=True)


def test_cli_train_reuse_and_errors(trained: Path, small_dataset: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "run_analysis.py"), *args, "-q"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    bad = cli("train-ae", "--dataset", str(small_dataset), "--out", str(tmp_path / "m"), "--models", "dense,lstm")
    assert bad.returncode == 2 and "lstm" in bad.stderr
    missing = cli("pvalue-scan", "--dataset", str(small_dataset), "--models-dir", str(tmp_path / "none"), "--out", "o")
    assert missing.returncode == 1 and "no trained autoencoders" in missing.stderr
    no_ds = cli("train-ae", "--dataset", str(tmp_path / "nods"), "--out", "m")
    assert no_ds.returncode == 1 and "dataset_config.json" in no_ds.stderr
    # rerun of the fixture's trainings through the CLI with the same settings: reused, not retrained
    stamp = (trained / "dense_ae" / "dense_ae.keras").stat().st_mtime_ns
    ok = cli("train-ae", "--dataset", str(small_dataset), "--out", str(trained), "--models", "dense", "--epochs", "4",
             "--batch-size", "32", "--seed", "3", "--config", str(_config(tmp_path)))  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (trained / "dense_ae" / "dense_ae.keras").stat().st_mtime_ns == stamp
    assert json.loads((trained / "run.json").read_text())["command"] == "train-ae"


def _config(tmp_path: Path) -> Path:
    """A config with the fixture's autoencoder settings."""
    import yaml

    data = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    data["toys"] = {k: str(REPO / "configs" / v) if k in ("signals", "backgrounds", "wavelets") else v
                    for k, v in data["toys"].items()}  # fmt: skip
    data["autoencoders"].update(patience=4, learning_rate=2e-3, code_size=8, validation_fraction=0.2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
