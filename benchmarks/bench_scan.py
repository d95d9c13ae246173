"""PFN scan throughput: trainings per hour and the projected wall time of the reference scan.

The reference analysis trained its adjacent-bin PFNs on 4 GPUs in 2-3 hours (baseline: 150
minutes). This benchmark times real scan trainings at the reference settings on this machine
and projects the wall time of the reference scan, ``--trainings`` (600: 3 sample sizes x 50
samples x 4 bin pairs) trainings; value = projected minutes, ratio = baseline / value (target:
value <= 60 minutes on 2 cores, ratio >= 2.5).

Method. The trainings are the scan's own: ``configs/full.yaml`` (the reference scale: 12000
training and 3000 test jets per bin pair at 50000 events per sample, 10 epochs, batch 500,
Phi (100, 100, 128), F (100, 100, 100), the validation loss after every epoch on up to 3000
of the pair's other jets (``scan.val_jets``)), ``setup_from_config`` -> ``run_task``
(draw_sample, bin_pair_jets, split_events, train_split -> models.training.train_and_score), run
as ``run_scan`` runs them:
``run_on_devices`` over ``training_devices()``, i.e. one training at a time per device in a
worker thread that reuses its compiled model. On a CPU-only machine without ``--cpu-devices``
that is one device: one training at a time, using every core through TensorFlow's thread pool.
The first training of each device's thread (tracing, model build) is timed but kept out of the
per-training time (the scan pays it once per device); ``--repeats`` further trainings (by
default one per kept bin pair and device, or 2 per device with ``--quick``), cycling over the
pairs of different samples, give the per-training time (their mean: the scan's mix of pairs).
The floor: ``flop_per_training`` (Phi's floating-point operations, forward and backward on the
training jets, forward on the validation jets, every epoch) at ``matmul_flop_per_s``, the rate
TensorFlow reaches on Phi's two largest layers alone.
trainings/hour = devices x 3600 / that time; the projection is (first - per-training, the
one-off tracing) + N / devices x per-training seconds.

Input jets: a ``process`` output directory (``--events``; default results/default/process);
without one, a qcd sample is generated and processed with bench_process's helpers (cached
under data/). The processed background is far smaller than the reference's ~500k events, so
its events are repeated until a 50000-event sample can be drawn (copies of events: the work
of a training depends on its jet and constituent counts, not on which events they are).

``--quick`` scales: 10000 events per sample (so 2400 training / 600 test jets and a fifth of
the validation jets) and 3 epochs; the per-training time is multiplied by
(50000 / 10000) x (10 / 3) before the projection (training cost taken as linear in jets x
epochs, which overstates the fixed per-training cost).

Prints one JSON line (with ``assumes``: what the projection takes for granted); writes
results/benchmarks/bench_scan.json.

  python benchmarks/bench_scan.py --events results/default/process [--quick] [--cpu-devices N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


BASELINE_MIN = 150.0  # the reference analysis: 2-3 h of PFN trainings on 4 GPUs
TARGET_MIN = 60.0
REFERENCE_EVENTS = 50000
REFERENCE_EPOCHS = 10


def processed_events(events: Path | None, quick: bool) -> Path:
    """A ``process`` output directory: ``events`` if it exists, else a generated qcd sample
    (bench_process's cached one) processed once into data/bench_scan/."""
    if events is not None and (events / "cutflow.json").is_file():
        return events
    from bench_process import sample_fileset

    from analysis.core.config import load_config
    from analysis.events.processing import process_fileset

    cfg = load_config(None, {"injection": {"kind": "none"}})
    n_events = 6_000 if quick else 60_000
    out = REPO / "data" / "bench_scan" / f"process_qcd_{n_events}_{cfg.seed}"
    if not (out / "cutflow.json").is_file():
        process_fileset(sample_fileset(n_events, cfg.seed), out, cfg, quiet=True)
    return out


def repeated(pool: object, times: int) -> object:
    """The event pool with its events repeated ``times`` times (copies in order)."""
    from analysis.pfn.scan import EventPool

    events = np.tile(np.arange(len(pool)), times)
    jets, _ = pool.jets_of(events)
    counts = np.diff(pool.jet_offsets)[events]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return EventPool(pool.mjj[events], jets, offsets, pool.particle_ids)


def flop_floor(runs: list, setup: object, jets: object, scale: float) -> dict[str, float]:
    """What the trainings cost in floating-point operations, and the fastest this machine does them.

    Phi (the per-particle network) is nearly all of a PFN's work: per constituent and epoch one
    forward and two backward products (input and weight gradients) for every training jet, one
    forward for every validation jet. ``matmul_flop_per_s``: TensorFlow's rate on Phi's two largest
    dense layers for a batch of the scan's size (one batch of 500 jets), forward only, on every core.
    """
    import tensorflow as tf

    sizes = [4, *setup.settings.phi_sizes]
    macs = sum(a * b for a, b in itertools.pairwise(sizes))
    per_jet = float(jets.counts.mean())
    epochs = setup.settings.epochs
    flop = [2 * macs * per_jet * epochs * (3 * r["n_train"] + r["n_val"]) * scale for _, r, _ in runs]
    n = int(setup.settings.batch_size * per_jet)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((n, sizes[-3]), dtype=np.float32))
    w1 = tf.constant(rng.random((sizes[-3], sizes[-2]), dtype=np.float32))
    w2 = tf.constant(rng.random((sizes[-2], sizes[-1]), dtype=np.float32))
    layers = tf.function(lambda x: tf.reduce_sum(tf.nn.relu(tf.nn.relu(x @ w1) @ w2)))
    layers(x)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            layers(x)
        best = min(best, (time.perf_counter() - start) / 20)
    rate = 2 * n * (sizes[-3] * sizes[-2] + sizes[-2] * sizes[-1]) / best
    return {"flop_per_training": float(np.mean(flop)), "matmul_flop_per_s": rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, default=REPO / "results" / "default" / "process",
                        help="a `process` output directory (else a sample is generated and processed)")
    parser.add_argument("--quick", action="store_true", help="scaled-down trainings (a few minutes)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed trainings after the first (default: 2 quick, else one per bin pair)")
    parser.add_argument("--trainings", type=int, default=600, help="trainings of the projected scan")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="split the CPU into N logical devices, as `scan --cpu-devices N` (default: as `scan`)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "bench_scan.json")
    args = parser.parse_args(argv)  # fmt: skip

    if args.cpu_devices:
        from models.devices import split_cpu

        split_cpu(args.cpu_devices)
    from analysis.core.atomic import write_json
    from analysis.core.config import load_config
    from analysis.pfn.scan import (
        ScanInputs,
        Task,
        kept_pairs,
        load_processed,
        run_task,
        scan_inputs,
        setup_from_config,
    )
    from models.devices import run_on_devices, training_devices

    size = 10_000 if args.quick else REFERENCE_EVENTS
    epochs = 3 if args.quick else REFERENCE_EPOCHS
    scale = (REFERENCE_EVENTS / size) * (REFERENCE_EPOCHS / epochs)
    events_dir = processed_events(args.events, args.quick)
    cfg = load_config(REPO / "configs" / "full.yaml")
    columns, metadata = load_processed(events_dir)
    inputs = scan_inputs(columns, metadata, cfg, "none")
    n_background = len(inputs.background)
    copies = math.ceil(size / n_background)
    inputs = ScanInputs(repeated(inputs.background, copies), None, "none", None, inputs.fingerprint)
    setup = setup_from_config(cfg, inputs, 0, sizes=[size], n_samples=1, epochs=epochs)
    pairs = kept_pairs(setup, inputs, size, lambda message: print(f"warning: {message}", file=sys.stderr))
    devices = training_devices()
    n_dev = len(devices)
    repeats = max(1, args.repeats or (2 if args.quick else len(pairs)) * n_dev)
    # first, one per device (not in the mean: each device thread traces its model once), then the pairs in turn
    tasks = [Task(size, k, pairs[-1]) for k in range(n_dev)]
    tasks += [Task(size, n_dev + k, pairs[k % len(pairs)]) for k in range(repeats)]

    def timed(task: Task) -> tuple[dict, float]:
        start = time.perf_counter()
        record = run_task(setup, inputs, task)
        return record, time.perf_counter() - start

    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    runs = sorted(((t, *r) for t, r, _ in run_on_devices(tasks, timed, devices)), key=lambda r: r[0].sample)
    wall = time.perf_counter() - wall
    seconds = [s for _, _, s in runs]
    first, steady = float(np.mean(seconds[:n_dev])), float(np.mean(seconds[n_dev:]))
    per_training = steady * scale
    projected_s = max(0.0, first - steady) + args.trainings / n_dev * per_training  # tracing once, unscaled
    floor = flop_floor(runs, setup, inputs.background.jets, scale)
    value = projected_s / 60
    records = [r for _, r, _ in runs]
    jets = inputs.background.jets
    result = {
        "name": "bench_scan", "value": round(value, 1), "unit": "min",
        "baseline": BASELINE_MIN, "ratio": round(BASELINE_MIN / value, 3),
        "baseline_name": "reference analysis: its PFN trainings took 2-3 h on 4 GPUs",
        "target": f"value <= {TARGET_MIN:g} min (ratio >= {BASELINE_MIN / TARGET_MIN:g})",
        "meets_target": bool(value <= TARGET_MIN),
        "trainings_per_hour": round(n_dev * 3600 / per_training, 1),
        "training_s": round(per_training, 2), "first_training_s": round(first, 2), "wall_s": round(wall, 1),
        **floor, "floor_projection_min": round(args.trainings * floor["flop_per_training"] / floor["matmul_flop_per_s"] / 60, 1),
        "measured_training_s": [round(s, 2) for s in seconds], "scale": round(scale, 3),
        "projected_trainings": args.trainings,
        "assumes": (
            f"{args.trainings} trainings at the reference settings (configs/full.yaml: 12k train / 3k test jets per "
            f"pair at 50k events, up to 3k of the pair's other jets validated every epoch, 10 epochs, batch 500, Phi (100,100,128), "
            f"F (100,100,100)), every training costing the mean of the timed ones (no growth over the scan; the "
            f"reference's 70k/100k sizes scale train jets up by 1.4/2x in this project, not counted), run as "
            f"run_scan runs them: one at a time per device on {n_dev} device(s) ({', '.join(devices)}), "
            f"the first on each device paying tracing once; no I/O (event loading, checkpoints, plots) counted; "
            f"floor_projection_min: the {args.trainings} trainings' Phi FLOPs at matmul_flop_per_s, the machine's "
            f"rate on Phi's largest layers (a bound no training reaches: no F, optimiser or data work)"
            + (f"; quick: measured at {size} events and {epochs} epochs, times x {scale:.3g}" if args.quick else "")
        ),
        "devices": devices, "events_per_sample": size, "epochs": epochs,
        "n_train": [r["n_train"] for r in records], "n_val": [r["n_val"] for r in records],
        "n_test": [r["n_test"] for r in records], "pairs": [r["bins"] for r in records],
        "aucs": [round(r["auc"], 4) for r in records],
        "mean_constituents": round(float(jets.counts.mean()), 2),
        "background_events": n_background, "copies": copies, "events_dir": str(events_dir),
        "phi_dtype": setup.settings.phi_dtype, "validate_each_epoch": setup.settings.validate, "val_jets": setup.val_jets,
        "cores": os.cpu_count(), "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "quick": args.quick,
    }  # fmt: skip
    write_json(args.out, result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
