"""MOD import throughput (jets/s per core): `import-mod` against reading the same HDF5 arrays
with h5py alone.

A synthetic CMS MOD file in EnergyFlow's layout (gzip level 4 as ``MODDataset.save`` with
compression; 1-3 jets per event, ~60 PF candidates per jet, about a real CMS2011AJets jet)
is read two ways in this process: the baseline reads ``jets_i``, ``jets_f``, ``pfcs`` and
``pfcs_index`` whole with h5py (decompression included); the pipeline is
``analysis.events.mod_import.import_file`` (keys, grouping, chunked reads, conversion, awkward
nesting, uproot writing with ZLIB(1), the record). ratio = pipeline / h5py alone (target >= 0.5).
Also reported: MB on disk per 1k jets of the MOD file and of the ROOT file.
Prints one JSON line and writes results/benchmarks/bench_mod_import.json.

  python benchmarks/bench_mod_import.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
JETS_I = ["fn", "rn", "lbn", "evn", "npv", "quality"]
JETS_F = ["jet_pt", "jet_y", "jet_phi", "jet_m", "jet_eta", "jec", "jet_area", "jet_max_nef", "weight"]
PFCS = ["pt", "y", "phi", "m", "pid", "vertex"]


def write_mod_file(path: Path, n_events: int, seed: int) -> int:
    """A CMS MOD file of ``n_events`` events; returns its number of jets."""
    import h5py

    rng = np.random.default_rng(seed)
    per_event = rng.integers(1, 4, n_events)
    n = int(per_event.sum())
    jets_i = np.column_stack([
        rng.integers(0, 50, n), np.full(n, 163000), np.repeat(rng.integers(1, 500, n_events), per_event),
        np.repeat(np.arange(n_events) * 7 + 1, per_event), rng.integers(1, 20, n), rng.integers(0, 4, n),
    ]).astype(np.int64)  # fmt: skip
    jets_f = np.column_stack([
        rng.uniform(300, 500, n), rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(5, 80, n),
        rng.uniform(-2, 2, n), rng.uniform(1.0, 1.15, n), rng.uniform(0.7, 0.9, n), rng.uniform(0, 1, n),
        np.full(n, 4e-7),
    ])  # fmt: skip
    counts = rng.poisson(60, n) + 1
    k = int(counts.sum())
    owner = np.repeat(np.arange(n), counts)
    pfcs = np.column_stack([
        np.round(rng.exponential(6, k) + 0.3, 4), jets_f[owner, 1] + rng.normal(0, 0.15, k),
        jets_f[owner, 2] + rng.normal(0, 0.15, k), rng.choice([0.0, 0.13957, 0.000511], k),
        rng.choice([211, -211, 130, 22, 11, -13], k).astype(np.float64), rng.integers(-1, 3, k).astype(np.float64),
    ])  # fmt: skip
    index = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
    gz = {"compression": "gzip", "compression_opts": 4}
    with h5py.File(path, "w") as hf:
        for name, data, cols in (("jets_i", jets_i, JETS_I), ("jets_f", jets_f, JETS_F), ("pfcs", pfcs, PFCS)):
            hf.create_dataset(name, data=data, **gz).attrs.create("cols", np.asarray(cols, dtype="S"))
        hf.create_dataset("pfcs_index", data=index, **gz)
        hf.create_dataset("filenames", data=np.array([f"/store/data/file{i}.root" for i in range(50)], dtype="S"), **gz)
    return n


def read_with_h5py(path: Path) -> int:
    """The baseline: every array the import needs, read whole."""
    import h5py

    with h5py.File(path, "r") as hf:
        arrays = [hf[name][:] for name in ("jets_i", "jets_f", "pfcs", "pfcs_index", "filenames")]
    return len(arrays[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (under a minute)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from analysis.core.atomic import write_json
    from analysis.events.mod_import import ImportOptions, import_file, plan_import

    n_events = 10_000 if args.quick else 50_000
    scratch = Path(tempfile.mkdtemp(prefix="bench_mod_import_"))
    try:
        source = scratch / "CMS_Jet300_pT375-infGeV_0_compressed.h5"
        n_jets = write_mod_file(source, n_events, args.seed)
        read_with_h5py(source)  # warm the page cache for both
        start = time.perf_counter()
        read_with_h5py(source)
        t_h5py = time.perf_counter() - start

        _, _, (job,) = plan_import([source], scratch / "out", ImportOptions())
        start = time.perf_counter()
        record = import_file(job)
        t_import = time.perf_counter() - start
        mod_mb, root_mb = source.stat().st_size / 1e6, Path(job.out).stat().st_size / 1e6
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base, value = n_jets / t_h5py, n_jets / t_import
    result = {
        "name": "bench_mod_import", "value": round(value, 1), "unit": "jets/s per core",
        "baseline": round(base, 1), "ratio": round(value / base, 3),
        "baseline_name": "h5py reading jets_i, jets_f, pfcs, pfcs_index, filenames whole (gzip 4, one core)",
        "jets": n_jets, "events": record.n_events, "chunks": record.n_chunks,
        "pfcs_per_jet": 61, "mod_mb_per_1k_jets": round(mod_mb * 1000 / n_jets, 3),
        "root_mb_per_1k_jets": round(root_mb * 1000 / n_jets, 3), "seconds_import": round(t_import, 2),
        "seconds_h5py": round(t_h5py, 2), "quick": args.quick,
    }  # fmt: skip
    print(json.dumps(result))
    write_json(REPO / "results" / "benchmarks" / "bench_mod_import.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
