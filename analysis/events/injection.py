"""Signal injection into the background m_jj spectrum (design section 3).

Two kinds, both drawn without replacement from a pool disjoint from the background sample:

- ``resonance``: the pool is the selected events of the datasets of the signal process
  ``injection.signal`` (the first of ``injection.signals``: fileset metadata ``process: xgg`` or
  ``wprime``; with ``injection.mass`` set, only datasets of that mass); the background sample is
  every selected event of the ``qcd`` datasets.
- ``gluon_pairs`` (the reference workflow's injection): the ``qcd`` events are split at random
  (seeded) into a reserve (``injection.pool_fraction`` of them) and the background sample (the
  rest); the pool is the reserved events whose selected jets are all gluon-matched
  (``partonFlavour == 21``) and whose m_jj lies in analysis bin ``injection.bin``.

"Background + k x signal" means events, not a scaled shape: for each size k, k events are drawn
from the pool (``numpy.random.Generator.choice(replace=False)``, seeded by the analysis seed
and k), and the injected spectrum is the background histogram plus the histogram of those k
events, each filled with its event weight (1 for generated samples, so the signal part holds
exactly k entries). Drawing real events keeps the signal's shape fluctuations, as injecting
events into a sample does in the PFN scan. Sizes larger than the pool are skipped and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import hist
import numpy as np

from analysis.core.config import HistogramsConfig, InjectionConfig
from analysis.core.errors import ConfigError

BACKGROUND_PROCESS = "qcd"
_KIND_CODE = {"resonance": 1, "gluon_pairs": 2}


@dataclass
class Injection:
    """The background sample, the pool, the draws and the resulting spectra."""

    kind: str
    background_datasets: list[str] = field(default_factory=list)
    pool_datasets: list[str] = field(default_factory=list)
    background: ak.Array | None = None  # per-event columns of the background sample
    pool: ak.Array | None = None  # per-event columns of the injection pool
    # rows of the concatenated background (pool) datasets that form the sample (None: all of them)
    background_rows: np.ndarray | None = None
    pool_rows: np.ndarray | None = None
    draws: dict[int, np.ndarray] = field(default_factory=dict)  # k -> pool indices (sorted)
    skipped: dict[int, str] = field(default_factory=dict)  # k -> why not injected
    note: str | None = None  # why nothing was injected at all

    def summary(self) -> dict[str, Any]:
        """JSON-able description for cutflow.json."""
        return {
            "kind": self.kind,
            "background_datasets": self.background_datasets,
            "pool_datasets": self.pool_datasets,
            "background_events": 0 if self.background is None else len(self.background),
            "pool_events": 0 if self.pool is None else len(self.pool),
            "sizes": sorted(self.draws),
            "skipped_sizes": {str(k): why for k, why in self.skipped.items()},
            "note": self.note,
        }


def draw(pool_size: int, k: int, seed: int, kind: str) -> np.ndarray:
    """Indices of k pool events drawn without replacement (same seed, k, kind -> same draw)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _KIND_CODE[kind], k]))
    return np.sort(rng.choice(pool_size, size=k, replace=False))


def gluon_pool_split(
    background: ak.Array, bin_edges: tuple[float, float], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (background sample, pool) of the gluon_pairs split of the qcd events.

    A seeded random ``fraction`` of the events is reserved; the rest is the background sample.
    The pool is the reserved events with all selected jets gluon-matched and m_jj in the bin.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _KIND_CODE["gluon_pairs"], 0]))
    reserved = rng.random(len(background)) < fraction
    gluons = ak.to_numpy(ak.all(background.jets.partonFlavour == 21, axis=1))
    mjj = ak.to_numpy(background.mjj)
    in_bin = (mjj >= bin_edges[0]) & (mjj < bin_edges[1])
    return ~reserved, reserved & gluons & in_bin


def plan_injection(
    columns: dict[str, ak.Array], metadata: dict[str, dict[str, Any]], cfg: InjectionConfig,
    histograms: HistogramsConfig, seed: int,
) -> Injection:  # fmt: skip
    """Choose background and pool from the processed datasets and draw every configured size."""
    inj = Injection(cfg.kind)
    if cfg.kind == "none":
        inj.note = "injection.kind is none"
        return inj
    inj.background_datasets = [d for d, m in metadata.items() if m.get("process") == BACKGROUND_PROCESS]
    if not inj.background_datasets:
        inj.note = f"no dataset with metadata process: {BACKGROUND_PROCESS} in the fileset"
        return inj
    background = _concat([columns[d] for d in inj.background_datasets])
    if cfg.kind == "resonance":
        inj.pool_datasets = [
            d for d, m in metadata.items()
            if m.get("process") == cfg.signal and (cfg.mass is None or _same_mass(m.get("mass"), cfg.mass))
        ]  # fmt: skip
        if not inj.pool_datasets:
            mass = "" if cfg.mass is None else f" and mass {cfg.mass:g}"
            inj.note = f"no dataset with metadata process: {cfg.signal}{mass} in the fileset"
            return inj
        inj.background, inj.pool = background, _concat([columns[d] for d in inj.pool_datasets])
    else:
        edges = histograms.analysis_bins
        if cfg.bin >= len(edges) - 1:
            raise ConfigError(f"injection.bin: {cfg.bin} is out of range for {len(edges) - 1} analysis bins")
        keep, pool = gluon_pool_split(
            background, (edges[cfg.bin], edges[cfg.bin + 1]), cfg.pool_fraction, seed
        )
        inj.pool_datasets = list(inj.background_datasets)
        inj.background, inj.pool = background[keep], background[pool]
        inj.background_rows, inj.pool_rows = np.flatnonzero(keep), np.flatnonzero(pool)
    for k in cfg.sizes:
        if k > len(inj.pool):
            inj.skipped[k] = f"{k} events requested but the {cfg.kind} pool holds {len(inj.pool)}"
        else:
            inj.draws[k] = draw(len(inj.pool), k, seed, cfg.kind)
    return inj


def injected_spectra(inj: Injection, empty: dict[str, hist.Hist]) -> dict[str, hist.Hist]:
    """Per binning a Hist(component, size, mjj): the background sample, the k drawn signal events
    and their sum for each size k (:func:`analysis.events.histograms.injection_spectra`).

    ``empty`` maps a binning (``mjj``, ``mjj_bins``) to an empty histogram of its bins. Empty
    when nothing was injected.
    """
    from analysis.events.histograms import injection_spectra

    if inj.background is None or inj.pool is None or not inj.draws:
        return {}
    return {
        binning: injection_spectra(
            _filled(template, inj.background), {k: _filled(template, inj.pool[idx]) for k, idx in inj.draws.items()}
        )
        for binning, template in empty.items()
    }


def _filled(template: hist.Hist, events: ak.Array) -> hist.Hist:
    h = template.copy()
    h.reset()
    h.fill(mjj=ak.to_numpy(events.mjj), weight=ak.to_numpy(events.weight))
    return h


def _concat(arrays: list[ak.Array]) -> ak.Array:
    return arrays[0] if len(arrays) == 1 else ak.concatenate(arrays)


def _same_mass(value: Any, mass: float) -> bool:
    try:
        return value is not None and abs(float(value) - mass) < 1e-6 * max(1.0, mass)
    except (TypeError, ValueError):
        return False
