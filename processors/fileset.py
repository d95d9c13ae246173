"""Filesets (coffea's form) and a cheap preflight of their ROOT files.

A fileset maps dataset names to ``{"files": {path: tree}, "metadata": {...}}`` (a plain list
of paths, or ``{"files": [paths]}``, is accepted with the tree ``Events``). Relative paths are
resolved against the fileset file's directory, so a sample directory can move.

A dataset must list at least one file: ``"files": []`` is a config error naming the dataset
(it would otherwise "succeed" with zero events, and an injection or a scan downstream would
run on nothing without anyone noticing; a file that exists but holds no events is fine). A
dataset whose metadata says ``"incomplete": true`` (``generate`` marks its entry so while it
rewrites the files) is refused until the generation finishes.

The preflight opens every file once (metadata only, no event data): a missing file, a file
that is not ROOT, a missing ``Events`` TTree, or a truncated file (a basket beyond the end of
the file) is reported by name; so is a branch the selection needs but the file lacks.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uproot

from analysis.core.errors import ConfigError, InputError

DEFAULT_TREE = "Events"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class Dataset:
    """One dataset of a fileset: its files (path -> tree) in order and its metadata."""

    name: str
    files: dict[str, str]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileCheck:
    """What the preflight learned about one file."""

    path: str
    n_entries: int = 0
    problem: str | None = None  # unreadable: why
    missing: list[str] = field(default_factory=list)  # branches the selection needs but lacks


def safe_name(dataset: str) -> str:
    """A dataset name usable as a ROOT key and a file name (``/``, spaces -> ``_``)."""
    return _SAFE.sub("_", dataset)


def load_fileset(
    source: str | Path | dict[str, Any] | list[str | Path] | tuple[str | Path, ...],
) -> list[Dataset]:
    """Read and normalise a fileset: a ``fileset.json`` path, the dict itself, or several
    fileset files merged (e.g. the qcd and xgg samples; dataset names must differ)."""
    if isinstance(source, list | tuple):
        if not source:
            raise ConfigError("no fileset given")
        merged: list[Dataset] = []
        for part in source:
            for ds in load_fileset(part):
                if any(ds.name == m.name or safe_name(ds.name) == safe_name(m.name) for m in merged):
                    raise ConfigError(f"{part}: dataset {ds.name!r} appears in more than one fileset")
                merged.append(ds)
        return merged
    if isinstance(source, dict):
        data, base, where = source, Path.cwd(), "fileset"
    else:
        path = Path(source)
        where = str(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: fileset not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the fileset ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        base = path.resolve().parent
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: expected a mapping of dataset names to files")
    datasets = []
    seen: dict[str, str] = {}
    for name, entry in data.items():
        if isinstance(entry, list):
            entry = {"files": entry}
        if not isinstance(entry, dict) or "files" not in entry:
            raise ConfigError(f"{where}: {name}: expected {{'files': {{path: tree}}, 'metadata': {{...}}}}")
        files = entry["files"]
        if isinstance(files, list):
            files = dict.fromkeys(files, DEFAULT_TREE)
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise ConfigError(
                f"{where}: {name}.files: expected a list of paths or a mapping path -> tree name"
            )
        if not files:
            raise ConfigError(f"{where}: dataset {name!r} lists no files")
        metadata = entry.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ConfigError(f"{where}: {name}.metadata: expected a mapping")
        if metadata.get("incomplete"):
            raise InputError(
                f"{where}: dataset {name!r} is incomplete (a `generate` run writing it was interrupted); "
                "run `generate` again"
            )
        safe = safe_name(str(name))
        if safe in seen:
            raise ConfigError(
                f"{where}: datasets {seen[safe]!r} and {name!r} map to the same output name {safe!r}"
            )
        seen[safe] = str(name)
        resolved = {str(p if (p := Path(f)).is_absolute() else (base / p)): tree for f, tree in files.items()}
        datasets.append(Dataset(str(name), resolved, dict(metadata)))
    return datasets


def check_file(path: str, tree: str, needed: list[str]) -> FileCheck:
    """Open a file (metadata only) and report why it cannot be processed, if it cannot."""
    check = FileCheck(path)
    if not os.path.exists(path):
        check.problem = "file not found"
        return check
    size = os.path.getsize(path)
    try:
        with uproot.open(path) as fh:
            if tree not in fh:
                check.problem = f"no TTree {tree!r} in the file"
                return check
            events = fh[tree]
            if not isinstance(events, uproot.TTree):
                check.problem = f"{tree!r} is not a TTree (corrupt or truncated file?)"
                return check
            check.n_entries = int(events.num_entries)
            for branch in events.branches:
                nb = branch.num_baskets
                seeks = branch.member("fBasketSeek")[:nb]
                nbytes = branch.member("fBasketBytes")[:nb]
                if any(int(s) + int(b) > size for s, b in zip(seeks, nbytes, strict=False)):
                    check.problem = f"truncated (branch {branch.name} has data beyond the end of the file)"
                    return check
            keys = set(events.keys())
            check.missing = [b for b in needed if b not in keys]
    except Exception as exc:  # uproot raises many types for damaged files
        check.problem = f"not a readable ROOT file ({type(exc).__name__}: {_one_line(exc)})"
    return check


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
