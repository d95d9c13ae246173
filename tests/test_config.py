"""Config validation: unknown keys, wrong types and out-of-range values name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.cli import main
from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.toys.definitions import load_entries, parse_entries, select

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_config_and_definitions_validate() -> None:
    config = load_config(REPO / "configs" / "default.yaml")
    for kind in ("signals", "backgrounds", "wavelets"):
        entries = load_entries(kind, config.resolve(getattr(config.toys, kind)))
        assert entries, kind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 1\ncolour: blue\n", r"colour: unknown key"),
        ("toys:\n  signal_idd: 3\n", r"toys\.signal_idd: unknown key"),
        ("toys:\n  signal_id: three\n", r"toys\.signal_id: .*integer.*'three'"),
        ("toys:\n  n_fluctuations: 0\n", r"toys\.n_fluctuations: .*greater than or equal to 1"),
        ("seed: -4\n", r"seed: .*greater than or equal to 0"),
        ("- just\n- a list\n", r"expected a mapping"),
        ("seed: [1\n", r"not valid YAML"),
        ("base_dir: /etc\n", r"base_dir: unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_study_config_extends_the_default_and_overrides_only_its_keys() -> None:
    default = load_config(REPO / "configs" / "default.yaml")
    study = load_config(REPO / "configs" / "study.yaml")
    assert study.generation.qcd_events == 10 * default.generation.qcd_events
    assert study.generation.pthat_min == default.generation.pthat_min  # kept from the base
    assert study.scan == default.scan and study.cwola == default.cwola and study.baselines == default.baselines
    assert study.injection.signals == ["xgg", "wprime"] and study.output == Path("results/study")
    assert study.toys.signals == default.toys.signals  # definition paths resolve beside the configs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: ../default.yaml\n", r"extends: '\.\./default\.yaml' must name a \.yaml file in the same directory"),
        ("extends: /etc/passwd\n", r"must name a \.yaml file in the same directory"),
        ("extends: config.yaml\n", r"extends: config\.yaml extends itself"),
        ("extends: nope.yaml\n", r"extends: .*nope\.yaml not found"),
        ("extends: base.yaml\nseed: 2\n", r"base\.yaml: extends: config\.yaml extends itself"),  # a cycle
    ],
)
def test_bad_extends_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "extends: config.yaml\n", "base.yaml")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_extends_merges_sections_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "seed: 5\nbaselines:\n  n_pseudo: 300\n  fit_toys: 200\n", "base.yaml")
    cfg = load_config(write(tmp_path, "extends: base.yaml\nbaselines:\n  fit_toys: 100\n"))
    assert (cfg.seed, cfg.baselines.n_pseudo, cfg.baselines.fit_toys) == (5, 300, 100)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("signals", [{"id": 2, "center": 1, "height": 1, "width": 1, "colour": 1}], r"entry id=2 field 'colour': unknown key"),
        ("signals", [{"id": 2, "center": 1, "height": 1}], r"entry id=2 field 'width': Field required"),
        ("signals", [{"id": 1, "center": 1, "height": 1, "width": 1, "periods": 0}], r"entry id=1 field 'periods'"),
        ("backgrounds", [{"id": 4, "kind": "exponential", "amplitude": -1, "rate": 1}], r"entry id=4 field 'amplitude'"),
        ("backgrounds", [{"id": 4, "kind": "cubic"}], r"entry id=4 field 'kind': .*'exponential', 'dijet'"),
        ("backgrounds", [{"id": 5, "kind": "dijet", "p0": 1, "p1": 1, "p2": 1, "binning": {"low": 10, "high": 9000}}],
         r"entry id=5: binning must lie inside"),
        ("wavelets", [{"id": 3, "bandwidth": 0}], r"entry id=3 field 'bandwidth'"),
        ("wavelets", [{"id": 3, "scale_min": 10, "scale_max": 2}], r"entry id=3: scale_max must not be smaller"),
        ("wavelets", [{"id": 1}, {"id": 1}], r"duplicate wavelets id\(s\) \[1\]"),
        ("wavelets", {"id": 1}, r"expected a list"),
    ],
)  # fmt: skip
def test_definition_errors_name_entry_and_field(kind: str, data, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_entries(kind, data, f"{kind}.yaml")


def test_unknown_id_lists_valid_ids() -> None:
    entries = parse_entries("wavelets", [{"id": 0}, {"id": 4}], "wavelets.yaml")
    with pytest.raises(ConfigError, match=r"no wavelet entry with id 9 \(valid ids: 0, 4\)"):
        select(entries, 9, "wavelet", "wavelets.yaml")


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "toys:\n  wavelet_id: -1\n")
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "toys.wavelet_id" in err and str(path) in err
    assert not (tmp_path / "out").exists()


def test_cli_hostile_definition_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signals = write(tmp_path, "- id: 0\n  center: __import__('os').getcwd()\n  height: 1\n  width: 1\n", "s.yaml")
    code = main(["plot", "signal", "--signals", str(signals), "--out", str(tmp_path / "x.png")])
    assert code == 2
    assert "entry id=0 field 'center'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
