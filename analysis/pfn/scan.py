"""Adjacent-bin PFN scan (design section 4): random samples, mass bins, one PFN per bin pair.

For every sample size and sample index, a reproducible random sample of the background events
(seed from (run seed, size, sample)) gets the injected events added (drawn from the injection
pool with the same kind of seed), its events are split into the m_jj bins, and for every
adjacent bin pair a PFN learns to tell the two bins' jets apart; its AUC on held-out jets is
recorded. The jets are split into training, validation and test jets by event: both jets of
an event (and every copy of it) fall in the same part, so a test jet's partner never trained
the network. Each training's seed derives from (run seed, size, sample, pair) alone, so
trainings can run in any order, on any device, and an interrupted scan resumes to the
identical result. Every finished training is a small JSON under ``checkpoints/`` (written
atomically). The particle ids the PFN sees (``scan.particle_ids``: CMS PF classes or full
generator ids, :mod:`analysis.pfn.inputs`) are part of every checkpoint's key.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.core.atomic import write_json
from analysis.core.config import AnalysisConfig
from analysis.core.errors import ConfigError, InputError
from analysis.pfn.inputs import preprocess_awkward
from analysis.pfn.sources import JetSource, no_constituents, processed_directory, read_cutflow, source_jets
from models.batches import PackedJets
from models.settings import TrainSettings

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster

CHECKPOINTS = "checkpoints"
KINDS = ("none", "resonance", "gluon_pairs")


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventPool:
    """Selected events, preprocessed: m_jj per event and the PFN inputs of all their jets.

    The jets are either held (``packed``) or described by a ``source``: then they are loaded and
    preprocessed on first use, in the process that uses them, and never pickled with the pool
    (:mod:`analysis.pfn.sources`), so the pool a Dask scatter sends holds only m_jj and offsets."""

    mjj: np.ndarray
    packed: PackedJets | None  # jets in event order (None: from ``source``)
    jet_offsets: np.ndarray  # event e owns jets jet_offsets[e]:jet_offsets[e + 1]
    particle_ids: str = "pf_classes"  # how the jets' particle ids were mapped (analysis.pfn.inputs)
    source: JetSource | None = None  # where the jets come from when not held

    def __post_init__(self) -> None:
        if (self.packed is None) == (self.source is None):
            raise ValueError("EventPool: give either the jets or their source")

    def __len__(self) -> int:
        return len(self.mjj)

    @property
    def jets(self) -> PackedJets:
        """The PFN inputs of all jets (from the source: loaded once per process)."""
        if self.packed is not None:
            return self.packed
        jets = source_jets(self.source)
        if len(jets) != self.jet_offsets[-1]:
            raise InputError(
                f"{self.source.directory}: the events hold {len(jets)} jets of datasets "
                f"{', '.join(self.source.datasets)}, not {self.jet_offsets[-1]}: they changed since the run read them"
            )  # fmt: skip
        return jets

    def jet_index(self, events: np.ndarray) -> np.ndarray:
        """Indices of the jets of ``events``."""
        counts = np.diff(self.jet_offsets)[events]
        starts = np.repeat(self.jet_offsets[events] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        return starts + np.arange(int(counts.sum()))

    def jets_of(self, events: np.ndarray) -> tuple[PackedJets, np.ndarray]:
        """The jets of ``events`` (repeats allowed) and the event of each jet."""
        events = np.asarray(events, dtype=np.int64)
        return self.jets.take(self.jet_index(events)), np.repeat(events, np.diff(self.jet_offsets)[events])

    @staticmethod
    def from_columns(columns: ak.Array, particle_ids: str = "pf_classes") -> EventPool:
        """From the processor's columnar events (mjj; jets with phi and constituents);
        ``particle_ids``: ``pf_classes`` or ``full`` (:mod:`analysis.pfn.inputs`)."""
        jets = ak.flatten(columns.jets, axis=1)
        n_const = ak.to_numpy(ak.num(jets.constituents, axis=1))
        if len(n_const) and n_const.min() < 1:
            raise InputError(f"{int((n_const < 1).sum())} selected jets have no constituents")
        packed = preprocess_awkward(jets.constituents, jets.phi, particle_ids)
        return EventPool(ak.to_numpy(columns.mjj).astype(np.float64), packed, _jet_offsets(columns), particle_ids)

    @staticmethod
    def from_source(columns: ak.Array, source: JetSource) -> EventPool:
        """From the light columns (mjj, jets) of the events ``source`` describes; their jets are
        loaded where they are used."""
        return EventPool(ak.to_numpy(columns.mjj).astype(np.float64), None, _jet_offsets(columns),
                         source.particle_ids, source)  # fmt: skip


def _jet_offsets(columns: ak.Array) -> np.ndarray:
    per_event = ak.to_numpy(ak.num(columns.jets, axis=1))
    return np.concatenate([[0], np.cumsum(per_event)]).astype(np.int64)


def load_processed(directory: Path, constituents: bool = True) -> tuple[dict[str, ak.Array], dict[str, dict[str, Any]]]:
    """Columns and fileset metadata of every dataset of a processing directory (or its events/);
    ``constituents=False`` reads only the event and jet columns (mjj, weight, jets.partonFlavour:
    what the driver of the PFN stages needs, :func:`scan_inputs` with ``directory``)."""
    directory = processed_directory(directory)
    cutflow = read_cutflow(directory)
    columns, metadata = {}, {}
    for name, entry in cutflow.get("datasets", {}).items():
        path = directory / entry["events"]
        try:
            columns[name] = ak.from_parquet(path, columns=None if constituents else ["mjj", "weight", "jets.partonFlavour"])
        except Exception as exc:
            raise InputError(f"{path}: cannot read the events ({type(exc).__name__}: {exc})") from None
        if constituents and "constituents" not in ak.fields(columns[name].jets):
            raise no_constituents(path)
        metadata[name] = entry.get("metadata", {})
    if not columns:
        raise InputError(f"{directory / 'cutflow.json'}: lists no datasets")
    return columns, metadata


@dataclass
class ScanInputs:
    """The background events, the injection pool and what describes them."""

    background: EventPool
    pool: EventPool | None
    kind: str
    mass: float | None
    fingerprint: str  # of the events' m_jj (the particle-id mapping is in the checkpoint keys)
    background_fingerprint: str = ""  # of the background events' m_jj only

    def check_realizations(self, real: Any, method: str) -> None:
        """The protocol's realisations must index these background and pool events (same order)."""
        same_background = np.array_equal(real.background_mjj, self.background.mjj)
        same_pool = self.pool is not None and np.array_equal(real.pool_mjj, self.pool.mjj)
        if not (same_background and same_pool):
            raise InputError(
                f"{method}: the realisations' background or signal pool is not the PFN inputs' (injection kind "
                f"{self.kind!r}); build both from the same processed events and config"
            )  # fmt: skip

    @property
    def particle_ids(self) -> str:
        return self.background.particle_ids


