"""One Dask cluster for every heavy stage: the same outputs as the local run, through killed
workers, and a lost scheduler that ends the run cleanly and is finished by ``--resume``."""

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
    config.write_text(json.dumps({**TINY_CHAIN, "generation": generation, "output": str(out)}))
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


def _physics(results: Path) -> dict[str, object]:
    """What must not depend on where the stages ran: AUCs, p-values and crossings, cutflows,
    spectra (the models' training times do)."""
    from analysis.events.histograms import read_spectra

    out: dict[str, object] = {}
    for name in ("scan/auc_scan.json", "scan/sensitivity.json", "cwola/sensitivity.json"):
        out[name] = (results / name).read_text()
    ae = json.loads((results / "autoencoders/sensitivity.json").read_text())
    out["autoencoders"] = json.dumps(_without(ae, "train_seconds"), sort_keys=True)
    cutflow = json.loads((results / "process/cutflow.json").read_text())
    out["cutflow"] = {name: d["cutflow"] for name, d in cutflow["datasets"].items()}
    spectra = read_spectra(results / "process/histograms.root")
    out["spectra"] = {name: h.values(flow=True).tolist() for name, h in spectra.named().items()}
    return out


def _without(data: object, key: str) -> object:
    if isinstance(data, dict):
        return {k: _without(v, key) for k, v in data.items() if k != key}
    if isinstance(data, list):
        return [_without(v, key) for v in data]
    return data


@pytest.mark.slow
def test_every_heavy_stage_on_two_dask_workers_survives_killed_workers(chain_results: Path, tmp_path: Path) -> None:
    """Generation, processing, the PFN and CWoLa trainings and the autoencoders on a LocalCluster
    of 2 workers, one worker killed during generation and one during the trainings: the outputs
    are those of the local run (chain_results, same config and seed), and run.json says where
    each stage ran."""
    data, out = tmp_path / "data", tmp_path / "results"
    config = _config(tmp_path, data, out)
    run = _start(["run", "--config", str(config), "--executor", "dask", "--workers", "2",
                  "--stages", DASK_STAGES], tmp_path)  # fmt: skip
    killer = Killer(run.pid, [(data, "*/qcd_*.json", 1), (out / "cwola", "**/checkpoints/*.json", 4)])
    killer.start()
    _, stderr = run.communicate(timeout=900)
    killer.join(timeout=5)
    assert run.returncode == 0, stderr[-3000:]
    assert len(killer.killed) == 2 and killer.restarted == 2, (killer.killed, killer.restarted)
    mine, local = _physics(out), _physics(chain_results)
    for name in local:
        assert mine[name] == local[name], f"{name} differs from the local run"
    stages = json.loads((out / "run.json").read_text())["stages"]
    for stage in DASK_STAGES.split(","):
        assert stages[stage]["executor"] == "dask" and stages[stage]["workers"] == 2, stages[stage]
        assert stages[stage]["scheduler"].startswith("tcp://")


def test_a_lost_scheduler_ends_the_run_naming_it_and_resume_finishes(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    data, out = tmp_path / "data", tmp_path / "results"
    config = _config(tmp_path, data, out, generation={"qcd_events": 900, "xgg_events": 150, "wprime_events": 150, "events_per_file": 150})
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
