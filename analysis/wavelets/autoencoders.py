"""Autoencoders on p-value map datasets: training (`train-ae`), scoring on the protocol's
realisations (:func:`ae_sensitivity`, the chain) and the toy scan (`pvalue-scan`).

Maps are divided by ln(N+1) (N = reference toys) so they lie in (0, 1]. A model's test
statistic is a map's reconstruction MSE; its null distribution is the losses of the dataset's
test-background maps (Poisson toys of the background model, independent of the training maps),
and a p-value is ``P(null loss >= loss)`` from :class:`~analysis.sensitivity.tails.NullDistribution`:
empirical in the bulk, an exponential tail past the test maps, or a bound where the tail
is not trusted (never a floor at 1/N_test).

* :func:`ae_sensitivity`: the -ln p maps of every realisation's spectrum (background only and
  with the nested signal draws), computed against the dataset's own reference ensemble, and one
  p per (realisation, N). The whole-map loss looks at every mass and scale at once, so its p is
  already global: p_local = p_global.
* :func:`pvalue_scan` (toy datasets with ``test_signals_<size>.npy``): per size the reference
  tool's *efficiency p-value*, the p of the median signal loss (empirically: the fraction of
  background losses at least as large), now with the tail past the test maps; and the ROC AUC.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from analysis.core.atomic import write_json
from analysis.core.errors import ConfigError, InputError
from analysis.sensitivity.tails import NullDistribution
from analysis.wavelets.dataset import Dataset, load_dataset

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster
    from analysis.core.config import AnalysisConfig, AutoencodersConfig
    from analysis.sensitivity.model import MethodEntry
    from analysis.sensitivity.realizations import Realizations

MODEL_NAMES = ("dense", "sparse_l1", "sparse_kl", "conv", "conv_l1", "conv_kl")
STATISTIC = "reconstruction MSE of the -ln p map / ln(N_reference + 1)"
Z_GLOBAL_MEANING = (
    "whole-map p: the reconstruction loss of the full (wavelet scale x m_jj) map of the searched range against "
    "its null distribution (test-background maps); the map covers every mass and scale at once, so there is no "
    "look-elsewhere effect beyond it and local = global"
)


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


def efficiency_p_value(null: NullDistribution, signal_losses: np.ndarray) -> tuple[float, bool]:
    """The reference's p-value, P(background loss >= the median signal loss), with the null's
    tail past its toys; (p, bound), ``bound`` marking p as only an upper bound."""
    p, bound = null.p_value(float(np.median(signal_losses)))
    return float(p[0]), bool(bound[0])


def train_models(
    dataset_dir: str | Path, out_dir: str | Path, ae: AutoencodersConfig, seed: int, quiet: bool = False,
    names: list[str] | None = None, cluster: Cluster | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train each model (``names``, default ``ae.models``) on the dataset's training maps with the
    settings of ``ae``; ``<out>/<name>_ae/`` holds the ``.keras`` model, ``training.csv`` and
    ``train.json`` (with the training time, the dataset's path, map shape and fingerprint: the
    consumers refuse a model of another dataset, :func:`check_training`). A model whose
    ``train.json`` matches (same dataset parameters, settings and seed) is reused. With a
    ``cluster``, each model is one Dask task, which reads the dataset from disk itself;
    ``train.json`` is written last, so a task killed half-way leaves a model that is retrained."""
    import time

    if cluster is not None:
        from functools import partial

        listed = model_names(names or list(ae.models))
        task = partial(train_models, dataset_dir, out_dir, ae, seed, True)
        found = {one[0]: result[0] for one, result in cluster.map(task, [[n] for n in listed],
                                                                    resources=cluster.training_resources())}  # fmt: skip
        return [found[name] for name in listed]

    from models.ae_training import AESettings, save_model, train_autoencoder

    data = load_dataset(dataset_dir)
    x = data.train / data.scale
    n_val = max(1, round(ae.validation_fraction * len(x)))
    if len(x) - n_val < 1:
        raise ConfigError(f"{dataset_dir}: {len(x)} training maps leave none for training after validation")
    settings = AESettings(epochs=ae.epochs, batch_size=ae.batch_size, patience=ae.patience,
                          learning_rate=ae.learning_rate, code_size=ae.code_size,
                          conv_filters=tuple(ae.conv_filters))  # fmt: skip
    results = []
    for name in model_names(names or list(ae.models)):
        full = f"{name}_ae"
        model_dir = Path(out_dir) / full
        info = {
            "name": full, "dataset": str(Path(dataset_dir).resolve()), "dataset_seed": data.config["seed"],
            "dataset_fingerprint": data.fingerprint, "dataset_shape": list(x.shape), "settings": asdict(settings),
            "seed": seed, "validation_maps": n_val,
        }  # fmt: skip
        done = model_dir / "train.json"
        if done.is_file() and (model_dir / f"{full}.keras").is_file():
            previous = json.loads(done.read_text())
            if {k: previous.get(k) for k in info} == json.loads(json.dumps(info)):
                results.append(previous)
                continue
        if not quiet:
            print(f"[train-ae] {full}: {len(x) - n_val} training maps, {n_val} validation", flush=True)
        start = time.perf_counter()
        model, history = train_autoencoder(
            name, x[:-n_val], x[-n_val:], settings, model_dir / "training.csv", seed=seed, verbose=0 if quiet else 2
        )
        seconds = time.perf_counter() - start
        save_model(model, model_dir / f"{full}.keras")
        info.update(epochs_run=len(history["loss"]), history=history, best_val_loss=min(history["val_loss"]),
                    train_seconds=round(seconds, 2))  # fmt: skip
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


