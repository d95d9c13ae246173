"""Sensitivity of the adjacent-bin PFN (method ``pfn_auc``) on the protocol's realisations.

For every realisation r < ``sensitivity.pfn_realizations`` and every injected size N of
``sensitivity.n_signal`` the events are those of the shared pseudo-dataset (r, N)
(:mod:`analysis.sensitivity.realizations`): each background event as often as its Poisson
multiplicity, plus the nested signal draw. For EVERY kept adjacent pair of
``histograms.analysis_bins`` a PFN (the scan's settings) learns to tell the two bins' jets
apart; the events are split, copies and both jets together, into training, validation
(``pfn_validation_fraction``) and test (``pfn_test_fraction``) events, and the AUC on the test
jets is the pair's statistic. Seeds derive from (run seed, r, N, pair) alone.

p-value of a pair: the deviation of its AUC from the pair's null, the AUCs of the N = 0
realisations, through a Student-t prediction interval: with mean m0, standard deviation s0 of
n0 null AUCs, ``t = (AUC - m0) / (s0 sqrt(1 + 1/n0))`` follows Student's t with n0 - 1 degrees
of freedom when the null AUCs and the tested one are independent Gaussian draws, and
``p = t.sf(t)``, one-sided: injected events add a difference between the two bins' jets, and
a classifier can only separate better (whichever bin the signal sits in), so a signal raises
the AUC. An N = 0 realisation is left out of its own null
(leave-one-out), so the N = 0 p-values are exactly uniform for a Gaussian null; a Shapiro-Wilk
test of each pair's null AUCs is recorded as the check of that assumption. The t-distribution
is the tail model: no toy floor, no bounds.

Local p = the smallest p over the pairs; global p = ``1 - (1 - p_min)^n_pairs`` (Sidak): the
look-elsewhere effect of choosing the pair. No pair is chosen with the truth.

Every finished training is a checkpoint under ``pfn_auc/checkpoints/``, so ``--resume``
finishes an interrupted run with the identical result.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from analysis.core.errors import ConfigError
from analysis.pfn.scan import (
    ScanInputs,
    ScanSetup,
    bin_pair_jets,
    kept_pairs,
    setup_from_config,
    train_split,
    train_tasks,
    trainings_line,
    warner,
)
from analysis.sensitivity.model import MethodEntry, merge_entries
from analysis.sensitivity.plots import sensitivity_figure
from analysis.sensitivity.realizations import Realizations
from analysis.sensitivity.summary import MethodResult, summarise

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster

METHOD = "pfn_auc"
CHECKPOINTS = Path("pfn_auc") / "checkpoints"
PLOT = "sensitivity_pfn_auc.png"
_STREAM = 0x9F4  # seed stream of this method's splits and trainings
Z_GLOBAL_MEANING = (
    "Sidak trials factor over the adjacent bin pairs, 1 - (1 - p_min)^n_pairs, p_min the smallest pair p "
    "(the look-elsewhere effect of choosing the pair)"
)


@dataclass(frozen=True)
class PfnTask:
    """One training: realisation, injected size, bin pair."""

    realization: int
    n_signal: int
    pair: tuple[int, int]

    @property
    def name(self) -> str:
        return f"r{self.realization:04d}_n{self.n_signal}_pair{self.pair[0]}-{self.pair[1]}"


def task_seed(seed: int, task: PfnTask) -> int:
    """The seed of one training and its split, from (run seed, r, N, pair) only."""
    ss = np.random.SeedSequence([seed, _STREAM, task.realization, task.n_signal, 1000 + task.pair[0], 1000 + task.pair[1]])
    return int(ss.generate_state(1, dtype=np.uint32)[0] % 2**31)


def realization_events(real: Realizations, r: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Background event indices (an event of multiplicity w repeated w times) and signal pool
    indices of the pseudo-dataset (r, N)."""
    weights = real.weights(r)
    return np.repeat(np.arange(len(weights)), weights), np.asarray(real.signal_events(r, n), dtype=np.int64)


