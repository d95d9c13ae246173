"""The adjacent-bin PFN scan on generated + processed events: null AUCs, injections, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.config import load_config
from analysis.scan import load_processed, scan_inputs
from analysis.sensitivity import crossing

REPO = Path(__file__).resolve().parent.parent
# Settings measured on the session's processed sample (~3300 selected QCD events, ~1000 xgg):
# at 1000 events per sample the null AUC spread is ~0.03-0.05, and injecting the whole
# resonance pool lifts the affected pair by ~0.13; the gluon-pair injection (80 % of the QCD
# events set aside, so its pool holds ~190 gg events in bin 1) lifts its pair by ~0.1 at 600.
SCAN = {
    "n_samples": 6, "epochs": 10, "batch_size": 100, "phi_sizes": [32, 32], "f_sizes": [32],
    "learning_rate": 0.003, "reference_events": 1000, "train_jets": 1000, "test_jets": 333,
    "min_jets_per_bin": 200,  # drops bins 0 and 4 (too few jets at these sizes): pairs 1-2, 2-3
}  # fmt: skip
NULL_SIZES = [600, 1000]
RESONANCE_SIZE, GLUON_SIZE = 1000, 600
INJECTION = {"kind": "none", "bin": 1, "pool_fraction": 0.8}


def scan_config(tmp: Path, sizes: list[int], **extra) -> Path:
    """A config file for a small scan."""
    path = tmp / "scan.yaml"
    path.write_text(json.dumps({"seed": 4, "scan": {**SCAN, "sizes": sizes, **extra}, "injection": INJECTION}))
    return path


@pytest.fixture(scope="session")
def null_scan(processed_sample: Path, tmp_path_factory) -> dict:
    from analysis.commands.scan import scan_stage

    out = tmp_path_factory.mktemp("null_scan")
    scan_stage(load_config(scan_config(out, NULL_SIZES)), processed_sample, out, quiet=True)
    return json.loads((out / "auc_scan.json").read_text())


def pair(scan: dict, size: int, bins: tuple[int, int]) -> dict:
    block = next(b for b in scan["sizes"] if b["events"] == size)
    return next(p for p in block["pairs"] if tuple(p["bins"]) == bins)


def test_auc_scan_json_follows_the_design(null_scan: dict) -> None:
    assert null_scan["bin_edges"] == [660, 760, 860, 960, 1060, 1160]
    assert null_scan["seed"] == 4
    assert null_scan["injection"] == {"kind": "none", "n_events": 0, "mass": None}
    assert [b["events"] for b in null_scan["sizes"]] == NULL_SIZES
    for block in null_scan["sizes"]:
        assert block["n_samples"] == SCAN["n_samples"]
        assert [p["bins"] for p in block["pairs"]] == [[1, 2], [2, 3]]  # bins 0 and 4 fall below the cutoff
        for p in block["pairs"]:
            assert len(p["aucs"]) == SCAN["n_samples"]
            assert p["auc_mean"] == pytest.approx(np.mean(p["aucs"]))
            assert p["auc_std"] == pytest.approx(np.std(p["aucs"], ddof=1))


def test_background_only_mean_auc_is_one_half(null_scan: dict) -> None:
    for block in null_scan["sizes"]:
        for p in block["pairs"]:
            stderr = p["auc_std"] / np.sqrt(len(p["aucs"]))
            assert abs(p["auc_mean"] - 0.5) <= 3 * stderr + 1e-9, (block["events"], p)


def _injected(processed_sample: Path, size: int, tmp: Path, kind: str, n: int) -> dict:
    from analysis.commands.scan import scan_stage

    scan_stage(load_config(scan_config(tmp, [size])), processed_sample, tmp, kind=kind, n_inject=n, quiet=True)
    return json.loads((tmp / "auc_scan.json").read_text())


def _most_lopsided_pair(pool_mjj: np.ndarray, background_mjj: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[int, int]:
    """Independently: the pair whose bins' signal-to-background shares differ most."""
    edges = [660, 760, 860, 960, 1060, 1160]
    s, b = np.histogram(pool_mjj, edges)[0], np.histogram(background_mjj, edges)[0]
    r = (s / s.sum()) / (b / b.sum())
    return max(pairs, key=lambda p: abs(r[p[0]] - r[p[1]]))


def _clearly_above(hit: dict, null: dict, z_min: float) -> None:
    """Above the null band (mean + std), and the means differ by > z_min standard errors."""
    n = len(hit["aucs"])
    z = (hit["auc_mean"] - null["auc_mean"]) / np.sqrt((hit["auc_std"] ** 2 + null["auc_std"] ** 2) / n)
    assert hit["auc_mean"] > null["auc_mean"] + null["auc_std"], (hit, null)
    assert z > z_min, (z, hit, null)


