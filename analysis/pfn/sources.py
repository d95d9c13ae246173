"""Where an event pool's jets come from, and the per-process cache of the loaded jets.

The PFN stages describe the jets of the background and of the injection pool by a
:class:`JetSource`: a ``process`` output directory, the datasets whose events are concatenated,
optional rows of that concatenation (the gluon_pairs split) and the particle-id mapping. A source
is small to pickle, so a Dask scatter carries only it and the events' m_jj; the process that
trains loads and preprocesses the jets itself on first use (:func:`source_jets`; the workers of a
cluster share the filesystem) and keeps the last few sources in memory, so a worker that runs
many trainings of a stage reads the events once. The driver of a run never loads them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import awkward as ak
import numpy as np

from analysis.core.errors import InputError
from analysis.pfn.inputs import preprocess_awkward
from models.batches import PackedJets


def processed_directory(directory: str | Path) -> Path:
    """The ``process`` output directory (the one with cutflow.json) of ``directory`` or its events/."""
    directory = Path(directory)
    if not (directory / "cutflow.json").is_file() and (directory.parent / "cutflow.json").is_file():
        return directory.parent
    return directory


def read_cutflow(directory: Path) -> dict:
    """cutflow.json of a processing directory (one InputError line when absent or unreadable)."""
    path = directory / "cutflow.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found (--events must be a `process` output directory)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None


def no_constituents(path: Path) -> InputError:
    """The error of an events file whose jets lack constituents."""
    return InputError(f"{path}: jets have no constituents (the PFN scan needs PF candidates)")


@dataclass(frozen=True, eq=False)
class JetSource:
    """The jets of the events ``rows`` (None: all) of the concatenated ``datasets`` of the
    ``process`` output ``directory`` (absolute), with ``particle_ids`` (:mod:`analysis.pfn.inputs`).

    Sources are equal when they describe the same jets (the rows by their hash), so that the
    copies a scatter makes find one cache entry."""

    directory: str
    datasets: tuple[str, ...]
    rows: np.ndarray | None = None
    particle_ids: str = "pf_classes"

    @cached_property
    def key(self) -> tuple[str, tuple[str, ...], str | None, str]:
        rows = None if self.rows is None else hashlib.sha256(np.ascontiguousarray(self.rows, np.int64)).hexdigest()
        return self.directory, tuple(self.datasets), rows, self.particle_ids

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JetSource) and self.key == other.key

    def paths(self) -> list[Path]:
        """The events files of the datasets, in order."""
        root = Path(self.directory)
        entries = read_cutflow(root).get("datasets", {})
        missing = [d for d in self.datasets if d not in entries]
        if missing:
            raise InputError(f"{root / 'cutflow.json'}: no dataset {', '.join(missing)} (the events changed)")
        return [root / entries[d]["events"] for d in self.datasets]

    def check(self) -> None:
        """Fail early (reading only the files' schema) when the jets carry no constituents."""
        for path in self.paths():
            try:
                columns = ak.metadata_from_parquet(path)["columns"]
            except Exception as exc:
                raise InputError(f"{path}: cannot read the events ({type(exc).__name__}: {exc})") from None
            if not any(c.startswith("jets.list.item.constituents.") for c in columns):
                raise no_constituents(path)

    def load(self) -> PackedJets:
        """Read the jets' phi and constituents and preprocess them (jets in event order)."""
        self.check()
        arrays = []
        for path in self.paths():
            try:
                arrays.append(ak.from_parquet(path, columns=["jets.phi", "jets.constituents.*"]))
            except Exception as exc:
                raise InputError(f"{path}: cannot read the events ({type(exc).__name__}: {exc})") from None
        events = arrays[0] if len(arrays) == 1 else ak.concatenate(arrays)
        if self.rows is not None:
            events = events[np.asarray(self.rows, dtype=np.int64)]
        jets = ak.flatten(events.jets, axis=1)
        n_const = ak.to_numpy(ak.num(jets.constituents, axis=1))
        if len(n_const) and n_const.min() < 1:
            raise InputError(f"{int((n_const < 1).sum())} selected jets have no constituents")
        return preprocess_awkward(jets.constituents, jets.phi, self.particle_ids)


CACHE_SIZE = 4  # sources kept per process: a stage uses two (background, pool); a run a few more
_CACHE: OrderedDict[JetSource, PackedJets] = OrderedDict()
_LOCK = threading.Lock()  # a worker with several threads loads a source once


def source_jets(source: JetSource) -> PackedJets:
    """The preprocessed jets of ``source``, loaded once per process (the last CACHE_SIZE kept)."""
    with _LOCK:
        if source in _CACHE:
            _CACHE.move_to_end(source)
            return _CACHE[source]
        jets = source.load()
        _CACHE[source] = jets
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return jets


def cached_sources() -> list[JetSource]:
    """The sources whose jets this process holds (oldest first)."""
    with _LOCK:
        return list(_CACHE)


def clear_cache() -> None:
    """Drop every loaded source of this process."""
    with _LOCK:
        _CACHE.clear()
