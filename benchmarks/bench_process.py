"""Benchmark the coffea dijet processor against the reference workflow's per-event Python loops.

Measured on the same generated events in the same run:
- value: events/s of the processor (iterative executor, one core): read + select + histogram +
  columnar Parquet write (``process_fileset`` with injection off);
- baseline: events/s of the reference workflow (particledist) done its way on the same work:
  jet records with per-jet constituent arrays (as EnergyFlow's MOD datasets), jets grouped by
  event in Python dicts, every jet's four-vector from ``energyflow.p4s_from_ptyphims``, the
  cuts, the selected jets' four-vectors added in Python, the mass from
  ``energyflow.ms_from_p4s``, binned by a scan over the bins, and the selected jets'
  constituents copied element by element into a padded array (its models' input);
- ratio = value / baseline (target >= 100);
- hist_only_events_per_s_per_core: the processor without columnar output (read + select +
  histogram), iterative executor, one core (target >= 100k); hist_only_baseline and
  hist_only_ratio compare it with the reference way doing only the m_jj histogram.
Both implementations' histograms are compared (``histograms_agree``).

The raw-read bound, same events, same convention (events/s on one core, after the warm-up):
- raw_read_events_per_s: uproot alone reading and decompressing, into awkward arrays, the
  branches the processor reads (``read_branches``: coffea's access log of the columnar
  processor on the first file, default selection: the jet and PF-candidate branches and their
  counters), file by file with the processor's uproot options (memory-mapped);
- raw_read_fraction = value / raw_read_events_per_s: the share of the read-only rate that the
  whole processing (read + select + histogram + columnar output) keeps (target >= 0.8).

The sample is generated once with ``analysis.events.generation`` and cached under data/bench_process/
(or pass --fileset). Prints one JSON line; writes results/benchmarks/bench_process.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

from analysis.core.atomic import write_json  # noqa: E402
from analysis.core.config import load_config  # noqa: E402

CACHE = REPO / "data" / "bench_process"


def sample_fileset(n_events: int, seed: int) -> Path:
    """A generated qcd sample of ``n_events`` events (cached; reused when rerun)."""
    from analysis.events.generation import generate

    return generate("qcd", n_events, seed, CACHE / f"qcd_{n_events}_{seed}", quiet=True)


def files_of(fileset: Path) -> list[str]:
    data = json.loads(fileset.read_text())
    out = []
    for entry in data.values():
        files = entry["files"] if isinstance(entry, dict) else entry
        out += [str(p if Path(p).is_absolute() else fileset.parent / p) for p in files]
    return out


def run_processor(files: list[str], cfg: Any, columnar: bool) -> tuple[float, Any]:
    """Seconds for the processor over the files on one core; the merged m_jj histogram."""
    from analysis.events.processing import process_fileset
    from processors.dijet import DijetProcessor
    from processors.runner import make_runner, uproot_options

    start = time.perf_counter()
    if columnar:
        with tempfile.TemporaryDirectory(prefix="bench_process_") as tmp:
            res = process_fileset({"qcd": files}, tmp, cfg, executor="iterative", quiet=True)
            return time.perf_counter() - start, res.spectra.dataset("qcd")
    proc = DijetProcessor(cfg.selection, cfg.histograms, columnar=False)
    with make_runner("iterative", chunksize=cfg.processing.chunksize, quiet=True) as runner:
        out = runner({"qcd": files}, proc, treename="Events", uproot_options=uproot_options(files))
    total = sum((r["mjj"] for r in out["files"]["qcd"].values()), proc.empty_result()["mjj"])
    return time.perf_counter() - start, total


def read_branches(files: list[str], cfg: Any) -> list[str]:
    """The branches the columnar processor reads for this config: coffea's access log of
    ``DijetProcessor.process`` on the first file's events (as the Runner builds them)."""
    from coffea.nanoevents import NanoEventsFactory

    from processors.dijet import DijetProcessor
    from processors.runner import DijetSchema, uproot_options

    log: list = []
    events = NanoEventsFactory.from_root(
        {files[0]: "Events"}, schemaclass=DijetSchema, access_log=log, mode="virtual",
        metadata={"dataset": "qcd", "filename": files[0]}, uproot_options=uproot_options(files),
    ).events()  # fmt: skip
    DijetProcessor(cfg.selection, cfg.histograms, columnar=True).process(events)
    return sorted({access.branch for access in log})


