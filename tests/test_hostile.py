"""Hostile inputs and interruptions (issue 16): every class gets one clear line and the right exit
status, nothing half-written is ever trusted, and a killed `process` is repaired by a rerun.

The `process` tests run on small NanoAOD-like files written here (no Pythia): jets with
pt/eta/phi/mass/jetId, a weight and event numbers, with NaN and inf placed where a test needs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis import atomic
from analysis.cli import main as cli_main
from analysis.commands.process import process_fileset, require_complete
from analysis.config import load_config, read_yaml
from analysis.definitions import parse_entries
from analysis.errors import ConfigError, InputError
from analysis.expressions import parse

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.nanoevents.schemas.nanoaod")

REPO = Path(__file__).resolve().parent.parent
BAD = {"pt": np.inf, "eta": np.nan, "phi": np.nan, "mass": np.nan, "weight": np.nan}


def write_nano(path: Path, n_events: int = 300, seed: int = 0, bad: dict[str, list[int]] | None = None,
               rapidity_nan: list[int] | None = None) -> Path:  # fmt: skip
    """A NanoAOD-like file: 2-4 jets per event, most in the default selection window; ``bad``
    puts BAD[field] into the first jet (or the weight) of the listed events; ``rapidity_nan``
    writes a Jet_rapidity branch with NaN in the listed events."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 5, n_events)
    total = int(counts.sum())
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cols = {
        "pt": np.where(rng.random(total) < 0.6, rng.uniform(355, 445, total), rng.uniform(30, 300, total)),
        "eta": rng.uniform(-1.8, 1.8, total), "phi": rng.uniform(-np.pi, np.pi, total),
        "mass": rng.uniform(5, 60, total),
    }  # fmt: skip
    weight = np.ones(n_events)
    for name, events in (bad or {}).items():
        if name == "weight":
            weight[events] = BAD[name]
        else:
            cols[name][first[events]] = BAD[name]
    jets = {**cols, "jetId": np.full(total, 6, np.int32)}
    if rapidity_nan is not None:
        rapidity = np.zeros(total)
        rapidity[first[rapidity_nan]] = np.nan
        jets["rapidity"] = rapidity
    data = {
        "Jet": ak.unflatten(ak.zip(jets), counts), "genWeight": weight,
        "event": np.arange(1, n_events + 1, dtype=np.uint64),
        "run": np.ones(n_events, np.uint32), "luminosityBlock": np.ones(n_events, np.uint32),
    }  # fmt: skip
    with uproot.recreate(path) as fh:
        fh.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()})
        fh["Events"].extend(data)
    return path


def cfg(**sections: Any) -> Any:
    return load_config(None, {"injection": {"kind": "none"}, **sections})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nano")
    return {
        "a": write_nano(base / "a.root", seed=1), "b": write_nano(base / "b.root", seed=2),
        "c": write_nano(base / "c.root", seed=3),
    }  # fmt: skip


def fileset(files: dict[str, Path], *names: str) -> dict[str, Any]:
    return {name: {"files": {str(files[name]): "Events"}, "metadata": {}} for name in names}


def snapshot(directory: Path) -> dict[str, Any]:
    """What a reader sees in a `process` directory: every file (hidden ones too) by content;
    ROOT histograms by values and edges, run.json without its clock readings."""
    out: dict[str, Any] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_dir():
            continue
        rel = str(path.relative_to(directory))
        if path.suffix == ".root":
            with uproot.open(path) as fh:
                hists = {k: fh[k] for k in fh.keys(cycle=False)}
                out[rel] = {
                    k: (
                        h.values(flow=True).tolist(),
                        h.variances(flow=True).tolist(),
                        h.axis().edges().tolist(),
                    )
                    for k, h in hists.items()
                }
        elif path.name == "run.json":
            data = json.loads(path.read_text())
            out[rel] = {
                k: v for k, v in data.items() if k not in ("started", "finished", "timings_s", "argv")
            }
        else:
            out[rel] = path.read_bytes()
    return out