def test_strong_resonance_lifts_its_pair_above_the_null_band(processed_sample, null_scan, tmp_path) -> None:
    from analysis.pfn_sensitivity import affected_pair
    from analysis.scan import setup_from_config

    columns, metadata = load_processed(processed_sample)
    cfg = load_config(scan_config(tmp_path, [RESONANCE_SIZE]))
    inputs = scan_inputs(columns, metadata, cfg, "resonance")
    n = len(inputs.pool)  # the whole pool: a resonance that dominates its bin
    assert n >= 500, "too few selected resonance events"
    bins = _most_lopsided_pair(inputs.pool.mjj, inputs.background.mjj, [(1, 2), (2, 3)])
    assert affected_pair(setup_from_config(cfg, inputs, n), inputs) == bins
    scan = _injected(processed_sample, RESONANCE_SIZE, tmp_path, "resonance", n)
    assert scan["injection"] == {"kind": "resonance", "n_events": n, "mass": inputs.mass}
    hit, null = pair(scan, RESONANCE_SIZE, bins), pair(null_scan, RESONANCE_SIZE, bins)
    _clearly_above(hit, null, z_min=2.5)
    assert min(hit["aucs"]) > null["auc_mean"], (hit, null)


def test_gluon_pair_injection_moves_its_pair(processed_sample, null_scan, tmp_path) -> None:
    columns, metadata = load_processed(processed_sample)
    cfg = load_config(scan_config(tmp_path, [GLUON_SIZE]))
    inputs = scan_inputs(columns, metadata, cfg, "gluon_pairs")
    n = len(inputs.pool)
    assert n >= 100, "too few gluon-gluon events in the injection bin"
    assert len(inputs.background) >= GLUON_SIZE
    scan = _injected(processed_sample, GLUON_SIZE, tmp_path, "gluon_pairs", n)
    # the pool sits in bin 1; its neighbours are bin 0 (dropped) and bin 2
    _clearly_above(pair(scan, GLUON_SIZE, (1, 2)), pair(null_scan, GLUON_SIZE, (1, 2)), z_min=2.0)


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "run_analysis.py", "scan", "-q", *args], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_resume_after_kill_gives_the_identical_auc_scan(processed_sample, tmp_path) -> None:
    config = scan_config(tmp_path, [GLUON_SIZE], n_samples=2, epochs=3)
    common = ["--events", str(processed_sample), "--config", str(config)]
    full = _cli(*common, "--out", str(tmp_path / "full"))
    assert full.wait(timeout=600) == 0, full.stderr.read()[-2000:]

    killed = _cli(*common, "--out", str(tmp_path / "killed"))
    ckpt = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 600
    while not (ckpt.is_dir() and list(ckpt.glob("*.json"))) and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, "the scan finished before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    n_done = len(list(ckpt.glob("*.json")))
    n_total = len(list((tmp_path / "full" / "checkpoints").glob("*.json")))
    assert 1 <= n_done < n_total
    assert not (tmp_path / "killed" / "auc_scan.json").exists()

    resumed = _cli(*common, "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-2000:]
    assert (tmp_path / "killed" / "auc_scan.json").read_bytes() == (tmp_path / "full" / "auc_scan.json").read_bytes()
    assert (tmp_path / "killed" / "auc_scan.png").is_file()

    # a checkpoint of another setup is refused with one line naming it
    other = _cli(*common, "--out", str(tmp_path / "killed"), "--resume", "--seed", "99")
    assert other.wait(timeout=600) == 2
    err = other.stderr.read()
    assert "checkpoint of a different scan setup" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inject", "bump:5"], "expected resonance:N or gluon_pairs:N"),
        (["--sizes", "10,x"], "--sizes"),
        (["--sizes", "100000000"], "scan.sizes"),
        (["--samples", "0"], "--samples 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(processed_sample, tmp_path, args, message) -> None:
    proc = _cli("--events", str(processed_sample), "--out", str(tmp_path / "o"), *args)
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read()
    assert message in err and "Traceback" not in err


def test_missing_events_directory_is_named(tmp_path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    proc = _cli("--events", str(empty), "--out", str(tmp_path / "o"))
    assert proc.wait(timeout=300) == 1
    assert "cutflow.json: not found" in proc.stderr.read()


def test_sensitivity_crossing_interpolates() -> None:
    points = [{"n_signal": 0, "z": 0.0}, {"n_signal": 100, "z": 2.0}, {"n_signal": 200, "z": 6.0}]
    assert crossing(points, 3.0) == pytest.approx(125.0)
    assert crossing(points, 5.0) == pytest.approx(175.0)
    assert crossing(points, 7.0) is None


def test_sensitivity_mode_writes_pfn_auc_entry(processed_sample, tmp_path) -> None:
    from analysis.commands.scan import scan_stage

    n = 300
    cfg = load_config(scan_config(tmp_path, [GLUON_SIZE], n_samples=2, epochs=2, sensitivity_n_signal=[0, n]))
    scan_stage(cfg, processed_sample, tmp_path, kind="resonance", sensitivity=True, quiet=True)
    data = json.loads((tmp_path / "sensitivity.json").read_text())
    (entry,) = [m for m in data["methods"] if m["method"] == "pfn_auc"]
    assert [p["n_signal"] for p in entry["points"]] == [0, n]
    assert entry["points"][0]["z"] == 0.0
    assert set(entry) >= {"n_signal_3sigma", "n_signal_5sigma"}
    assert (tmp_path / "sensitivity_pfn_auc.png").is_file()
    assert (tmp_path / f"inject_{n}" / "auc_scan.json").is_file()
