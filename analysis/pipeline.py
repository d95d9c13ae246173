"""The analysis chain run by ``run_analysis.py`` / ``make run`` (design section 6).

toys -> generate -> process -> scan -> cwola -> autoencoders -> baselines -> report, or the config's
``stages:`` subset. Each stage is timed into ``run.json`` and returns a one-line summary.
A stage whose inputs (its config sections and everything upstream) are unchanged since it last
finished is reused, so a rerun is cheap; ``--resume`` also continues a stage that was
interrupted (finished PFN trainings, datasets, trained autoencoders are kept).

Results directory layout::

    run.json  report.md  report.html  sensitivity.json  stages.json
    comparison_<signal>.png  comparison_local_<signal>.png  null_calibration_<signal>.png
    toys/  process/  scan/  cwola/  autoencoders/  baselines/

The signal-dependent stages measure each signal of ``injection.signals`` on its own, in
``<stage>/<signal>/`` (``cwola/xgg/``, ``cwola/wprime/``), and join the entries in
``<stage>/sensitivity.json``; the report has one method table per signal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import is_complete, remove_stale, write_json, write_npy
from analysis.core.cluster import Cluster, default_workers, open_cluster
from analysis.core.config import AnalysisConfig
from analysis.core.provenance import RunRecord
from analysis.sensitivity.model import MethodEntry


@dataclass
class RunOptions:
    """Command-line choices that do not change the physics result."""

    executor: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    resume: bool = False
    quiet: bool = False


@dataclass
class RunContext:
    config: AnalysisConfig
    out_dir: Path
    record: RunRecord
    options: RunOptions = field(default_factory=RunOptions)
    cluster: Cluster | None = None  # the Dask cluster of every heavy stage (None: local)

    def say(self, message: str) -> None:
        if not self.options.quiet:
            print(message, flush=True)

    @property
    def process_dir(self) -> Path:
        return self.out_dir / "process"


def toy_stage(ctx: RunContext) -> str:
    """Clean and fluctuated toy spectra of the configured entries, with their CWT plots."""
    from analysis.core.plots import save
    from analysis.toys.plots import PLOT_KINDS, toy_figure
    from analysis.toys.selection import toy_setup
    from analysis.toys.spectra import clean_spectrum, fluctuate
    from analysis.wavelets.cwt import cwt_modulus

    cfg = ctx.config
    setup = toy_setup(cfg)
    out = ctx.out_dir / "toys"
    clean = clean_spectrum(setup.background, setup.signal)
    toys = fluctuate(clean, np.random.default_rng(cfg.seed), size=cfg.toys.n_fluctuations)
    write_npy(out / "mass_edges.npy", setup.background.binning.edges)
    write_npy(out / "clean_spectrum.npy", clean)
    write_npy(out / "fluctuated_spectra.npy", toys)
    write_npy(out / "cwt_clean.npy", cwt_modulus(clean, setup.wavelet))
    for kind in PLOT_KINDS:
        save(toy_figure(kind, setup, cfg.seed, cfg.toys.n_fluctuations), out / f"{kind}.png")
    return f"toy spectra and {len(PLOT_KINDS)} plots in {out}"


def _signals(cfg: AnalysisConfig) -> tuple[str, ...]:
    """The signal samples the chain generates and measures (none unless a resonance is injected)."""
    return tuple(cfg.injection.signals) if cfg.injection.kind == "resonance" else ()


def generate_stage(ctx: RunContext) -> str:
    """The default samples (qcd and each signal at its configured mass), cached under generation.data_dir."""
    from analysis.events.generation import default_samples

    gen = ctx.config.generation
    signals = _signals(ctx.config)
    paths = default_samples(ctx.config, workers=ctx.options.workers, quiet=ctx.options.quiet, signals=signals,
                            cluster=ctx.cluster)  # fmt: skip
    made = " + ".join([f"{gen.qcd_events} qcd"] + [
        f"{getattr(gen, f'{s}_events')} {s} (M = {getattr(gen, f'{s}_mass'):g} GeV)" for s in signals
    ])  # fmt: skip
    return f"{made} events: {', '.join(map(str, paths))}"


def process_stage(ctx: RunContext) -> str:
    """The coffea dijet processor over the default samples (futures executor by default)."""
    from analysis.events.generation import default_samples
    from analysis.events.processing import process_fileset

    filesets = default_samples(ctx.config, workers=ctx.options.workers, quiet=True, signals=_signals(ctx.config))  # cached
    o = ctx.options
    executor, scheduler = (o.executor, o.scheduler) if ctx.cluster is None else ("dask", ctx.cluster.scheduler)
    result = process_fileset(filesets, ctx.process_dir, ctx.config, executor=executor, workers=o.workers,
                             scheduler=scheduler, quiet=o.quiet)  # fmt: skip
    return result.summary_line()


NULL_STORE = "background_only"  # <stage>/background_only/: the N = 0 trainings every signal shares


def _per_signal(ctx: RunContext, stage: str, run: Callable[[AnalysisConfig, Path], list[MethodEntry]]) -> str:
    """Run ``run(config of one signal, its directory)`` for every signal of ``injection.signals``
    (``<stage>/<signal>/``, e.g. ``cwola/wprime/``), then join their entries in
    ``<stage>/sensitivity.json``; returns the summary line."""
    from analysis.sensitivity.model import Sensitivity

    out, lines, parts = ctx.out_dir / stage, [], []
    for cfg in ctx.config.signal_configs():
        sub = out / cfg.injection.label
        sub.mkdir(parents=True, exist_ok=True)
        entries = run(cfg, sub)
        lines.append(f"{cfg.injection.label}: " + ", ".join(_three_sigma(e) for e in entries))
        parts.append(sub / "sensitivity.json")
    Sensitivity.combined(p for p in parts if p.is_file()).write(out / "sensitivity.json")
    return "; ".join(lines)


def scan_stage(ctx: RunContext) -> str:
    """The null adjacent-bin PFN scan over every pair, then ``pfn_auc`` on the protocol's realisations
    of every signal (``scan/<signal>/``)."""
    from analysis.pfn.scan import load_processed, scan_inputs
    from analysis.pfn.scan import scan_stage as run_scan_stage
    from analysis.pfn.sensitivity import run_pfn_sensitivity
    from analysis.sensitivity.realizations import from_processed

    cfg, out, o = ctx.config, ctx.out_dir / "scan", ctx.options
    null = run_scan_stage(cfg, ctx.process_dir, out, resume=o.resume, quiet=o.quiet, cluster=ctx.cluster)
    if cfg.injection.kind == "none":
        return null
    columns, metadata = load_processed(ctx.process_dir, constituents=False)  # the jets load where they train

    def pfn_auc(sig: AnalysisConfig, sub: Path) -> list[MethodEntry]:
        real = from_processed(sig, columns, metadata)
        inputs = scan_inputs(columns, metadata, sig, sig.injection.kind, directory=ctx.process_dir)
        return [run_pfn_sensitivity(sig, inputs, real, sub, resume=o.resume, quiet=o.quiet,
                                    data_parallel=sig.scan.data_parallel, null_dir=out / NULL_STORE,
                                    cluster=ctx.cluster)]  # fmt: skip

    return f"{null}; {_per_signal(ctx, 'scan', pfn_auc)}"


def cwola_stage(ctx: RunContext) -> str:
    """``cwola_pfn``: CWoLa hunting with the event-level PFN on the protocol's realisations of every signal."""
    from analysis.pfn.cwola import run_cwola_sensitivity
    from analysis.pfn.scan import load_processed, scan_inputs
    from analysis.sensitivity.realizations import from_processed

    if ctx.config.injection.kind == "none":
        return "injection.kind is none: no signal to hunt"
    columns, metadata = load_processed(ctx.process_dir, constituents=False)  # the jets load where they train

    def cwola(sig: AnalysisConfig, sub: Path) -> list[MethodEntry]:
        real = from_processed(sig, columns, metadata)
        inputs = scan_inputs(columns, metadata, sig, sig.injection.kind, directory=ctx.process_dir)
        return [run_cwola_sensitivity(sig, inputs, real, sub, resume=ctx.options.resume, quiet=ctx.options.quiet,
                                      null_dir=ctx.out_dir / "cwola" / NULL_STORE, cluster=ctx.cluster)]  # fmt: skip

    return _per_signal(ctx, "cwola", cwola)