def scan_inputs(
    columns: dict[str, ak.Array], metadata: dict[str, dict[str, Any]], cfg: AnalysisConfig, kind: str,
    directory: Path | None = None,
) -> ScanInputs:  # fmt: skip
    """Background and pool for ``kind`` with the processor's injection rules (analysis.events.injection),
    their jets preprocessed with ``cfg.scan.particle_ids``.

    With the ``directory`` the columns were read from (``load_processed(directory,
    constituents=False)`` suffices), the pools hold m_jj and jet offsets only and name their
    jets' :class:`~analysis.pfn.sources.JetSource` (checked here to have constituents): each
    process that trains loads them itself. Without, ``columns`` must hold the constituents, and
    the jets are preprocessed here."""
    from analysis.events.injection import BACKGROUND_PROCESS, plan_injection

    if kind == "none":
        names = [d for d, m in metadata.items() if m.get("process", BACKGROUND_PROCESS) == BACKGROUND_PROCESS]
        if not names:
            raise InputError(f"no dataset with metadata process: {BACKGROUND_PROCESS} among {sorted(metadata)}")
        background = names[0] if len(names) == 1 else None
        bg = columns[background] if background else ak.concatenate([columns[d] for d in names])
        pool, mass = None, None
        parts = [(bg, names, None)]
    else:
        inj_cfg = cfg.injection.model_copy(update={"kind": kind, "sizes": []})
        plan = plan_injection(columns, metadata, inj_cfg, cfg.histograms, cfg.seed)
        if plan.background is None or plan.pool is None:
            raise InputError(f"cannot inject {kind}: {plan.note}")
        bg, pool = plan.background, plan.pool
        mass = None
        if kind == "resonance":
            masses = {metadata[d].get("mass") for d in plan.pool_datasets}
            mass = float(masses.pop()) if len(masses) == 1 and None not in masses else cfg.injection.mass
        parts = [(bg, plan.background_datasets, plan.background_rows), (pool, plan.pool_datasets, plan.pool_rows)]
    digest = hashlib.sha256()
    for arr in (bg, pool):
        if arr is not None:
            digest.update(np.ascontiguousarray(ak.to_numpy(arr.mjj), dtype=np.float64).tobytes())
    background = hashlib.sha256(np.ascontiguousarray(ak.to_numpy(bg.mjj), dtype=np.float64).tobytes())
    ids = cfg.scan.particle_ids
    if directory is None:
        pools = [EventPool.from_columns(arr, ids) for arr, _, _ in parts]
    else:
        root = str(processed_directory(directory).resolve())
        sources = [JetSource(root, tuple(names), rows, ids) for _, names, rows in parts]
        for source in sources:
            source.check()  # a missing constituents field fails here, in the driver; empty jets where loaded
        pools = [EventPool.from_source(arr, source) for (arr, _, _), source in zip(parts, sources, strict=True)]
    return ScanInputs(
        pools[0], pools[1] if len(pools) > 1 else None, kind, mass, digest.hexdigest()[:16], background.hexdigest()[:16],
    )  # fmt: skip


