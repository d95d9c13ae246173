"""``run.json`` provenance: resolved config, seeds, package versions, git revision, stage timings."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from analysis import __version__
from analysis.core.atomic import write_json
from analysis.core.config import REPO_ROOT

PACKAGES = (
    "numpy", "scipy", "uproot", "awkward", "coffea", "dask", "distributed", "vector", "hist",
    "mplhep", "matplotlib", "pyarrow", "tensorflow", "keras", "energyflow", "pot", "pywavelets",
    "scikit-learn", "pythia8mc", "fastjet", "pybumphunter", "iminuit", "pydantic", "pyyaml",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the analysis depends on (``None`` if absent)."""
    versions: dict[str, str] = {"python": platform.python_version(), "dijetscan": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str:
    """The repository's commit (with ``-dirty`` for local changes), or ``unknown``."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


class RunRecord:
    """Collects provenance for one results directory and writes ``run.json`` atomically.

    An existing ``run.json`` is extended, so stages run by separate commands accumulate.
    """

    def __init__(self, out_dir: str | Path, command: str, config: dict[str, Any], seed: int | None) -> None:
        self.path = Path(out_dir) / "run.json"
        self.data: dict[str, Any] = {
            "command": command,
            "argv": sys.argv,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "config": config,
            "git_revision": git_revision(),
            "packages": package_versions(),
            "timings_s": {},
        }

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; the record is written after each stage, so a crash keeps earlier ones."""
        start = time.perf_counter()
        yield
        self.data["timings_s"][name] = round(time.perf_counter() - start, 3)
        self.write()

    def add(self, **items: Any) -> None:
        self.data.update(items)

    def write(self) -> None:
        self.data["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(self.path, self.data)