def autoencoder_stage(ctx: RunContext) -> str:
    """p-value maps from the background model, the autoencoders (trained once: the maps describe
    the background only), and their p on every signal's realisations."""
    from analysis.pfn.scan import load_processed
    from analysis.sensitivity.realizations import from_processed
    from analysis.wavelets.autoencoders import ae_sensitivity, train_models
    from analysis.wavelets.dataset import build_dataset_from_realizations

    cfg, out, quiet = ctx.config, ctx.out_dir / "autoencoders", ctx.options.quiet
    columns, metadata = load_processed(ctx.process_dir, constituents=False)
    reals = {sig.injection.signal: from_processed(sig, columns, metadata) for sig in cfg.signal_configs()}
    build_dataset_from_realizations(next(iter(reals.values())), out / "dataset", cfg, quiet=quiet,
                                    normalise=cfg.dataset.normalise, cluster=ctx.cluster)  # fmt: skip
    train_models(out / "dataset", out / "models", cfg.autoencoders, seed=cfg.seed, quiet=quiet, cluster=ctx.cluster)

    def score(sig: AnalysisConfig, sub: Path) -> list[MethodEntry]:
        return ae_sensitivity(reals[sig.injection.signal], out / "dataset", out / "models", sub, sig, quiet=quiet)

    return _per_signal(ctx, "autoencoders", score)


