"""Benchmark: building a p-value map dataset at the reference sizes.

Reference sizes: 10,000 background toys for the p-value reference, 25,000 training maps, 5,000
test backgrounds and 5 signal sizes x 1,000 maps (45,000 spectra; 35,000 maps to rank).

* ours: analysis.wavelets.pvalues (chunked single-precision CWT with precomputed kernels, rebin by one
  matrix product, per-cell sorted reference and exact searchsorted counts). Full mode builds
  everything; ``--quick`` builds the full 10,000-toy reference and 1/10 of the 35,000 maps,
  and scales the map part by 10 (the per-map cost is constant: CWT and counts per map).
* baseline: the reference tool's algorithm: one ``pywt.cwt`` per toy, then per cell a
  100-point grid of the reference's survival function (a Python loop over the grid per cell)
  and, for each map, per cell a Python loop over that grid to look the p-value up. Timed on a
  subset (spectra, cells, maps) and scaled to the reference sizes, in the same run.
* check: on the timed maps every exact p-value lies between the baseline's grid values at the
  grid points bracketing the cell's value (equal up to the grid's resolution).

Prints one JSON line and writes results/benchmarks/bench_pvalue_dataset.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from analysis.core.atomic import write_json, write_npy  # noqa: E402
from analysis.toys.definitions import parse_entries  # noqa: E402
from analysis.wavelets.cwt import cwt_modulus, rebin  # noqa: E402
from analysis.wavelets.dataset import toy_inputs  # noqa: E402
from analysis.wavelets.pvalues import ModulusMaps, build_reference, pvalue_maps  # noqa: E402

TOYS, TRAIN, TEST, SIGNALS, PER_SIGNAL = 10_000, 25_000, 5_000, 5, 1_000
SHAPE = (48, 64)
GRID = 100


def baseline_grid(ref_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's per-cell table: 100 grid points and the survival fraction at each."""
    grid = np.linspace(ref_cell.min(), ref_cell.max(), GRID)
    surv = np.empty(GRID)
    for j in range(GRID):  # a Python loop over the grid, per cell
        surv[j] = (np.sum(ref_cell >= grid[j]) + 1) / (len(ref_cell) + 1)
    return grid, surv


def baseline_lookup(value: float, grid: np.ndarray, surv: np.ndarray) -> int:
    """Index of the first grid point >= value (a Python loop), GRID if none."""
    for j in range(GRID):
        if grid[j] >= value:
            return j
    return GRID


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1/10 of the maps for ours, small baseline subsets")
    args = parser.parse_args()
    wavelet = parse_entries("wavelets", [{"id": 0}], "w")[0]
    background = parse_entries("backgrounds", [{"id": 0, "kind": "exponential", "amplitude": 1000, "rate": 0.005}], "b")[0]
    signal = parse_entries("signals", [{"id": 0, "center": 256, "height": 150, "width": 8}], "s")[0]
    inputs = toy_inputs(signal, background, wavelet)
    out = REPO / "results" / "benchmarks" / "bench_pvalue_dataset_scratch"
    n_maps = TRAIN + TEST + SIGNALS * PER_SIGNAL
    fraction = 10 if args.quick else 1

    # -- ours ------------------------------------------------------------------------------------
    maps = ModulusMaps(wavelet, 512, SHAPE)
    start = time.perf_counter()
    reference = build_reference(inputs.background, TOYS, np.random.default_rng(1), maps)
    t_reference = time.perf_counter() - start
    start = time.perf_counter()
    jobs = [("train", TRAIN, 0.0), ("test", TEST, 0.0)] + [(f"sig{i}", PER_SIGNAL, 250.0 * i) for i in range(SIGNALS)]
    for k, (name, n, size) in enumerate(jobs):
        expected = inputs.background + size * inputs.template
        array = pvalue_maps(expected, n // fraction, np.random.default_rng(10 + k), maps, reference)
        write_npy(out / f"{name}.npy", array)
    t_maps = (time.perf_counter() - start) * fraction
    ours = t_reference + t_maps
    for file in out.glob("*.npy"):
        file.unlink()
    out.rmdir()

    # -- baseline (subsets, scaled) --------------------------------------------------------------
    n_spectra = 30 if args.quick else 200
    spectra = np.random.default_rng(2).poisson(inputs.background, size=(n_spectra, 512)).astype(float)
    start = time.perf_counter()
    base_maps = [rebin(cwt_modulus(s, wavelet), SHAPE) for s in spectra]  # one CWT per toy
    t_cwt = (time.perf_counter() - start) / n_spectra * (TOYS + n_maps)
    ref_cells = reference.sorted  # the same reference values (cells x toys)
    n_cells = 48 if args.quick else 384
    cells = np.random.default_rng(3).choice(ref_cells.shape[0], n_cells, replace=False)
    start = time.perf_counter()
    tables = {int(c): baseline_grid(ref_cells[c]) for c in cells}
    t_grid = (time.perf_counter() - start) / n_cells * ref_cells.shape[0]
    tables.update({c: baseline_grid(ref_cells[c]) for c in range(ref_cells.shape[0]) if c not in tables})
    n_lookup = 2 if args.quick else 10
    values = np.asarray(base_maps[:n_lookup], dtype=np.float32).reshape(n_lookup, -1)
    start = time.perf_counter()
    index = np.array([[baseline_lookup(v[c], *tables[c]) for c in range(values.shape[1])] for v in values])
    t_lookup = (time.perf_counter() - start) / n_lookup * n_maps
    baseline = t_cwt + t_grid + t_lookup

    # -- equality up to the grid's resolution ----------------------------------------------------
    exact = reference.p_values(values.reshape(n_lookup, *SHAPE)).reshape(n_lookup, -1)
    surv = np.array([tables[c][1] for c in range(values.shape[1])])  # (cells, GRID)
    padded = np.concatenate([np.ones((surv.shape[0], 1)), surv, np.full((surv.shape[0], 1), 1 / (TOYS + 1))], axis=1)
    upper = np.take_along_axis(padded, index.T, axis=1).T  # survival at the grid point below (or 1)
    lower = np.take_along_axis(padded, index.T + 1, axis=1).T  # ... at the first grid point >= value
    within = float(np.mean((exact <= upper + 1e-12) & (exact >= lower - 1e-12)))

    result = {
        "name": "bench_pvalue_dataset",
        "value": round(ours, 2),
        "unit": "s",
        "baseline": round(baseline, 2),
        "ratio": round(baseline / ours, 2),
        "mode": "quick" if args.quick else "full",
        "sizes": {"toys": TOYS, "train": TRAIN, "test": TEST, "signals": f"{SIGNALS}x{PER_SIGNAL}", "shape": list(SHAPE)},
        "ours_s": {"reference": round(t_reference, 2), "maps": round(t_maps, 2), "maps_scaled_by": fraction},
        "baseline_s": {"cwt": round(t_cwt, 1), "grid": round(t_grid, 1), "lookup": round(t_lookup, 1)},
        "baseline_subsets": {"spectra": n_spectra, "cells": n_cells, "maps": n_lookup},
        "p_within_grid_bracket": within,
    }
    write_json(REPO / "results" / "benchmarks" / "bench_pvalue_dataset.json", result)
    print(json.dumps(result))
    return 0 if within == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
