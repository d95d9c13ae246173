"""Generate NanoAOD-like ROOT files with Pythia8 + FastJet (``qcd`` dijets, ``xgg`` and ``wprime``
resonances).

Processes: ``qcd`` hard QCD 2->2 in a pT-hat window; ``xgg`` an RS graviton forced to gg;
``wprime`` a W'+- (Pythia's ``NewGaugeBoson:ffbar2Wprime``) forced to W Z with both bosons
forced to quarks (d, u, s, c, b): at M = 900 GeV the bosons carry pT up to ~440 GeV, so each
R = 0.5 jet of 350-450 GeV holds both quarks of one boson (two prongs, jet mass ~ 80-91 GeV).
The W' coupling to W Z is off by default in Pythia; ``Wprime:coup2WZ = 1`` opens it (the
extended gauge model normalisation; with the other channels off only the cross-section, not
the events, depends on it). Both resonances have a forced Breit-Wigner width
(``*_relative_width`` x M) cut at +-20 widths.

``Jet_partonFlavour`` matches jets to the hard process's outgoing partons (Pythia status 23):
for ``wprime`` those are the four quarks of the W and Z decays (the bosons themselves are
intermediate, status 22), so a W/Z jet carries the pdgId of the nearer decay quark (+-1..5)
within ``flavour_match_dr``, or 0 when neither quark is that close.

A sample of N events is split into files of ``events_per_file`` events. File ``i`` gets its
own Pythia seed derived from (run seed, process, mass, i), so the events do not depend on the
number of worker processes. Each file is written to a temporary name and renamed into place,
followed by a small JSON record (seed, settings fingerprint, cross-section); a rerun reuses
every file whose record matches and whose ``Runs`` tree holds the expected event count.
The sample directory gets a ``fileset.json`` (coffea's fileset form, paths relative to it).
While a rerun rewrites files of a dataset already listed there, its entry is marked
``"incomplete": true`` (``load_fileset`` refuses it), so a reader never mixes old and new files.
Temporary files that killed runs left behind are removed when the next run starts.

Sizes are bounded before anything is planned: at most ``MAX_EVENTS`` events and ``MAX_FILES``
files per sample, ``MAX_WORKERS`` workers and ``MAX_BATCH`` events per Pythia batch; a request
beyond them is a ConfigError (exit 2) naming the flag or key and the bound.

Per batch of events: ``Pythia.nextBatch`` returns the event records as awkward arrays, and
:mod:`analysis.events.jets` clusters, matches and writes the whole batch with array operations.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.core.atomic import atomic_path, remove_stale, write_json
from analysis.core.atomic import check_out_dir as _check_out_dir
from analysis.core.config import GenerationConfig
from analysis.core.errors import ConfigError, InputError
from analysis.events.jets import ChargeTable, JetSettings, build_batch, from_pythia_batch

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster

PROCESSES = ("qcd", "xgg", "wprime")  # append only: the index seeds the files (file_seed)
RESONANCES = ("xgg", "wprime")  # the processes that take --mass
GRAVITON = 5100039  # Pythia's RS graviton G*
WPRIME = 34  # Pythia's W'+
W_PLUS_Z_MASS = 80.4 + 91.19  # GeV, the W' -> W Z threshold
MASS_MIN = {"xgg": 50.0, "wprime": 200.0}  # GeV; masses must lie in [MASS_MIN, sqrt_s / 2]
QUARKS = "1 2 3 4 5"  # the W and Z decay to these (Pythia onIfAny; top is closed by mass anyway)
MB_TO_PB = 1e9
SEED_MAX = 900_000_000  # Pythia's Random:seed range is 1..900000000
MAX_EVENTS = 100_000_000  # per sample: ~5 core-days of Pythia at the default settings
MAX_FILES = 100_000  # per sample (events / events_per_file): every file is a planned job
MAX_WORKERS = 1024
MAX_BATCH = 50_000  # events per Pythia batch, held in memory with all their particles


# -- settings --------------------------------------------------------------------------------
def dataset_name(process: str, mass: float | None) -> str:
    """The fileset key of a sample: ``qcd``, ``xgg_m900`` or ``wprime_m900``."""
    return process if process not in RESONANCES else f"{process}_m{mass:g}"


def check_request(
    process: str, n_events: int, mass: float | None, cfg: GenerationConfig, events_flag: str = "--events"
) -> float | None:
    """Validate a generation request; returns the resonance mass (None for qcd).

    ``events_flag`` names the number of events in messages (``generation.qcd_events`` for `run`).
    """
    if process not in PROCESSES:
        raise ConfigError(f"--process: unknown process {process!r} (choose from {', '.join(PROCESSES)})")
    if n_events <= 0:
        raise ConfigError(f"{events_flag}: must be a positive number of events (got {n_events})")
    if n_events > MAX_EVENTS:
        raise ConfigError(
            f"{events_flag} {n_events}: more than the limit of {MAX_EVENTS} events per sample "
            "(generate several samples with different --seed values instead)"
        )
    per_file = f"--events-per-file (generation.events_per_file) {cfg.events_per_file}"
    if cfg.events_per_file > MAX_EVENTS:
        raise ConfigError(f"{per_file}: more than the limit of {MAX_EVENTS}")
    n_files = math.ceil(n_events / cfg.events_per_file)
    if n_files > MAX_FILES:
        raise ConfigError(
            f"{per_file}: {n_events} events make {n_files} files, more than the limit of {MAX_FILES} files per sample"
        )
    if cfg.batch_size > MAX_BATCH:
        raise ConfigError(f"generation.batch_size {cfg.batch_size}: more than the limit of {MAX_BATCH} per batch")
    if process == "qcd":
        if mass is not None:
            raise ConfigError(f"--mass: applies to --process {' or '.join(RESONANCES)} only")
        return None
    if mass is None:
        mass = cfg.xgg_mass if process == "xgg" else cfg.wprime_mass
    mass = float(mass)
    low = MASS_MIN[process]
    if not (math.isfinite(mass) and low <= mass <= cfg.sqrt_s / 2):
        raise ConfigError(
            f"--mass: {mass:g} GeV is outside the kinematic range {low:g}-{cfg.sqrt_s / 2:g} GeV "
            f"of {process} (sqrt_s/2 at sqrt_s = {cfg.sqrt_s:g} GeV)"
        )
    return mass


def pythia_settings(process: str, cfg: GenerationConfig, mass: float | None) -> list[str]:
    """Pythia settings of a process (without the seed)."""
    common = [
        f"Beams:eCM = {cfg.sqrt_s:g}",
        "Print:quiet = on",
        "Next:numberCount = 0",
        f"PartonLevel:MPI = {'on' if cfg.mpi else 'off'}",
        f"HadronLevel:all = {'on' if cfg.hadronisation else 'off'}",
    ]
    if process == "qcd":
        proc = ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {cfg.pthat_min:g}", f"PhaseSpace:pTHatMax = {cfg.pthat_max:g}"]
    elif process == "wprime":
        assert mass is not None
        width = mass * cfg.wprime_relative_width
        proc = [
            "NewGaugeBoson:ffbar2Wprime = on",
            "Wprime:coup2WZ = 1",  # off (0) by default: W' -> W Z closed
            f"{WPRIME}:m0 = {mass:g}",
            f"{WPRIME}:doForceWidth = on",
            f"{WPRIME}:mWidth = {width:g}",
            f"{WPRIME}:mMin = {max(mass - 20 * width, W_PLUS_Z_MASS + 1.0):g}",
            f"{WPRIME}:mMax = {min(mass + 20 * width, cfg.sqrt_s):g}",
            f"{WPRIME}:onMode = off",
            f"{WPRIME}:onIfAll = 24 23",  # W' -> W Z only
            "24:onMode = off",
            f"24:onIfAny = {QUARKS}",  # W -> q q'
            "23:onMode = off",
            f"23:onIfAny = {QUARKS}",  # Z -> q qbar
        ]
    else:
        assert mass is not None
        width = mass * cfg.xgg_relative_width
        proc = [
            "ExtraDimensionsG*:gg2G* = on",
            "ExtraDimensionsG*:ffbar2G* = on",
            f"{GRAVITON}:m0 = {mass:g}",
            f"{GRAVITON}:doForceWidth = on",
            f"{GRAVITON}:mWidth = {width:g}",
            f"{GRAVITON}:mMin = {max(mass - 20 * width, 1.0):g}",
            f"{GRAVITON}:mMax = {min(mass + 20 * width, cfg.sqrt_s):g}",
            f"{GRAVITON}:onMode = off",
            f"{GRAVITON}:onIfAny = 21",
        ]
    return [*common, *proc, *cfg.extra_pythia]


def file_seed(run_seed: int, process: str, mass: float | None, index: int) -> int:
    """Pythia seed of file ``index`` (1..900000000), independent of the worker count."""
    key = [run_seed, PROCESSES.index(process), round((mass or 0.0) * 1000), index]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] % SEED_MAX) + 1


def jet_settings(cfg: GenerationConfig) -> JetSettings:
    return JetSettings(
        radius=cfg.jet_radius, pt_min=cfg.jet_pt_min,
        particle_abs_eta_max=cfg.particle_abs_eta_max, flavour_match_dr=cfg.flavour_match_dr,
    )  # fmt: skip


def make_pythia(settings: list[str], seed: int) -> Any:
    """An initialised, silent Pythia; a rejected setting is a ConfigError naming it."""
    import pythia8mc as pythia8

    pythia = pythia8.Pythia("", False)
    for line in [*settings, "Random:setSeed = on", f"Random:seed = {seed}"]:
        if not pythia.readString(line):
            raise ConfigError(f"generation: Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise InputError(f"Pythia failed to initialise with settings {settings}")
    return pythia


# -- one file --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileJob:
    """Everything a worker needs to write one file."""

    path: str
    index: int
    n_events: int
    first_event: int  # event number of the file's first event
    seed: int
    settings: tuple[str, ...]
    jets: JetSettings
    batch_size: int
    fingerprint: str


@dataclass
class FileRecord:
    """What a finished file holds (saved beside it as JSON; the reuse check)."""

    file: str
    index: int
    n_events: int
    seed: int
    fingerprint: str
    sumw: float
    sumw2: float
    xsec_pb: float
    xsec_err_pb: float
    extra: dict[str, Any] = field(default_factory=dict)


def record_path(root_path: Path) -> Path:
    return root_path.with_suffix(".json")


def pythia_batches(pythia: Any, n_events: int, batch_size: int) -> Any:
    """Yield ``nextBatch`` arrays until ``n_events`` events are made (failed events are redrawn)."""
    done, empty = 0, 0
    while done < n_events:
        batch = pythia.nextBatch(min(batch_size, n_events - done), "skip")
        if len(batch) == 0:
            empty += 1
            if empty > 10:
                raise InputError("Pythia produced no events in 10 batches in a row (see its settings)")
            continue
        done += len(batch)
        yield batch


def write_file(job: FileJob, progress: Callable[[int], None] | None = None) -> FileRecord:
    """Generate one file: Pythia batches -> jets -> ROOT (temporary name, then renamed)."""
    import uproot

    pythia = make_pythia(list(job.settings), job.seed)
    charges = ChargeTable(pythia.particleData.charge)
    path = Path(job.path)
    sumw = sumw2 = 0.0
    written = 0
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp, compression=uproot.ZLIB(1)) as fh:
            for batch in pythia_batches(pythia, job.n_events, job.batch_size):
                ev = from_pythia_batch(batch, job.jets.particle_abs_eta_max)
                cols = build_batch(ev, job.jets, charges)
                n = len(ev.counts)
                out = {
                    "run": np.ones(n, dtype=np.uint32),
                    "luminosityBlock": np.full(n, job.index + 1, dtype=np.uint32),
                    "event": np.arange(job.first_event + written, job.first_event + written + n, dtype=np.uint64),
                    **cols,
                }
                if written == 0:  # mktree splits collections into nJet, Jet_pt, ... (NanoAOD style)
                    tree = fh.mktree("Events", out)
                else:
                    tree.extend(out)
                w = ev.weight
                sumw += float(w.sum())
                sumw2 += float((w**2).sum())
                written += n
                if progress is not None:
                    progress(n)
            fh.mktree("Runs", {
                "run": np.ones(1, dtype=np.uint32),
                "genEventCount": np.array([written], dtype=np.int64),
                "genEventSumw": np.array([sumw]),
                "genEventSumw2": np.array([sumw2]),
            })
        info = pythia.infoPython()
        record = FileRecord(
            file=path.name, index=job.index, n_events=written, seed=job.seed, fingerprint=job.fingerprint,
            sumw=sumw, sumw2=sumw2, xsec_pb=info.sigmaGen() * MB_TO_PB, xsec_err_pb=info.sigmaErr() * MB_TO_PB,
        )  # fmt: skip
        write_json(record_path(path), asdict(record))
    return record


def reusable(job: FileJob) -> FileRecord | None:
    """The record of an already finished file for ``job``, or None when it must be (re)made."""
    path = Path(job.path)
    try:
        data = json.loads(record_path(path).read_text())
        record = FileRecord(**data)
    except (OSError, ValueError, TypeError):
        return None
    if (record.n_events, record.seed, record.fingerprint) != (job.n_events, job.seed, job.fingerprint):
        return None
    return record if finished_events(path) == job.n_events else None


def finished_events(path: Path) -> int | None:
    """Events of a finished ROOT file: its ``Events`` entries when they equal the ``Runs`` tree's
    ``genEventCount`` (written last), else None (unreadable, or not written to the end)."""
    try:
        import uproot

        with uproot.open(path) as fh:
            count = int(fh["Runs"]["genEventCount"].array(library="np")[0])
            entries = int(fh["Events"].num_entries)
    except Exception:
        return None
    return entries if count == entries else None


def split_finished(jobs: list[Any], finished: Callable[[Any], Any]) -> tuple[dict[int, Any], list[Any]]:
    """``(records, todo)``: the record of every job (by its ``index``) whose output ``finished``
    recognises as complete, and the jobs still to run, in order."""
    records: dict[int, Any] = {}
    todo = []
    for job in jobs:
        rec = finished(job)
        if rec is None:
            todo.append(job)
        else:
            records[job.index] = rec
    return records, todo


# -- worker pool -----------------------------------------------------------------------------
_QUEUE: Any = None


def _init_worker(queue: Any, parent: int) -> None:
    global _QUEUE
    _QUEUE = queue
    stop_with_parent(parent)


def stop_with_parent(parent: int) -> None:
    """End this worker process when its parent ``generate`` dies, even by SIGKILL: otherwise it
    runs on to the end of its file, burning a core for nothing (Linux: PR_SET_PDEATHSIG; the
    half-written temporary file stays behind, as after any kill, and a rerun ignores it)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request
        os._exit(1)


