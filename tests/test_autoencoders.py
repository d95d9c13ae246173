"""The six map autoencoders: training, safe-mode round trip, the efficiency p-value, the CLI chain."""

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

from analysis.ae_scan import MODEL_NAMES, efficiency_p_value, pvalue_scan, train_models
from analysis.dataset import build_dataset, load_dataset, toy_inputs
from analysis.definitions import parse_entries

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
    train_models(small_dataset, out, list(MODEL_NAMES), epochs=4, batch_size=32, patience=4, learning_rate=2e-3,
                 code_size=8, validation_fraction=0.2, seed=3, quiet=True)  # fmt: skip
    return out


def test_efficiency_p_value_is_the_reference_definition() -> None:
    background = np.arange(10.0)
    assert efficiency_p_value(background, np.array([6.5, 7.0, 100.0])) == 0.3  # 7, 8, 9 >= 7.0
    assert efficiency_p_value(background, np.array([100.0])) == 0.0


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
        p = model["p_values"]
        # background only: p = P(background loss >= median of an independent sample) ~ 0.5,
        # sd ~ sqrt(0.25/200 + 0.25/200 * pi/2) ~ 0.05 -> 4 sd
        assert abs(p[0] - 0.5) < 0.2, (model["name"], p)
        assert p[2] < 0.05 and p[2] <= p[0], (model["name"], p)  # a 2000-event signal is obvious
        assert model["aucs"][2] > 0.9 and abs(model["aucs"][0] - 0.5) < 0.15
    sensitivity = json.loads((tmp_path / "sensitivity.json").read_text())
    entries = {m["method"]: m for m in sensitivity["methods"]}
    assert set(entries) == {f"{n}_ae" for n in MODEL_NAMES}
    for entry in entries.values():
        assert {"points", "n_signal_3sigma", "n_signal_5sigma"} <= set(entry)
        assert [pt["n_signal"] for pt in entry["points"]] == SIZES
        assert entry["n_signal_5sigma"] is None  # 1/200 cannot resolve 5 sigma
        assert all(pt["p"] >= 1 / n_bg for pt in entry["points"])
    for name in ("pvalue_vs_signal.png", "losses_dense_ae.png", "reconstruction_conv_kl_ae.png"):
        assert (tmp_path / name).stat().st_size > 1000


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
