"""Every toy plot kind writes a real PNG or PDF; bad ids and suffixes are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.cli import main
from analysis.toys.plots import PLOT_KINDS

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF"}


@pytest.mark.parametrize("kind", list(PLOT_KINDS))
@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_plot_kind_writes_file(tmp_path: Path, kind: str, suffix: str) -> None:
    out = tmp_path / f"{kind}{suffix}"
    assert main(["plot", kind, "--signal-id", "1", "--bg-id", "0", "--wavelet-id", "1", "--out", str(out), "-q"]) == 0
    data = out.read_bytes()
    assert data.startswith(MAGIC[suffix])
    assert len(data) > 5_000
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left behind


def test_unknown_id_lists_valid_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "clean", "--signal-id", "99", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no signal entry with id 99" in err and "valid ids: 0, 1, 2, 3" in err


def test_bad_suffix_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "signal", "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png or .pdf" in capsys.readouterr().err


def test_other_definition_files(tmp_path: Path) -> None:
    signals = tmp_path / "mine.yaml"
    signals.write_text("- id: 42\n  center: 100\n  height: 30\n  width: 4\n")
    out = tmp_path / "sig.png"
    assert main(["plot", "signal", "--signals", str(signals), "--signal-id", "42", "--out", str(out), "-q"]) == 0
    assert out.read_bytes().startswith(MAGIC[".png"])