# -- the plan: seeds, samples, bins ----------------------------------------------------------
@dataclass(frozen=True)
class ScanSetup:
    """Everything that determines the AUCs of a scan."""

    seed: int
    sizes: tuple[int, ...]
    n_samples: int
    bin_edges: tuple[float, ...]
    kind: str = "none"
    n_inject: int = 0
    mass: float | None = None
    train_jets: int = 12000
    test_jets: int = 3000
    val_jets: int = 3000  # at most (the pair's other jets), validated every epoch with settings.validate
    reference_events: int = 50000
    min_jets_per_bin: int = 600
    settings: TrainSettings = field(default_factory=TrainSettings)
    pairs: tuple[tuple[int, int], ...] | None = None  # train only these pairs (None: every kept pair)
    particle_ids: str = "pf_classes"  # the inputs' particle-id mapping: part of the checkpoint key

    def key(self, fingerprint: str) -> str:
        """Hash of what a checkpoint's AUC depends on (except its own size/sample/pair)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("sizes", "n_samples", "pairs")}
        return hashlib.sha256(json.dumps([data, fingerprint], sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    size: int
    sample: int
    pair: tuple[int, int]

    @property
    def name(self) -> str:
        return f"size{self.size}_sample{self.sample:04d}_pair{self.pair[0]}-{self.pair[1]}"


def sample_seed(seed: int, size: int, sample: int, stream: int = 0) -> np.random.SeedSequence:
    """The seed of one sample's draw (stream 0: background, 1: injection)."""
    return np.random.SeedSequence([seed, size, sample, stream])


