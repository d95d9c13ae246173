"""One Dask cluster for every heavy stage: the same outputs as the local run, through workers
killed during the generation and during the trainings, and a lost scheduler that ends the run
cleanly and is finished by ``--resume``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.conftest import TINY_CHAIN

REPO = Path(__file__).resolve().parent.parent
DASK_STAGES = "generate,process,scan,cwola,autoencoders"


def _config(work: Path, data: Path, out: Path, **changes: dict) -> Path:
    config = work / "config.yaml"
    generation = {**TINY_CHAIN["generation"], "data_dir": str(data), **changes.get("generation", {})}
    injection = {**TINY_CHAIN["injection"], **changes.get("injection", {})}
    config.write_text(json.dumps({**TINY_CHAIN, "generation": generation, "injection": injection, "output": str(out)}))
    return config


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run_analysis.py"), *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "MPLBACKEND": "Agg"})  # fmt: skip


def _workers(run: psutil.Process) -> list[psutil.Process]:
    """The Dask worker processes of a run's LocalCluster (spawned children; not the resource tracker)."""
    found = []
    for child in run.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            found.append(child)
    return found


class Killer(threading.Thread):
    """Kill one worker (SIGKILL) once each of ``triggers`` (a glob under ``root``) matches, and
    see its nanny start a new worker process in its place."""

    def __init__(self, pid: int, triggers: list[tuple[Path, str, int]]) -> None:
        super().__init__(daemon=True)
        self.run_process = psutil.Process(pid)
        self.triggers = triggers
        self.killed: list[int] = []
        self.restarted = 0

    def run(self) -> None:
        for root, pattern, count in self.triggers:
            while self.run_process.is_running() and len(list(root.glob(pattern))) < count:
                time.sleep(0.05)
            workers = _workers(self.run_process) if self.run_process.is_running() else []
            if not workers:
                continue
            before = {w.pid for w in workers}
            workers[0].kill()
            self.killed.append(workers[0].pid)
            deadline = time.monotonic() + 60
            while self.run_process.is_running() and time.monotonic() < deadline:
                if {w.pid for w in _workers(self.run_process)} - before:
                    self.restarted += 1
                    break
                time.sleep(0.05)


def _physics(results: Path, signal: str, datasets: tuple[str, ...]) -> dict[str, object]:
    """What must not depend on where the stages ran: AUCs, the signal's p-values and crossings,
    the datasets' cutflows and spectra (the models' training times do)."""
    from analysis.events.histograms import read_spectra

    out: dict[str, object] = {"scan": (results / "scan/auc_scan.json").read_text()}
    for stage in ("scan", "cwola", "autoencoders"):
        entries = json.loads((results / stage / signal / "sensitivity.json").read_text())
        out[stage] = json.dumps(_without(entries, "train_seconds"), sort_keys=True)
    cutflow = json.loads((results / "process/cutflow.json").read_text())["datasets"]
    out["cutflow"] = {name: cutflow[name]["cutflow"] for name in datasets}
    spectra = read_spectra(results / "process/histograms.root").named()
    out["spectra"] = {name: h.values(flow=True).tolist() for name, h in spectra.items() if "wprime" not in name}
    return out


def _without(data: object, key: str) -> object:
    if isinstance(data, dict):
        return {k: _without(v, key) for k, v in data.items() if k != key}
    if isinstance(data, list):
        return [_without(v, key) for v in data]
    return data


SMALL_GENERATION = {"qcd_events": 900, "xgg_events": 150, "wprime_events": 150, "events_per_file": 150}


def test_a_worker_killed_during_generation_costs_only_its_files(tmp_path: Path) -> None:
    """Generation on a LocalCluster of 2 workers, one killed (SIGKILL) once the first file is
    written: the nanny restarts it, its files are made again, and every sample holds the events
    of a local run, file for file."""
    from tests.test_generation import _arrays

    runs = {}
    for where in ("dask", "local"):
        work = tmp_path / where
        work.mkdir()
        config = _config(work, work / "data", work / "results", generation=SMALL_GENERATION)
        options = ["--executor", "dask", "--workers", "2"] if where == "dask" else []
        run = _start(["run", "--config", str(config), *options, "--stages", "generate", "-q"], work)
        killer = Killer(run.pid, [(work / "data", "qcd_*/qcd_*.json", 1)]) if where == "dask" else None
        if killer:
            killer.start()
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        if killer:
            killer.join(timeout=5)
            assert len(killer.killed) == 1 and killer.restarted == 1, (killer.killed, killer.restarted)
        runs[where] = {path.parent.name: _arrays(path) for path in sorted((work / "data").glob("*/fileset.json"))}
    assert sorted(runs["dask"]) == sorted(runs["local"]) == ["qcd_seed3", "wprime_m900_seed3", "xgg_m900_seed3"]
    for sample, arrays in runs["local"].items():
        assert sorted(runs["dask"][sample]) == sorted(arrays)
        for branch, values in arrays.items():
            np.testing.assert_array_equal(runs["dask"][sample][branch], values, err_msg=f"{sample} {branch}")