def run_task(
    setup: ScanSetup, fractions: tuple[float, float], inputs: ScanInputs, real: Realizations, task: PfnTask,
    parallel: tuple[Any, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train the PFN of one (r, N, pair) on an event split and return its checkpoint record."""
    from models.training import split_events

    background, signal = realization_events(real, task.realization, task.n_signal)
    jets, labels, events = bin_pair_jets(inputs, setup.bin_edges, task.pair, background, signal)
    seed = task_seed(setup.seed, task)
    test_fraction, val_fraction = fractions
    n_test, n_val = round(test_fraction * len(labels)), round(val_fraction * len(labels))
    split = split_events(events, len(labels) - n_test - n_val, n_test, np.random.default_rng([seed, 7]))
    losses: dict[str, list[float]] = {}
    auc = train_split(jets, labels, split, setup.settings, seed, task.name, parallel, losses)
    return {
        "realization": task.realization, "n_signal": task.n_signal, "bins": list(task.pair), "seed": seed,
        "auc": auc, "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test), **losses,
    }  # fmt: skip


# -- the statistic ---------------------------------------------------------------------------
def prediction_pvalue(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p (large AUCs are signal-like) of ``values`` (one per column) against the null draws
    ``null`` (n0 x columns): Student-t prediction interval, ``t = (x - mean0) / (s0 sqrt(1 + 1/n0))``,
    n0 - 1 d.o.f."""
    null = np.asarray(null, dtype=float)
    n0 = null.shape[0]
    if n0 < 2:
        raise ValueError(f"a prediction interval needs at least 2 null values (got {n0})")
    mean, std = null.mean(axis=0), null.std(axis=0, ddof=1)
    deviation = np.asarray(values, dtype=float) - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        t = deviation / (std * np.sqrt(1.0 + 1.0 / n0))
    t = np.where(std > 0, t, np.where(deviation == 0, 0.0, np.sign(deviation) * np.inf))  # a null without spread
    return stats.t.sf(t, n0 - 1)


def pair_pvalues(aucs: np.ndarray, null_column: int) -> np.ndarray:
    """p of every AUC (realisations x sizes x pairs) against its pair's null: the AUCs of size
    ``null_column`` (N = 0) over the realisations, without the tested realisation's own when
    it is one of them (leave-one-out)."""
    aucs = np.asarray(aucs, dtype=float)
    n_real = aucs.shape[0]
    if n_real < 3:
        raise ConfigError(f"sensitivity.pfn_realizations: {n_real}; the leave-one-out null needs at least 3")
    null = aucs[:, null_column, :]
    p = np.empty_like(aucs)
    for r in range(n_real):
        without_r = np.delete(null, r, axis=0)
        for k in range(aucs.shape[1]):
            p[r, k] = prediction_pvalue(aucs[r, k], without_r if k == null_column else null)
    return p


def combine_pairs(p_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local p (smallest over the pairs, last axis) and global p (Sidak over the pairs)."""
    p_min = np.min(p_pairs, axis=-1)
    return p_min, -np.expm1(p_pairs.shape[-1] * np.log1p(-np.minimum(p_min, 1.0 - 1e-16)))


def null_checks(aucs: np.ndarray, null_column: int, pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Per pair: mean, std and Shapiro-Wilk normality p of its null AUCs."""
    out = []
    for j, pair in enumerate(pairs):
        null = aucs[:, null_column, j]
        shapiro = float(stats.shapiro(null).pvalue) if len(null) >= 3 and np.ptp(null) > 0 else None
        out.append({"bins": list(pair), "mean": float(null.mean()), "std": float(null.std(ddof=1)), "shapiro_pvalue": shapiro})
    return out


# -- running ---------------------------------------------------------------------------------
def run_pfn_sensitivity(
    cfg: Any, inputs: ScanInputs, real: Realizations, out_dir: Path, resume: bool = False, quiet: bool = False,
    *, devices: list[str] | None = None, data_parallel: bool | None = None, null_dir: Path | None = None,
    cluster: Cluster | None = None,
) -> MethodEntry:  # fmt: skip
    """Train every (realisation, N, pair), write the ``pfn_auc`` entry into
    ``out_dir/sensitivity.json`` and ``sensitivity_pfn_auc.png``; ``resume`` keeps the finished
    trainings of an interrupted run (same config and events). ``null_dir``: a store of the
    background-only (N = 0) trainings shared by every signal injected into the same events."""
    out_dir = Path(out_dir)
    inputs.check_realizations(real, METHOD)
    sens = cfg.sensitivity
    n_real = sens.pfn_realizations
    if n_real < 3:
        raise ConfigError(f"sensitivity.pfn_realizations: {n_real}; the leave-one-out null needs at least 3")
    if n_real > real.n_realizations:
        raise ConfigError(f"sensitivity.pfn_realizations: {n_real} exceeds the {real.n_realizations} realisations")
    setup = setup_from_config(cfg, inputs, 0)
    fractions = (float(sens.pfn_test_fraction), float(sens.pfn_validation_fraction))
    pairs = kept_pairs(setup, inputs, len(inputs.background), warner(quiet))
    if not pairs:
        raise ConfigError("histograms.analysis_bins: no adjacent pair of bins holds enough background jets")
    n_signal = list(real.n_signal)
    tasks = [PfnTask(r, n, p) for r in range(n_real) for n in n_signal for p in pairs]
    key = _key(setup, inputs, real, fractions)
    shared = None
    if null_dir is not None:
        shared = (Path(null_dir) / CHECKPOINTS, _key(setup, inputs, real, fractions, background_only=True))
    started = time.perf_counter()

    def label(task: PfnTask, rec: dict[str, Any]) -> str:
        return f"r{task.realization} N={task.n_signal} {task.pair[0]}-{task.pair[1]} AUC {rec['auc']:.3f}"

    def work(task: PfnTask, parallel: Any) -> dict[str, Any]:
        return run_task(setup, fractions, inputs, real, task, parallel)

    parallel = cfg.scan.data_parallel if data_parallel is None else data_parallel
    done, n_run = train_tasks(tasks, work, out_dir / CHECKPOINTS, key, resume, setup.settings, shared=shared,
                              quiet=quiet, devices=devices, data_parallel=parallel, label=label,
                              desc="pfn_auc trainings", cluster=cluster)  # fmt: skip
    seconds = time.perf_counter() - started
    aucs = np.array([[[done[PfnTask(r, n, p).name]["auc"] for p in pairs] for n in n_signal] for r in range(n_real)])
    entry = build_entry(aucs, pairs, real, setup, fractions)
    merge_entries(out_dir / "sensitivity.json", [entry], real.protocol())
    from analysis.core.plots import save

    save(sensitivity_figure(entry), out_dir / PLOT)
    if not quiet:
        print(trainings_line(METHOD, entry, len(tasks), n_run, seconds), flush=True)
    return entry


def build_entry(
    aucs: np.ndarray, pairs: list[tuple[int, int]], real: Realizations, setup: ScanSetup,
    fractions: tuple[float, float],
) -> MethodEntry:  # fmt: skip
    """The ``pfn_auc`` entry from the AUCs (realisations x sizes x pairs)."""
    n_signal = list(real.n_signal)
    null_column = n_signal.index(0)
    p_pairs = pair_pvalues(aucs, null_column)
    p_local, p_global = combine_pairs(p_pairs)
    checks = null_checks(aucs, null_column, pairs)
    n_real = aucs.shape[0]
    notes = [
        f"{n_real} realisations (the first of {real.n_realizations}) x {len(n_signal)} sizes x {len(pairs)} bin "
        f"pairs = {aucs.size} PFN trainings, each on an event split ({fractions[0]:g} test, {fractions[1]:g} "
        "validation)",
        f"null of a pair: its N = 0 AUCs (leave-one-out at N = 0); Student-t prediction interval with "
        f"{n_real - 1} (N > 0) or {n_real - 2} (N = 0) degrees of freedom, one-sided (a signal raises the AUC)",
    ]
    notes += [
        f"bins {c['bins'][0]}-{c['bins'][1]}: null AUCs fail a normality check (Shapiro-Wilk p = {c['shapiro_pvalue']:.3g})"
        for c in checks if c["shapiro_pvalue"] is not None and c["shapiro_pvalue"] < 0.01
    ]  # fmt: skip
    details = {
        "bin_edges": list(setup.bin_edges), "pairs": [list(p) for p in pairs], "null": checks,
        "aucs": aucs.tolist(), "p_pairs": p_pairs.tolist(), "settings": setup.settings.to_dict(),
        "particle_ids": setup.particle_ids, "test_fraction": fractions[0], "validation_fraction": fractions[1],
    }  # fmt: skip
    result = MethodResult(METHOD, real.signal, n_signal, p_local, p_global)
    return summarise(
        result, background_events=real.background_events, fingerprint=real.fingerprint,
        z_global_meaning=Z_GLOBAL_MEANING, s_over_b=real.s_over_b(), notes=notes, details=details,
    )  # fmt: skip


def _key(setup: ScanSetup, inputs: ScanInputs, real: Realizations, fractions: tuple[float, float],
         background_only: bool = False) -> str:  # fmt: skip
    """Hash of what a training's AUC depends on besides its own (r, N, pair); ``background_only``:
    of an N = 0 training, which does not depend on the signal (its pool, mass or name)."""
    if background_only:
        neutral = replace(setup, kind="background_only", n_inject=0, mass=None)
        data = [METHOD, neutral.key(inputs.background_fingerprint), real.background_fingerprint, list(fractions)]
    else:
        data = [METHOD, setup.key(inputs.fingerprint), real.fingerprint, list(fractions)]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def pfn_sensitivity_of_processed(
    cfg: Any, events: Path, out: Path, kind: str, epochs: int | None = None, resume: bool = False,
    quiet: bool = False, data_parallel: bool | None = None,
) -> str:  # fmt: skip
    """The pfn_auc entry of the injection ``kind`` on the realisations of a processing directory
    (``scan --sensitivity``); returns a summary line."""
    from analysis.pfn.scan import load_processed, scan_inputs
    from analysis.sensitivity.realizations import from_processed

    columns, metadata = load_processed(Path(events), constituents=False)
    data_parallel = cfg.scan.data_parallel if data_parallel is None else data_parallel

    update = {"injection": cfg.injection.model_copy(update={"kind": kind})}
    if epochs is not None:
        update["scan"] = cfg.scan.model_copy(update={"epochs": epochs})
    cfg = cfg.model_copy(update=update)
    real = from_processed(cfg, columns, metadata)
    inputs = scan_inputs(columns, metadata, cfg, kind, directory=Path(events))
    entry = run_pfn_sensitivity(cfg, inputs, real, out, resume=resume, quiet=quiet, data_parallel=data_parallel)
    return (
        f"pfn_auc ({entry.signal}, {entry.realizations} realisations): global 3 sigma at {entry.crossing_text(3)}, "
        f"5 sigma at {entry.crossing_text(5)} events (local {entry.crossing_text(3, 'local')}, "
        f"{entry.crossing_text(5, 'local')}); {out / 'sensitivity.json'}"
    )  # fmt: skip


# -- plot ------------------------------------------------------------------------------------
