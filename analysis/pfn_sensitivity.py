"""Sensitivity of the PFN scan: Z versus injected events, and the N reaching 3 and 5 sigma.

For each N of the grid a full scan runs (own directory, own checkpoints, so it resumes) with N
events of the chosen kind injected into every sample; N = 0 is the null. For the affected bin
pair Z(N) = (mean AUC(N) - null mean) / null std, the std being the spread of single-sample
AUCs. The N where Z first reaches 3 and 5 is interpolated linearly between grid points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import ConfigError
from analysis.scan import ScanInputs, ScanSetup, bin_of, run_scan
from analysis.sensitivity import crossing, merge_method

METHOD = "pfn_auc"


def affected_pair(setup: ScanSetup, inputs: ScanInputs, chosen: list[int] | None = None) -> tuple[int, int]:
    """The configured pair, else the adjacent pair whose compositions the injection separates most.

    A pair's AUC moves with the difference of the signal fractions of its two bins, so the pair
    maximises |r_a - r_b|, r = (share of the injection pool in the bin) / (share of the
    background in the bin). This uses where the pool's reconstructed m_jj actually falls (the
    resonance peak sits below its nominal mass, and leaks into neighbouring bins); ties go to
    the pair with more background jets.
    """
    if chosen is not None:
        return int(chosen[0]), int(chosen[1])
    if inputs.pool is None or not len(inputs.pool):
        raise ConfigError(f"injection: the {inputs.kind} pool is empty")
    n_bins = len(setup.bin_edges) - 1
    pool, bkg = (_per_bin(m, setup.bin_edges, n_bins) for m in (inputs.pool.mjj, inputs.background.mjj))
    if pool.sum() == 0:
        raise ConfigError(f"injection: no {inputs.kind} event has m_jj inside the analysis bins")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bkg > 0, (pool / pool.sum()) / (bkg / max(bkg.sum(), 1)), 0.0)
    pairs = [(b, b + 1) for b in range(n_bins - 1) if bkg[b] > 0 and bkg[b + 1] > 0]
    if not pairs:
        raise ConfigError("scan: no adjacent pair of analysis bins holds background events")
    return max(pairs, key=lambda p: (abs(ratio[p[0]] - ratio[p[1]]), bkg[p[0]] + bkg[p[1]]))


def _per_bin(mjj: np.ndarray, edges: tuple[float, ...], n_bins: int) -> np.ndarray:
    idx = bin_of(mjj, edges)
    return np.bincount(idx[idx >= 0], minlength=n_bins).astype(float)


def z_points(scans: dict[int, dict[str, Any]], size: int, pair: tuple[int, int]) -> list[dict[str, float]]:
    """Z per injected N for ``pair`` at sample ``size`` (N = 0 is the null)."""

    def entry(scan: dict[str, Any]) -> dict[str, Any]:
        block = next(s for s in scan["sizes"] if s["events"] == size)
        found = [p for p in block["pairs"] if tuple(p["bins"]) == pair]
        if not found:
            raise ConfigError(f"scan.sensitivity_pair: bins {list(pair)} were not scanned (dropped or out of range)")
        return found[0]

    null = entry(scans[0])
    if null["auc_std"] <= 0:
        raise ConfigError("--sensitivity needs at least 2 samples per size (the null std is the spread over samples)")
    return [
        {"n_signal": n, "z": (entry(scans[n])["auc_mean"] - null["auc_mean"]) / null["auc_std"]}
        for n in sorted(scans)
    ]


def run_sensitivity(
    base: ScanSetup, inputs: ScanInputs, grid: list[int], pair: tuple[int, int], out_dir: Path,
    resume: bool = False, quiet: bool = False, data_parallel: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Scan every N of ``grid`` (first sample size only), write sensitivity.json and the Z plot."""
    from dataclasses import replace

    from analysis.plots import save
    from analysis.scan_plots import z_figure

    size = base.sizes[0]
    scans = {}
    for n in sorted(set(grid)):
        setup = replace(base, sizes=(size,), n_inject=n, pairs=(pair,))  # only the pair Z is read from
        if not quiet:
            print(f"[sensitivity] {inputs.kind}: {n} injected events per sample", flush=True)
        scans[n] = run_scan(setup, inputs, out_dir / f"inject_{n}", resume=resume, quiet=quiet, data_parallel=data_parallel)
    points = z_points(scans, size, pair)
    entry = {
        "method": METHOD, "points": points,
        "n_signal_3sigma": crossing(points, 3.0), "n_signal_5sigma": crossing(points, 5.0),
        "kind": inputs.kind, "mass": inputs.mass, "bins": list(pair), "sample_events": size,
        "n_samples": base.n_samples,
    }  # fmt: skip
    merge_method(out_dir / "sensitivity.json", entry)
    title = f"{inputs.kind}, bins {pair[0]}-{pair[1]}, {size} events x {base.n_samples}"
    save(z_figure(points, entry["n_signal_3sigma"], entry["n_signal_5sigma"], title), out_dir / "sensitivity_pfn_auc.png")
    return entry
