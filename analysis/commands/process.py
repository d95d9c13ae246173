"""Run the coffea dijet processor over a fileset: selection, m_jj histograms, injection, Parquet.

Reads the datasets of --fileset (coffea's fileset form, e.g. the fileset.json written by
`generate`, or any CMS NanoAOD files with Jet_* branches) and writes to --out:
  histograms.root          TH1 mjj_<dataset> (uniform bins) and mjj_bins_<dataset> (analysis
                           bins) per dataset; with an injection: mjj_background,
                           mjj_signal_<kind>_<k> and mjj_injected_<kind>_<k> (= background +
                           signal), each also as mjj_bins_...
  cutflow.json             per dataset the cutflow counts; skipped bad files; the injection
  events/<dataset>.parquet selected events: mjj, weight, dataset, event; jets (pt, eta, phi,
                           mass, rapidity, partonFlavour, jetId, constituents: pt, rapidity,
                           phi, pdgId)
  run.json                 provenance
A missing, corrupt or truncated input file stops the run (exit 1) naming the file, unless
--skip-bad-files, which skips such files and lists them in cutflow.json.

Example:
  python run_analysis.py process --fileset data/qcd/fileset.json data/xgg/fileset.json \\
      --out results/process --executor dask --workers 2
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.config import AnalysisConfig, load_config
from analysis.errors import ConfigError, InputError

NAME = "process"
HELP = "run the coffea dijet processor over a fileset (histograms, cutflow, Parquet events)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fileset", type=Path, nargs="+", required=True,
        help="fileset.json (coffea's fileset form); several are merged (e.g. qcd and xgg samples)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)"
    )
    parser.add_argument(
        "--executor", choices=("iterative", "futures", "dask"), default=None,
        help="coffea executor (default: config processing.executor)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: config, else all cores)"
    )
    parser.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)"
    )
    parser.add_argument("--chunksize", type=int, default=None, help="events per chunk (default: config)")
    parser.add_argument(
        "--skip-bad-files", action="store_true", default=None,
        help="skip missing/corrupt/truncated files (listed in cutflow.json) instead of failing",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    if args.chunksize is not None and args.chunksize < 1:
        raise ConfigError(f"--chunksize {args.chunksize}: must be at least 1")
    overrides = {} if args.chunksize is None else {"processing": {"chunksize": args.chunksize}}
    config = load_config(args.config, overrides)
    result = process_fileset(
        args.fileset, args.out, config, executor=args.executor, workers=args.workers,
        scheduler=args.scheduler, skip_bad_files=args.skip_bad_files, quiet=args.quiet,
    )  # fmt: skip
    if not args.quiet:
        print(result.summary_line())
    return 0


@dataclass
class ProcessResult:
    """What ``process_fileset`` wrote, for callers (the default chain, tests)."""

    out_dir: Path
    histograms: dict[str, Any]  # ROOT key -> hist.Hist
    cutflow: dict[str, Any]  # the content of cutflow.json
    events: dict[str, Path] = field(default_factory=dict)  # dataset -> Parquet file

    def summary_line(self) -> str:
        selected = sum(d["cutflow"]["n_jets"] for d in self.cutflow["datasets"].values())
        skipped = len(self.cutflow["skipped_files"])
        extra = f", {skipped} bad file(s) skipped" if skipped else ""
        return f"processed {len(self.events)} dataset(s): {selected} selected events{extra}; results in {self.out_dir}"


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
    existing :class:`analysis.provenance.RunRecord` to time the stages into (the default chain
    passes its own); without one, ``out_dir/run.json`` is written.
    """
    from analysis.provenance import RunRecord
    from processors.dijet import DijetProcessor
    from processors.fileset import load_fileset

    proc_cfg = cfg.processing
    executor = executor or proc_cfg.executor
    workers = workers or proc_cfg.workers
    scheduler = scheduler or proc_cfg.scheduler
    skip = proc_cfg.skip_bad_files if skip_bad_files is None else skip_bad_files
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if record is None:
        record = RunRecord(out_dir, "process", cfg.to_dict(), cfg.seed)
        record.write()
    datasets = load_fileset(dict(fileset) if isinstance(fileset, Mapping) else fileset)
    if not datasets:
        raise ConfigError("the fileset has no datasets")
    proc = DijetProcessor(cfg.selection.model_dump(), cfg.histograms.model_dump())

    with record.stage("process.preflight"):
        checks, skipped = _preflight(datasets, cfg, skip)
    with record.stage("process.coffea"):
        per_file, skipped = _run(datasets, checks, skipped, proc, skip,
                                 dict(executor=executor, workers=workers, chunksize=proc_cfg.chunksize,
                                      scheduler=scheduler, quiet=quiet, local_processes=local_processes))  # fmt: skip
    with record.stage("process.merge"):
        merged = _merge(datasets, checks, skipped, per_file, proc)
    with record.stage("process.inject"):
        from analysis.injection import injected_spectra, plan_injection
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
        result = _write(out_dir, datasets, checks, skipped, merged, injected, inj.summary(), cfg)
    record.add(process={"executor": executor, "workers": workers, "scheduler": scheduler,
                        "skipped_files": [s["file"] for s in skipped]})  # fmt: skip
    record.write()
    return result