def select_models(models_dir: str | Path, names: list[str] | None) -> dict[str, Path]:
    """The trained models ``names`` (every trained one if None); a missing one is an InputError."""
    found = find_models(models_dir)
    if not names:
        return found
    wanted = [f"{n}_ae" for n in model_names(names)]
    missing = [n for n in wanted if n not in found]
    if missing:
        raise InputError(f"{models_dir}: no trained model {missing[0]} (found: {', '.join(found)})")
    return {n: found[n] for n in wanted}


def _load(path: Path):
    from models.ae_training import load_model

    try:
        return load_model(path)
    except Exception as exc:  # keras raises many types for a damaged archive
        raise InputError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None


def _training_info(path: Path) -> dict[str, Any]:
    done = path.parent / "train.json"
    try:
        info = json.loads(done.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _shape_text(shape: Any) -> str:
    return "x".join(str(v) for v in shape)


def check_training(path: Path, data: Dataset, dataset_dir: str | Path) -> dict[str, Any]:
    """A model (``<dir>/<name>.keras``) must have been trained on this dataset: its ``train.json``
    records the dataset's fingerprint (a hash of dataset_config.json's parameters) and map shape.
    Another map shape, another fingerprint, or no record at all is an InputError naming the model
    directory and the dataset. Returns the training record."""
    model_dir, retrain = path.parent, f"retrain it with `train-ae --dataset {dataset_dir}`"
    info = _training_info(path)
    shape = tuple(int(v) for v in data.config["map_shape"])
    recorded = info.get("dataset_shape")
    if isinstance(recorded, list) and len(recorded) == 3 and tuple(recorded[1:]) != shape:
        raise InputError(
            f"{model_dir}: a model of {_shape_text(recorded[1:])} maps (trained on {info.get('dataset', '?')}), "
            f"the dataset {dataset_dir} has {_shape_text(shape)} maps; {retrain}"
        )
    fingerprint = info.get("dataset_fingerprint")
    if fingerprint is None:
        raise InputError(
            f"{model_dir}: no train.json recording the dataset the model was trained on (missing, unreadable or "
            f"written by an older version), so it cannot be checked against {dataset_dir}; {retrain}"
        )
    if fingerprint != data.fingerprint:
        raise InputError(
            f"{model_dir}: trained on another dataset ({info.get('dataset', '?')}, fingerprint {fingerprint}) than "
            f"{dataset_dir} (fingerprint {data.fingerprint}); {retrain}"
        )
    return info


def load_checked(found: dict[str, Path], data: Dataset, dataset_dir: str | Path) -> dict[str, tuple[Any, dict[str, Any]]]:
    """``{name: (model, training record)}`` of the models ``found``, each checked against the
    dataset (:func:`check_training`; then the loaded model's input shape) before any is used, so a
    mismatch fails before anything is written."""
    for path in found.values():
        check_training(path, data, dataset_dir)
    shape = tuple(int(v) for v in data.config["map_shape"])
    out = {}
    for name, path in found.items():
        model = _load(path)
        try:
            model_shape = tuple(int(v) for v in model.input_shape[1:])
        except (AttributeError, TypeError, ValueError):
            model_shape = None
        if model_shape != shape:
            shown = _shape_text(model_shape) if model_shape else "unknown"
            raise InputError(
                f"{path.parent}: the saved model takes {shown} maps, the dataset {dataset_dir} has {_shape_text(shape)} "
                f"maps (its train.json does not describe it); retrain it with `train-ae --dataset {dataset_dir}`"
            )
        out[name] = (model, _training_info(path))
    return out


# -- the protocol's realisations ---------------------------------------------------------------
def _check_dataset(data: Dataset, real: Realizations, dataset_dir: Path) -> None:
    """The dataset must be the realisations' range and background model (else its maps and nulls
    would not describe these spectra)."""
    edges = np.asarray(real.edges, dtype=float)
    if data.edges.shape != edges.shape or not np.allclose(data.edges, edges):
        raise InputError(
            f"{dataset_dir}: maps of {data.edges[0]:g}-{data.edges[-1]:g} GeV in {len(data.edges) - 1} bins, the "
            f"realisations span {edges[0]:g}-{edges[-1]:g} GeV in {len(edges) - 1}; rebuild the dataset"
        )
    expected = np.asarray(data.config["background_expected"], dtype=float)
    if not np.allclose(expected, real.expected_background(), rtol=1e-6, atol=1e-9):
        raise InputError(f"{dataset_dir}: built from another background model than the realisations'; rebuild the dataset")


def _quantiles(p: np.ndarray, bound: np.ndarray) -> dict[str, list]:
    """Median and 16/84 % band of p over realisations per size (via Z, as the entries), with bounds."""
    from scipy import stats

    from analysis.sensitivity.summary import band, z_from_p

    out: dict[str, list] = {"p_values": [], "p_lo": [], "p_hi": [], "bound": [], "bound_lo": [], "bound_hi": []}
    z = z_from_p(p)
    for k in range(p.shape[1]):
        values, flags = band(z[:, k], bound[:, k])
        out["p_values"].append(float(stats.norm.sf(values.median)))
        out["p_lo"].append(float(stats.norm.sf(values.hi)))  # the 84 % Z quantile: the band's small p
        out["p_hi"].append(float(stats.norm.sf(values.lo)))
        out["bound"].append(flags[0.5])
        out["bound_lo"].append(flags[0.84])
        out["bound_hi"].append(flags[0.16])
    return out


def _score(model, null_maps: np.ndarray, maps: np.ndarray, tail_fraction: float, max_extrapolation: float) -> dict[str, Any]:
    """One model on the null maps and the maps to test (one predict call): the null's fitted
    distribution, the maps' losses, p-values and bound flags, and the reconstructions."""
    from models.ae_training import reconstruct_with_mse

    outputs, mse = reconstruct_with_mse(model, np.concatenate([null_maps, maps]))
    null = NullDistribution.fit(mse[: len(null_maps)], tail_fraction, max_extrapolation)
    losses = mse[len(null_maps) :]
    p, bound = null.p_value(losses)
    return {"null": null, "null_losses": mse[: len(null_maps)], "losses": losses, "p": p, "bound": bound,
            "outputs": outputs[len(null_maps) :]}  # fmt: skip


def ae_sensitivity(
    real: Realizations, dataset_dir: str | Path, models_dir: str | Path, out_dir: str | Path, cfg: AnalysisConfig,
    quiet: bool = False, names: list[str] | None = None,
) -> list[MethodEntry]:  # fmt: skip
    """Score every trained model (``cfg.autoencoders.models`` unless ``names``) on the realisations.

    For each model: the losses of the dataset's test-background maps define the null
    (``NullDistribution.fit`` with ``cfg.sensitivity.tail_fraction``/``max_extrapolation``); every
    realisation spectrum of ``real.spectra()`` (R x len(n_signal) x bins) is mapped with the
    dataset's reference ensemble and scored: p = P(null loss >= loss), local = global. The sample's
    own background-only spectrum over the range is scored too (``details.sample_background``).
    Writes ``sensitivity.json`` (one entry per model), ``pvalue_vs_signal.json`` (median p over
    realisations per N with its 16/84 % band and bound flags) and the plots. Returns the entries.
    """
    from analysis.core.plots import save
    from analysis.sensitivity.model import merge_entries
    from analysis.sensitivity.summary import MethodResult, summarise, z_from_p
    from analysis.wavelets.plots import null_loss_figure, pvalue_vs_signal_figure, reconstructions_figure

    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    data = load_dataset(dataset_dir)
    _check_dataset(data, real, dataset_dir)
    models = load_checked(select_models(models_dir, names or list(cfg.autoencoders.models)), data, dataset_dir)
    spectra = real.spectra()  # (R, K, bins)
    n_real, n_sizes, n_bins = spectra.shape
    sample = np.histogram(real.background_mjj, real.edges)[0].astype(float)
    # the realisations' maps, then the sample's own spectrum's (last)
    maps = data.neg_log_p_maps(np.concatenate([spectra.reshape(-1, n_bins), sample[None]])) / data.scale
    null_maps = data.test_backgrounds / data.scale
    sizes = [int(n) for n in real.n_signal]
    fit = data.config["source"].get("background_fit", {})
    background_model = {k: fit.get(k) for k in ("model", "chi2", "ndf", "chi2_ndf")}
    summary: dict[str, Any] = {
        "signal_sizes": sizes, "source": "realizations", "signal": real.signal, "realizations": n_real,
        "fingerprint": real.fingerprint, "n_test_backgrounds": len(null_maps), "statistic": STATISTIC,
        "p_value": "median over realisations of P(null loss >= loss); p_lo/p_hi: the 16/84 % band; "
                   "bound, bound_lo, bound_hi: that p is only an upper bound (past the toys and any trusted tail)",
        "background_model": background_model, "models": [],
    }  # fmt: skip
    picks = {f"N = {sizes[0]}": 0, f"N = {sizes[-1]}": n_sizes - 1}  # realisation 0's maps (rows of `maps`)
    entries, shown = [], {}
    for name, (model, training) in models.items():
        sc = _score(model, null_maps, maps, cfg.sensitivity.tail_fraction, cfg.sensitivity.max_extrapolation)
        null = sc["null"]
        losses = sc["losses"][:-1].reshape(n_real, n_sizes)
        p, bound = sc["p"][:-1].reshape(n_real, n_sizes), sc["bound"][:-1].reshape(n_real, n_sizes)
        sample_loss, sample_p, sample_bound = float(sc["losses"][-1]), float(sc["p"][-1]), bool(sc["bound"][-1])
        shown[name] = {label: sc["outputs"][i] for label, i in picks.items()}
        details = {
            "statistic": STATISTIC, "null": {**null.summary(), "source": "test-background maps of the dataset"},
            "null_median_loss": float(np.median(sc["null_losses"])),
            "median_loss": [float(v) for v in np.median(losses, axis=0)],
            "sample_background": {
                "loss": sample_loss, "p": sample_p, "bound": sample_bound, "z": float(z_from_p(sample_p)),
                "what": "the background sample's own m_jj spectrum over the range (not a realisation): one draw "
                        "about the model, so its p should look like a background-only realisation's",
            },
            "map_shape": list(maps.shape[1:]), "reference_toys": int(data.config["toys"]),
            "background_model": background_model,
            "training": {k: training.get(k) for k in ("epochs_run", "best_val_loss", "train_seconds")},
        }  # fmt: skip
        notes = [
            "maps: |CWT| of each realisation's spectrum over the searched range, every cell's local p against the "
            "dataset's reference toys of the background model; the model trained on background-model toys only",
        ]
        result = MethodResult(method=name, signal=real.signal, n_signal=sizes, p_local=p, p_global=p,
                              bound_local=bound, bound_global=bound)  # fmt: skip
        entry = summarise(
            result, background_events=real.background_events, fingerprint=real.fingerprint,
            z_global_meaning=Z_GLOBAL_MEANING, s_over_b=real.s_over_b(), notes=notes, details=details,
        )  # fmt: skip
        entries.append(entry)
        quantiles = _quantiles(p, bound)
        summary["models"].append({
            "name": name, **quantiles, "median_losses": details["median_loss"],
            "null_median_loss": details["null_median_loss"], "sample_background_p": sample_p,
            "sample_background_bound": sample_bound, "null": details["null"],
        })  # fmt: skip
        curve = {"null": null, "null_losses": sc["null_losses"], "losses": losses, "p": p, "bound": bound,
                 "sample": (sample_loss, sample_p, sample_bound)}  # fmt: skip
        save(null_loss_figure(name, curve, sizes), out_dir / f"losses_{name}.png")
        if not quiet:
            text = ", ".join(
                f"{n}: {'<' if b else ''}{v:.3g}" for n, v, b in zip(sizes, quantiles["p_values"], quantiles["bound"], strict=True)
            )
            print(f"[autoencoders] {name}: median p = {{{text}}}; sample background p = "
                  f"{'<' if sample_bound else ''}{sample_p:.3g}; 3 sigma at {entry.crossing_text()}", flush=True)  # fmt: skip
    inputs = {label: maps[i] for label, i in picks.items()}
    save(reconstructions_figure(inputs, shown, "realisation 0"), out_dir / "reconstructions.png")
    merge_entries(out_dir / "sensitivity.json", entries, real.protocol())
    write_json(out_dir / "pvalue_vs_signal.json", summary)
    title = f"Autoencoders on {n_real} realisations ({real.signal})"
    save(pvalue_vs_signal_figure(sizes, summary["models"], len(null_maps), title=title), out_dir / "pvalue_vs_signal.png")
    return entries


# -- toy datasets ------------------------------------------------------------------------------
def scan_model(model, data: Dataset, tail_fraction: float = 0.05, max_extrapolation: float = 1000.0) -> dict[str, Any]:
    """Losses, efficiency p-values (with bounds) and AUCs of one model on a toy dataset."""
    from models.ae_training import reconstruction_mse

    background = reconstruction_mse(model, data.test_backgrounds / data.scale)
    null = NullDistribution.fit(background, tail_fraction, max_extrapolation)
    sizes = sorted(data.signals)
    losses = {s: reconstruction_mse(model, data.signals[s] / data.scale) for s in sizes}
    p_values = [efficiency_p_value(null, losses[s]) for s in sizes]
    return {
        "background_losses": background,
        "signal_losses": losses,
        "null": null,
        "p_values": [p for p, _ in p_values],
        "bounds": [b for _, b in p_values],
        "aucs": [
            float(roc_auc_score(np.r_[np.zeros(len(background)), np.ones(len(losses[s]))], np.r_[background, losses[s]]))
            for s in sizes
        ],
        "median_losses": [float(np.median(losses[s])) for s in sizes],
        "median_background_loss": float(np.median(background)),
    }


def pvalue_scan(
    dataset_dir: str | Path, models_dir: str | Path, out_dir: str | Path, names: list[str] | None = None,
    quiet: bool = False, *, tail_fraction: float = 0.05, max_extrapolation: float = 1000.0,
) -> dict[str, Any]:  # fmt: skip
    """Scan every trained model on a toy dataset's test signals: pvalue_vs_signal.json and plots.

    No ``sensitivity.json``: toy datasets are not the protocol's realisations (the chain's
    entries come from :func:`ae_sensitivity`). Every model must have been trained on this dataset
    (:func:`load_checked`), checked before anything is written."""
    from analysis.core.plots import save
    from analysis.wavelets.plots import loss_figure, pvalue_vs_signal_figure, reconstruction_figure
    from models.ae_training import reconstruct

    out_dir = Path(out_dir)
    data = load_dataset(dataset_dir)
    sizes = sorted(data.signals)
    if not sizes:
        raise InputError(f"{dataset_dir}: no test signals (a dataset of the realisations is scored by the chain's autoencoder stage)")
    models = load_checked(select_models(models_dir, names), data, dataset_dir)
    n_bg = len(data.test_backgrounds)
    summary: dict[str, Any] = {
        "signal_sizes": sizes, "source": "toys", "models": [], "n_test_backgrounds": n_bg,
        "dataset": str(Path(dataset_dir).resolve()), "statistic": STATISTIC,
        "p_value": "P(background loss >= median signal loss): empirical (k+1)/(M+1) among the M test backgrounds, "
                   "a fitted exponential tail past them, or an upper bound (bound: true)",
    }  # fmt: skip
    for name, (model, _) in models.items():
        result = scan_model(model, data, tail_fraction, max_extrapolation)
        summary["models"].append({
            "name": name, "p_values": result["p_values"], "bound": result["bounds"], "aucs": result["aucs"],
            "median_losses": result["median_losses"], "median_background_loss": result["median_background_loss"],
            "null": result["null"].summary(),
        })  # fmt: skip
        save(loss_figure(name, result["background_losses"], result["signal_losses"]), out_dir / f"losses_{name}.png")
        largest = sizes[-1]
        inputs = {"background": data.test_backgrounds[0] / data.scale, f"signal {largest:g}": data.signals[largest][0] / data.scale}
        outputs = reconstruct(model, np.stack(list(inputs.values())))
        pairs = {label: (inputs[label], outputs[i]) for i, label in enumerate(inputs)}
        save(reconstruction_figure(name, pairs), out_dir / f"reconstruction_{name}.png")
        if not quiet:
            shown = ", ".join(
                f"{s:g}: {'<' if b else ''}{p:.3g}" for s, p, b in zip(sizes, result["p_values"], result["bounds"], strict=True)
            )
            print(f"[pvalue-scan] {name}: p = {{{shown}}}", flush=True)
    write_json(out_dir / "pvalue_vs_signal.json", summary)
    save(pvalue_vs_signal_figure(sizes, summary["models"], n_bg), out_dir / "pvalue_vs_signal.png")
    return summary
