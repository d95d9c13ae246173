"""Parallel efficiency of the Dask cluster: the same generation and the same trainings on 1 and
on 2 workers.

The chain's ``generate`` and ``scan`` stages (``analysis.pipeline.run_chain``) run twice on a
small config, each time on a fresh LocalCluster (``open_cluster``) of 1, then 2 single-threaded
worker processes, into fresh directories: generation is one task per file (Pythia8 + FastJet +
uproot), the scan one task per PFN training (the null scan: samples x bin pairs). ``process``
runs between them (not timed). The times are the stages' wall times from ``run.json``, worker
start-up (and each worker's TensorFlow import) included. Each worker is one core, as a
``dask worker --nthreads 1`` on a cluster node: TensorFlow and OpenMP get one thread
(``TF_NUM_INTRAOP_THREADS=1`` ..., inherited by the workers); otherwise one training already
spreads over both cores of this machine and a second worker has no core to run on.
``ratio`` = time(1) / (2 x time(2))
of generation + scan together, the parallel efficiency (target >= 0.8); each stage's efficiency
is reported too, and the outputs of the two runs must be identical (the AUCs).

Prints one JSON line and writes results/benchmarks/bench_scale.json.

  python benchmarks/bench_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.8


def config(quick: bool, work: Path) -> dict:
    """Files and trainings enough to keep two workers busy (a multiple of 2 of each)."""
    return {
        "seed": 11, "output": str(work / "results"), "stages": ["generate", "process", "scan"],
        "injection": {"kind": "none"},
        "generation": {"qcd_events": 4000 if quick else 12000, "events_per_file": 1000 if quick else 1500,
                       "pthat_min": 340.0, "pthat_max": 460.0, "data_dir": str(work / "data")},
        "processing": {"executor": "futures", "workers": 2},
        "scan": {"sizes": [600 if quick else 1500], "n_samples": 2 if quick else 4, "epochs": 3 if quick else 5,
                 "batch_size": 100, "phi_sizes": [32, 32], "f_sizes": [32], "reference_events": 500,
                 "train_jets": 400 if quick else 1200, "test_jets": 150 if quick else 300, "min_jets_per_bin": 60},
    }  # fmt: skip


def run(workers: int, quick: bool) -> tuple[dict[str, float], str, int]:
    """Stage times (s), the AUC file's text and the number of trainings, on ``workers`` workers."""
    from analysis.core.config import load_config
    from analysis.core.provenance import RunRecord
    from analysis.pipeline import RunContext, RunOptions, run_chain

    work = Path(tempfile.mkdtemp(prefix=f"bench_scale_{workers}_"))
    try:
        path = work / "config.yaml"
        path.write_text(json.dumps(config(quick, work)))
        cfg = load_config(path)
        out = Path(cfg.output)
        record = RunRecord(out, "run", cfg.to_dict(), cfg.seed)
        run_chain(RunContext(cfg, out, record, RunOptions(executor="dask", workers=workers, quiet=True)))
        times = record.data["timings_s"]
        aucs = (out / "scan" / "auc_scan.json").read_text()
        n = sum(len(s["pairs"]) * s["n_samples"] for s in json.loads(aucs)["sizes"])
        return {"generate": times["generate"], "scan": times["scan"]}, aucs, n
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (a few minutes)")
    args = parser.parse_args()
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = "1"  # one core per worker (the workers inherit this environment)
    from analysis.core.atomic import write_json

    one, aucs_one, n_trainings = run(1, args.quick)
    two, aucs_two, _ = run(2, args.quick)
    if aucs_one != aucs_two:
        raise SystemExit("bench_scale: the AUCs on 1 and 2 workers differ")
    total_one, total_two = sum(one.values()), sum(two.values())
    ratio = total_one / (2 * total_two)
    result = {
        "name": "bench_scale", "metric": "parallel efficiency, time(1 worker) / (2 x time(2 workers))",
        "value": round(total_two, 1), "unit": "s on 2 workers", "baseline": round(total_one, 1),
        "ratio": round(ratio, 3), "target": TARGET, "meets_target": ratio >= TARGET,
        "stages_s": {"1_worker": {k: round(v, 1) for k, v in one.items()},
                     "2_workers": {k: round(v, 1) for k, v in two.items()}},
        "efficiency": {k: round(one[k] / (2 * two[k]), 3) for k in one},
        "trainings": n_trainings, "identical_outputs": True, "cores": len(os.sched_getaffinity(0)),
        "mode": "quick" if args.quick else "full",
    }  # fmt: skip
    print(json.dumps(result))
    write_json(REPO / "results" / "benchmarks" / "bench_scale.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
