"""The command line: help everywhere, exit codes, the default toy chain and its run.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import COMMAND_MODULES, build_parser, main

REPO = Path(__file__).resolve().parent.parent


def subcommands() -> list[str]:
    parser = build_parser()
    return sorted(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_every_command_of_the_guide_is_registered() -> None:
    """The README's commands, each from its own module of analysis.commands."""
    expected = {"run", "generate", "import-mod", "process", "scan", "build-dataset", "train-ae", "pvalue-scan", "bumphunt",
                "plot", "session", "serve"}  # fmt: skip
    assert set(subcommands()) == expected
    assert {name.replace("_", "-") for name in COMMAND_MODULES} == expected


def test_console_script_is_the_command_line() -> None:
    """`make` installs the package: `.venv/bin/dijetscan` is `python run_analysis.py`."""
    script = Path(sys.executable).parent / "dijetscan"
    assert script.is_file(), f"{script} missing: the package is not installed (make installs it with pip -e .)"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dijetscan: model-agnostic searches" in proc.stdout and "generate" in proc.stdout
    bad = subprocess.run([str(script), "plot", "no-such-kind"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no-such-kind" in bad.stderr


@pytest.mark.parametrize("command", subcommands())
def test_help_explains_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"run_analysis.py {command}" in out
    assert "--debug" in out
    assert len(out.splitlines()) > 8  # a description, not only usage


def test_bad_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plot", "no-such-kind"])
    assert info.value.code == 2


def test_run_writes_toys_report_and_provenance(tmp_path: Path) -> None:
    """`run` with the default config, limited to the stages that need no generated events
    (the whole chain runs in tests/test_chain.py)."""
    out = tmp_path / "results"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_analysis.py"), "run", "--stages", "toys,report", "--out", str(out), "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["seed"] == 1
    assert record["config"]["toys"]["signal_id"] == 0
    assert record["packages"]["numpy"] and record["git_revision"]
    assert set(record["timings_s"]) == {"toys", "report"}
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    for name in ("clean_spectrum.npy", "fluctuated_spectra.npy", "cwt-clean.png", "cwt-fluctuations.png"):
        assert (out / "toys" / name).is_file(), name


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """Make `plot` raise ``exc`` (an unexpected failure deep inside a command)."""
    import analysis.commands.plot as plot

    def fail(_: object) -> int:
        raise exc

    monkeypatch.setattr(plot, "main", fail)


def test_unexpected_failure_is_one_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, PermissionError(13, "Permission denied:\n  /some/where"))
    code = main(["plot", "signal", "-q"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: PermissionError") and "\n" not in err and "--debug" in err


def test_debug_shows_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_with(monkeypatch, PermissionError(13, "Permission denied"))
    with pytest.raises(PermissionError):
        main(["plot", "signal", "-q", "--debug"])


def test_out_naming_a_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--out` naming a file: exit 2 and one line naming the path (more cases in test_hostile.py)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    (tmp_path / "fs.json").write_text('{"a": ["x.root"]}')
    for argv in (["process", "--fileset", str(tmp_path / "fs.json"), "--out", str(blocker)],
                 ["plot", "signal", "--out", str(blocker / "x.png")]):  # fmt: skip
        assert main([*argv, "-q"]) == 2
        err = capsys.readouterr().err
        assert str(blocker) in err and len(err.splitlines()) == 1
