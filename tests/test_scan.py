"""The adjacent-bin PFN scan on generated + processed events: null AUCs, injections, resume,
the event split, and the pfn_auc method on the sensitivity realisations."""

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

from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.pfn.scan import load_processed, scan_inputs

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
    from analysis.pfn.scan import scan_stage

    out = tmp_path_factory.mktemp("null_scan")
    scan_stage(load_config(scan_config(out, NULL_SIZES)), processed_sample, out, quiet=True)
    return json.loads((out / "auc_scan.json").read_text())


def pair(scan: dict, size: int, bins: tuple[int, int]) -> dict:
    block = next(b for b in scan["sizes"] if b["events"] == size)
    return next(p for p in block["pairs"] if tuple(p["bins"]) == bins)


def test_auc_scan_has_one_reader_that_names_a_bad_file(null_scan: dict, tmp_path) -> None:
    from analysis.core.errors import InputError
    from analysis.pfn.scan import AucScan

    path = tmp_path / "auc_scan.json"
    path.write_text(json.dumps(null_scan))
    scan = AucScan.read(path)
    assert scan.model_dump(mode="json") == null_scan and scan.n_trainings == 2 * SCAN["n_samples"] * len(NULL_SIZES)
    for text in ("{", json.dumps({**null_scan, "seed": "four"}), json.dumps({**null_scan, "extra": 1})):
        path.write_text(text)
        with pytest.raises(InputError, match=r"auc_scan\.json: not a readable"):
            AucScan.read(path)


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


# Neighbouring m_jj bins differ a little without any signal (at fixed jet pT, the parton mix
# changes with m_jj): on this sample the constituent count alone separates bins 1 and 2 with
# AUC 0.516. Split by event, trainings are precise enough to see it (mean 0.52, spread 0.014 at
# 1000 events), so the background-only AUC is near 0.5, not at it: the sensitivity's null is
# the pair's own N = 0 AUC. A leak of the label (m_jj, the partner jet) would give far more.
NULL_AUC_TOLERANCE = 0.04


def test_background_only_mean_auc_is_near_one_half(null_scan: dict) -> None:
    for block in null_scan["sizes"]:
        for p in block["pairs"]:
            stderr = p["auc_std"] / np.sqrt(len(p["aucs"]))
            assert abs(p["auc_mean"] - 0.5) <= 3 * stderr + NULL_AUC_TOLERANCE, (block["events"], p)


def _injected(processed_sample: Path, size: int, tmp: Path, kind: str, n: int) -> dict:
    from analysis.pfn.scan import scan_stage

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
    columns, metadata = load_processed(processed_sample)
    cfg = load_config(scan_config(tmp_path, [RESONANCE_SIZE]))
    inputs = scan_inputs(columns, metadata, cfg, "resonance")
    n = len(inputs.pool)  # the whole pool: a resonance that dominates its bin
    assert n >= 500, "too few selected resonance events"
    bins = _most_lopsided_pair(inputs.pool.mjj, inputs.background.mjj, [(1, 2), (2, 3)])
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


def _recorded_splits(monkeypatch, module) -> list[tuple[np.ndarray, object]]:
    """Record (events of the jets, split) of every training of ``module``, which trains nothing."""
    import models.training as training

    calls, split_events = [], training.split_events

    def recording(events, *args):
        split = split_events(events, *args)
        calls.append((np.asarray(events), split))
        return split

    monkeypatch.setattr(training, "split_events", recording)
    monkeypatch.setattr(module, "train_split", lambda *args: 0.5)
    return calls


def _assert_split_by_event(events: np.ndarray, split, jets_per_event: int = 2) -> None:
    train, val, test = (set(events[part]) for part in (split.train, split.val, split.test))
    assert train and test and not train & test and not train & val and not val & test
    counts = np.bincount(np.unique(events, return_inverse=True)[1])
    assert np.all(counts % jets_per_event == 0)  # every event with all of its jets (and copies)