def baseline_stage(ctx: RunContext) -> str:
    """BumpHunter and the background + Gaussian mass scan on every signal's realisations."""
    from analysis.baselines.sensitivity import run_baselines
    from analysis.pfn.scan import load_processed
    from analysis.sensitivity.realizations import from_processed

    columns, metadata = load_processed(ctx.process_dir, constituents=False)

    def baselines(sig: AnalysisConfig, sub: Path) -> list[MethodEntry]:
        return run_baselines(from_processed(sig, columns, metadata), sig, sub, quiet=ctx.options.quiet)

    return _per_signal(ctx, "baselines", baselines)


def report_stage(ctx: RunContext) -> str:
    """sensitivity.json of every method that ran, the comparison plot, report.md / report.html."""
    from analysis.report import write_report

    md, _ = write_report(ctx.out_dir, ctx.config)
    return f"{md} (and report.html)"


def _three_sigma(entry: MethodEntry) -> str:
    """``bumphunter: global 3 sigma at 821`` (or ``< 1000 (bound)``, or ``not reached``) injected events."""
    return f"{entry.method}: global 3 sigma at {entry.crossing_text()}"


StageFunc = Callable[[RunContext], str]
STAGES: dict[str, StageFunc] = {
    "toys": toy_stage, "generate": generate_stage, "process": process_stage, "scan": scan_stage, "cwola": cwola_stage,
    "autoencoders": autoencoder_stage, "baselines": baseline_stage, "report": report_stage,
}  # fmt: skip
# What each stage's result depends on: config sections, and the stage whose output it reads.
_INPUTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "generate": (("seed", "generation"), None),
    "process": (("selection", "histograms", "injection"), "generate"),
    "scan": (("scan", "injection", "histograms", "sensitivity", "generation"), "process"),
    "cwola": (("cwola", "scan", "baselines", "injection", "histograms", "sensitivity", "generation"), "process"),
    "autoencoders": (("dataset", "autoencoders", "toys", "injection", "histograms", "sensitivity", "generation"), "process"),
    "baselines": (("baselines", "injection", "histograms", "sensitivity", "generation"), "process"),
}
ON_CLUSTER = ("generate", "process", "scan", "cwola", "autoencoders")  # stages that use a Dask cluster

