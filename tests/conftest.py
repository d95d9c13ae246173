"""Session-wide fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- generated samples (analysis.events.generation): tiny, made once per test session -----------------
GEN_SEED = 7
QCD_EVENTS = 3000  # default pT-hat window: ~20 s of Pythia on one core
XGG_EVENTS = 10000  # ~10% pass the selection: a ~1000-event resonance pool for the scan tests
SCAN_QCD_EVENTS = 12000
SCAN_PTHAT = (340.0, 460.0)  # narrower than the default window: ~28% of the events pass, not ~11%
XGG_MASS = 900.0
GEN_EVENTS_PER_FILE = 1000  # several files per sample, so file splitting is exercised


def _gen_config(**settings: float):
    from analysis.core.config import load_config

    return load_config(None, {"generation": {"events_per_file": GEN_EVENTS_PER_FILE, **settings}}).generation


@pytest.fixture(scope="session")
def qcd_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of a small QCD sample (default generation settings, seed 7, 3000 events)."""
    from analysis.events.generation import generate

    out = tmp_path_factory.mktemp("qcd_sample")
    return generate("qcd", QCD_EVENTS, GEN_SEED, out, workers=2, cfg=_gen_config(), quiet=True)


@pytest.fixture(scope="session")
def xgg_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of an xgg sample (RS graviton -> gg, M = 900 GeV, seed 7, 10000 events)."""
    from analysis.events.generation import generate

    out = tmp_path_factory.mktemp("xgg_sample")
    return generate("xgg", XGG_EVENTS, GEN_SEED, out, mass=XGG_MASS, workers=2, cfg=_gen_config(), quiet=True)


@pytest.fixture(scope="session")
def wprime_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of a W' -> W Z -> 4 quarks sample (M = 900 GeV, seed 7, 1500 events; ~40% have
    two selected jets, each holding one boson's two-prong decay)."""
    from analysis.events.generation import generate

    out = tmp_path_factory.mktemp("wprime_sample")
    return generate("wprime", 1500, GEN_SEED, out, mass=900.0, workers=2, cfg=_gen_config(), quiet=True)


@pytest.fixture(scope="session")
def scan_qcd_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of the scan tests' QCD sample: 12000 events in a narrow pT-hat window (seed 8),
    ~3300 selected events in ~40 s instead of ~1300."""
    from analysis.events.generation import generate

    out = tmp_path_factory.mktemp("scan_qcd_sample")
    cfg = _gen_config(pthat_min=SCAN_PTHAT[0], pthat_max=SCAN_PTHAT[1])
    return generate("qcd", SCAN_QCD_EVENTS, GEN_SEED + 1, out, workers=2, cfg=cfg, quiet=True)


@pytest.fixture(scope="session")
def processed_sample(scan_qcd_sample: Path, xgg_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scan QCD + xgg samples processed once with the default selection: the scan's events."""
    from analysis.core.config import load_config
    from analysis.events.processing import process_fileset

    out = tmp_path_factory.mktemp("processed_sample")
    process_fileset([scan_qcd_sample, xgg_sample], out, load_config(None, {"injection": {"kind": "none"}}), executor="iterative", quiet=True)
    return out


# -- the whole chain (`run`) on tiny inputs: shared by the chain and notebook tests -------------
TINY_CHAIN = {
    "seed": 3,
    "toys": {"n_fluctuations": 1, **{k: str(Path(__file__).resolve().parent.parent / "configs" / f"{k}.yaml")
                                     for k in ("signals", "backgrounds", "wavelets")}},
    "injection": {"kind": "resonance", "sizes": [60, 180]},
    "generation": {"qcd_events": 4000, "xgg_events": 3000, "wprime_events": 3000, "pthat_min": SCAN_PTHAT[0], "pthat_max": SCAN_PTHAT[1],
                   "events_per_file": 1000},
    "processing": {"executor": "futures", "workers": 2, "chunksize": 2000},
    "scan": {"sizes": [500], "n_samples": 2, "epochs": 2, "batch_size": 100, "phi_sizes": [16, 16], "f_sizes": [16],
             "reference_events": 500, "train_jets": 400, "test_jets": 150, "min_jets_per_bin": 60},
    "dataset": {"toys": 200, "train": 200, "test": 100},
    "autoencoders": {"models": ["dense", "conv_kl"], "epochs": 2, "batch_size": 32},
    "baselines": {"n_pseudo": 200, "fit_mass_step": 40},
    "sensitivity": {"realizations": 6, "n_signal": [0, 60, 180], "pfn_realizations": 3},
    "cwola": {"realizations": 2, "folds": 3, "epochs": 2, "phi_sizes": [16, 16], "f_sizes": [16], "batch_size": 100},
}  # fmt: skip


def run_cli(*args: str, cwd: Path, timeout: int = 900):
    """``python run_analysis.py ARGS`` in ``cwd`` (subprocess: its own TensorFlow, its own forks)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MPLBACKEND": "Agg"}
    repo = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, str(repo / "run_analysis.py"), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="session")
def chain_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ of the full default chain (every stage) on tiny generated samples."""
    import json

    work = tmp_path_factory.mktemp("chain")
    config = work / "tiny.yaml"
    config.write_text(json.dumps({**TINY_CHAIN, "generation": {**TINY_CHAIN["generation"], "data_dir": str(work / "data")},
                                  "output": str(work / "results")}))  # fmt: skip
    proc = run_cli("run", "--config", str(config), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / "first_run.log").write_text(proc.stdout)
    return work / "results"