def test_no_event_is_in_the_training_and_the_test_set(processed_sample, tmp_path, monkeypatch) -> None:
    import analysis.pfn.scan as scan
    import analysis.pfn.sensitivity as pfn
    from analysis.pfn.scan import Task, setup_from_config
    from analysis.sensitivity.realizations import from_processed

    columns, metadata = load_processed(processed_sample)
    cfg = load_config(scan_config(tmp_path, [1000]))
    cfg = cfg.model_copy(update={"injection": cfg.injection.model_copy(update={"kind": "resonance"})})
    inputs = scan_inputs(columns, metadata, cfg, "resonance")
    calls = _recorded_splits(monkeypatch, scan)
    setup = setup_from_config(cfg, inputs, 200)
    scan.run_task(setup, inputs, Task(1000, 0, (1, 2)))
    (events, split), = calls
    _assert_split_by_event(events, split)
    assert (events >= len(inputs.background)).any()  # injected events are split by event too

    calls = _recorded_splits(monkeypatch, pfn)
    real = from_processed(cfg, columns, metadata)
    record = pfn.run_task(setup, (0.3, 0.1), inputs, real, pfn.PfnTask(0, 300, (1, 2)))
    (events, split), = calls
    _assert_split_by_event(events, split)
    assert len(np.unique(events)) < len(events) // 2  # Poisson copies: some events appear twice or more
    n = len(events)
    assert record["n_test"] == len(split.test) and abs(len(split.test) - 0.3 * n) < 0.02 * n
    assert abs(len(split.val) - 0.1 * n) < 0.02 * n



def test_validation_is_capped_recorded_and_leaves_the_auc_unchanged(processed_sample, tmp_path) -> None:
    """Validation jets (up to scan.val_jets of the pair's other jets) only measure a loss per epoch:
    the same training with all or a few of them gives the identical AUC."""
    from analysis.pfn.scan import Task, run_task, setup_from_config

    columns, metadata = load_processed(processed_sample)
    records = []
    for val_jets in (10**6, 50):
        cfg = load_config(scan_config(tmp_path, [1000], epochs=3, val_jets=val_jets, validate_each_epoch=True))
        inputs = scan_inputs(columns, metadata, cfg, "none")
        records.append(run_task(setup_from_config(cfg, inputs, 0), inputs, Task(1000, 0, (1, 2))))
    every, capped = records
    assert capped["n_val"] == 50 < every["n_val"] and capped["n_train"] == every["n_train"]
    assert capped["auc"] == every["auc"] and capped["loss"] == every["loss"]
    assert len(capped["val_loss"]) == len(every["val_loss"]) == 3 and capped["val_loss"] != every["val_loss"]
    assert all(np.isfinite(capped["val_loss"])) and 0 < capped["loss"][-1] < capped["loss"][0]  # it learns

# -- the pfn_auc statistic (pure numpy) -------------------------------------------------------
def test_leave_one_out_t_pvalues_are_uniform_for_a_gaussian_null() -> None:
    from scipy import stats

    from analysis.pfn.sensitivity import pair_pvalues

    rng = np.random.default_rng(5)
    n_real, trials = 7, 40_000  # the pairs axis holds independent experiments
    aucs = rng.normal(0.5, 0.02, size=(n_real, 2, trials))  # N = 0 and an N without effect
    p = pair_pvalues(aucs, null_column=0)
    for k in (0, 1):  # the null (leave-one-out) and a size tested against the whole null
        first = p[0, k]  # one realisation per experiment: independent p-values
        assert stats.kstest(first, "uniform").pvalue > 1e-3
        for level in (0.05, 0.01):
            se = np.sqrt(level * (1 - level) / trials)
            assert abs(np.mean(first <= level) - level) < 3 * se, (k, level)
    shifted = pair_pvalues(aucs + np.array([0.0, 0.1])[None, :, None], null_column=0)
    assert np.median(shifted[:, 1]) < 0.01  # five null standard deviations (t with 6 d.o.f.: p ~ 3e-3)


def test_pairs_combine_to_a_sidak_global_p() -> None:
    from analysis.pfn.sensitivity import combine_pairs

    p = np.random.default_rng(2).uniform(size=(20_000, 4))
    local, global_ = combine_pairs(p)
    np.testing.assert_allclose(local, p.min(axis=1))
    np.testing.assert_allclose(global_, 1 - (1 - p.min(axis=1)) ** 4, rtol=1e-9)
    assert abs(np.mean(global_ <= 0.05) - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 20_000)  # independent pairs: uniform


# -- pfn_auc end to end -----------------------------------------------------------------------
PFN_SENSITIVITY = {
    "scan": {**SCAN, "sizes": [1000], "epochs": 1, "phi_sizes": [8], "f_sizes": [8]},
    "sensitivity": {"realizations": 3, "pfn_realizations": 3, "n_signal": [0, 300]},
}