# -- 1: `process` never leaves a mixed directory -----------------------------------------------------
def test_failed_rerun_never_changes_a_finished_directory(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process_fileset(fileset(files, "a", "b"), out, cfg(), executor="iterative", quiet=True)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = cfg(selection={"jet_pt_min": 360.0})
    broken = {**fileset(files, "a"), "b": {"files": {str(tmp_path / "missing.root"): "Events"}}}
    with pytest.raises(InputError, match=r"missing\.root"):
        process_fileset(broken, out, other, executor="iterative", quiet=True)
    (tmp_path / "garbage.root").write_bytes(b"not ROOT" * 500)
    fs = _write_fileset(tmp_path, {"a": [str(tmp_path / "garbage.root")]})
    code = cli_main(["process", "--fileset", str(fs), "--out", str(out), "-q"])
    assert code == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # run.json included
    require_complete(out)


def _write_fileset(tmp_path: Path, data: dict[str, Any], name: str = "fs.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


KILL_POINTS = [
    "merge",  # during the computation
    "staged",  # every output written to the staging directory, nothing committed
    "marker",  # just before the .incomplete marker
    "rename:cutflow.json",  # the marker written, nothing renamed
    "rename:events/b.parquet",  # half of the outputs renamed: new cutflow and a.parquet, old rest
    "rename:run.json",  # everything but run.json renamed
    "prune",  # all renamed; the dropped dataset's Parquet still there
    "unmark",  # all done but the marker's removal
]
BEFORE_COMMIT = {"merge", "staged", "marker"}


def _killed_child(point: str, fs: dict[str, Any], out: Path, config: Any) -> None:
    """Run `process` in a forked child that SIGKILLs itself at ``point``."""
    import analysis.commands.process as proc_module

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            die = lambda *_: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
            if point == "merge":
                proc_module._merge = die
            elif point == "staged":
                write = proc_module._write
                proc_module._write = lambda *a, **k: (write(*a, **k), die())[0]
            else:
                atomic._step = lambda step: die() if step == point else None
            process_fileset(fs, out, config, executor="iterative", quiet=True)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120  # a child that hangs fails the test instead of blocking it
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"{point}: the child did not finish")
    status = done[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{point}: not killed ({status})"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_at_every_point_then_rerun_gives_the_uninterrupted_outputs(files, tmp_path: Path) -> None:
    old_cfg, new_cfg = cfg(selection={"jet_pt_min": 370.0}), cfg()
    reference = tmp_path / "reference"
    process_fileset(fileset(files, "a", "b"), reference, new_cfg, executor="iterative", quiet=True)
    expected = snapshot(reference)
    finished = tmp_path / "finished"  # an earlier run: other selection, one more dataset
    process_fileset(fileset(files, "a", "b", "c"), finished, old_cfg, executor="iterative", quiet=True)
    old = snapshot(finished)
    assert (
        set(old) - set(expected) == {"events/c.parquet"} and old["cutflow.json"] != expected["cutflow.json"]
    )
    for point in KILL_POINTS:
        out = tmp_path / point.replace("/", "_").replace(":", "_")
        shutil.copytree(finished, out)
        _killed_child(point, fileset(files, "a", "b"), out, new_cfg)
        visible = {k: v for k, v in snapshot(out).items() if not any(p.startswith(".") for p in k.split("/"))}
        if point in BEFORE_COMMIT:  # the finished directory is untouched and still trusted
            assert visible == old, point
            require_complete(out)
        else:  # recognisably incomplete: every reader refuses it
            if point == "rename:events/b.parquet":  # a real mix of the two runs
                assert visible["cutflow.json"] == expected["cutflow.json"]
                assert visible["histograms.root"] == old["histograms.root"]
            with pytest.raises(InputError, match=rf"{out}: incomplete results .*`process`"):
                require_complete(out)
            with pytest.raises(InputError, match="incomplete"):
                require_complete(out / "events")
        # the rerun: identical to an uninterrupted run, no leftovers (temporaries, staging, marker)
        process_fileset(fileset(files, "a", "b"), out, new_cfg, executor="iterative", quiet=True)
        assert snapshot(out) == expected, point
        require_complete(out)


def test_run_json_is_written_with_the_results_never_before(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen = []
    import analysis.commands.process as proc_module

    real = proc_module._merge

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))
        return real(*args, **kwargs)

    proc_module._merge = spy
    try:
        process_fileset(fileset(files, "a"), out, cfg(), executor="iterative", quiet=True)
    finally:
        proc_module._merge = real
    assert seen == [[]]  # nothing, run.json included, while the computation runs
    assert (out / "run.json").is_file()


# -- 2: NaN and inf kinematics ---------------------------------------------------------------------
def test_non_finite_kinematics_are_a_cutflow_step_with_a_warning(tmp_path: Path, capsys) -> None:
    bad_events = {"mass": [3, 10], "phi": [20], "pt": [30, 31], "eta": [40], "weight": [50]}
    dirty = write_nano(tmp_path / "dirty.root", seed=5, bad=bad_events)
    clean = write_nano(tmp_path / "clean.root", seed=5)
    res = process_fileset({"qcd": [str(dirty)]}, tmp_path / "dirty", cfg(), executor="iterative", quiet=True)
    warning = capsys.readouterr().err
    assert "'qcd'" in warning and "7 of 300 event(s)" in warning and "finite" in warning
    assert len(warning.strip().splitlines()) == 1
    flow = res.cutflow["datasets"]["qcd"]["cutflow"]
    assert flow["all"] == 300 and flow["finite"] == 293 and res.cutflow["cuts"][1] == "finite"
    assert res.warnings and "7 of 300" in res.warnings[0]
    # exactly the clean file without those events: nothing of them in a histogram or the Parquet
    ref = process_fileset({"qcd": [str(clean)]}, tmp_path / "clean", cfg(), executor="iterative", quiet=True)
    dropped = {e + 1 for events in bad_events.values() for e in events}
    ref_cols = ak.from_parquet(ref.events["qcd"])
    keep = ~np.isin(ak.to_numpy(ref_cols.event), list(dropped))
    cols = ak.from_parquet(res.events["qcd"])
    assert ak.to_list(cols) == ak.to_list(ref_cols[keep]) and len(cols) > 50
    assert np.all(np.isfinite(ak.to_numpy(cols.mjj)))
    for name in ("mjj_qcd", "mjj_bins_qcd"):
        values = res.histograms[name].values(flow=True)
        assert np.all(np.isfinite(values)) and values.sum() == len(cols)
        expected = np.histogram(ak.to_numpy(cols.mjj), bins=res.histograms[name].axes[0].edges)[0]
        np.testing.assert_array_equal(res.histograms[name].values(), expected)
    # the command line prints it too, and the clean file gives no warning
    code = cli_main(["process", "--fileset", str(_write_fileset(tmp_path, {"qcd": [str(clean)]})),
                     "--out", str(tmp_path / "cli"), "-q"])  # fmt: skip
    assert code == 0 and "warning" not in capsys.readouterr().err


def test_non_finite_output_column_names_the_file(tmp_path: Path) -> None:
    path = write_nano(tmp_path / "nan_rapidity.root", seed=6, rapidity_nan=list(range(0, 300, 3)))
    good = write_nano(tmp_path / "good.root", seed=7)
    with pytest.raises(InputError, match=r"nan_rapidity\.root: non-finite values .*jets\.rapidity"):
        process_fileset({"qcd": [str(path)]}, tmp_path / "o", cfg(), executor="iterative", quiet=True)
    res = process_fileset({"qcd": [str(path), str(good)]}, tmp_path / "skip", cfg(), executor="iterative",
                          skip_bad_files=True, quiet=True)  # fmt: skip
    assert [s["file"] for s in res.cutflow["skipped_files"]] == [str(path)]
    assert np.all(np.isfinite(ak.to_numpy(ak.flatten(ak.from_parquet(res.events["qcd"]).jets.rapidity))))


# -- 3: size arguments have upper bounds, checked before anything is planned -------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", str(10**12)], "--events 1000000000000: more than the limit of 100000000"),
        (["--events", "2000000", "--events-per-file", "1"], "more than the limit of 100000 files"),
        (["--events", "100", "--workers", "100000"], "--workers: must be between 1 and 1024"),
    ],
)
def test_generate_size_bounds_fail_fast(
    tmp_path: Path, capsys, monkeypatch, args: list[str], message: str
) -> None:
    import analysis.generation as generation

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("planned the files of an oversized request")

    monkeypatch.setattr(generation, "plan_files", never)
    code = cli_main(["generate", "--process", "qcd", "--seed", "1", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["process", "--fileset", "fs.json", "--out", "o", "--workers", "5000"], "--workers 5000: must be"),
        (["process", "--fileset", "fs.json", "--out", "o", "--chunksize", str(10**10)], "--chunksize"),
        (["plot", "signal", "--n-toys", "1000000", "--out", "x.png"], "--n-toys 1000000: must be between 1"),
        (["plot", "signal", "--seed", "-1", "--out", "x.png"], "--seed -1"),
    ],
)  # fmt: skip
def test_other_size_bounds(tmp_path: Path, capsys, monkeypatch, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fs.json").write_text("{}")
    assert cli_main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.png").exists()


# -- 5: expressions are checked at load, for every period index -------------------------------------
@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("center", "9**9**9**9", "exponent larger than 64"),
        ("width", "1/n", "no finite value"),
        ("center", "sqrt(-1)", "no finite value"),
        ("height", "1e999", "not finite"),
        ("center", "1" + "0" * 190, "outside"),
        ("width", "3 - n", "not positive at n = 3"),
        ("height", "n - 2", "negative at n = 0"),
        ("center", "tan(pi / 2)", "outside"),
        ("center", "max(n)", "2 to 16 arguments"),
        ("center", "exp(n, n)", "exactly one argument"),
    ],
)
def test_expressions_fail_at_load_naming_file_entry_and_field(
    tmp_path: Path, field: str, text: str, message: str, capsys
) -> None:
    entry = {"id": 4, "periods": 5, "center": "100 + 10*n", "height": 10, "width": "2 + n", field: text}
    with pytest.raises(ConfigError, match=rf"signals\.yaml: entry id=4 field '{field}': .*{message}"):
        parse_entries("signals", [entry], "signals.yaml")
    # and `session save` refuses it (exit 2), naming the file
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    (configs / "signals.yaml").write_text(json.dumps([entry]))
    code = cli_main(["session", "save", "s", "--config", str(configs / "default.yaml"),
                     "--sessions-dir", str(tmp_path / "sessions"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{configs / 'signals.yaml'}: entry id=4 field '{field}'" in err


def test_max_with_three_arguments_never_writes_into_n() -> None:
    from analysis.definitions import SignalDef
    from analysis.spectra import signal_counts

    n = np.arange(5.0)
    assert parse("max(1, 50, n)")(n).tolist() == [50.0] * 5 and n.tolist() == [0, 1, 2, 3, 4]
    assert parse("min(n, 3, 2 * n, 9)")(n).tolist() == [0, 1, 2, 3, 3]
    # the shared n of a signal's fields: width and height must not see center's max()
    sig = SignalDef(id=0, periods=3, center="max(1, 50, n)", height="n + 1", width="n + 1")
    m = np.array([50.0])
    expected = sum((k + 1) * np.exp(-0.5 * ((50 - 50) / (k + 1)) ** 2) for k in range(3))
    np.testing.assert_allclose(signal_counts(sig, m), [expected])


# -- 8: a dataset without files ---------------------------------------------------------------------
def test_dataset_without_files_is_a_config_error(tmp_path: Path, capsys) -> None:
    fs = _write_fileset(tmp_path, {"qcd": {"files": []}, "xgg": {"files": {}}})
    assert cli_main(["process", "--fileset", str(fs), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert f"{fs}: dataset 'qcd' lists no files" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="dataset 'xgg' lists no files"):
        process_fileset({"xgg": {"files": {}}}, tmp_path / "o", cfg(), executor="iterative", quiet=True)


def test_incomplete_generated_dataset_is_refused(tmp_path: Path, monkeypatch) -> None:
    import analysis.generation as generation

    out = tmp_path / "sample"
    out.mkdir()
    old = {"qcd": {"files": {"qcd_0000.root": "Events"}, "metadata": {"seed": 1}}}
    (out / "fileset.json").write_text(json.dumps(old))

    def fail(*_: Any, **__: Any) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(generation, "write_file", fail)
    with pytest.raises(RuntimeError):
        generation.generate("qcd", 10, 2, out, workers=1, quiet=True)
    with pytest.raises(InputError, match=r"dataset 'qcd' is incomplete .*`generate`"):
        process_fileset(out / "fileset.json", tmp_path / "o", cfg(), executor="iterative", quiet=True)


# -- 9: one error path: --out problems exit 2 naming the path; one line; files named ------------------
def test_out_naming_a_file_exits_2_naming_the_path(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    fs = _write_fileset(tmp_path, {"qcd": ["nope.root"]})
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    cases = [
        ["process", "--fileset", str(fs), "--out", str(blocker)],
        ["process", "--fileset", str(fs), "--out", str(blocker / "sub")],
        ["generate", "--process", "qcd", "--events", "5", "--seed", "1", "--out", str(blocker)],
        ["plot", "signal", "--out", str(blocker / "x.png")],
        ["plot", "signal", "--out", str(tmp_path)],
        ["session", "save", "s", "--config", str(configs / "default.yaml"), "--sessions-dir", str(blocker)],
        ["session", "list", "--sessions-dir", str(blocker)],
    ]
    for argv in cases:
        code = cli_main([*argv, "-q"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)
        assert str(blocker if "plot" not in argv or "x.png" in argv[-1] else tmp_path) in err, (argv, err)
    assert cli_main(["session", "save", "s", "--config", str(configs / "default.yaml"),
                     "--sessions-dir", str(tmp_path / "sessions"), "-q"]) == 0  # fmt: skip
    code = cli_main(
        ["session", "load", "s", "--into", str(blocker), "--sessions-dir", str(tmp_path / "sessions")]
    )
    assert code == 2 and f"--into {blocker}" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_non_utf8_config_names_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("seed: 1\n# Kalorimeter-Kalibrierung für 2011\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{path}: line 2: not UTF-8"):
        load_config(path)
    code = cli_main(["plot", "signal", "--config", str(path), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "UnicodeDecodeError" not in err


def test_every_error_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import analysis.commands.plot as plot

    for exc in (
        InputError("x.root: not a ROOT file\n  in file x.root\n"),
        ValueError("first\nsecond\n\nthird"),
    ):

        def fail(_: Any, exc: Exception = exc) -> int:
            raise exc

        monkeypatch.setattr(plot, "main", fail)
        code = cli_main(["plot", "signal"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "first second third" in err
    # a real one: a file that is not ROOT where ROOT histograms are expected
    garbage = tmp_path / "histograms.root"
    garbage.write_bytes(b"not a ROOT file at all\n" * 10)
    monkeypatch.undo()
    code = cli_main(["build-dataset", "--histograms", str(garbage), "--out", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code in (1, 2) and len(err.splitlines()) == 1 and str(garbage) in err


# -- 10: duplicate YAML keys --------------------------------------------------------------------------
def test_duplicate_yaml_keys_are_errors_naming_key_and_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\ntoys:\n  signal_id: 1\n  n_fluctuations: 2\n  signal_id: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: line 5: duplicate key 'signal_id' \(first on line 3\)"):
        load_config(path)
    defs = tmp_path / "signals.yaml"
    defs.write_text("- id: 0\n  center: 100\n  height: 1\n  width: 2\n  width: 3\n")
    with pytest.raises(ConfigError, match=r"line 5: duplicate key 'width'"):
        read_yaml(defs)
    assert cli_main(["plot", "signal", "--config", str(path), "--out", str(tmp_path / "x.png")]) == 2
    assert "duplicate key 'signal_id'" in capsys.readouterr().err
    # YAML merge keys stay allowed
    merge = tmp_path / "merge.yaml"
    merge.write_text("a: &x {p: 1}\nb:\n  <<: *x\n  q: 2\n")
    assert read_yaml(merge) == {"a": {"p": 1}, "b": {"p": 1, "q": 2}}


# -- 11: sessions refuse symbolic links ---------------------------------------------------------------
def test_session_save_force_refuses_a_symlink(tmp_path: Path, capsys) -> None:
    sessions, outside = tmp_path / "sessions", tmp_path / "outside"
    sessions.mkdir()
    outside.mkdir()
    (sessions / "evil").symlink_to(outside, target_is_directory=True)
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    base = ["--sessions-dir", str(sessions), "-q"]
    for argv in (["save", "evil", "--config", str(configs / "default.yaml"), "--force"],
                 ["save", "evil", "--config", str(configs / "default.yaml")],
                 ["load", "evil", "--into", str(tmp_path / "into")], ["delete", "evil"]):  # fmt: skip
        assert cli_main(["session", *argv, *base]) == 2
        assert "symbolic link" in capsys.readouterr().err
    assert not any(outside.iterdir()) and (sessions / "evil").is_symlink()


def test_interrupted_forced_save_is_not_loaded(tmp_path: Path, capsys, monkeypatch) -> None:
    import analysis.sessions as sessions

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    base = ["--sessions-dir", str(tmp_path / "sessions"), "-q"]
    assert cli_main(["session", "save", "s", "--config", str(configs / "default.yaml"), *base]) == 0
    real = sessions.write_json
    monkeypatch.setattr(sessions, "write_json", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert (
        cli_main(["session", "save", "s", "--config", str(configs / "default.yaml"), "--force", *base]) == 130
    )
    monkeypatch.setattr(sessions, "write_json", real)
    capsys.readouterr()
    assert cli_main(["session", "load", "s", "--into", str(tmp_path / "into"), *base]) == 2
    assert "incomplete session" in capsys.readouterr().err
    assert cli_main(["session", "delete", "s", *base]) == 0


# -- 12: leftovers of killed runs are removed by the next run of the stage ------------------------------
def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_stale_temporaries_are_removed_by_the_next_run(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process_fileset(fileset(files, "a"), out, cfg(), executor="iterative", quiet=True)
    dead, live = _dead_pid(), os.getpid()
    stale = [
        out / f".histograms.root.{dead}-abcd1234.tmp",
        out / "events" / f".a.parquet.{dead}-x1y2z3w4.tmp",
        out / ".cutflow.json.k3j4h5g6.tmp",  # an older version's name, without a pid
    ]
    for path in stale:
        path.write_bytes(b"half-written")
    staging = out / f".process.{dead}-q1w2e3r4.staging"
    (staging / "events").mkdir(parents=True)
    (staging / "histograms.root").write_bytes(b"half")
    alive = out / f".run.json.{live}-abcdabcd.tmp"  # a live writer's file is not touched
    alive.write_text("{}")
    foreign = out / ".notes.tmp"  # not one of ours
    foreign.write_text("mine")
    process_fileset(fileset(files, "a"), out, cfg(), executor="iterative", quiet=True)
    assert not any(p.exists() for p in [*stale, staging])
    assert alive.exists() and foreign.exists()


def test_stale_temporaries_of_generate_are_removed(tmp_path: Path) -> None:
    from analysis.generation import generate

    gen = load_config(None, {"generation": {"events_per_file": 20, "batch_size": 20}}).generation
    out = tmp_path / "sample"
    generate("qcd", 20, 3, out, workers=1, cfg=gen, quiet=True)
    stale = out / f".qcd_0000.root.{_dead_pid()}-abcd1234.tmp"
    stale.write_bytes(b"half")
    generate("qcd", 20, 3, out, workers=1, cfg=gen, quiet=True)  # reuses the file, cleans up
    assert not stale.exists()


def test_remove_stale_only_touches_named_leftovers(tmp_path: Path) -> None:
    dead = _dead_pid()
    mine = tmp_path / f".plot.png.{dead}-abcdabcd.tmp"
    other = tmp_path / f".other.png.{dead}-abcdabcd.tmp"
    for path in (mine, other):
        path.write_text("x")
    assert atomic.remove_stale(tmp_path, names=["plot.png"]) == [mine]
    assert other.exists()
    with contextlib.suppress(FileNotFoundError):
        other.unlink()