@pytest.mark.slow
def test_every_heavy_stage_on_two_dask_workers_survives_killed_workers(chain_results: Path, tmp_path: Path) -> None:
    """The chain's heavy stages on a LocalCluster of 2 workers, for the first of its two signals
    (generation finds the local run's files: a killed generation is the test above), one worker
    killed during the CWoLa trainings: the outputs are those of the local run (chain_results,
    same config and seed) for that signal and its events, and run.json says where each stage ran."""
    data, out = chain_results.parent / "data", tmp_path / "results"
    config = _config(tmp_path, data, out, injection={"signals": ["xgg"]})
    run = _start(["run", "--config", str(config), "--executor", "dask", "--workers", "2",
                  "--stages", DASK_STAGES], tmp_path)  # fmt: skip
    killer = Killer(run.pid, [(out / "cwola", "**/checkpoints/*.json", 4)])
    killer.start()
    _, stderr = run.communicate(timeout=900)
    killer.join(timeout=5)
    assert run.returncode == 0, stderr[-3000:]
    assert len(killer.killed) == 1 and killer.restarted == 1, (killer.killed, killer.restarted)
    events = json.loads((out / "process/cutflow.json").read_text())["datasets"]
    assert sorted(events) == ["qcd", "xgg_m900"], sorted(events)
    mine, local = (_physics(results, "xgg", tuple(events)) for results in (out, chain_results))
    for name in local:
        assert mine[name] == local[name], f"{name} differs from the local run"
    stages = json.loads((out / "run.json").read_text())["stages"]
    for stage in DASK_STAGES.split(","):
        assert stages[stage]["executor"] == "dask" and stages[stage]["workers"] == 2, stages[stage]
        assert stages[stage]["scheduler"].startswith("tcp://")


def test_a_lost_scheduler_ends_the_run_naming_it_and_resume_finishes(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    data, out = tmp_path / "data", tmp_path / "results"
    config = _config(tmp_path, data, out, generation=SMALL_GENERATION)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    address = cluster.scheduler_address
    run = _start(["run", "--config", str(config), "--scheduler", address, "--stages", "generate", "-q"], tmp_path)
    while run.poll() is None and not list(data.glob("qcd_*/*.json")):
        time.sleep(0.05)
    cluster.close()  # the scheduler goes away mid-generation
    _, stderr = run.communicate(timeout=300)
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, stderr[-2000:]
    assert len(lines) == 1 and address in lines[0] and "--resume" in lines[0], stderr[-2000:]
    done = sorted(p.name for p in data.glob("qcd_*/*.json") if p.name != "fileset.json")
    assert 0 < len(done) < 6, "the kill came mid-generation"
    finish = _start(["run", "--config", str(config), "--resume", "--stages", "generate", "-q"], tmp_path)
    _, stderr = finish.communicate(timeout=300)
    assert finish.returncode == 0, stderr[-2000:]
    fileset = json.loads((data / "qcd_seed3" / "fileset.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((data / "qcd_seed3").glob("qcd_*.json"))]
    assert len(records) == 6 and sum(r["n_events"] for r in records) == 900
    assert len(next(iter(fileset.values()))["files"]) == 6
    assert np.all([r["seed"] for r in records])


def test_pvalue_map_arrays_on_the_cluster_equal_the_local_ones(tmp_path: Path) -> None:
    """Each array of a dataset (training, test, one per signal size) as a task: the same bytes."""
    from analysis.core.cluster import open_cluster
    from analysis.core.config import load_config
    from analysis.toys.selection import toy_setup
    from analysis.wavelets.dataset import build_dataset, toy_inputs

    setup = toy_setup(load_config(None))
    inputs = toy_inputs(setup.signal, setup.background, setup.wavelet)
    sizes = dict(toys=200, train=60, test=40, signal_sizes=[0.0, 500.0], seed=4, shape=(48, 64), quiet=True)
    build_dataset(tmp_path / "local", inputs, **sizes)
    with open_cluster("dask", 2, None, processes=False) as cluster:
        build_dataset(tmp_path / "dask", inputs, **sizes, cluster=cluster)
    arrays = sorted(p.name for p in (tmp_path / "local").glob("*.npy"))
    assert len(arrays) == 5  # reference, train, test, two signal sizes
    for name in arrays:
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