def test_pfn_auc_entry_on_the_realisations_and_resume(processed_sample, tmp_path) -> None:
    from analysis.pfn.sensitivity import CHECKPOINTS, pfn_sensitivity_of_processed
    from analysis.sensitivity.model import Sensitivity
    from analysis.sensitivity.realizations import from_processed

    config = tmp_path / "pfn.yaml"
    config.write_text(json.dumps({"seed": 4, "injection": INJECTION, **PFN_SENSITIVITY}))
    cfg = load_config(config)
    line = pfn_sensitivity_of_processed(cfg, processed_sample, tmp_path / "a", "resonance", quiet=True)
    assert "pfn_auc" in line
    data = Sensitivity.read(tmp_path / "a" / "sensitivity.json")
    (entry,) = data.methods
    cfg = cfg.model_copy(update={"injection": cfg.injection.model_copy(update={"kind": "resonance"})})
    real = from_processed(cfg, *load_processed(processed_sample, constituents=False))
    assert entry.method == "pfn_auc" and entry.signal == real.signal and entry.fingerprint == real.fingerprint
    assert entry.background_events == real.background_events and entry.realizations == 3
    assert data.protocol.n_signal == [0, 300] and [p.n_signal for p in entry.points] == [0, 300]
    assert len(entry.null_p_global) == 3 and entry.null_ks_pvalue is not None
    pairs = entry.details["pairs"]
    assert pairs == [[1, 2], [2, 3]]  # every kept pair (the cut drops bins 0 and 4), none chosen
    aucs = np.array(entry.details["aucs"])
    assert aucs.shape == (3, 2, len(pairs)) and np.all((aucs > 0) & (aucs < 1))
    assert {"mean", "std", "shapiro_pvalue"} <= set(entry.details["null"][0])
    assert (tmp_path / "a" / "sensitivity_pfn_auc.png").is_file()
    checkpoints = sorted((tmp_path / "a" / CHECKPOINTS).glob("*.json"))
    assert len(checkpoints) == aucs.size

    # an interrupted run: some trainings missing, one record damaged; --resume finishes it identically
    for path in checkpoints[::3]:
        path.unlink()
    checkpoints[1].write_text("{")
    pfn_sensitivity_of_processed(cfg, processed_sample, tmp_path / "a", "resonance", resume=True, quiet=True)
    assert Sensitivity.read(tmp_path / "a" / "sensitivity.json") == data
    other = load_config(config, {"scan": {"particle_ids": "full"}})
    with pytest.raises(ConfigError, match="checkpoint of a different scan setup"):
        pfn_sensitivity_of_processed(other, processed_sample, tmp_path / "a", "resonance", resume=True, quiet=True)


def test_pfn_auc_refuses_realisations_of_other_events(processed_sample, tmp_path) -> None:
    from analysis.core.errors import InputError
    from analysis.pfn.sensitivity import run_pfn_sensitivity
    from analysis.sensitivity.realizations import from_processed

    columns, metadata = load_processed(processed_sample)
    cfg = load_config(None, {"injection": {**INJECTION, "kind": "resonance"}, **PFN_SENSITIVITY})
    gluons = scan_inputs(columns, metadata, cfg, "gluon_pairs")  # another background sample
    with pytest.raises(InputError, match="not the PFN inputs"):
        run_pfn_sensitivity(cfg, gluons, from_processed(cfg, columns, metadata), tmp_path, quiet=True)


# -- the driver holds no jets: pools name their source, the process that trains loads it -------
def _pools(inputs) -> list:
    return [p for p in (inputs.background, inputs.pool) if p is not None]


def test_lazy_inputs_hold_no_jets_until_used_and_load_the_eager_ones(processed_sample, tmp_path) -> None:
    import pickle

    from analysis.pfn import sources

    cfg = load_config(scan_config(tmp_path, [1000]))
    light, full = load_processed(processed_sample, constituents=False), load_processed(processed_sample)
    for kind in ("none", "resonance", "gluon_pairs"):
        sources.clear_cache()
        lazy = scan_inputs(*light, cfg, kind, directory=processed_sample / "events")
        eager = scan_inputs(*full, cfg, kind)
        assert (lazy.fingerprint, lazy.background_fingerprint) == (eager.fingerprint, eager.background_fingerprint)
        assert all(p.packed is None and p.source is not None for p in _pools(lazy)) and not sources.cached_sources()
        jets_bytes = sum(p.jets.features.nbytes + p.jets.counts.nbytes for p in _pools(eager))
        sent = pickle.dumps(lazy)
        assert len(sent) < jets_bytes / 20, (kind, len(sent), jets_bytes)
        for mine, theirs in zip(_pools(pickle.loads(sent)), _pools(eager), strict=True):
            assert np.array_equal(mine.mjj, theirs.mjj) and np.array_equal(mine.jet_offsets, theirs.jet_offsets)
            assert np.array_equal(mine.jets.features, theirs.jets.features)
            assert np.array_equal(mine.jets.counts, theirs.jets.counts)
        assert len(sources.cached_sources()) == len(_pools(lazy))  # loaded once each
        assert len(pickle.dumps(lazy)) == len(sent)  # loaded jets never travel with the pool
        lazy.background.jets_of(np.arange(3))
        assert len(sources.cached_sources()) == len(_pools(lazy))  # the copy and the original share the cache
    sources.clear_cache()


