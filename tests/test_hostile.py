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

from analysis.cli import main as cli_main
from analysis.core import atomic
from analysis.core.config import load_config, read_yaml
from analysis.core.errors import ConfigError, InputError
from analysis.core.expressions import parse
from analysis.events.processing import process_fileset, require_complete
from analysis.toys.definitions import parse_entries

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
    import analysis.events.processing as proc_module

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
    import analysis.events.processing as proc_module

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
    for binning in ("mjj", "mjj_bins"):
        h = res.spectra.dataset("qcd", binning)
        values = h.values(flow=True)
        assert np.all(np.isfinite(values)) and values.sum() == len(cols)
        expected = np.histogram(ak.to_numpy(cols.mjj), bins=h.axes[0].edges)[0]
        np.testing.assert_array_equal(h.values(), expected)
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
    import analysis.events.generation as generation

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
    from analysis.toys.definitions import SignalDef
    from analysis.toys.spectra import signal_counts

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
    import analysis.events.generation as generation

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
    import analysis.core.sessions as sessions

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
    from analysis.events.generation import generate

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


# -- 6: the autoencoders' consumers refuse models of another dataset ---------------------------------
AE_WAVELET = parse_entries("wavelets", [{"id": 0}], "w")[0]
AE_BACKGROUND = parse_entries("backgrounds", [{"id": 0, "kind": "exponential", "amplitude": 1000, "rate": 0.005}], "b")[0]
AE_SIGNAL = parse_entries("signals", [{"id": 0, "center": 256, "height": 150, "width": 3}], "s")[0]
TINY = {"toys": 20, "train": 20, "test": 20, "signal_sizes": [0.0, 2000.0], "quiet": True}


def _train_dense(dataset: Path, out: Path) -> Path:
    from analysis.core.config import AutoencodersConfig
    from analysis.wavelets.autoencoders import train_models

    ae = AutoencodersConfig(models=["dense"], epochs=1, batch_size=10, patience=1, learning_rate=1e-3, code_size=4,
                            validation_fraction=0.2)  # fmt: skip
    train_models(dataset, out, ae, seed=1, quiet=True)
    return out


