"""The processing stage: the coffea dijet processor over a fileset (selection, m_jj histograms,
injection, Parquet events), with staged, all-or-nothing outputs.

``process_fileset`` reads the datasets of a fileset (coffea's fileset form, e.g. the
fileset.json written by `generate`, or any CMS NanoAOD files with Jet_* branches) and writes:
  histograms.root          the m_jj spectra per dataset and of the injection, in uniform and
                           in analysis bins (names: analysis.events.histograms)
  cutflow.json             per dataset the cutflow counts; skipped bad files; the injection
  events/<dataset>.parquet selected events: mjj, weight, dataset, event; jets (pt, eta, phi,
                           mass, rapidity, partonFlavour, jetId, tau21 (N-subjettiness ratio;
                           -1 without PF candidates), constituents: pt, rapidity, phi, pdgId)
  run.json                 provenance
Every output is written into a staging directory first and renamed into place only when all
are complete; a failed run leaves the directory as it was, an interrupted one is refused by
every reader until processing runs again (see analysis.core.atomic). Events with NaN or infinite jet
kinematics or weight are dropped as the cutflow step `finite`, with a warning naming the
dataset and the count. A missing, corrupt or truncated input file, or one whose selected
events have non-finite rapidities or PF candidates, stops the run naming the file, unless
``skip_bad_files``, which skips such files and lists them in cutflow.json.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.core.atomic import check_complete, check_out_dir, remove_stale, staged_directory
from analysis.core.config import AnalysisConfig
from analysis.core.errors import ConfigError, InputError
from analysis.events.histograms import BINNINGS, Spectra, dataset_key, dataset_spectra, write_spectra

MAX_WORKERS = 1024
MAX_CHUNKSIZE = 100_000_000  # events per chunk: coffea holds a chunk's columns in memory


@dataclass
class ProcessResult:
    """What ``process_fileset`` wrote, for callers (the default chain, tests)."""

    out_dir: Path
    spectra: Spectra  # the m_jj histograms (category axes; named only in histograms.root)
    cutflow: dict[str, Any]  # the content of cutflow.json
    events: dict[str, Path] = field(default_factory=dict)  # dataset -> Parquet file
    warnings: list[str] = field(default_factory=list)  # e.g. events dropped for non-finite values

    def summary_line(self) -> str:
        selected = sum(d["cutflow"]["n_jets"] for d in self.cutflow["datasets"].values())
        skipped = len(self.cutflow["skipped_files"])
        extra = f", {skipped} bad file(s) skipped" if skipped else ""
        return f"processed {len(self.events)} dataset(s): {selected} selected events{extra}; results in {self.out_dir}"


def check_bounds(workers: int | None, chunksize: int | None) -> None:
    """--workers and --chunksize within 1..their bound (ConfigError naming the flag and bound)."""
    bounds = (("--workers", workers, MAX_WORKERS), ("--chunksize", chunksize, MAX_CHUNKSIZE))
    for flag, value, bound in bounds:
        if value is not None and not 1 <= value <= bound:
            raise ConfigError(f"{flag} {value}: must be between 1 and {bound}")


def require_complete(directory: str | Path) -> Path:
    """The `process` directory ``directory`` (or the one above its ``events/``), refused with an
    InputError naming it when a `process` run into it was interrupted; readers call this first."""
    directory = Path(directory)
    if not (directory / "cutflow.json").is_file() and (directory.parent / "cutflow.json").is_file():
        directory = directory.parent
    check_complete(directory)
    return directory


def process_fileset(
    fileset: str | Path | Mapping[str, Any] | list[str | Path],
    out_dir: str | Path,
    cfg: AnalysisConfig,
    *,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    skip_bad_files: bool | None = None,
    quiet: bool = False,
    local_processes: bool = True,
    record: Any = None,
) -> ProcessResult:
    """Process a fileset and write histograms.root, cutflow.json, events/*.parquet, run.json.

    Arguments left ``None`` come from the config's ``processing:`` section. ``record`` is an
    existing :class:`analysis.core.provenance.RunRecord` to time the stages into (the default chain
    passes its own); without one, ``out_dir/run.json`` is written with the results.

    Nothing in ``out_dir`` changes until every output is written (to a staging directory); the
    outputs are then renamed into place between an ``.incomplete`` marker's creation and
    removal. Leftovers of killed runs (temporary files, staging directories) are removed first.
    """
    from analysis.core.provenance import RunRecord
    from processors.dijet import DijetProcessor
    from processors.fileset import load_fileset

    proc_cfg = cfg.processing
    executor = executor or proc_cfg.executor
    workers = workers or proc_cfg.workers
    scheduler = scheduler or proc_cfg.scheduler
    skip = proc_cfg.skip_bad_files if skip_bad_files is None else skip_bad_files
    check_bounds(workers, proc_cfg.chunksize)
    out_dir = check_out_dir(out_dir)
    for directory in (out_dir, out_dir / "events"):  # leftovers of killed runs
        remove_stale(directory)
    datasets = load_fileset(dict(fileset) if isinstance(fileset, Mapping) else fileset)
    if not datasets:
        raise ConfigError("the fileset has no datasets")
    proc = DijetProcessor(cfg.selection, cfg.histograms)

    with staged_directory(out_dir, "process", owned=["events/*.parquet"], last=["run.json"]) as staging:
        if record is None:  # our run.json lives in the staging directory: it appears with the results
            record = RunRecord(staging.path, "process", cfg.to_dict(), cfg.seed)
        with record.stage("process.preflight"):
            checks, skipped = _preflight(datasets, cfg, skip)
        with record.stage("process.coffea"):
            per_file, skipped = _run(datasets, checks, skipped, proc, skip,
                                     dict(executor=executor, workers=workers, chunksize=proc_cfg.chunksize,
                                          scheduler=scheduler, quiet=quiet, local_processes=local_processes))  # fmt: skip
        with record.stage("process.merge"):
            merged = _merge(datasets, checks, skipped, per_file, proc)
        warnings = _non_finite_warnings(merged)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        with record.stage("process.inject"):
            from analysis.events.injection import injected_spectra, plan_injection
            from processors.dijet import bins_hist, mjj_hist

            columns = {d.name: merged[d.name]["columns"] for d in datasets}
            metadata = {d.name: d.metadata for d in datasets}
            inj = plan_injection(columns, metadata, cfg.injection, cfg.histograms, cfg.seed)
            for k, why in inj.skipped.items():
                if not quiet:
                    print(f"warning: injection size {k} skipped: {why}", file=sys.stderr)
            injected = injected_spectra(
                inj, {"mjj": mjj_hist(proc.histograms), "mjj_bins": bins_hist(proc.histograms)}
            )
        with record.stage("process.write"):
            result = _write(staging.path, datasets, checks, skipped, merged, injected, inj.summary(), cfg)
        record.add(process={"executor": executor, "workers": workers, "scheduler": scheduler,
                            "skipped_files": [s["file"] for s in skipped]})  # fmt: skip
        record.write()
    # committed: the outputs now live in out_dir
    result.out_dir = out_dir
    result.events = {name: out_dir / path.relative_to(staging.path) for name, path in result.events.items()}
    result.warnings = warnings
    return result


def _non_finite_warnings(merged: dict[str, dict[str, Any]]) -> list[str]:
    """One line per dataset with events dropped for non-finite jet kinematics or weight."""
    lines = []
    for name, total in merged.items():
        flow = total["cutflow"]
        dropped = flow["all"] - flow["finite"]
        if dropped:
            lines.append(
                f"dataset {name!r}: {dropped} of {flow['all']} event(s) have NaN or infinite jet "
                f"kinematics or weight; dropped (cutflow step 'finite')"
            )
    return lines


# -- steps -----------------------------------------------------------------------------------
def _preflight(datasets: list, cfg: AnalysisConfig, skip: bool) -> tuple[dict, list[dict[str, str]]]:
    """Check every file (metadata only); bad files fail the run or are skipped."""
    from processors.dijet import required_branches
    from processors.fileset import check_file

    needed = required_branches(cfg.selection)
    checks, skipped = {}, []
    for ds in datasets:
        for path, tree in ds.files.items():
            check = check_file(path, tree, needed)
            checks[path] = check
            if check.problem is not None:
                if not skip:
                    raise InputError(f"{path}: {check.problem} (use --skip-bad-files to skip it)")
                skipped.append({"dataset": ds.name, "file": path, "reason": check.problem})
            elif check.missing:
                raise InputError(_missing_message(path, check.missing, cfg))
    return checks, skipped


def _missing_message(path: str, missing: list[str], cfg: AnalysisConfig) -> str:
    if missing == ["Jet_jetId"]:
        return (f"{path}: branch Jet_jetId is missing (needed by selection.jet_id_min = "
                f"{cfg.selection.jet_id_min}; set selection.jet_id_min: 0 to select without jet id)")  # fmt: skip
    return f"{path}: branch {', '.join(missing)} missing (needed by the dijet selection)"


def _run(
    datasets: list, checks: dict, skipped: list, proc: Any, skip: bool, runner_args: dict
) -> tuple[dict, list]:
    """Run coffea over the readable, non-empty files; returns {(dataset, file): result} and the skipped list.

    The processor reports files it cannot read or whose selected events are not finite; with
    ``skip``, coffea's ``skipbadfiles`` also skips files it cannot open, found here as files
    whose events were not all read."""
    from processors.runner import make_runner, uproot_options

    bad = {s["file"] for s in skipped}
    fileset = {}
    for ds in datasets:
        files = {p: t for p, t in ds.files.items() if p not in bad and checks[p].n_entries > 0}
        if files:
            fileset[ds.name] = {"files": files, "metadata": ds.metadata}
    if not fileset:
        return {}, skipped
    paths = [path for entry in fileset.values() for path in entry["files"]]
    with make_runner(**runner_args, skipbadfiles=skip) as runner:
        out = runner(fileset, proc, treename="Events", uproot_options=uproot_options(paths))
    problems = sorted(out.get("problems", set()))
    missing = [p for p in problems if p[0] == "missing_branch"]
    if missing:
        raise InputError(f"{missing[0][2]}: {missing[0][3]}")
    unreadable = [p for p in problems if p[0] in ("unreadable", "non_finite")]
    if unreadable and not skip:
        kind, _, path, message = unreadable[0]
        why = message if kind == "non_finite" else f"unreadable ({message})"
        raise InputError(f"{path}: {why} (use --skip-bad-files to skip it)")
    for kind, dataset, path, message in unreadable:
        if path not in bad:
            why = message if kind == "non_finite" else f"unreadable ({message})"
            skipped.append({"dataset": dataset, "file": path, "reason": why})
            bad.add(path)
    results = {(dataset, path): result for dataset, files in out.get("files", {}).items() for path, result in files.items()}
    for dataset, entry in fileset.items():
        for path in entry["files"]:
            read = results[(dataset, path)]["cutflow"]["all"] if (dataset, path) in results else 0
            if path not in bad and read < checks[path].n_entries:  # coffea skipped it (skipbadfiles)
                why = f"unreadable (coffea could not open or read it; {read} of {checks[path].n_entries} events read)"
                skipped.append({"dataset": dataset, "file": path, "reason": why})
                bad.add(path)
    return {key: result for key, result in results.items() if key[1] not in bad}, skipped


def _merge(
    datasets: list, checks: dict, skipped: list, per_file: dict, proc: Any
) -> dict[str, dict[str, Any]]:
    """Sum histograms and cutflows per dataset and order the columns by file and entry."""
    import awkward as ak

    bad = {s["file"] for s in skipped}
    merged = {}
    for ds in datasets:
        total = proc.empty_result()
        chunks = []
        for order, path in enumerate(ds.files):
            if path in bad or (ds.name, path) not in per_file:
                continue
            result = per_file[(ds.name, path)]
            total["mjj"] += result["mjj"]
            total["mjj_bins"] += result["mjj_bins"]
            for cut, n in result["cutflow"].items():
                total["cutflow"][cut] += int(n)
            chunks += [(order, start, cols) for start, cols in result["columns"]]
        chunks.sort(key=lambda item: item[:2])
        arrays = [cols for *_, cols in chunks]
        # files without PF candidates (plain NanoAOD) give jets without constituents: keep the
        # dataset's columns uniform by dropping them when not every file has them
        with_pf = [("constituents" in cols.jets.fields) for cols in arrays]
        if any(with_pf) and not all(with_pf):
            arrays = [_without_constituents(cols) for cols in arrays]
        total["constituents"] = bool(arrays) and all(with_pf)
        if not arrays:
            total["columns"] = proc.empty_columns(ds.name)
        else:
            total["columns"] = arrays[0] if len(arrays) == 1 else ak.concatenate(arrays)
        total["files"] = [p for p in ds.files if p not in bad]
        total["empty_files"] = [p for p in ds.files if p not in bad and checks[p].n_entries == 0]
        merged[ds.name] = total
    return merged


def _without_constituents(cols: Any) -> Any:
    import awkward as ak

    if "constituents" not in cols.jets.fields:
        return cols
    jets = cols.jets[[f for f in cols.jets.fields if f != "constituents"]]
    return ak.with_field(cols, jets, "jets")


def _write(out_dir: Path, datasets: list, checks: dict, skipped: list, merged: dict,
           injected: dict, injection: dict, cfg: AnalysisConfig) -> ProcessResult:  # fmt: skip
    """histograms.root (uproot), events/<dataset>.parquet (awkward), cutflow.json into
    ``out_dir`` (the staging directory: the commit makes them visible together)."""
    import awkward as ak

    from analysis.core.atomic import write_json
    from processors.fileset import safe_name

    spectra = Spectra(
        {b: dataset_spectra({safe_name(ds.name): merged[ds.name][b] for ds in datasets}) for b in BINNINGS},
        injected, injection["kind"] if injected else None,
    )  # fmt: skip
    write_spectra(out_dir / "histograms.root", spectra)
    events = {}
    (out_dir / "events").mkdir(exist_ok=True)
    for ds in datasets:
        target = out_dir / "events" / f"{safe_name(ds.name)}.parquet"
        ak.to_parquet(merged[ds.name]["columns"], target)
        events[ds.name] = target
    sel = cfg.selection
    cutflow = {
        "selection": cfg.selection.model_dump(mode="json"),
        "cuts": ["all", "finite", "jet_pt", "jet_eta", "jet_id", "n_jets"],
        "cut_meaning": {
            "all": "events read",
            "finite": "... whose jets' pt, eta, phi, mass and the event weight are finite (not NaN or inf)",
            "jet_pt": f"... and >= n_jets jets with {sel.jet_pt_min:g} <= pT <= {sel.jet_pt_max:g} GeV",
            "jet_eta": f"... and |eta| < {cfg.selection.jet_abs_eta_max:g}",
            "jet_id": f"... and jetId >= {cfg.selection.jet_id_min}",
            "n_jets": f"exactly {cfg.selection.n_jets} selected jets",
        },
        "datasets": {
            ds.name: {
                "cutflow": merged[ds.name]["cutflow"],
                "sumw_selected": float(merged[ds.name]["mjj"].sum(flow=True).value),
                "files": merged[ds.name]["files"],
                "empty_files": merged[ds.name]["empty_files"],
                "constituents": merged[ds.name]["constituents"],
                "metadata": ds.metadata,
                "histogram": dataset_key(safe_name(ds.name)),
                "events": str(events[ds.name].relative_to(out_dir)),
            }
            for ds in datasets
        },
        "skipped_files": skipped,
        "injection": injection,
    }
    write_json(out_dir / "cutflow.json", cutflow)
    return ProcessResult(out_dir, spectra, cutflow, events)
