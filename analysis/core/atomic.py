"""Write results atomically, and keep a results directory either complete or recognisably not.

- :func:`atomic_path` (and :func:`write_text`, :func:`write_json`, :func:`write_npy`): write
  to a temporary name beside the target, then rename into place; a crash never leaves a
  truncated file under the target's name. The temporary name carries the writer's process id
  (``.<name>.<pid>-<random>.tmp``), so a later run can tell a killed writer's leftovers from
  a live writer's file: :func:`remove_stale` deletes the former.
- :func:`staged_directory`: a stage writes all its outputs into a staging directory inside the
  target directory; only when everything is written are the files renamed into place, between
  an ``.incomplete`` marker written first and removed last. A failure or a kill before the
  renames leaves the target untouched (the staging directory is removed at once, or by the
  next run's :func:`remove_stale`); a kill during them leaves the marker, and every reader
  calls :func:`check_complete`, which refuses such a directory with one line naming it.
- :func:`check_out_dir` / :func:`check_out_file`: ``--out`` problems are a ConfigError (exit 2)
  naming the path, before any work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.errors import ConfigError, InputError

INCOMPLETE = ".incomplete"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: results get the usual permissions, not mkstemp's 0600
# .<target name>.<pid>-<random>.tmp (files) and .<stage>.<pid>-<random>.staging (directories)
_LEFTOVER = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[a-z0-9_]+\.(?:tmp|staging)$")
_LEGACY_TMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")  # mkstemp's names before pids


def _step(name: str) -> None:
    """Called before each step of a commit (a seam for the interruption tests; does nothing)."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    """Atomically write a ``.npy`` array (never pickled)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.npy`` array with pickling disabled."""
    return np.load(path, allow_pickle=False)


# -- leftovers of killed runs ----------------------------------------------------------------
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(
    directory: str | os.PathLike[str], names: Iterable[str] | None = None, recursive: bool = False
) -> list[Path]:
    """Delete the temporary files and staging directories that killed runs left in ``directory``
    (``recursive``: and below it); returns what was removed.

    Only this module's names are touched: ``.<target>.<pid>-<random>.tmp`` files and
    ``.<stage>.<pid>-<random>.staging`` directories whose process is not running on this
    machine (a killed writer; a live writer's are kept), and ``.<target>.<8 random>.tmp`` files
    of older versions. ``names``: only the leftovers of these target names (a plot's file in a
    shared folder). Call it at the start of a stage, before the stage writes anything.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    wanted = None if names is None else set(names)
    removed = []
    for path in sorted(directory.glob("**/.*" if recursive else ".*")):
        match = _LEFTOVER.match(path.name) or _LEGACY_TMP.match(path.name)
        if match is None or path.is_symlink() or (wanted is not None and match["target"] not in wanted):
            continue
        pid = match.groupdict().get("pid")
        if pid is not None and _alive(int(pid)):
            continue
        if path.is_dir():
            if pid is None:
                continue
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# -- staged results directories --------------------------------------------------------------
def is_complete(directory: str | os.PathLike[str]) -> bool:
    """False when a staged commit into ``directory`` was interrupted (its marker is there)."""
    return not (Path(directory) / INCOMPLETE).exists()


def check_complete(directory: str | os.PathLike[str]) -> None:
    """Refuse a directory whose last commit was interrupted (InputError naming it)."""
    marker = Path(directory) / INCOMPLETE
    if not marker.exists():
        return
    try:
        stage = json.loads(marker.read_text()).get("stage", "the stage")
    except (OSError, ValueError, AttributeError):
        stage = "the stage"
    raise InputError(
        f"{directory}: incomplete results (a `{stage}` run writing them was interrupted); run `{stage}` again"
    )


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Staging:
    """A staging directory for the outputs of one stage; see :func:`staged_directory`."""

    def __init__(self, target: Path, stage: str) -> None:
        self.target = target
        self.stage = stage
        self.path = Path(tempfile.mkdtemp(prefix=f".{stage}.{os.getpid()}-", suffix=".staging", dir=target))

    def files(self) -> list[Path]:
        """The staged files, relative to the staging directory, sorted."""
        return sorted(p.relative_to(self.path) for p in self.path.rglob("*") if p.is_file() or p.is_symlink())

    def commit(self, owned: Iterable[str] = (), last: Iterable[str] = ()) -> None:
        """Move every staged file into the target, between the marker's creation and removal.

        ``owned``: glob patterns (relative to the target) of files this stage produces; those
        the staging directory does not hold are removed (a dataset dropped since the last run).
        ``last``: files renamed after all others (``run.json``).
        """
        staged = self.files()
        late = [Path(p) for p in last]
        order = [p for p in staged if p not in late] + [p for p in late if p in staged]
        for path in staged:  # data on disk before the renames make it visible
            with open(self.path / path, "rb") as fh:
                os.fsync(fh.fileno())
        _step("marker")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(self.target / INCOMPLETE, {"stage": self.stage, "pid": os.getpid(), "started": started})
        _fsync_dir(self.target)
        for rel in order:
            _step(f"rename:{rel.as_posix()}")
            destination = self.target / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path / rel, destination)
        _step("prune")
        keep = {self.target / p for p in staged}
        for pattern in owned:
            for path in self.target.glob(pattern):
                if path not in keep and (path.is_file() or path.is_symlink()):
                    path.unlink()
        _step("cleanup")
        shutil.rmtree(self.path, ignore_errors=True)
        for directory in {(self.target / p).parent for p in staged}:
            _fsync_dir(directory)
        _step("unmark")
        (self.target / INCOMPLETE).unlink()
        _fsync_dir(self.target)


@contextlib.contextmanager
def staged_directory(
    target: str | os.PathLike[str], stage: str, owned: Iterable[str] = (), last: Iterable[str] = ()
) -> Iterator[Staging]:
    """Yield a :class:`Staging` inside ``target``; write the outputs under ``staging.path``.

    On success the files are committed into ``target`` (see :meth:`Staging.commit`); on an
    exception the staging directory is removed and ``target`` is left exactly as it was.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Staging(target, stage)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging.path, ignore_errors=True)
        raise
    staging.commit(owned, last)


# -- --out arguments ---------------------------------------------------------------------------
def check_out_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Create the output directory ``path`` if needed and check it is a writable directory.

    Problems are a ConfigError (exit 2) naming the flag and the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a directory")
    _writable_dir(path, f"{flag} {path}", "the output directory")
    return path


def _writable_dir(path: Path, prefix: str, what: str) -> None:
    """Create the directory ``path`` (and its parents) and check it is writable; a ConfigError
    ``"<prefix>: ..."`` naming ``what`` otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{prefix}: a parent of {what} is a file") from None
    except OSError as exc:
        raise ConfigError(f"{prefix}: cannot create {what} ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{prefix}: {what} is not writable")


def check_out_file(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Check that ``path`` can be written as a file: not a directory, its directory creatable
    and writable (created here). Problems are a ConfigError (exit 2) naming the flag and path."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory, not a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a directory")
    _writable_dir(parent, f"{flag} {path}", f"the directory {parent}")
    return path