def run_raw_read(files: list[str], branches: list[str]) -> float:
    """Seconds for uproot alone to read and decompress ``branches`` of every file into awkward
    arrays (one file at a time, the processor's uproot options)."""
    import uproot

    from processors.runner import uproot_options

    start = time.perf_counter()
    for path in files:
        with uproot.open(path, **uproot_options(files)) as fh:
            fh["Events"].arrays(branches)
    return time.perf_counter() - start


def read_jet_records(path: str, constituents: bool) -> tuple[dict[str, list], list[float]]:
    """The inputs as the reference had them (EnergyFlow's MOD jet records): one row per jet
    with its event number, kinematics and id, and, per jet, its constituents as a numpy array
    of (pt, rapidity, phi, pdgId) rows. Built with uproot and numpy, as the reference's loader."""
    import awkward as ak
    import numpy as np
    import uproot

    branches = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "genWeight"]
    if constituents:
        branches += ["JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt", "PFCands_eta", "PFCands_phi",
                     "PFCands_mass", "PFCands_pdgId"]  # fmt: skip
    with uproot.open(path) as fh:
        a = fh["Events"].arrays(branches)
    n_jets = ak.to_numpy(ak.num(a.Jet_pt))
    jets = {"event": np.repeat(np.arange(len(a)), n_jets).tolist()}
    jets.update({k[4:]: ak.flatten(a[k]).tolist() for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId")})
    if constituents:
        flat = {k: ak.to_numpy(ak.flatten(a[f"PFCands_{k}"][a.JetPFCands_pFCandsIdx])).astype(np.float64)
                for k in ("pt", "eta", "phi", "mass", "pdgId")}  # fmt: skip
        pz = flat["pt"] * np.sinh(flat["eta"])
        e = np.sqrt((flat["pt"] * np.cosh(flat["eta"])) ** 2 + flat["mass"] ** 2)
        rows = np.stack([flat["pt"], 0.5 * np.log((e + pz) / (e - pz)), flat["phi"], flat["pdgId"]], axis=1)
        first_jet = np.concatenate([[0], np.cumsum(n_jets)[:-1]])  # global index of each event's jet 0
        owner = ak.to_numpy(ak.flatten(a.JetPFCands_jetIdx + first_jet))
        order = np.argsort(owner, kind="stable")
        split = np.cumsum(np.bincount(owner, minlength=len(jets["event"])))[:-1]
        jets["particles"] = np.split(rows[order], split)
    return jets, a.genWeight.tolist()


def run_baseline(files: list[str], cfg: Any, constituents: bool = True) -> tuple[float, list[float], int]:
    """The reference workflow, the reference way (particledist's ParticleDistributionCMS and
    MassDistribution): jets grouped by event in Python dicts, each jet's four-vector from
    ``energyflow.p4s_from_ptyphims``, the selected events' four-vectors added in Python and
    their masses from ``energyflow.ms_from_p4s``, each mass binned by a scan over the bins,
    and the selected jets' constituents copied element by element into one padded array (the
    models' input). Seconds, bin counts, events read.

    Physics as the processor (so the histograms can be compared): the configured jet cuts and
    exactly ``n_jets`` selected jets; rapidity, not pseudorapidity, in the four-vectors.
    ``constituents=False``: the m_jj histogram only (the work of the histogram-only path)."""
    import energyflow as ef
    import numpy as np

    sel, h = cfg.selection, cfg.histograms
    ranges = [(h.mjj_min + i * h.mjj_bin_width, h.mjj_min + (i + 1) * h.mjj_bin_width) for i in range(h.n_bins)]
    counts = [0.0] * h.n_bins
    n_read = 0
    start = time.perf_counter()
    for path in files:
        jets, weights = read_jet_records(path, constituents)
        n_read += len(weights)
        events: dict[int, list[tuple]] = {}  # group jets by event
        for i in range(len(jets["event"])):
            row = (jets["pt"][i], jets["eta"][i], jets["phi"][i], jets["mass"][i], jets["jetId"][i],
                   jets["particles"][i] if constituents else None)  # fmt: skip
            if jets["event"][i] in events:
                events[jets["event"][i]].append(row)
            else:
                events[jets["event"][i]] = [row]
        selected_jets = []
        for event, event_jets in events.items():
            p4s = []  # every jet's four-vector, as the reference converted them
            for pt, eta, phi, m, _, _ in event_jets:
                y = math.asinh(pt * math.sinh(eta) / math.sqrt(pt * pt + m * m))
                p4s.append(ef.p4s_from_ptyphims(np.array([pt, y, phi, m])).tolist())
            good = [i for i, j in enumerate(event_jets) if sel.jet_pt_min <= j[0] <= sel.jet_pt_max
                    and abs(j[1]) < sel.jet_abs_eta_max and j[4] >= sel.jet_id_min]  # fmt: skip
            if len(good) != sel.n_jets:
                continue
            total = [sum(p4s[i][c] for i in good) for c in range(4)]  # add the four-vectors
            mjj = float(ef.ms_from_p4s(np.array(total)))
            for b, (lo, hi) in enumerate(ranges):  # bin the mass
                if lo <= mjj < hi:
                    counts[b] += weights[event]
                    break
            selected_jets += [event_jets[i][5] for i in good]
        if constituents and selected_jets:  # the models' input: pad the jets element by element
            n_max = max(len(p) for p in selected_jets)
            padded = np.zeros((len(selected_jets), n_max, 4))
            for i in range(len(selected_jets)):
                for j in range(n_max):
                    for k in range(4):
                        try:
                            padded[i, j, k] = selected_jets[i][j][k]
                        except IndexError:
                            padded[i, j, k] = 0
    return time.perf_counter() - start, counts, n_read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sample (under two minutes)")
    parser.add_argument("--fileset", type=Path, default=None, help="use this fileset instead of generating")
    parser.add_argument(
        "--events", type=int, default=None, help="generated events (default: 6000 quick, 60000 full)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "bench_process.json")
    args = parser.parse_args(argv)

    import numpy as np

    cfg = load_config(None, {"injection": {"kind": "none"}})
    n_events = args.events or (6_000 if args.quick else 60_000)
    fileset = args.fileset or sample_fileset(n_events, cfg.seed)
    files = files_of(fileset)
    import uproot

    total = 0
    for path in files:
        with uproot.open(path) as fh:
            total += fh["Events"].num_entries

    run_processor(files, cfg, columnar=False)  # warm-up: imports, schema, file cache
    t_hist, _ = run_processor(files, cfg, columnar=False)
    t_proc, proc_hist = run_processor(files, cfg, columnar=True)
    branches = read_branches(files, cfg)
    t_raw = run_raw_read(files, branches)
    t_base, base_counts, n_base = run_baseline(files, cfg)
    t_base_hist, base_hist_counts, _ = run_baseline(files, cfg, constituents=False)
    agree = bool(np.allclose(proc_hist.values(), base_counts, rtol=1e-9, atol=0))
    agree &= base_hist_counts == base_counts

    value = total / t_proc
    baseline = n_base / t_base
    result = {
        "name": "bench_process",
        "value": round(value, 1),
        "unit": "events/s",
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 2),
        "raw_read_events_per_s": round(total / t_raw, 1),
        "raw_read_fraction": round(t_raw / t_proc, 3),
        "raw_read_target": ">= 0.8",
        "raw_read_branches": branches,
        "hist_only_events_per_s_per_core": round(total / t_hist, 1),
        "hist_only_baseline": round(n_base / t_base_hist, 1),
        "hist_only_ratio": round(t_base_hist / t_hist, 2),
        "events": total,
        "cores": 1,
        "selected_events": int(proc_hist.sum(flow=True).value),
        "histograms_agree": agree,
        "quick": args.quick,
        "baseline_method": "the reference workflow (particledist) its way: per-event Python loops, same events",
    }
    write_json(args.out, result)
    print(json.dumps(result))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
