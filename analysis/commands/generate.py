"""Generate events with Pythia8 + FastJet into NanoAOD-like ROOT files.

--process qcd: hard QCD 2->2 at sqrt(s) = 7 TeV in the pT-hat window of the config
(generation.pthat_min/max, chosen so the selected jets fill 350-450 GeV); --process xgg: an
RS graviton of mass --mass (default generation.xgg_mass) decaying to two gluons; --process
wprime: a W' of mass --mass (default generation.wprime_mass) decaying to W Z, both bosons to
quarks (two-prong jets of mass ~80-91 GeV at M = 900 GeV).
Jets: anti-kT R = 0.5 on visible final-state particles (|eta| < 5), with constituents,
partonFlavour (Delta-R match to the hard partons; for wprime the W and Z decay quarks) and
CMS-like jetId bits.

Writes to --out:
  <dataset>_NNNN.root   TTree Events (Jet_*, PFCands_*, JetPFCands_*, genWeight, ...) and Runs
                        (genEventCount, genEventSumw); readable by coffea's NanoAODSchema
  <dataset>_NNNN.json   seed, settings fingerprint and cross-section of each finished file
  fileset.json          coffea fileset (metadata: xsec_pb, n_generated, process, mass, seed);
                        an existing one gains or updates this dataset's entry
  run.json              provenance
A rerun with the same seed and settings reuses finished files; file i is seeded from
(--seed, process, mass, i), so the events do not depend on --workers.

Example:
  python run_analysis.py generate --process qcd --events 20000 --seed 1 --out data/qcd --workers 2
  python run_analysis.py generate --process xgg --mass 900 --events 5000 --seed 1 --out data/xgg
  python run_analysis.py generate --process wprime --mass 900 --events 5000 --seed 1 --out data/wprime
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.core.provenance import RunRecord
from analysis.events.generation import PROCESSES, generate

NAME = "generate"
HELP = "generate qcd, xgg or wprime events with Pythia8 + FastJet into NanoAOD-like ROOT files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--process", required=True, help=f"process to generate ({' | '.join(PROCESSES)})")
    parser.add_argument("--events", type=int, required=True, help="number of events")
    parser.add_argument("--seed", type=int, default=None, help="run seed (default: the config's seed)")
    parser.add_argument("--out", type=Path, required=True, help="output directory of the sample")
    parser.add_argument(
        "--mass", type=float, default=None,
        help="xgg, wprime: resonance mass in GeV (default: the config's xgg_mass / wprime_mass)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--events-per-file", type=int, default=None, help="events per ROOT file (default: config)"
    )
    parser.add_argument("--config", type=Path, default=None, help="analysis config (default: configs/default.yaml)")


def main(args: argparse.Namespace) -> int:
    if args.events_per_file is not None and args.events_per_file < 1:
        raise ConfigError(f"--events-per-file: must be at least 1 (got {args.events_per_file})")
    overrides = {} if args.events_per_file is None else {"generation": {"events_per_file": args.events_per_file}}
    config = load_config(args.config, overrides)
    seed = config.seed if args.seed is None else args.seed
    record = RunRecord(args.out, "generate", config.to_dict(), seed)
    record.add(generate={"process": args.process, "events": args.events, "mass": args.mass, "workers": args.workers})
    with record.stage("generate"):
        fileset = generate(
            args.process, args.events, seed, args.out, mass=args.mass, workers=args.workers,
            cfg=config.generation, quiet=args.quiet,
        )  # fmt: skip
    if not args.quiet:
        data = json.loads(fileset.read_text())
        summary = ", ".join(
            f"{name}: {e['metadata']['n_generated']} events, {len(e['files'])} file(s), "
            f"xsec {e['metadata']['xsec_pb']:.4g} pb"
            for name, e in data.items()
        )
        print(f"{fileset}: {summary}")
    return 0