def training_seed(seed: int, task: Task) -> int:
    """A training's seed, from the run seed and (size, sample, pair) only."""
    ss = np.random.SeedSequence([seed, task.size, task.sample, 1000 + task.pair[0], 1000 + task.pair[1]])
    return int(ss.generate_state(1, dtype=np.uint32)[0] % 2**31)


def draw_sample(setup: ScanSetup, inputs: ScanInputs, size: int, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Background event indices and injected pool event indices of one sample."""
    if size > len(inputs.background):
        raise ConfigError(f"scan.sizes: {size} events per sample, but the background holds {len(inputs.background)}")
    events = np.sort(np.random.default_rng(sample_seed(setup.seed, size, sample, 0)).choice(len(inputs.background), size, replace=False))
    injected = np.zeros(0, dtype=np.int64)
    if setup.n_inject:
        if inputs.pool is None or setup.n_inject > len(inputs.pool):
            have = 0 if inputs.pool is None else len(inputs.pool)
            raise ConfigError(f"--inject {setup.kind}:{setup.n_inject}: the injection pool holds {have} events")
        rng = np.random.default_rng(sample_seed(setup.seed, size, sample, 1))
        injected = np.sort(rng.choice(len(inputs.pool), setup.n_inject, replace=False))
    return events, injected


def bin_of(mjj: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin index of each m_jj (-1 outside the edges; bins are [low, high))."""
    idx = np.searchsorted(np.asarray(edges), mjj, side="right") - 1
    idx[(idx < 0) | (idx >= len(edges) - 1)] = -1
    return idx


def kept_pairs(setup: ScanSetup, inputs: ScanInputs, size: int, warn: Callable[[str], None]) -> list[tuple[int, int]]:
    """Adjacent bin pairs of one size whose bins both expect enough jets per sample."""
    n_bins = len(setup.bin_edges) - 1
    bins = bin_of(inputs.background.mjj, setup.bin_edges)
    jets_per_event = np.diff(inputs.background.jet_offsets)
    expected = np.bincount(bins[bins >= 0], jets_per_event[bins >= 0], minlength=n_bins) * size / len(inputs.background)
    cutoff = setup.min_jets_per_bin * size / setup.reference_events
    low = [b for b in range(n_bins) if expected[b] < cutoff]
    for b in low:
        warn(
            f"size {size}: bin {b} ({setup.bin_edges[b]:g}-{setup.bin_edges[b + 1]:g} GeV) expects "
            f"{expected[b]:.0f} jets per sample, fewer than {cutoff:.0f}: dropped"
        )  # fmt: skip
    kept = [(b, b + 1) for b in range(n_bins - 1) if b not in low and b + 1 not in low]
    return kept if setup.pairs is None else [p for p in kept if p in setup.pairs]


def bin_pair_jets(
    inputs: ScanInputs, edges: tuple[float, ...], pair: tuple[int, int], background: np.ndarray, injected: np.ndarray,
) -> tuple[PackedJets, np.ndarray, np.ndarray]:  # fmt: skip
    """Jets of the events of bins ``pair`` among ``background`` and ``injected`` (event indices
    into the background and the pool; repeats are copies): jets, labels 0 / 1 (first / second
    bin) and each jet's event (pool events numbered after the background's)."""
    parts, labels, events = [], [], []
    for label, b in enumerate(pair):
        for pool, chosen, first in ((inputs.background, background, 0), (inputs.pool, injected, len(inputs.background))):
            if pool is None or not len(chosen):
                continue
            jets, event = pool.jets_of(chosen[bin_of(pool.mjj[chosen], edges) == b])
            parts.append(jets)
            labels.append(np.full(len(jets), label, dtype=np.int64))
            events.append(event + first)
    if not parts:
        raise InputError(f"bins {pair[0]}-{pair[1]} hold no events")
    return PackedJets.concatenate(parts), np.concatenate(labels), np.concatenate(events)


def pair_data(setup: ScanSetup, inputs: ScanInputs, task: Task) -> tuple[PackedJets, np.ndarray, np.ndarray]:
    """Jets of the task's two bins (background sample + injected events), labels 0 / 1, events."""
    events, injected = draw_sample(setup, inputs, task.size, task.sample)
    return bin_pair_jets(inputs, setup.bin_edges, task.pair, events, injected)


def train_split(
    jets: PackedJets, labels: np.ndarray, split: Any, settings: TrainSettings, seed: int, name: str,
    parallel: tuple[Any, int] | None = None, losses: dict[str, list[float]] | None = None,
) -> float:  # fmt: skip
    """Train on ``split.train`` (validation ``split.val``) and return the AUC on ``split.test``
    (``losses``: receives the per-epoch losses)."""
    from models.training import train_and_score

    if len(np.unique(labels[split.test])) < 2 or len(np.unique(labels[split.train])) < 2:
        raise InputError(f"{name}: the training or test jets hold only one bin; use larger samples")
    return train_and_score(
        jets.take(split.train), labels[split.train], jets.take(split.val), labels[split.val],
        jets.take(split.test), labels[split.test], settings, seed, *(parallel or (None, 1)), losses=losses,
    )  # fmt: skip


def run_task(setup: ScanSetup, inputs: ScanInputs, task: Task, parallel: tuple[Any, int] | None = None) -> dict[str, Any]:
    """Train the PFN of one (size, sample, pair) and return its checkpoint record (with the
    per-epoch training and validation losses: the validation jets are up to ``val_jets`` of the
    pair's other jets, in the split's random order; they do not change the training or its AUC)."""
    from models.training import split_events, split_sizes

    jets, labels, events = pair_data(setup, inputs, task)
    seed = training_seed(setup.seed, task)
    scale = task.size / setup.reference_events
    n_train, n_test = split_sizes(len(labels), max(2, round(setup.train_jets * scale)), max(2, round(setup.test_jets * scale)))
    split = split_events(events, n_train, n_test, np.random.default_rng([seed, 7]))
    split = replace(split, val=split.val[: max(1, round(setup.val_jets * scale))])
    losses: dict[str, list[float]] = {}
    auc = train_split(jets, labels, split, setup.settings, seed, task.name, parallel, losses)
    return {
        "size": task.size, "sample": task.sample, "bins": list(task.pair), "seed": seed, "auc": auc,
        "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test), **losses,
    }  # fmt: skip


# -- running, checkpoints, results -----------------------------------------------------------
def _read_checkpoints(directory: Path, key: str) -> dict[str, dict[str, Any]]:
    done = {}
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # never trust a damaged record: the training reruns
        if record.get("key") != key:
            raise ConfigError(
                f"{path}: checkpoint of a different scan setup (seed, bins, training, injection or events "
                "changed); rerun without --resume or use another --out"
            )  # fmt: skip
        done[path.stem] = record
    return done


def open_checkpoints(ckpt_dir: Path, key: str, resume: bool) -> dict[str, dict[str, Any]]:
    """The finished trainings of ``ckpt_dir`` (``resume``; all of ``key``), else none (old ones removed)."""
    if resume:
        return _read_checkpoints(ckpt_dir, key) if ckpt_dir.is_dir() else {}
    for path in ckpt_dir.glob("*.json") if ckpt_dir.is_dir() else []:
        path.unlink()
    return {}


def open_shared_checkpoints(ckpt_dir: Path, key: str) -> dict[str, dict[str, Any]]:
    """The finished trainings of ``key`` in a store that several runs share (the background-only
    trainings every signal of a chain has in common: their events and seeds do not depend on the
    signal); records of another key, or damaged ones, are removed."""
    done = {}
    for path in sorted(ckpt_dir.glob("*.json")) if ckpt_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and record.get("key") == key:
            done[path.stem] = record
        else:
            path.unlink()
    return done


def run_scan(
    setup: ScanSetup, inputs: ScanInputs, out_dir: Path, resume: bool = False, quiet: bool = False,
    devices: list[str] | None = None, data_parallel: bool = False, cluster: Cluster | None = None,
) -> AucScan:  # fmt: skip
    """Run (or finish, with ``resume``) a scan; write checkpoints, auc_scan.json and the plot."""
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / CHECKPOINTS
    if setup.particle_ids != inputs.particle_ids:
        raise ValueError(f"scan setup for particle ids {setup.particle_ids!r}, inputs made with {inputs.particle_ids!r}")
    key = setup.key(inputs.fingerprint)
    done = open_checkpoints(ckpt_dir, key, resume)
    warn = warner(quiet)
    pairs = {size: kept_pairs(setup, inputs, size, warn) for size in setup.sizes}
    for size in setup.sizes:
        draw_sample(setup, inputs, size, 0)  # fail early on too large sizes or injections
    tasks = [Task(s, k, p) for s in setup.sizes for k in range(setup.n_samples) for p in pairs[s]]
    todo = [t for t in tasks if t.name not in done]

    def label(task: Task, rec: dict[str, Any]) -> str:
        return f"{task.size}/{task.sample}/{task.pair[0]}-{task.pair[1]} AUC {rec['auc']:.3f}"

    run_trainings(
        todo, lambda t, parallel: run_task(setup, inputs, t, parallel), ckpt_dir, key, done, setup.settings,
        quiet=quiet, devices=devices, data_parallel=data_parallel, label=label, cluster=cluster,
    )  # fmt: skip
    result = assemble(setup, inputs, tasks, done, pairs)
    result.write(out_dir / "auc_scan.json")
    from analysis.core.plots import save
    from analysis.pfn.scan_plots import auc_figure

    save(auc_figure(result), out_dir / "auc_scan.png")
    return result


def warner(quiet: bool) -> Callable[[str], None]:
    """A warning that is also printed unless ``quiet``."""

    def warn(message: str) -> None:
        warnings.warn(message, stacklevel=2)
        if not quiet:
            print(f"warning: {message}", file=sys.stderr)

    return warn


def run_trainings(
    todo: list[Any], work: Callable[[Any, tuple[Any, int] | None], dict[str, Any]], ckpt_dir: Path, key: str,
    done: dict[str, dict[str, Any]], settings: TrainSettings, *, quiet: bool = False,
    devices: list[str] | None = None, data_parallel: bool = False,
    label: Callable[[Any, dict[str, Any]], str] | None = None, desc: str = "PFN trainings",
    cluster: Cluster | None = None,
) -> None:  # fmt: skip
    """Run ``work(task, parallel)`` for every task (each has a ``name``) and checkpoint its record
    under ``ckpt_dir`` (with ``key``) as soon as it finishes: one training per device, or each
    split over all devices (``data_parallel``), or in order (EnergyFlow seeds through global state);
    with a ``cluster``, one Dask task per training (``work`` and what it holds go to each worker
    once; a task rerun after its worker died gives the same record: its seed is the task's)."""
    from tqdm import tqdm

    if not todo:
        return
    bar = tqdm(total=len(todo), desc=desc, unit="training", disable=quiet, file=sys.stderr)

    def record(task: Any, rec: dict[str, Any]) -> None:
        rec["key"] = key
        write_json(ckpt_dir / f"{task.name}.json", rec)
        done[task.name] = rec
        if label is not None:
            bar.set_postfix_str(label(task, rec))
        bar.update(1)

    try:
        if cluster is not None:
            from analysis.core.cluster import call

            for task, rec in cluster.map(call, todo, shared=work, resources=cluster.training_resources()):
                record(task, rec)
            return
        if settings.backend == "energyflow" or data_parallel:
            parallel = None
            if data_parallel and settings.backend != "energyflow":
                from models.devices import data_parallel as make_strategy

                parallel = make_strategy(devices)
            for task in todo:
                record(task, work(task, parallel))
            return
        from models.devices import run_on_devices, training_devices

        devices = devices or training_devices()
        for task, rec, _device in run_on_devices(todo, lambda t: work(t, None), devices):
            record(task, rec)
    finally:
        bar.close()


def train_tasks(
    tasks: list[Any], work: Callable[[Any, tuple[Any, int] | None], dict[str, Any]], ckpt_dir: Path, key: str,
    resume: bool, settings: TrainSettings, *, shared: tuple[Path, str] | None = None, desc: str = "PFN trainings",
    **options: Any,
) -> tuple[dict[str, dict[str, Any]], int]:  # fmt: skip
    """Run every unfinished task of a method on the protocol's realisations (tasks have ``name``
    and ``n_signal``) and return (every task's record, the number run now). Records live in
    ``ckpt_dir`` under ``key`` (kept with ``resume``); with ``shared`` = (directory, key), the
    background-only (N = 0) trainings live there instead, a store every signal injected into the
    same events shares: found there, they are not rerun. ``options`` go to :func:`run_trainings`."""
    done = open_checkpoints(ckpt_dir, key, resume)
    if shared is not None:
        stored = open_shared_checkpoints(*shared)
        done.update({t.name: stored[t.name] for t in tasks if t.n_signal == 0 and t.name in stored})
    todo = [t for t in tasks if t.name not in done]
    background_only = [t for t in todo if shared is not None and t.n_signal == 0]
    if background_only:
        run_trainings(background_only, work, *shared, done, settings, desc=f"{desc} (N = 0, shared)", **options)
    run_trainings([t for t in todo if t not in background_only], work, ckpt_dir, key, done, settings, desc=desc,
                  **options)  # fmt: skip
    return done, len(todo)


def trainings_line(method: str, entry: Any, n_tasks: int, n_run: int, seconds: float) -> str:
    """``[sensitivity] cwola_pfn: 180 trainings (180 run now, 0.7 s each); global 3 sigma at ...``."""
    per = f", {seconds / n_run:.1f} s each" if n_run else ""
    return (f"[sensitivity] {method}: {n_tasks} trainings ({n_run} run now{per}); global 3 sigma at "
            f"{entry.crossing_text(3)}, 5 sigma at {entry.crossing_text(5)} events")  # fmt: skip


class PairAucs(BaseModel):
    """The AUCs of one adjacent bin pair over the random samples of one size."""

    bins: tuple[int, int]
    aucs: list[float]
    auc_mean: float
    auc_std: float = Field(description="standard deviation over samples (ddof 1; 0 for one sample)")


class SizeAucs(BaseModel):
    events: int
    n_samples: int
    pairs: list[PairAucs]


class ScanInjection(BaseModel):
    kind: str
    n_events: int
    mass: float | None = None


class AucScan(BaseModel):
    """``auc_scan.json`` (design section 4): one reader (:meth:`read`), one writer (:meth:`write`)."""

    model_config = ConfigDict(extra="forbid")

    bin_edges: list[float]
    seed: int
    injection: ScanInjection
    sizes: list[SizeAucs]

    @classmethod
    def read(cls, path: str | Path) -> AucScan:
        """Read and validate (errors name the file)."""
        try:
            return cls.model_validate_json(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: not found") from None
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            raise InputError(f"{path}: not a readable auc_scan.json ({str(exc).splitlines()[0]})") from None

    def write(self, path: str | Path) -> None:
        write_json(path, self.model_dump(mode="json"))

    @property
    def n_trainings(self) -> int:
        return sum(len(s.pairs) * s.n_samples for s in self.sizes)


def assemble(
    setup: ScanSetup, inputs: ScanInputs, tasks: list[Task], done: dict[str, dict[str, Any]],
    pairs: dict[int, list[tuple[int, int]]],
) -> AucScan:  # fmt: skip
    """The scan's result from the finished trainings."""
    sizes = []
    for size in setup.sizes:
        entries = []
        for pair in pairs[size]:
            aucs = [done[Task(size, k, pair).name]["auc"] for k in range(setup.n_samples)]
            std = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
            entries.append(PairAucs(bins=pair, aucs=aucs, auc_mean=float(np.mean(aucs)), auc_std=std))
        sizes.append(SizeAucs(events=size, n_samples=setup.n_samples, pairs=entries))
    injection = ScanInjection(kind=setup.kind, n_events=setup.n_inject, mass=setup.mass)
    return AucScan(bin_edges=list(setup.bin_edges), seed=setup.seed, injection=injection, sizes=sizes)


def setup_from_config(cfg: AnalysisConfig, inputs: ScanInputs, n_inject: int, sizes: list[int] | None = None,
                      n_samples: int | None = None, epochs: int | None = None) -> ScanSetup:  # fmt: skip
    """The scan setup of a config, with command-line overrides."""
    from models.pfn import resolve_phi_dtype

    sc = cfg.scan
    # resolved here, so that the checkpoint key records the precision the trainings use
    phi_dtype = resolve_phi_dtype(sc.phi_dtype) if sc.backend == "ours" else "float32"
    settings = TrainSettings(
        phi_sizes=tuple(sc.phi_sizes), f_sizes=tuple(sc.f_sizes), epochs=epochs or sc.epochs,
        batch_size=sc.batch_size, learning_rate=sc.learning_rate, backend=sc.backend,
        validate=sc.validate_each_epoch, phi_dtype=phi_dtype,
    )  # fmt: skip
    return ScanSetup(
        seed=cfg.seed, sizes=tuple(sizes or sc.sizes), n_samples=n_samples or sc.n_samples,
        bin_edges=tuple(float(e) for e in cfg.histograms.analysis_bins), kind=inputs.kind, n_inject=n_inject,
        mass=inputs.mass if inputs.kind == "resonance" else None, train_jets=sc.train_jets, test_jets=sc.test_jets,
        val_jets=sc.val_jets, reference_events=sc.reference_events, min_jets_per_bin=sc.min_jets_per_bin, settings=settings,
        particle_ids=inputs.particle_ids,
    )  # fmt: skip


def parse_inject(text: str | None) -> tuple[str, int]:
    """``KIND:N`` -> (kind, N); None -> ("none", 0)."""
    if text is None:
        return "none", 0
    kind, _, n = text.partition(":")
    if kind not in KINDS[1:] or not n.isdigit():
        raise ConfigError(f"--inject {text!r}: expected resonance:N or gluon_pairs:N")
    return kind, int(n)


# -- the stage on a processing directory ----------------------------------------------------
def scan_stage(
    cfg: AnalysisConfig, events: Path, out: Path, kind: str = "none", n_inject: int = 0,
    sizes: list[int] | None = None, n_samples: int | None = None, epochs: int | None = None,
    resume: bool = False, quiet: bool = False, data_parallel: bool | None = None, cluster: Cluster | None = None,
) -> str:  # fmt: skip
    """The scan of a processing directory (with ``kind``/``n_inject``: of injected samples);
    returns a summary line. The pfn_auc method on the protocol's realisations is
    :func:`analysis.pfn.sensitivity.pfn_sensitivity_of_processed`."""
    out = Path(out)
    data_parallel = cfg.scan.data_parallel if data_parallel is None else data_parallel
    columns, metadata = load_processed(Path(events), constituents=False)
    inputs = scan_inputs(columns, metadata, cfg, kind, directory=Path(events))
    setup = setup_from_config(cfg, inputs, n_inject, sizes, n_samples, epochs)
    result = run_scan(setup, inputs, out, resume=resume, quiet=quiet, data_parallel=data_parallel, cluster=cluster)
    return f"scan: {result.n_trainings} trainings, AUCs in {out / 'auc_scan.json'}"