def _worker(task: tuple[Callable[..., Any], Any]) -> Any:
    func, job = task
    return func(job, progress=_QUEUE.put if _QUEUE is not None else None)


def run_jobs(
    func: Callable[..., Any], jobs: list[Any], n_workers: int, progress: Callable[[int], None],
    *, cluster: Cluster | None = None, units: Callable[[Any], int] | None = None,
) -> list[Any]:  # fmt: skip
    """``func(job, progress=...)`` for every job, in this process (``n_workers`` 1), in a pool
    of spawned worker processes that stop with this one, or as the tasks of a Dask ``cluster``
    (``func(job)``; ``units(result)`` is reported as each finishes); returns the results in job order.

    ``func`` must be a module-level function (workers import it); it reports finished units
    (events, jets) through ``progress``, which the workers send back over a queue.
    """
    if cluster is not None:
        found = {}
        for job, result in cluster.map(func, jobs):
            found[id(job)] = result
            progress(units(result) if units is not None else 0)
        return [found[id(job)] for job in jobs]
    if n_workers == 1 or len(jobs) <= 1:
        return [func(job, progress=progress) for job in jobs]
    results: dict[int, Any] = {}
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()  # progress: units done, from the workers
    pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, os.getpid()))
    with pool:
        futures = {pool.submit(_worker, (func, job)): i for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while not queue.empty():
                progress(queue.get())
            for fut in done:
                results[futures[fut]] = fut.result()
    queue.close()
    return [results[i] for i in range(len(jobs))]


def plan_files(
    process: str, n_events: int, seed: int, out_dir: Path, mass: float | None, cfg: GenerationConfig
) -> list[FileJob]:
    """The files of a sample: sizes, event numbers, seeds and the settings fingerprint."""
    settings = tuple(pythia_settings(process, cfg, mass))
    jets = jet_settings(cfg)
    fingerprint = hashlib.sha256(json.dumps([settings, asdict(jets)]).encode()).hexdigest()[:16]
    name = dataset_name(process, mass)
    per_file = cfg.events_per_file
    jobs = []
    for index in range(math.ceil(n_events / per_file)):
        jobs.append(FileJob(
            path=str(out_dir / f"{name}_{index:04d}.root"), index=index,
            n_events=min(per_file, n_events - index * per_file), first_event=index * per_file + 1,
            seed=file_seed(seed, process, mass, index), settings=settings, jets=jets,
            batch_size=cfg.batch_size, fingerprint=fingerprint,
        ))  # fmt: skip
    return jobs


def check_out_dir(out_dir: Path) -> Path:
    """Create the output directory and check it is writable (ConfigError otherwise)."""
    return _check_out_dir(out_dir, "--out")


def generate(
    process: str,
    n_events: int,
    seed: int,
    out_dir: str | Path,
    mass: float | None = None,
    workers: int | None = None,
    cfg: GenerationConfig | None = None,
    quiet: bool = False,
    events_flag: str = "--events",
    cluster: Cluster | None = None,
) -> Path:
    """Generate (or reuse) a sample and write its ``fileset.json``; returns that path.

    ``workers``: processes (None: all cores; 1: in this process); with a ``cluster``, one Dask
    task per file instead (a file is written atomically, so a task rerun after its worker was
    killed writes the same file). Files already finished with
    the same seed and settings are kept. The fileset entry of this dataset is added to (or
    replaces) the one in an existing ``fileset.json`` of ``out_dir``; while files are being
    rewritten, an existing entry is marked incomplete. ``events_flag`` names ``n_events`` in
    error messages.
    """
    cfg = cfg or GenerationConfig()
    mass = check_request(process, n_events, mass, cfg, events_flag)
    if not 0 <= seed < 2**32:
        raise ConfigError(f"--seed: must be in 0..2**32-1 (got {seed})")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers: must be between 1 and {MAX_WORKERS} (got {workers})")
    out_dir = check_out_dir(Path(out_dir))
    remove_stale(out_dir, recursive=False)
    jobs = plan_files(process, n_events, seed, out_dir, mass, cfg)
    records, todo = split_finished(jobs, reusable)
    if todo:
        mark_incomplete(out_dir, dataset_name(process, mass))
    n_workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))

    from tqdm import tqdm

    reused = sum(r.n_events for r in records.values())
    name = dataset_name(process, mass)
    with tqdm(total=n_events, initial=reused, unit="ev", desc=f"generate {name}", disable=quiet) as bar:
        done = run_jobs(write_file, todo, n_workers, bar.update, cluster=cluster, units=lambda rec: rec.n_events)
        for job, rec in zip(todo, done, strict=True):
            records[job.index] = rec
    return write_fileset(out_dir, name, [records[j.index] for j in jobs], process, mass, seed)