# A stage is reused only when its key matches and its main output is still there.
_OUTPUTS = {"process": "process/cutflow.json", "scan": "scan/auc_scan.json", "cwola": "cwola/sensitivity.json",
            "autoencoders": "autoencoders/sensitivity.json", "baselines": "baselines/sensitivity.json"}  # fmt: skip
STATE_FILE = "stages.json"


def stage_key(config: AnalysisConfig, name: str) -> str | None:
    """Hash of a stage's inputs (None: the stage always runs): its config sections, the contents
    of the definition files those sections name, and its upstream stage's key."""
    if name not in _INPUTS:
        return None
    sections, upstream = _INPUTS[name]
    data = config.to_dict()
    files = {}
    if "toys" in sections:  # the signal / background / wavelet definitions, by content
        for kind in ("signals", "backgrounds", "wavelets"):
            path = config.resolve(getattr(config.toys, kind))
            files[kind] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    parts = [name, config.seed, {s: data[s] for s in sections}, files, stage_key(config, upstream) if upstream else None]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _state(out_dir: Path) -> dict[str, dict[str, str]]:
    path = out_dir / STATE_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        data = {}  # an unreadable state only costs recomputation
    return {"done": dict(data.get("done", {})), "started": dict(data.get("started", {}))}


def run_chain(ctx: RunContext, stages: list[str] | None = None) -> None:
    """Run the stages in order, reusing unchanged finished ones; timings go to run.json, and
    where each stage ran (``stages``: local, or the Dask cluster's address and workers).

    A stage that must run starts from an empty directory, unless ``--resume`` and it was
    interrupted with the same inputs (then its finished parts are kept). With ``--executor
    dask`` or ``--scheduler``, one cluster serves every heavy stage (:data:`ON_CLUSTER`).
    """
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(ctx.out_dir)
    ctx.record.write()
    o, given = ctx.options, ctx.cluster
    with open_cluster(o.executor, o.workers, o.scheduler) if given is None else nullcontext(given) as cluster:
        ctx.cluster = cluster
        try:
            _run_stages(ctx, stages or list(ctx.config.stages))
        finally:
            ctx.cluster = given  # a cluster this run opened is closed: do not hand it on


def where(ctx: RunContext, name: str) -> dict[str, Any]:
    """Where stage ``name`` runs, for run.json."""
    if ctx.cluster is not None and name in ON_CLUSTER:
        return ctx.cluster.describe()
    if name == "process":
        return {"executor": ctx.options.executor or ctx.config.processing.executor,
                "workers": ctx.options.workers or ctx.config.processing.workers or default_workers()}  # fmt: skip
    return {"executor": "local", "workers": ctx.options.workers or default_workers()}


def _run_stages(ctx: RunContext, names: list[str]) -> None:
    state = _state(ctx.out_dir)
    for number, name in enumerate(names, 1):
        key = stage_key(ctx.config, name)
        head = f"[{number}/{len(names)} {name}]"
        output = ctx.out_dir / _OUTPUTS[name] if name in _OUTPUTS else None
        if output is not None and state["done"].get(name) == key and output.is_file() and is_complete(output.parent):
            ctx.say(f"{head} unchanged since its last run: reused")
            ctx.record.add(reused=[*ctx.record.data.get("reused", []), name])
            continue
        if output is not None:
            stage_dir = ctx.out_dir / _OUTPUTS[name].split("/")[0]
            if ctx.options.resume and state["started"].get(name) == key:
                remove_stale(stage_dir, recursive=True)  # keep finished parts, drop a killed run's temporaries
            else:
                shutil.rmtree(stage_dir, ignore_errors=True)
        ctx.say(f"{head} ...")
        state["done"].pop(name, None)
        state["started"][name] = key
        write_json(ctx.out_dir / STATE_FILE, state)
        ctx.record.add(stages={**ctx.record.data.get("stages", {}), name: where(ctx, name)})
        with ctx.record.stage(name):
            summary = STAGES[name](ctx)
        if key is not None:
            state["done"][name] = key
            write_json(ctx.out_dir / STATE_FILE, state)
        ctx.say(f"{head} {summary} ({ctx.record.data['timings_s'][name]:.1f} s)")
