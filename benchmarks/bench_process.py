"""Benchmark the coffea dijet processor against the reference workflow's per-event Python loops.

Measured on the same generated events in the same run:
- value: events/s of the processor (iterative executor, one core): read + select + histogram +
  columnar Parquet write (``process_fileset`` with injection off);
- baseline: events/s of the reference way on the same work: flat per-jet and per-constituent
  rows (as the reference's tables), jets grouped by event in Python loops, the cuts, the jets'
  four-vectors added per event, m_jj binned in Python, and the selected jets' constituents
  (pt, rapidity, phi, pdgId) collected in a Python loop over the constituent rows;
- ratio = value / baseline (target >= 100);
- hist_only_events_per_s_per_core: the processor without columnar output (read + select +
  histogram), iterative executor, one core (target >= 100k); hist_only_baseline and
  hist_only_ratio compare it with the reference way doing only the m_jj histogram.
Both implementations' histograms are compared (``histograms_agree``).

The sample is generated once with ``analysis.generation`` and cached under data/bench_process/
(or pass --fileset). Prints one JSON line; writes results/benchmarks/bench_process.json.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.atomic import write_json  # noqa: E402
from analysis.config import load_config  # noqa: E402

CACHE = REPO / "data" / "bench_process"


def sample_fileset(n_events: int, seed: int) -> Path:
    """A generated qcd sample of ``n_events`` events (cached; reused when rerun)."""
    from analysis.generation import generate

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
    from analysis.commands.process import process_fileset
    from processors.dijet import DijetProcessor
    from processors.runner import make_runner, uproot_options

    start = time.perf_counter()
    if columnar:
        with tempfile.TemporaryDirectory(prefix="bench_process_") as tmp:
            res = process_fileset({"qcd": files}, tmp, cfg, executor="iterative", quiet=True)
            return time.perf_counter() - start, res.histograms["mjj_qcd"]
    proc = DijetProcessor(cfg.selection.model_dump(), cfg.histograms.model_dump(), columnar=False)
    with make_runner("iterative", chunksize=cfg.processing.chunksize, quiet=True) as runner:
        out = runner({"qcd": files}, proc, treename="Events", uproot_options=uproot_options(files))
    total = sum((r["mjj"] for r in out["files"]["qcd"].values()), proc.empty_result()["mjj"])
    return time.perf_counter() - start, total


def read_flat_tables(path: str, constituents: bool) -> tuple[dict[str, list], dict[str, list], list[float]]:
    """The inputs as the reference had them: flat per-jet and per-constituent rows with event numbers."""
    import awkward as ak
    import numpy as np
    import uproot

    branches = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "genWeight"]
    if constituents:
        branches += ["JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt", "PFCands_eta", "PFCands_phi",
                     "PFCands_mass", "PFCands_pdgId"]  # fmt: skip
    with uproot.open(path) as fh:
        a = fh["Events"].arrays(branches)
    n = len(a)
    jets = {"event": np.repeat(np.arange(n), ak.to_numpy(ak.num(a.Jet_pt))).tolist()}
    jets.update(
        {k[4:]: ak.flatten(a[k]).tolist() for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId")}
    )
    if not constituents:
        return jets, {"event": []}, a.genWeight.tolist()
    cand = {
        k: a[k][a.JetPFCands_pFCandsIdx]
        for k in ("PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_pdgId")
    }
    const = {"event": np.repeat(np.arange(n), ak.to_numpy(ak.num(a.JetPFCands_jetIdx))).tolist(),
             "jet": ak.flatten(a.JetPFCands_jetIdx).tolist()}  # fmt: skip
    const.update({k[8:]: ak.flatten(v).tolist() for k, v in cand.items()})
    return jets, const, a.genWeight.tolist()


def run_baseline(files: list[str], cfg: Any, constituents: bool = True) -> tuple[float, list[float], int]:
    """The reference way: Python loops over rows. Seconds, bin counts, events read.

    ``constituents=False``: the m_jj histogram only (the work of the histogram-only path)."""
    sel, h = cfg.selection, cfg.histograms
    edges = [h.mjj_min + i * h.mjj_bin_width for i in range(h.n_bins + 1)]
    counts = [0.0] * h.n_bins
    n_read = 0
    start = time.perf_counter()
    for path in files:
        jets, const, weights = read_flat_tables(path, constituents)
        n_read += len(weights)
        by_event: dict[int, list[tuple]] = {}  # group jets by event
        for i in range(len(jets["event"])):
            by_event.setdefault(jets["event"][i], []).append(
                (i, jets["pt"][i], jets["eta"][i], jets["phi"][i], jets["mass"][i], jets["jetId"][i])
            )
        selected: dict[tuple[int, int], list] = {}  # (event, jet index) -> constituents
        masses = []
        for event, event_jets in by_event.items():
            good = [j for j in event_jets if sel.jet_pt_min <= j[1] <= sel.jet_pt_max
                    and abs(j[2]) < sel.jet_abs_eta_max and j[5] >= sel.jet_id_min]  # fmt: skip
            if len(good) != sel.n_jets:
                continue
            e = px = py = pz = 0.0  # add four-vectors
            for _, pt, eta, phi, m, _ in good:
                jx, jy, jz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
                px, py, pz, e = px + jx, py + jy, pz + jz, e + math.sqrt(jx * jx + jy * jy + jz * jz + m * m)
            mjj = math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
            masses.append((mjj, weights[event]))
            first = event_jets[0][0]
            for j in good:
                selected[(event, j[0] - first)] = []
        for mjj, w in masses:  # bin masses
            if edges[0] <= mjj < edges[-1]:
                counts[bisect.bisect_right(edges, mjj) - 1] += w
        for i in range(len(const["event"])):  # constituents of the selected jets
            target = selected.get((const["event"][i], const["jet"][i]))
            if target is not None:
                pt, eta, m = const["pt"][i], const["eta"][i], const["mass"][i]
                pz, e = pt * math.sinh(eta), math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)
                target.append((pt, 0.5 * math.log((e + pz) / (e - pz)), const["phi"][i], const["pdgId"][i]))
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

    total = sum(uproot.open(p)["Events"].num_entries for p in files)

    run_processor(files, cfg, columnar=False)  # warm-up: imports, schema, file cache
    t_hist, _ = run_processor(files, cfg, columnar=False)
    t_proc, proc_hist = run_processor(files, cfg, columnar=True)
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
        "hist_only_events_per_s_per_core": round(total / t_hist, 1),
        "hist_only_baseline": round(n_base / t_base_hist, 1),
        "hist_only_ratio": round(t_base_hist / t_hist, 2),
        "events": total,
        "cores": 1,
        "selected_events": int(proc_hist.sum(flow=True).value),
        "histograms_agree": agree,
        "quick": args.quick,
        "baseline_method": "per-event Python loops (reference way), same events",
    }
    write_json(args.out, result)
    print(json.dumps(result))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