def _read_fileset(target: Path) -> dict[str, Any]:
    try:
        fileset = json.loads(target.read_text()) if target.exists() else {}
    except (OSError, ValueError):
        return {}
    return fileset if isinstance(fileset, dict) else {}


def mark_incomplete(out_dir: Path, name: str) -> None:
    """Mark dataset ``name`` of ``out_dir/fileset.json`` incomplete (its files are being rewritten)."""
    target = out_dir / "fileset.json"
    fileset = _read_fileset(target)
    entry = fileset.get(name)
    if isinstance(entry, dict):
        metadata = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
        fileset[name] = {**entry, "metadata": {**metadata, "incomplete": True}}
        write_json(target, fileset)


def write_fileset(
    out_dir: Path, name: str, records: list[FileRecord], process: str, mass: float | None, seed: int
) -> Path:
    """Add this dataset to ``out_dir/fileset.json`` (paths relative to it); returns its path."""
    n = sum(r.n_events for r in records)
    xsec = sum(r.xsec_pb * r.n_events for r in records) / n
    xsec_err = math.sqrt(sum((r.xsec_err_pb * r.n_events) ** 2 for r in records)) / n
    metadata = {
        "xsec_pb": xsec, "xsec_err_pb": xsec_err, "n_generated": n,
        "sumw": sum(r.sumw for r in records), "process": process, "mass": mass, "seed": seed,
    }  # fmt: skip
    return update_fileset(out_dir, name, [r.file for r in records], metadata)


