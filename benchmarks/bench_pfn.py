"""Training throughput (jets x epochs / s) of our packed PFN against energyflow.archs.PFN.

Both train the same architecture with the same batch size on the same processed jets in the
same run (their test AUCs must agree within statistical error); ratio = ours / EnergyFlow.
EnergyFlow's PFN is trained as a user would: its own ``fit`` on zero-padded arrays (the
settings of models.energyflow_pfn.train_energyflow_pfn, with a timing callback).

Timing, the same for both: the wall time of epochs 2..E of ``fit`` (training steps and the
per-epoch validation), taken by an epoch callback; the first epoch, which holds the one-off
graph tracing (and XLA compilation, if on), is left out. Each model is trained ``--repeats``
times (2 with --quick, else 3), alternating ours / EnergyFlow, and its throughput is train
jets / the median of all those epoch times (robust to other work on a shared machine; the
garbage of earlier trainings is collected before each). The full fits (from building the
model to the end of the last epoch: tracing/compilation included, the fit's teardown not, as
tf.data's occasionally stalls for seconds, in either framework; median over the repetitions)
are reported too, as ``*_full_fit``. The headline is our PFN as configured by default
(``scan.phi_dtype``: float32); the other precision is reported as a variant (``*_bf16`` keys:
Phi's hidden layers in mixed_bfloat16, its input layer, weights, the latent sum, F and the
optimiser in float32; or ``*_float32``). EnergyFlow runs Phi on ``padded_to`` slots per jet,
ours on the real constituents (``mean_constituents``): their quotient, ``work_ratio`` (2.8-3.0
here), bounds the ratio at equal arithmetic speed.

Prints one JSON line, writes results/benchmarks/bench_pfn.json.

  python benchmarks/bench_pfn.py --events results/default/process [--quick] [--jit auto|on|off]
      [--phi-dtype float32|mixed_bfloat16|auto] [--no-variant]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

TIMING = (
    "median wall time of epochs 2..E of fit (training + per-epoch validation; the first epoch, with "
    "tracing/compilation, excluded) over {repeats} alternating repetitions, identical for both models"
)


def epoch_timer(base: type) -> object:
    """An epoch-timing callback for Keras 3 (``keras.callbacks.Callback``) or tf_keras."""

    class EpochTimer(base):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self.start)

        def on_train_end(self, logs: dict | None = None) -> None:
            self.end = time.perf_counter()

    return EpochTimer()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, default=REPO / "results" / "default" / "process",
                        help="a `process` output directory (cutflow.json, events/)")
    parser.add_argument("--quick", action="store_true", help="small run (under two minutes)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="trainings of each model, alternating (default: 2 quick, 3 otherwise)")
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="XLA for our PFN")
    parser.add_argument("--phi-dtype", choices=["float32", "mixed_bfloat16", "auto"], default=None,
                        help="Phi's precision in the headline (default: the default config's scan.phi_dtype)")
    parser.add_argument("--no-variant", action="store_true",
                        help="skip the variant of ours in the other precision (*_float32 or *_bf16 keys)")
    args = parser.parse_args()  # fmt: skip
    repeats = max(1, args.repeats or (2 if args.quick else 3))

    import awkward as ak
    import keras
    import tf_keras

    from analysis.core.config import load_config
    from analysis.pfn.inputs import preprocess_awkward
    from analysis.pfn.scan import load_processed
    from models.batches import to_padded
    from models.energyflow_pfn import predict_energyflow_pfn, train_energyflow_pfn
    from models.pfn import resolve_phi_dtype
    from models.training import TrainSettings, auc, predict_pfn, train_pfn

    columns, _ = load_processed(args.events)
    events = ak.concatenate(list(columns.values()))
    jets = ak.flatten(events.jets, axis=1)
    n = min(len(jets), 6000 if args.quick else 30000)
    packed = preprocess_awkward(jets.constituents[:n], jets.phi[:n])
    # a physics label with a real answer: gluon- versus quark-matched jets
    flavour = np.abs(ak.to_numpy(jets.partonFlavour[:n]))
    use = np.flatnonzero((flavour == 21) | ((flavour >= 1) & (flavour <= 5)))
    label = (flavour[use] == 21).astype(int)
    packed = packed.take(use)
    n = len(use)
    n_train, n_test = int(0.7 * n), int(0.2 * n)
    tr, te, va = np.arange(n_train), np.arange(n_train, n_train + n_test), np.arange(n_train + n_test, n)
    jit = {"auto": "auto", "on": True, "off": False}[args.jit]
    phi_dtype = resolve_phi_dtype(args.phi_dtype or load_config(None).scan.phi_dtype)
    settings = TrainSettings(epochs=4 if args.quick else 10, batch_size=500, jit_compile=jit, phi_dtype=phi_dtype)
    variants = {"ours": settings}
    if not args.no_variant:
        other, key = ("float32", "ours_float32") if phi_dtype == "mixed_bfloat16" else ("mixed_bfloat16", "ours_bf16")
        variants[key] = dataclasses.replace(settings, phi_dtype=other)
    max_len = int(packed.counts.max())
    x = to_padded(packed, max_len)
    train_jets, val_jets, test_jets = packed.take(tr), packed.take(va), packed.take(te)

    runs: dict[str, list[dict]] = {name: [] for name in [*variants, "energyflow"]}
    xla = False
    for _ in range(repeats):
        for name, variant in variants.items():
            gc.collect()  # the previous trainings' garbage, outside the timed region
            timer = epoch_timer(keras.callbacks.Callback)
            start = time.perf_counter()
            model = train_pfn(train_jets, label[tr], variant, 1, val_jets, label[va], callbacks=[timer])
            full = timer.end - start
            probs, used = predict_pfn(model, test_jets)
            runs[name].append({"epochs": timer.times, "full": full, "auc": auc(label[te][used], probs[:, 1])})
            xla = bool(model.jit_compile)

        gc.collect()
        timer = epoch_timer(tf_keras.callbacks.Callback)
        start = time.perf_counter()
        pfn = train_energyflow_pfn(x[tr], label[tr], settings, 1, x[va], label[va], callbacks=[timer])
        full = timer.end - start
        score = auc(label[te], predict_energyflow_pfn(pfn, x[te])[:, 1])
        runs["energyflow"].append({"epochs": timer.times, "full": full, "auc": score})

    def steady(name: str) -> float:
        return n_train / float(np.median([t for r in runs[name] for t in r["epochs"][1:]]))

    def full_fit(name: str) -> float:
        return n_train * settings.epochs / float(np.median([r["full"] for r in runs[name]]))

    auc_ef = runs["energyflow"][0]["auc"]
    # AUC statistical error (Hanley-McNeil) of the test set
    n_pos, n_neg = int(label[te].sum()), int(len(te) - label[te].sum())
    a = auc_ef
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    sigma = float(np.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)))
    base, base_full = steady("energyflow"), full_fit("energyflow")
    result = {
        "name": "bench_pfn", "value": round(steady("ours"), 1), "unit": "jets*epochs/s",
        "baseline": round(base, 1), "ratio": round(steady("ours") / base, 3),
        "baseline_name": "energyflow.archs.PFN (padded, tf_keras)", "timing": TIMING.format(repeats=repeats),
        "timing_full_fit": "model build to end of last epoch (tracing/compilation included), median of repetitions",
        "value_full_fit": round(full_fit("ours"), 1), "baseline_full_fit": round(base_full, 1),
        "ratio_full_fit": round(full_fit("ours") / base_full, 3),
    }  # fmt: skip
    for name in variants:
        key = name.removeprefix("ours")
        auc_ours = runs[name][0]["auc"]
        if key:
            result[f"value{key}"], result[f"ratio{key}"] = round(steady(name), 1), round(steady(name) / base, 3)
            result[f"ratio_full_fit{key}"] = round(full_fit(name) / base_full, 3)
        result[f"auc_ours{key}"] = round(auc_ours, 4)
        result[f"aucs_agree{key}"] = bool(abs(auc_ours - auc_ef) < 3 * np.sqrt(2) * sigma)
        result[f"reproducible{key}"] = all(r["auc"] == auc_ours for r in runs[name])
    result.update({
        "auc_energyflow": round(auc_ef, 4), "auc_sigma": round(sigma, 4),
        "first_epoch_s": {k: round(float(np.median([r["epochs"][0] for r in v])), 2) for k, v in runs.items()},
        "steady_epoch_s": {k: [round(float(np.mean(r["epochs"][1:])), 3) for r in v] for k, v in runs.items()},
        "full_fit_s": {k: [round(r["full"], 2) for r in v] for k, v in runs.items()},
        "xla": xla, "phi_dtype": settings.phi_dtype, "train_jets": n_train, "epochs": settings.epochs,
        "batch_size": settings.batch_size, "mean_constituents": round(float(packed.counts.mean()), 2),
        "padded_to": max_len, "work_ratio": round(max_len / float(packed.counts.mean()), 3),
        "load_avg_1min": round(os.getloadavg()[0], 2), "quick": args.quick,
    })  # fmt: skip
    from analysis.core.atomic import write_json

    write_json(REPO / "results" / "benchmarks" / "bench_pfn.json", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
