"""Autoencoders on p-value map datasets: training (`train-ae`) and the p-value scan (`pvalue-scan`).

Maps are divided by ln(N+1) (N = reference toys) so they lie in (0, 1]. Per model the scan
computes every test map's reconstruction MSE and, per signal size, the reference tool's
*efficiency p-value* (the fraction of test-background losses >= the median signal loss) and
the ROC AUC of signal against background losses. A model's sensitivity is the signal size where
p first reaches the one-sided 3 and 5 sigma values, interpolated in ln p; a p of 0 counts as
1/N_test (no smaller p can be resolved), so 5 sigma needs more than 3.5 million test maps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from analysis.atomic import write_json
from analysis.dataset import Dataset, load_dataset
from analysis.errors import ConfigError, InputError
from analysis.sensitivity import P_3SIGMA, P_5SIGMA, merge_method, size_at_p

MODEL_NAMES = ("dense", "sparse_l1", "sparse_kl", "conv", "conv_l1", "conv_kl")


def model_names(names: list[str]) -> list[str]:
    """Canonical model names (``conv_kl_ae`` -> ``conv_kl``); unknown names are ConfigErrors."""
    out = []
    for name in names:
        base = name.strip().removesuffix("_ae")
        if base not in MODEL_NAMES:
            raise ConfigError(f"--models: unknown autoencoder {name!r} (known: {', '.join(MODEL_NAMES)})")
        if base not in out:
            out.append(base)
    return out


def efficiency_p_value(background_losses: np.ndarray, signal_losses: np.ndarray) -> float:
    """The reference's p-value: fraction of background losses >= the median signal loss."""
    return float(np.mean(np.asarray(background_losses) >= np.median(signal_losses)))


