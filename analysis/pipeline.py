"""The analysis chain run by ``run_analysis.py`` / ``make run`` (design section 6).

toys -> generate -> process -> scan -> cwola -> autoencoders -> baselines -> report, or the config's
``stages:`` subset. Each stage is timed into ``run.json`` and returns a one-line summary.
A stage whose inputs (its config sections and everything upstream) are unchanged since it last
finished is reused, so a rerun is cheap; ``--resume`` also continues a stage that was
interrupted (finished PFN trainings, datasets, trained autoencoders are kept).

Results directory layout::

    run.json  report.md  report.html  sensitivity.json  comparison.png  stages.json
    toys/  process/  scan/  cwola/  autoencoders/  baselines/
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.atomic import is_complete, remove_stale, write_json, write_npy
from analysis.config import AnalysisConfig
from analysis.provenance import RunRecord
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

    def say(self, message: str) -> None:
        if not self.options.quiet:
            print(message, flush=True)

    @property
    def process_dir(self) -> Path:
        return self.out_dir / "process"


def toy_stage(ctx: RunContext) -> str:
    """Clean and fluctuated toy spectra of the configured entries, with their CWT plots."""
    from analysis.cwt import cwt_modulus
    from analysis.plots import save
    from analysis.spectra import clean_spectrum, fluctuate
    from analysis.toy_plots import PLOT_KINDS, toy_figure
    from analysis.toys import toy_setup

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


def generate_stage(ctx: RunContext) -> str:
    """The default samples (qcd and xgg at the configured mass), cached under generation.data_dir."""
    from analysis.generation import default_samples

    gen = ctx.config.generation
    paths = default_samples(ctx.config, workers=ctx.options.workers, quiet=ctx.options.quiet)
    return f"{gen.qcd_events} qcd + {gen.xgg_events} xgg (M = {gen.xgg_mass:g} GeV) events: {', '.join(map(str, paths))}"


def process_stage(ctx: RunContext) -> str:
    """The coffea dijet processor over the default samples (futures executor by default)."""
    from analysis.commands.process import process_fileset
    from analysis.generation import default_samples

    filesets = default_samples(ctx.config, workers=ctx.options.workers, quiet=True)  # cached: no generation
    o = ctx.options
    result = process_fileset(filesets, ctx.process_dir, ctx.config, executor=o.executor, workers=o.workers,
                             scheduler=o.scheduler, quiet=o.quiet)  # fmt: skip
    return result.summary_line()


def scan_stage(ctx: RunContext) -> str:
    """The null adjacent-bin PFN scan over every pair, then ``pfn_auc`` on the protocol's realisations."""
    from analysis.commands.scan import scan_stage as run_scan_stage

    cfg, out, o = ctx.config, ctx.out_dir / "scan", ctx.options
    null = run_scan_stage(cfg, ctx.process_dir, out, resume=o.resume, quiet=o.quiet)
    if cfg.injection.kind == "none":
        return null
    sens = run_scan_stage(cfg, ctx.process_dir, out, kind=cfg.injection.kind, sensitivity=True, resume=o.resume, quiet=o.quiet)
    return f"{null}; {sens}"


def cwola_stage(ctx: RunContext) -> str:
    """``cwola_pfn``: CWoLa hunting with the event-level PFN on the protocol's realisations."""
    from analysis.cwola import run_cwola_sensitivity
    from analysis.scan import load_processed, scan_inputs
    from analysis.sensitivity.realizations import from_processed

    cfg = ctx.config
    if cfg.injection.kind == "none":
        return "injection.kind is none: no signal to hunt"
    columns, metadata = load_processed(ctx.process_dir)
    real = from_processed(cfg, columns, metadata)
    inputs = scan_inputs(columns, metadata, cfg, cfg.injection.kind)
    entry = run_cwola_sensitivity(cfg, inputs, real, ctx.out_dir / "cwola", resume=ctx.options.resume, quiet=ctx.options.quiet)
    return _three_sigma(entry)


def autoencoder_stage(ctx: RunContext) -> str:
    """p-value maps from the background model, the autoencoders, and their p on every realisation."""
    from analysis.ae_scan import ae_sensitivity, model_names, train_models
    from analysis.dataset import build_dataset_from_realizations
    from analysis.sensitivity.realizations import load_realizations

    cfg, out, quiet = ctx.config, ctx.out_dir / "autoencoders", ctx.options.quiet
    ae = cfg.autoencoders
    real = load_realizations(cfg, ctx.process_dir)
    build_dataset_from_realizations(real, out / "dataset", cfg, quiet=quiet, normalise=cfg.dataset.normalise)
    names = model_names(ae.models)
    train_models(out / "dataset", out / "models", names, epochs=ae.epochs, batch_size=ae.batch_size,
                 patience=ae.patience, learning_rate=ae.learning_rate, code_size=ae.code_size,
                 validation_fraction=ae.validation_fraction, seed=cfg.seed, quiet=quiet,
                 conv_filters=list(ae.conv_filters))  # fmt: skip
    entries = ae_sensitivity(real, out / "dataset", out / "models", out, cfg, quiet=quiet)
    return "; ".join(_three_sigma(e) for e in entries)


def baseline_stage(ctx: RunContext) -> str:
    """BumpHunter and the background + Gaussian mass scan on every realisation."""
    from analysis.baseline_sensitivity import run_baselines
    from analysis.sensitivity.realizations import load_realizations

    real = load_realizations(ctx.config, ctx.process_dir)
    entries = run_baselines(real, ctx.config, ctx.out_dir / "baselines", quiet=ctx.options.quiet)
    return "; ".join(_three_sigma(e) for e in entries)


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
# A stage is reused only when its key matches and its main output is still there.
_OUTPUTS = {"process": "process/cutflow.json", "scan": "scan/auc_scan.json", "cwola": "cwola/sensitivity.json",
            "autoencoders": "autoencoders/pvalue_vs_signal.json", "baselines": "baselines/baselines.json"}  # fmt: skip
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
    """Run the stages in order, reusing unchanged finished ones; timings go to run.json.

    A stage that must run starts from an empty directory, unless ``--resume`` and it was
    interrupted with the same inputs (then its finished parts are kept).
    """
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(ctx.out_dir)
    ctx.record.write()
    names = stages or list(ctx.config.stages)
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
        with ctx.record.stage(name):
            summary = STAGES[name](ctx)
        if key is not None:
            state["done"][name] = key
            write_json(ctx.out_dir / STATE_FILE, state)
        ctx.say(f"{head} {summary} ({ctx.record.data['timings_s'][name]:.1f} s)")
