"""Generation throughput (events/s per core): the full pipeline against Pythia alone.

Both run the default qcd settings (7 TeV, pT-hat window, MPI + hadronisation) with the same
seed in the same process: the baseline is Pythia's ``next()`` only; the pipeline is one file
of ``analysis.events.generation.write_file`` (Pythia ``nextBatch`` + FastJet clustering + flavour
and jet ID + uproot writing). Both include Pythia's initialisation. ratio = pipeline /
Pythia alone (target >= 0.7). Also measured: ``generate`` with 1 and 2 worker processes on
the same sample (scaling = rate with 2 / rate with 1; process start-up included).
Prints one JSON line and writes results/benchmarks/bench_generate.json.

  python benchmarks/bench_generate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (under two minutes)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from analysis.core.atomic import write_json
    from analysis.core.config import load_config
    from analysis.events.generation import generate, make_pythia, plan_files, pythia_settings, write_file

    n_events = 800 if args.quick else 3000
    n_scaling = 1200 if args.quick else 6000
    cfg = load_config(None, {"generation": {"events_per_file": n_events}}).generation
    settings = pythia_settings("qcd", cfg, None)
    scratch = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        # Pythia alone: init + next() only
        start = time.perf_counter()
        pythia = make_pythia(settings, args.seed)
        made = sum(bool(pythia.next()) for _ in range(n_events))
        t_pythia = time.perf_counter() - start
        del pythia

        # the pipeline: one file, same settings and seed, in this process
        (job,) = plan_files("qcd", n_events, args.seed, scratch / "pipeline", None, cfg)
        start = time.perf_counter()
        write_file(job)
        t_pipe = time.perf_counter() - start
        size_mb = Path(job.path).stat().st_size / 1e6

        # scaling over worker processes (two files)
        scale_cfg = load_config(None, {"generation": {"events_per_file": n_scaling // 2}}).generation
        rates = {}
        for workers in (1, 2):
            start = time.perf_counter()
            generate("qcd", n_scaling, args.seed, scratch / f"w{workers}", workers=workers, cfg=scale_cfg, quiet=True)
            rates[workers] = n_scaling / (time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base, value = made / t_pythia, n_events / t_pipe
    result = {
        "name": "bench_generate", "value": round(value, 1), "unit": "events/s",
        "baseline": round(base, 1), "ratio": round(value / base, 3),
        "baseline_name": "Pythia next() only (same settings, one core)", "events": n_events,
        "ms_per_event_pythia": round(1000 / base, 3), "ms_per_event_pipeline": round(1000 / value, 3),
        "file_mb_per_1k_events": round(size_mb * 1000 / n_events, 2),
        "scaling_events": n_scaling, "rate_1_worker": round(rates[1], 1), "rate_2_workers": round(rates[2], 1),
        "scaling_2_over_1": round(rates[2] / rates[1], 3), "quick": args.quick,
    }  # fmt: skip
    line = json.dumps(result)
    print(line)
    write_json(REPO / "results" / "benchmarks" / "bench_generate.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