# -- steps -----------------------------------------------------------------------------------
def _preflight(datasets: list, cfg: AnalysisConfig, skip: bool) -> tuple[dict, list[dict[str, str]]]:
    """Check every file (metadata only); bad files fail the run or are skipped."""
    from processors.dijet import required_branches
    from processors.fileset import check_file

    needed = required_branches(cfg.selection.model_dump())
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
    """Run coffea over the readable, non-empty files; returns {(dataset, file): result} and the skipped list."""
    from processors.runner import make_runner, uproot_options

    bad = {s["file"] for s in skipped}
    while True:
        fileset = {}
        for ds in datasets:
            files = {p: t for p, t in ds.files.items() if p not in bad and checks[p].n_entries > 0}
            if files:
                fileset[ds.name] = {"files": files, "metadata": ds.metadata}
        if not fileset:
            return {}, skipped
        try:
            paths = [path for entry in fileset.values() for path in entry["files"]]
            with make_runner(**runner_args) as runner:
                out = runner(fileset, proc, treename="Events", uproot_options=uproot_options(paths))
        except InputError:
            raise
        except Exception as exc:  # a file that passed the preflight failed inside coffea
            path = _file_in_message(exc, checks)
            if path is None:
                raise
            reason = f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            if not skip:
                raise InputError(f"{path}: {reason} (use --skip-bad-files to skip it)") from exc
            skipped.append({"dataset": _dataset_of(datasets, path), "file": path, "reason": reason})
            bad.add(path)
            continue
        problems = sorted(out.get("problems", set()))
        missing = [p for p in problems if p[0] == "missing_branch"]
        if missing:
            raise InputError(f"{missing[0][2]}: {missing[0][3]}")
        unreadable = [p for p in problems if p[0] == "unreadable" and p[2] not in bad]
        if unreadable and not skip:
            _, _, path, message = unreadable[0]
            raise InputError(f"{path}: unreadable ({message}) (use --skip-bad-files to skip it)")
        for _, dataset, path, message in unreadable:
            if path not in bad:
                skipped.append({"dataset": dataset, "file": path, "reason": f"unreadable ({message})"})
                bad.add(path)
        per_file = {
            (dataset, path): result
            for dataset, files in out.get("files", {}).items()
            for path, result in files.items()
            if path not in bad
        }
        return per_file, skipped


def _file_in_message(exc: BaseException, checks: dict) -> str | None:
    text = " ".join(str(e) for e in _chain(exc))
    for match in re.finditer(r"filename='([^']+)'", text):
        if match.group(1) in checks:
            return match.group(1)
    return None


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _dataset_of(datasets: list, path: str) -> str:
    return next(ds.name for ds in datasets if path in ds.files)


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
    """histograms.root (uproot), events/<dataset>.parquet (awkward), cutflow.json; all atomic."""
    import awkward as ak
    import uproot

    from analysis.atomic import atomic_path, write_json
    from processors.fileset import safe_name

    hists: dict[str, Any] = {}
    for ds in datasets:
        hists[f"mjj_{safe_name(ds.name)}"] = merged[ds.name]["mjj"]
        hists[f"mjj_bins_{safe_name(ds.name)}"] = merged[ds.name]["mjj_bins"]
    for name, h in injected.items():
        if name in hists:
            raise ConfigError(
                f"dataset name clashes with the injected histogram {name!r}; rename the dataset"
            )
        hists[name] = h
    with atomic_path(out_dir / "histograms.root") as tmp, uproot.recreate(tmp) as fh:
        for name, h in hists.items():
            fh[name] = h
    events = {}
    for ds in datasets:
        target = out_dir / "events" / f"{safe_name(ds.name)}.parquet"
        with atomic_path(target) as tmp:
            ak.to_parquet(merged[ds.name]["columns"], tmp)
        events[ds.name] = target
    cutflow = {
        "selection": cfg.selection.model_dump(mode="json"),
        "cuts": ["all", "jet_pt", "jet_eta", "jet_id", "n_jets"],
        "cut_meaning": {
            "all": "events read",
            "jet_pt": f">= n_jets jets with {cfg.selection.jet_pt_min:g} <= pT <= {cfg.selection.jet_pt_max:g} GeV",
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
                "histogram": f"mjj_{safe_name(ds.name)}",
                "events": str(events[ds.name].relative_to(out_dir)),
            }
            for ds in datasets
        },
        "skipped_files": skipped,
        "injection": injection,
    }
    write_json(out_dir / "cutflow.json", cutflow)
    return ProcessResult(out_dir, hists, cutflow, events)