@pytest.fixture(scope="module")
def ae_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy datasets a (12x16 maps, seed 1), b (12x16, seed 2: same shape, another dataset) and
    c (6x8), and a dense model trained on a (models/dense_ae)."""
    from analysis.wavelets.dataset import build_dataset, toy_inputs

    base = tmp_path_factory.mktemp("ae_hostile")
    inputs = toy_inputs(AE_SIGNAL, AE_BACKGROUND, AE_WAVELET)
    build_dataset(base / "a", inputs, seed=1, shape=(12, 16), **TINY)
    build_dataset(base / "b", inputs, seed=2, shape=(12, 16), **TINY)
    build_dataset(base / "c", inputs, seed=1, shape=(6, 8), **TINY)
    _train_dense(base / "a", base / "models")
    return base


def test_pvalue_scan_refuses_models_of_another_dataset(ae_datasets: Path, tmp_path: Path, capsys) -> None:
    from models.ae_training import save_model
    from models.autoencoders import build_autoencoder

    base = ae_datasets
    copied = tmp_path / "copied"  # a model without the record of its dataset
    shutil.copytree(base / "models", copied)
    (copied / "dense_ae" / "train.json").unlink()
    swapped = tmp_path / "swapped"  # train.json of dataset a, but the .keras file of a 6x8 model
    shutil.copytree(base / "models", swapped)
    save_model(build_autoencoder("dense", (6, 8), code_size=4), swapped / "dense_ae" / "dense_ae.keras")
    cases = [
        (base / "b", base / "models", "trained on another dataset"),
        (base / "c", base / "models", "a model of 12x16 maps"),
        (base / "a", copied, "no train.json recording the dataset"),
        (base / "a", swapped, "the saved model takes 6x8 maps"),
    ]
    for dataset, models, message in cases:
        out = tmp_path / f"out_{dataset.name}_{models.name}"
        code = cli_main(["pvalue-scan", "--dataset", str(dataset), "--models-dir", str(models), "--out", str(out), "-q"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert message in err and str(models / "dense_ae") in err and str(dataset) in err, err
        assert "Traceback" not in err and not any(out.iterdir())  # refused before anything is written
    # the dataset it was trained on (or an identical rebuild elsewhere: same fingerprint) is scanned
    from analysis.wavelets.dataset import build_dataset, toy_inputs

    build_dataset(tmp_path / "a_again", toy_inputs(AE_SIGNAL, AE_BACKGROUND, AE_WAVELET), seed=1, shape=(12, 16), **TINY)
    for dataset in (base / "a", tmp_path / "a_again"):
        out = tmp_path / f"ok_{dataset.name}"
        code = cli_main(["pvalue-scan", "--dataset", str(dataset), "--models-dir", str(base / "models"), "--out", str(out), "-q"])
        assert code == 0, capsys.readouterr().err
        assert json.loads((out / "pvalue_vs_signal.json").read_text())["models"][0]["name"] == "dense_ae"


def _falling(n: int, rng: np.random.Generator) -> np.ndarray:
    """m_jj from a dijet x turn-on density (as in test_autoencoders)."""
    from analysis.baselines.background_fit import dijet_turnon

    grid = np.arange(700.0, 1600.0, 1.0)
    cdf = np.cumsum(dijet_turnon(np.array([0.0, 10.0, 5.0, 0.0, 780.0, np.log(60.0)]), grid))
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def test_chain_scoring_refuses_models_of_another_dataset(ae_datasets: Path, tmp_path: Path) -> None:
    from analysis.sensitivity.realizations import build_realizations
    from analysis.wavelets.autoencoders import ae_sensitivity
    from analysis.wavelets.dataset import build_dataset_from_realizations

    rng = np.random.default_rng(21)
    real = build_realizations(_falling(3000, rng), rng.normal(900.0, 25.0, 500), seed=3, n_realizations=3,
                              n_signal=[0, 100], resampling="model_poisson", edges=np.arange(760.0, 1481.0, 10.0),
                              sqrt_s=7000.0, signal="xgg_m900")  # fmt: skip

    def config(seed: int) -> Any:
        return load_config(None, {"seed": seed, "dataset": {"toys": 20, "train": 20, "test": 20, "histogram_shape": [12, 18]},
                                  "sensitivity": {"realizations": 3, "pfn_realizations": 3, "n_signal": [0, 100]}})  # fmt: skip

    build_dataset_from_realizations(real, tmp_path / "d1", config(1), quiet=True)
    build_dataset_from_realizations(real, tmp_path / "d2", config(2), quiet=True)  # same model and shape, other toys
    models = _train_dense(tmp_path / "d1", tmp_path / "models")
    with pytest.raises(InputError, match="trained on another dataset") as info:
        ae_sensitivity(real, tmp_path / "d2", models, tmp_path / "out", config(2), quiet=True, names=["dense"])
    assert str(models / "dense_ae") in str(info.value) and str(tmp_path / "d2") in str(info.value)
    with pytest.raises(InputError, match=r"a model of 12x16 maps .* has 12x18 maps") as info:
        ae_sensitivity(real, tmp_path / "d1", ae_datasets / "models", tmp_path / "out", config(1), quiet=True,
                       names=["dense"])  # fmt: skip
    assert str(ae_datasets / "models" / "dense_ae") in str(info.value)
    assert not (tmp_path / "out" / "sensitivity.json").exists()


# -- 7: build-dataset bounds, checked before anything is written --------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--signal-sizes", "nan,inf"], "--signal-sizes 'nan,inf': nan is not a finite number"),
        (["--signal-sizes", "0,inf"], "--signal-sizes '0,inf': inf is not a finite number"),
        (["--signal-sizes", "0,-5"], "--signal-sizes '0,-5': -5 is negative"),
        (["--signal-sizes", "1e13"], "more than the limit of 1e+12 signal events"),
        (["--signal-sizes", ",".join(str(k) for k in range(51))], "51 sizes, more than the limit of 50"),
        (["--toys", str(10**12)], "--toys 1000000000000: more than the limit of 200000"),
        (["--train", "500001"], "--train 500001: more than the limit of 500000"),
        (["--test", "200001"], "--test 200001: more than the limit of 200000"),
        (["--test", "0"], "--test 0: must be at least 1"),
        (["--test", "200000", "--signal-sizes", "0,1,2,3,4,5,6,7,8,9"], "25.2 GiB, more than the limit of 16 GiB"),
    ],
)  # fmt: skip
def test_build_dataset_bounds_fail_fast(tmp_path: Path, capsys, monkeypatch, argv: list[str], message: str) -> None:
    import analysis.wavelets.dataset as dataset

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("computed maps of an invalid request")

    monkeypatch.setattr(dataset, "toy_maps", never)
    out = tmp_path / "ds"
    code = cli_main(["build-dataset", "--out", str(out), *argv, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # no dataset_config.json, not even the directory


def test_build_dataset_api_refuses_non_finite_sizes_before_writing(tmp_path: Path) -> None:
    from analysis.wavelets.dataset import build_dataset, toy_inputs

    inputs = toy_inputs(AE_SIGNAL, AE_BACKGROUND, AE_WAVELET)
    for sizes, message in (([0.0, float("nan")], "nan is not a finite"), ([float("inf")], "inf is not a finite"),
                           ([0.0, -1.0], "negative"), ([5.0, 5.0], "distinct")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            build_dataset(tmp_path / "ds", inputs, **{**TINY, "signal_sizes": sizes}, seed=1, shape=(12, 16))
        assert not (tmp_path / "ds" / "dataset_config.json").exists()
    with pytest.raises(ConfigError, match="toys 1000000: more than the limit of 200000"):
        build_dataset(tmp_path / "ds", inputs, **{**TINY, "toys": 10**6}, seed=1, shape=(12, 16))
    assert not (tmp_path / "ds" / "dataset_config.json").exists()


def test_a_failed_build_never_blocks_the_directory(tmp_path: Path, monkeypatch) -> None:
    import analysis.wavelets.dataset as dataset

    inputs = dataset.toy_inputs(AE_SIGNAL, AE_BACKGROUND, AE_WAVELET)
    out = tmp_path / "ds"
    real_toy_maps, real_pvalue_maps = dataset.toy_maps, dataset.pvalue_maps

    def out_of_memory(*_: Any, **__: Any) -> None:
        raise MemoryError("Unable to allocate 9.3 TiB")

    # a build that fails before its first array: its config does not block another build
    monkeypatch.setattr(dataset, "toy_maps", out_of_memory)
    with pytest.raises(MemoryError):
        dataset.build_dataset(out, inputs, **{**TINY, "toys": 150_000}, seed=1, shape=(12, 16))
    assert json.loads((out / "dataset_config.json").read_text())["toys"] == 150_000
    monkeypatch.setattr(dataset, "toy_maps", real_toy_maps)
    dataset.build_dataset(out, inputs, **TINY, seed=1, shape=(12, 16))
    assert dataset.load_dataset(out).config["toys"] == 20
    # a finished dataset is still protected from a build with other parameters
    with pytest.raises(ConfigError, match=r"an existing dataset with different parameters \(toys: 20 there, 30 now\)"):
        dataset.build_dataset(out, inputs, **{**TINY, "toys": 30}, seed=1, shape=(12, 16))
    # and so is an unfinished one with arrays (a rerun with its parameters finishes it)
    other = tmp_path / "unfinished"
    monkeypatch.setattr(dataset, "pvalue_maps", out_of_memory)
    with pytest.raises(MemoryError):
        dataset.build_dataset(other, inputs, **TINY, seed=1, shape=(12, 16))
    monkeypatch.setattr(dataset, "pvalue_maps", real_pvalue_maps)
    with pytest.raises(ConfigError, match=r"existing unfinished dataset .* rerun with its parameters to finish it"):
        dataset.build_dataset(other, inputs, **TINY, seed=2, shape=(12, 16))
    dataset.build_dataset(other, inputs, **TINY, seed=1, shape=(12, 16))
    np.testing.assert_array_equal(dataset.load_dataset(other).train, dataset.load_dataset(out).train)


# -- 9: --out of the dataset, autoencoder and baseline commands; histograms checked when read ---------
def test_out_naming_a_file_exits_2_for_the_map_and_baseline_commands(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        for argv in (
            ["build-dataset", "--out", str(out)],
            ["train-ae", "--dataset", "nods", "--out", str(out)],
            ["pvalue-scan", "--dataset", "nods", "--models-dir", "nomodels", "--out", str(out)],
            ["bumphunt", "--histograms", "nohist.root", "--out", str(out)],
            ["scan", "--events", "noevents", "--out", str(out)],
        ):
            code = cli_main([*argv, "-q"])
            err = capsys.readouterr().err
            assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)
            assert f"--out {out}" in err and "FileExistsError" not in err, (argv, err)
    assert blocker.read_text() == "x"


HIST_EDGES = np.arange(500.0, 1501.0, 10.0)


def _histograms(directory: Path, qcd: np.ndarray | None = None, xgg_edges: np.ndarray = HIST_EDGES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    centres = 0.5 * (HIST_EDGES[1:] + HIST_EDGES[:-1])
    background = np.random.default_rng(1).poisson(20000 * np.exp(-centres / 150) / np.exp(-centres / 150).sum())
    signal = np.ones(len(xgg_edges) - 1)
    path = directory / "histograms.root"
    with uproot.recreate(path) as fh:
        fh["mjj_qcd"] = (background.astype(float) if qcd is None else qcd, HIST_EDGES)
        fh["mjj_xgg_900"] = (signal, xgg_edges)
    return path


def test_histograms_of_an_interrupted_or_non_finite_process_are_refused(tmp_path: Path, capsys) -> None:
    import re

    from analysis.wavelets.dataset import build_dataset_from_histograms, read_histograms

    def cli(path: Path) -> str:
        code = cli_main(["build-dataset", "--histograms", str(path), "--out", str(tmp_path / "ds"), "-q"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        return err

    # an interrupted commit of `process` (its marker is there)
    path = _histograms(tmp_path / "interrupted")
    (path.parent / atomic.INCOMPLETE).write_text(json.dumps({"stage": "process"}))
    with pytest.raises(InputError, match=rf"{path.parent}: incomplete results .*`process`"):
        read_histograms(path)
    assert "incomplete results" in cli(path)
    # NaN or inf bin contents
    for bad in (np.nan, np.inf):
        counts = np.full(len(HIST_EDGES) - 1, 10.0)
        counts[40] = bad
        path = _histograms(tmp_path / f"bad_{bad}", qcd=counts)
        message = f"{path}: histogram mjj_qcd has NaN or infinite bin contents"
        with pytest.raises(InputError, match=re.escape(message)):
            read_histograms(path)
        assert message in cli(path)
    # binnings that differ: one line naming both histograms and their bins (not a broadcast error)
    path = _histograms(tmp_path / "binning", xgg_edges=np.arange(500.0, 1501.0, 20.0))
    with pytest.raises(InputError, match=r"mjj_qcd \(100 bins of 500-1500 GeV\) and mjj_xgg_900 \(50 bins"):
        build_dataset_from_histograms(path, tmp_path / "x", load_config(), quiet=True)
    err = cli(path)
    assert "mjj_qcd (100 bins" in err and "mjj_xgg_900 (50 bins" in err and "broadcast" not in err
    assert not (tmp_path / "ds" / "dataset_config.json").exists()