def train_models(
    dataset_dir: str | Path, out_dir: str | Path, names: list[str], *, epochs: int, batch_size: int,
    patience: int, learning_rate: float, code_size: int, validation_fraction: float, seed: int, quiet: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train each model on the dataset's training maps; ``<out>/<name>_ae/`` holds the ``.keras``
    model, ``training.csv`` and ``train.json``. A model whose ``train.json`` matches is reused."""
    from models.ae_training import AESettings, save_model, train_autoencoder

    data = load_dataset(dataset_dir)
    x = data.train / data.scale
    n_val = max(1, round(validation_fraction * len(x)))
    if len(x) - n_val < 1:
        raise ConfigError(f"{dataset_dir}: {len(x)} training maps leave none for training after validation")
    settings = AESettings(epochs=epochs, batch_size=batch_size, patience=patience, learning_rate=learning_rate, code_size=code_size)
    results = []
    for name in model_names(names):
        full = f"{name}_ae"
        model_dir = Path(out_dir) / full
        info = {
            "name": full, "dataset": str(Path(dataset_dir).resolve()), "dataset_seed": data.config["seed"],
            "dataset_shape": list(x.shape), "settings": settings.__dict__, "seed": seed, "validation_maps": n_val,
        }  # fmt: skip
        done = model_dir / "train.json"
        if done.is_file() and (model_dir / f"{full}.keras").is_file():
            previous = json.loads(done.read_text())
            if {k: previous.get(k) for k in info} == json.loads(json.dumps(info)):
                results.append(previous)
                continue
        if not quiet:
            print(f"[train-ae] {full}: {len(x) - n_val} training maps, {n_val} validation", flush=True)
        model, history = train_autoencoder(
            name, x[:-n_val], x[-n_val:], settings, model_dir / "training.csv", seed=seed, verbose=0 if quiet else 2
        )
        save_model(model, model_dir / f"{full}.keras")
        info.update(epochs_run=len(history["loss"]), history=history, best_val_loss=min(history["val_loss"]))
        write_json(done, info)
        results.append(info)
    return results


def find_models(models_dir: str | Path) -> dict[str, Path]:
    """``{name: path}`` of the ``<name>/<name>.keras`` models under ``models_dir`` (known names only)."""
    models_dir = Path(models_dir)
    found = {}
    for base in MODEL_NAMES:
        path = models_dir / f"{base}_ae" / f"{base}_ae.keras"
        if path.is_file():
            found[f"{base}_ae"] = path
    if not found:
        raise InputError(f"{models_dir}: no trained autoencoders (<name>_ae/<name>_ae.keras); run train-ae first")
    return found


def scan_model(model, data: Dataset) -> dict[str, Any]:
    """Losses, efficiency p-values and AUCs of one model on a dataset."""
    from models.ae_training import reconstruction_mse

    background = reconstruction_mse(model, data.test_backgrounds / data.scale)
    sizes = sorted(data.signals)
    losses = {s: reconstruction_mse(model, data.signals[s] / data.scale) for s in sizes}
    return {
        "background_losses": background,
        "signal_losses": losses,
        "p_values": [efficiency_p_value(background, losses[s]) for s in sizes],
        "aucs": [
            float(roc_auc_score(np.r_[np.zeros(len(background)), np.ones(len(losses[s]))], np.r_[background, losses[s]]))
            for s in sizes
        ],
        "median_losses": [float(np.median(losses[s])) for s in sizes],
        "median_background_loss": float(np.median(background)),
    }


def sensitivity_entry(name: str, sizes: list[float], p_values: list[float], n_background: int) -> dict[str, Any]:
    """A sensitivity.json entry: points (n_signal, z, p) and the sizes reaching 3 and 5 sigma."""
    from scipy import stats

    bounded = [max(p, 1.0 / n_background) for p in p_values]
    return {
        "method": name,
        "points": [{"n_signal": s, "z": float(stats.norm.isf(p)), "p": p} for s, p in zip(sizes, bounded, strict=True)],
        "n_signal_3sigma": size_at_p(sizes, bounded, P_3SIGMA),
        "n_signal_5sigma": size_at_p(sizes, bounded, P_5SIGMA),
        "p_floor": 1.0 / n_background,
        "statistic": "efficiency p-value of the reconstruction MSE (fraction of background losses >= median signal loss)",
    }


def pvalue_scan(
    dataset_dir: str | Path, models_dir: str | Path, out_dir: str | Path, names: list[str] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Scan every trained model: pvalue_vs_signal.json, sensitivity.json entries and plots."""
    from analysis.plots import save
    from analysis.pvalue_plots import loss_figure, pvalue_vs_signal_figure, reconstruction_figure
    from models.ae_training import load_model, reconstruct

    out_dir = Path(out_dir)
    data = load_dataset(dataset_dir)
    sizes = sorted(data.signals)
    found = find_models(models_dir)
    if names:
        wanted = [f"{n}_ae" for n in model_names(names)]
        missing = [n for n in wanted if n not in found]
        if missing:
            raise InputError(f"{models_dir}: no trained model {missing[0]} (found: {', '.join(found)})")
        found = {n: found[n] for n in wanted}
    n_bg = len(data.test_backgrounds)
    summary: dict[str, Any] = {"signal_sizes": sizes, "models": [], "n_test_backgrounds": n_bg,
                               "dataset": str(Path(dataset_dir).resolve())}  # fmt: skip
    for name, path in found.items():
        try:
            model = load_model(path)
        except Exception as exc:  # keras raises many types for a damaged archive
            raise InputError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None
        result = scan_model(model, data)
        summary["models"].append({
            "name": name, "p_values": result["p_values"], "aucs": result["aucs"],
            "median_losses": result["median_losses"], "median_background_loss": result["median_background_loss"],
        })  # fmt: skip
        entry = sensitivity_entry(name, sizes, result["p_values"], n_bg)
        merge_method(out_dir / "sensitivity.json", entry)
        save(loss_figure(name, result["background_losses"], result["signal_losses"]), out_dir / f"losses_{name}.png")
        largest = sizes[-1]
        inputs = {"background": data.test_backgrounds[0] / data.scale, f"signal {largest:g}": data.signals[largest][0] / data.scale}
        outputs = reconstruct(model, np.stack(list(inputs.values())))
        pairs = {label: (inputs[label], outputs[i]) for i, label in enumerate(inputs)}
        save(reconstruction_figure(name, pairs), out_dir / f"reconstruction_{name}.png")
        if not quiet:
            shown = ", ".join(f"{s:g}: {p:.3g}" for s, p in zip(sizes, result["p_values"], strict=True))
            print(f"[pvalue-scan] {name}: p = {{{shown}}}; 3 sigma at {entry['n_signal_3sigma']}", flush=True)
    write_json(out_dir / "pvalue_vs_signal.json", summary)
    save(pvalue_vs_signal_figure(sizes, summary["models"], n_bg), out_dir / "pvalue_vs_signal.png")
    return summary
