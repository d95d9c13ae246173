"""Session-wide fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- generated samples (analysis.generation): tiny, made once per test session -----------------
GEN_SEED = 7
QCD_EVENTS = 3000  # default pT-hat window: ~20 s of Pythia on one core
XGG_EVENTS = 2000
XGG_MASS = 900.0
GEN_EVENTS_PER_FILE = 1000  # several files per sample, so file splitting is exercised


def _gen_config():
    from analysis.config import load_config

    return load_config(None, {"generation": {"events_per_file": GEN_EVENTS_PER_FILE}}).generation


@pytest.fixture(scope="session")
def qcd_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of a small QCD sample (default generation settings, seed 7, 3000 events)."""
    from analysis.generation import generate

    out = tmp_path_factory.mktemp("qcd_sample")
    return generate("qcd", QCD_EVENTS, GEN_SEED, out, workers=2, cfg=_gen_config(), quiet=True)


@pytest.fixture(scope="session")
def xgg_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fileset.json of a small xgg sample (RS graviton -> gg, M = 900 GeV, seed 7, 2000 events)."""
    from analysis.generation import generate

    out = tmp_path_factory.mktemp("xgg_sample")
    return generate("xgg", XGG_EVENTS, GEN_SEED, out, mass=XGG_MASS, workers=2, cfg=_gen_config(), quiet=True)


@pytest.fixture(scope="session")
def processed_sample(qcd_sample: Path, xgg_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The qcd + xgg samples processed once with the default selection: the scan's events directory."""
    from analysis.commands.process import process_fileset
    from analysis.config import load_config

    out = tmp_path_factory.mktemp("processed_sample")
    process_fileset([qcd_sample, xgg_sample], out, load_config(None, {"injection": {"kind": "none"}}), executor="iterative", quiet=True)
    return out
