"""Benchmark: one plot view of the workbench for the default toys (target: under 1 s).

* ours: ``GET /api/plot`` through the app (security middleware, validation, the three figures of
  the view made by the ``plot`` command's functions and encoded as PNG data URLs), for the
  config's default signal, background, wavelet and toy count; the median over repeated views
  after a first (cold) one, which is reported apart.
* baseline: the same three figures the way the ``plot`` command writes them (``toy_figure`` +
  ``save``: PNG files at 120 dpi with a tight bounding box), in the same run.

Prints one JSON line and writes results/benchmarks/bench_workbench.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from analysis.core.atomic import write_json
from analysis.core.config import REPO_ROOT, load_config
from analysis.core.plots import save
from analysis.toys.plots import toy_figure
from analysis.toys.selection import toy_setup
from analysis.workbench.app import Settings, create_app
from analysis.workbench.views import VIEW_KINDS

TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 views instead of 10")
    args = parser.parse_args()
    from starlette.testclient import TestClient

    repeats = 3 if args.quick else 10
    config = load_config(REPO_ROOT / "configs" / "default.yaml")
    toys = config.toys
    params = {"signal_id": toys.signal_id, "bg_id": toys.bg_id, "wavelet_id": toys.wavelet_id, "seed": config.seed,
              "n_toys": toys.n_fluctuations}  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="bench_workbench_"))
    try:
        settings = Settings(config=REPO_ROOT / "configs" / "default.yaml", sessions=scratch / "s", results=scratch / "r")
        client = TestClient(create_app(settings, token="t"), base_url="http://127.0.0.1:8765")
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            response = client.get("/api/plot", params=params)
            times.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"plot view failed: {response.text}")
        cold, ours = times[0], statistics.median(times[1:])

        setup = toy_setup(config)
        base = []
        for _ in range(repeats):
            start = time.perf_counter()
            for kind in (*VIEW_KINDS, "cwt-clean"):
                save(toy_figure(kind, setup, config.seed, toys.n_fluctuations), scratch / f"{kind}.png")
            base.append(time.perf_counter() - start)
        baseline = statistics.median(base)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "name": "bench_workbench", "value": round(ours, 3), "unit": "s", "baseline": round(baseline, 3),
        "ratio": round(baseline / ours, 2), "mode": "quick" if args.quick else "full", "target_s": TARGET_S,
        "meets_target": ours < TARGET_S, "cold_s": round(cold, 3), "views": repeats, "params": params,
    }  # fmt: skip
    write_json(REPO_ROOT / "results" / "benchmarks" / "bench_workbench.json", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
