"""Import EnergyFlow's MOD HDF5 jet files (CMS2011AJets: CMS 2011A data, SIM, GEN) into
NanoAOD-like ROOT files, so that `process`, `scan` and the rest run on them unchanged.

Jets are grouped into events by (run, lumiblock, event); Jet_pt and Jet_mass are corrected
(jet_pt * jec: EnergyFlow's corr_jet_pts, what the selection cuts on); the MOD quality becomes
Jet_jetId (selection.jet_id_min: 2 is the reference's quality >= 2); PF candidates (GEN: gen
particles) become PFCands with JetPFCands links; SIM/GEN weights become genWeight (nb; data:
1); Jet_modRow and Jet_modFileNumber keep each jet's MOD row and CMS file number.

Writes to --out:
  <dataset>_NNNN.root   TTree Events (NanoAOD-like) and Runs, one per MOD file
  <dataset>_NNNN.json   source path, size, mtime and settings of each finished file
  fileset.json          coffea fileset (metadata: process qcd, mod_kind, n_generated, xsec_pb);
                        an existing one gains or updates this dataset's entry
  run.json              provenance
Files are converted in chunks of whole events (--chunk-jets), in parallel over files (--workers
local processes, or a Dask cluster with --executor dask / --scheduler); a rerun reuses the
files already converted from the same sources.

Example:
  python run_analysis.py import-mod --files ~/.energyflow/datasets/CMS2011AJets/SIM470_Jet300_pT375-infGeV/*.h5 \\
      --out data/mod_sim470 --workers 2
  python run_analysis.py process --fileset data/mod_sim470/fileset.json --out results/cms2011/process \\
      --config configs/cms2011.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from analysis.core.errors import ConfigError
from analysis.core.provenance import RunRecord
from analysis.events.mod_import import ImportOptions, import_mod

NAME = "import-mod"
HELP = "import EnergyFlow MOD HDF5 jet files (CMS 2011A Open Data, SIM, GEN) into NanoAOD-like ROOT files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", nargs="+", type=Path, required=True, help="MOD HDF5 files (all CMS, SIM or GEN)")
    parser.add_argument("--out", type=Path, required=True, help="output directory of the imported sample")
    parser.add_argument("--dataset", default=None, help="fileset dataset name (default: the files' MOD name)")
    parser.add_argument("--chunk-jets", type=int, default=20_000, help="jets converted at a time (default 20000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--executor", choices=("local", "dask"), default="local",
        help="local worker processes, or a Dask cluster (a LocalCluster unless --scheduler)",
    )  # fmt: skip
    parser.add_argument("--scheduler", default=None, help="tcp://host:port of a running Dask scheduler")


def main(args: argparse.Namespace) -> int:
    try:
        options = ImportOptions(
            dataset=args.dataset, chunk_jets=args.chunk_jets, workers=args.workers, executor=args.executor,
            scheduler=args.scheduler,
        )  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise ConfigError(f"{flag}: {err['msg']} (got {err.get('input')!r})") from None
    record = RunRecord(args.out, "import-mod", options.model_dump(), None)
    record.add(import_mod={"files": [str(f) for f in args.files]})
    with record.stage("import-mod"):
        fileset = import_mod(args.files, args.out, options, quiet=args.quiet)
    if not args.quiet:
        data = json.loads(fileset.read_text())
        summary = ", ".join(
            f"{name}: {e['metadata']['n_generated']} events, {e['metadata']['n_jets']} jets, {len(e['files'])} file(s)"
            for name, e in data.items()
            if e.get("metadata", {}).get("source") == "mod"
        )
        print(f"{fileset}: {summary}")
    return 0
