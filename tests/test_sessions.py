"""Sessions: round trip of configs and definitions, name validation, and safe loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.core.config import load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A private copy of configs/ so that loading sessions never touches the repository."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    return tmp_path


def cli(workdir: Path, *args: str) -> int:
    return main(["session", *args, "--sessions-dir", str(workdir / "sessions"), "-q"])


def test_round_trip(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = workdir / "configs"
    original = {p.name: p.read_text() for p in configs.glob("*.yaml")}
    assert cli(workdir, "save", "baseline", "--config", str(configs / "default.yaml")) == 0
    # change the working definitions, then restore the session
    (configs / "signals.yaml").write_text("- id: 5\n  center: 10\n  height: 1\n  width: 1\n")
    (configs / "default.yaml").write_text("seed: 99\n")
    assert cli(workdir, "load", "baseline", "--into", str(configs)) == 0
    for kind in ("signals", "backgrounds", "wavelets"):
        assert (configs / f"{kind}.yaml").read_text() == original[f"{kind}.yaml"]
    restored = load_config(configs / "default.yaml")
    assert restored.to_dict() == load_config(REPO / "configs" / "default.yaml").to_dict()
    # a saved session is itself a config directory
    session_config = load_config(workdir / "sessions" / "baseline" / "config.yaml")
    assert session_config.toys.signal_id == restored.toys.signal_id
    capsys.readouterr()
    assert main(["session", "list", "--sessions-dir", str(workdir / "sessions")]) == 0
    assert capsys.readouterr().out.startswith("baseline\t")


def test_save_refuses_overwrite_without_force(workdir: Path) -> None:
    config = str(workdir / "configs" / "default.yaml")
    assert cli(workdir, "save", "s1", "--config", config) == 0
    assert cli(workdir, "save", "s1", "--config", config) == 2
    assert cli(workdir, "save", "s1", "--config", config, "--force") == 0


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "/etc", "x y", "", "a" * 65, "ünï"])
def test_path_traversal_and_bad_names_refused(workdir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("save", "load", "delete"):
        assert cli(workdir, action, name, "--config", str(workdir / "configs" / "default.yaml")) == 2
        err = capsys.readouterr().err
        assert "session name" in err and repr(name) in err, (action, err)
    assert not (workdir / "evil").exists()
    assert not (workdir / "sessions").exists() or not any((workdir / "sessions").iterdir())


def test_delete_missing_is_an_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(workdir, "delete", "ghost") == 2
    assert "no session 'ghost'" in capsys.readouterr().err
    assert cli(workdir, "load", "ghost") == 2


def test_delete(workdir: Path) -> None:
    assert cli(workdir, "save", "tmp", "--config", str(workdir / "configs" / "default.yaml")) == 0
    assert cli(workdir, "delete", "tmp") == 0
    assert not (workdir / "sessions" / "tmp").exists()


def test_tampered_session_is_validated_not_executed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = workdir / "configs"
    assert cli(workdir, "save", "t", "--config", str(configs / "default.yaml")) == 0
    sentinel = workdir / "pwned"
    (workdir / "sessions" / "t" / "signals.yaml").write_text(
        f"- id: 0\n  center: __import__('os').system('touch {sentinel}')\n  height: 1\n  width: 1\n"
    )
    before = (configs / "signals.yaml").read_text()
    assert cli(workdir, "load", "t", "--into", str(configs)) == 2
    assert "field 'center'" in capsys.readouterr().err
    assert not sentinel.exists()
    assert (configs / "signals.yaml").read_text() == before
    # a config pointing outside the session is refused too
    (workdir / "sessions" / "t" / "signals.yaml").write_text(before)
    cfg = workdir / "sessions" / "t" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("signals: signals.yaml", f"signals: {configs / 'signals.yaml'}"))
    assert cli(workdir, "load", "t", "--into", str(configs)) == 2
