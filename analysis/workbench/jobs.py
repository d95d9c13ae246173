"""Background jobs: one CLI stage (build-dataset, train-ae, pvalue-scan) at a time.

A job is the CLI itself (``python -m analysis STAGE ...``) in a child process with an argument
list, never a shell, in its own process group, so cancel stops it and everything it started
(SIGTERM, then SIGKILL). Its output (tqdm progress included) goes to ``<stage>.log`` in the
results directory, where the stage writes its outputs exactly as the CLI does. Progress is the
last percentage tqdm printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

import analysis
from analysis.core.errors import ConfigError

Stage = Literal["build-dataset", "train-ae", "pvalue-scan"]
State = Literal["running", "finished", "failed", "cancelled"]
PACKAGE_ROOT = Path(analysis.__file__).resolve().parent.parent
_PERCENT = re.compile(r"(\d{1,3})%\|")
LOG_LINES = 200
KILL_WAIT_S = 5.0


class JobRequest(BaseModel):
    """What the jobs page sends: the stage and its small settings (bounded like the CLI's)."""

    model_config = {"extra": "forbid"}

    stage: Stage
    name: str = Field("workbench", description="results directory under the results root")
    signal_id: int | None = Field(None, ge=0)
    bg_id: int | None = Field(None, ge=0)
    wavelet_id: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=0, lt=2**32)
    toys: int | None = Field(None, ge=10, le=200_000)
    train: int | None = Field(None, ge=10, le=500_000)
    test: int | None = Field(None, ge=10, le=200_000)
    signal_sizes: str | None = Field(None, max_length=400, pattern=r"^[0-9eE.,+ ]*$")
    models: str | None = Field(None, max_length=200, pattern=r"^[a-z0-9_,]*$")
    epochs: int | None = Field(None, ge=1, le=10_000)


class JobStatus(BaseModel):
    """A job as the page shows it."""

    id: int
    stage: str
    results: str
    state: State
    progress: float | None
    returncode: int | None
    started: str
    elapsed_s: float
    log: list[str]


def stage_arguments(request: JobRequest, config: Path, out: Path) -> list[str]:
    """The CLI arguments of a job; the dataset is ``out/dataset``, the models ``out/ae``."""
    dataset, models = out / "dataset", out / "ae"
    args = [request.stage, "--config", str(config)]
    if request.stage == "build-dataset":
        args += ["--out", str(dataset)]
        for flag in ("signal_id", "bg_id", "wavelet_id", "seed", "toys", "train", "test", "signal_sizes"):
            value = getattr(request, flag)
            if value is not None and value != "":
                args += [f"--{flag.replace('_', '-')}", str(value)]
    elif request.stage == "train-ae":
        args += ["--dataset", str(dataset), "--out", str(models)]
        args += ["--models", request.models] if request.models else []
        args += ["--epochs", str(request.epochs)] if request.epochs else []
        args += ["--seed", str(request.seed)] if request.seed is not None else []
    else:
        args += ["--dataset", str(dataset), "--models-dir", str(models), "--out", str(models)]
        args += ["--models", request.models] if request.models else []
    return args


def read_log(path: Path) -> tuple[list[str], float | None]:
    """The log's last lines (a tqdm bar's redraws folded into its last state) and its progress."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [], None
    lines = [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line.strip()]
    found = _PERCENT.findall(text[-4000:])
    return lines[-LOG_LINES:], (min(100.0, float(found[-1])) if found else None)


class Job:
    """One running (or finished) child process."""

    def __init__(self, ident: int, stage: str, results: Path, argv: list[str], log: Path) -> None:
        self.id = ident
        self.stage = stage
        self.results = results
        self.log = log
        self.started = time.time()
        self.ended: float | None = None
        self.cancelled = False
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, shell=False,
            )  # fmt: skip
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.process.wait()
        self.ended = time.time()

    @property
    def state(self) -> State:
        code = self.process.poll()
        if code is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "finished" if code == 0 else "failed"

    def cancel(self) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after a few seconds."""
        if self.process.poll() is not None:
            return
        self.cancelled = True
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def status(self, results_root: Path) -> JobStatus:
        lines, progress = read_log(self.log)
        state = self.state
        end = self.ended if state != "running" and self.ended else time.time()
        return JobStatus(
            id=self.id, stage=self.stage, results=str(self.results.relative_to(results_root)), state=state,
            progress=100.0 if state == "finished" else progress, returncode=self.process.poll(),
            started=datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            elapsed_s=round(end - self.started, 1), log=lines,
        )  # fmt: skip


class JobRunner:
    """Starts one job at a time; keeps the latest for the status view."""

    def __init__(self, results_root: Path) -> None:
        self.results_root = results_root
        self.current: Job | None = None
        self._count = 0
        self._lock = threading.Lock()

    def start(self, request: JobRequest, config: Path, out: Path) -> Job:
        """Start ``request`` writing under ``out``; a job already running is a ConfigError."""
        with self._lock:
            if self.current is not None and self.current.state == "running":
                raise ConfigError(f"a job is already running ({self.current.stage}); wait for it or cancel it")
            self._count += 1
            argv = [sys.executable, "-m", "analysis", *stage_arguments(request, config, out)]
            self.current = Job(self._count, request.stage, out, argv, out / f"{request.stage}.log")
            return self.current

    def cancel(self) -> Job | None:
        job = self.current
        if job is not None:
            job.cancel()
        return job

    def shutdown(self) -> None:
        """Cancel a running job (the server is stopping)."""
        self.cancel()