def _tiny_processed(directory: Path, constituents: list[list[int]] | None) -> Path:
    """A processing directory of one qcd dataset: one event per entry of ``constituents`` (its
    jets' constituent counts); None: jets without a constituents field."""
    import awkward as ak

    events = []
    for k, counts in enumerate(constituents or [[2, 3]]):
        jets = [{"phi": 0.1 * j, "partonFlavour": 21, **({} if constituents is None else {"constituents": [
            {"pt": 10.0 + c, "rapidity": 0.01 * c, "phi": 0.1 * j + 0.01 * c, "pdgId": 211} for c in range(n)]})}
            for j, n in enumerate(counts)]  # fmt: skip
        events.append({"mjj": 800.0 + k, "weight": 1.0, "jets": jets})
    (directory / "events").mkdir(parents=True)
    ak.to_parquet(ak.Array(events), directory / "events" / "qcd.parquet")
    cutflow = {"datasets": {"qcd": {"events": "events/qcd.parquet", "metadata": {"process": "qcd"}}}}
    (directory / "cutflow.json").write_text(json.dumps(cutflow))
    return directory


def test_lazy_inputs_fail_with_the_eager_one_line_errors(tmp_path) -> None:
    from analysis.core.errors import InputError
    from analysis.pfn import sources

    cfg = load_config(None)
    bare = _tiny_processed(tmp_path / "bare", None)
    with pytest.raises(InputError, match=r"qcd\.parquet: jets have no constituents \(the PFN scan needs PF candidates\)"):
        scan_inputs(*load_processed(bare, constituents=False), cfg, "none", directory=bare)  # in the driver
    empty = _tiny_processed(tmp_path / "empty", [[2, 3], [1, 0], [4, 1]])
    inputs = scan_inputs(*load_processed(empty, constituents=False), cfg, "none", directory=empty)
    with pytest.raises(InputError, match=r"^1 selected jets have no constituents$"):  # where the jets load
        inputs.background.jets_of(np.arange(3))
    sources.clear_cache()


def test_cluster_workers_load_the_jets_and_the_driver_does_not(processed_sample, tmp_path) -> None:
    """A scan's inputs scattered to a worker process: it loads the jets from the process directory
    and draws the eager inputs' training jets; the driver never loads them."""
    from functools import partial

    from analysis.core.cluster import open_cluster
    from analysis.pfn import sources
    from analysis.pfn.scan import Task, draw_sample, kept_pairs, pair_data, setup_from_config

    cfg = load_config(scan_config(tmp_path, [1000]))
    sources.clear_cache()
    inputs = scan_inputs(*load_processed(processed_sample, constituents=False), cfg, "resonance", directory=processed_sample)
    setup = setup_from_config(cfg, inputs, 200, n_samples=2)
    pairs = kept_pairs(setup, inputs, 1000, lambda message: None)  # what run_scan does in the driver
    draw_sample(setup, inputs, 1000, 0)
    tasks = [Task(1000, k, p) for k in range(2) for p in pairs]
    with open_cluster("dask", 1, None) as cluster:
        found = dict(cluster.map(partial(pair_data, setup), tasks, shared=inputs))
    assert not sources.cached_sources()
    eager = scan_inputs(*load_processed(processed_sample), cfg, "resonance")
    for task in tasks:
        jets, labels, events = pair_data(setup, eager, task)
        theirs, their_labels, their_events = found[task]
        assert np.array_equal(jets.features, theirs.features) and np.array_equal(jets.counts, theirs.counts)
        assert np.array_equal(labels, their_labels) and np.array_equal(events, their_events)