def update_fileset(out_dir: Path, name: str, files: list[str], metadata: dict[str, Any]) -> Path:
    """Add (or replace) dataset ``name`` in ``out_dir/fileset.json``, atomically; ``files`` are
    relative to ``out_dir`` (tree ``Events``). Returns the fileset's path."""
    target = out_dir / "fileset.json"
    fileset = _read_fileset(target)
    fileset[name] = {"files": dict.fromkeys(files, "Events"), "metadata": metadata}
    write_json(target, fileset)
    return target


def default_samples(
    config: Any, workers: int | None = None, quiet: bool = False, signals: tuple[str, ...] = ("xgg",),
    cluster: Cluster | None = None,
) -> list[Path]:
    """The samples of the default chain (`run`): ``generation.qcd_events`` qcd events and, per
    signal in ``signals`` (``xgg``, ``wprime``), ``generation.<signal>_events`` events at
    ``generation.<signal>_mass``, seeded by ``config.seed``, cached under ``generation.data_dir``
    (reused when already there). Returns the ``fileset.json`` paths (qcd first, then the
    signals in the order given), ready for ``process``."""
    gen: GenerationConfig = config.generation
    base = Path(gen.data_dir)
    seed = config.seed
    unknown = [s for s in signals if s not in RESONANCES]
    if unknown:
        choices = ", ".join(RESONANCES)
        raise ConfigError(f"signals: unknown signal process {unknown[0]!r} (choose from {choices})")
    paths = [generate(
        "qcd", gen.qcd_events, seed, base / f"qcd_seed{seed}",
        workers=workers, cfg=gen, quiet=quiet, events_flag="generation.qcd_events", cluster=cluster,
    )]  # fmt: skip
    for process in signals:
        mass = getattr(gen, f"{process}_mass")
        out = base / f"{dataset_name(process, mass)}_seed{seed}"
        paths.append(generate(
            process, getattr(gen, f"{process}_events"), seed, out, mass=mass,
            workers=workers, cfg=gen, quiet=quiet, events_flag=f"generation.{process}_events", cluster=cluster,
        ))  # fmt: skip
    return paths
