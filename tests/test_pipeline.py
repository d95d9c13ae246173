"""The chain's reuse keys: every input a stage fingerprints reruns it when it changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from analysis.core.config import load_config
from analysis.pipeline import _INPUTS, stage_key

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# one change per config section that some stage fingerprints
CHANGES = {
    "seed": 5, "generation": {"qcd_events": 123}, "selection": {"jet_pt_min": 340},
    "histograms": {"mjj_bin_width": 20}, "injection": {"sizes": [50]}, "scan": {"epochs": 3},
    "dataset": {"toys": 99}, "autoencoders": {"epochs": 3}, "toys": {"wavelet_id": 1},
    "baselines": {"n_pseudo": 99}, "sensitivity": {"realizations": 7}, "cwola": {"folds": 4},
}  # fmt: skip


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name in ("default", "signals", "backgrounds", "wavelets"):
        shutil.copy(CONFIGS / f"{name}.yaml", tmp_path / f"{name}.yaml")
    return tmp_path


def keys(path: Path, overrides: dict | None = None) -> dict[str, str | None]:
    cfg = load_config(path, overrides)
    return {name: stage_key(cfg, name) for name in _INPUTS}


def _reads(stage: str, section: str) -> bool:
    """Whether ``stage`` depends on ``section``, directly or through its upstream stages."""
    while stage:
        sections, upstream = _INPUTS[stage]
        if section in sections:
            return True
        stage = upstream
    return False


@pytest.mark.parametrize("section", sorted(CHANGES))
def test_each_fingerprinted_section_reruns_its_stages(config_dir: Path, section: str) -> None:
    before = keys(config_dir / "default.yaml")
    after = keys(config_dir / "default.yaml", {section: CHANGES[section]})
    for stage in _INPUTS:
        changed = before[stage] != after[stage]
        assert changed == (section == "seed" or _reads(stage, section)), (stage, section)


@pytest.mark.parametrize("kind", ["signals", "backgrounds", "wavelets"])
def test_definition_file_contents_are_in_the_key(config_dir: Path, kind: str) -> None:
    before = keys(config_dir / "default.yaml")
    path = config_dir / f"{kind}.yaml"
    entries = yaml.safe_load(path.read_text())
    entries.append({**entries[0], "id": 99})  # a new entry: same ids used, different file
    path.write_text(yaml.safe_dump(entries))
    after = keys(config_dir / "default.yaml")
    assert after["autoencoders"] != before["autoencoders"]
    assert after["process"] == before["process"] and after["baselines"] == before["baselines"]
