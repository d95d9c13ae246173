"""Import EnergyFlow's MOD HDF5 jet files (collection CMS2011AJets: CMS data, SIM, GEN) into
NanoAOD-like ROOT files of the event contract, so that `process`, `scan` and the rest run on
the CMS 2011A Open Data the reference workflow used.

The MOD layout (``energyflow.datasets.mod.MODDataset``; column names in each array's ``cols``
attribute, read by name here):

- ``jets_i`` (int64, one row per jet): ``fn, rn, lbn, evn`` (CMS file number, run, lumiblock,
  event), ``npv``, ``quality`` (CMS/SIM: 0 none, 1 loose, 2 medium, 3 tight), ``hard_pid``
  (SIM/GEN: pdgId of the matched hard parton, 0 if none);
- ``jets_f`` (float64): ``jet_pt, jet_y, jet_phi, jet_m, jet_eta``, ``jec`` and ``jet_area``
  (CMS/SIM), ``gen_jet_*`` and ``hard_*`` (SIM/GEN), ``weight`` (the jet's contribution to the
  cross-section, nb);
- ``pfcs`` + ``pfcs_index`` (CMS/SIM) and ``gens`` + ``gens_index`` (SIM/GEN): particles
  ``pt, y, phi, m, pid, vertex`` of all jets one after another; jet ``j`` owns rows
  ``index[j]:index[j + 1]``;
- ``filenames``: the CMS files that ``fn`` indexes (SIM/GEN: rows ``(pT bin, file)``).

The kind is read from the columns (``quality`` without ``hard_pid``: CMS; both: SIM;
``hard_pid`` only: GEN). What the ROOT files hold:

- ``Jet_pt`` and ``Jet_mass`` are corrected: ``jet_pt * jec`` and ``jet_m * jec``, EnergyFlow's
  ``corr_jet_pts`` (the JEC scales the four-vector; GEN jets have none). The selection cuts on
  this corrected pT, as the reference (``corr_jet_pts``) did. ``Jet_rawFactor`` is
  ``1 - 1/jec`` (NanoAOD's definition), ``Jet_area`` the jet area;
- ``Jet_jetId`` is the MOD ``quality`` (CMS/SIM), so ``selection.jet_id_min: 2`` is the
  reference's ``quality >= 2``; GEN files have no ``Jet_jetId`` (select with ``jet_id_min: 0``);
- ``Jet_partonFlavour`` is ``hard_pid`` (SIM/GEN; 0 for data), ``Jet_rapidity`` is ``jet_y``;
- ``PFCands_pt/eta/phi/mass/pdgId/charge/vertex`` are the jet's particles (``pfcs``; ``gens``
  for GEN files; eta from pT, y and m; charge from the pdgId) with ``JetPFCands_jetIdx`` /
  ``JetPFCands_pFCandsIdx`` links as in PFNano. SIM files' ``gens`` (the matched GEN jets'
  particles) are checked but not imported: import the GEN files for particle-level jets;
- ``genWeight`` is the MOD weight of the event's first jet (SIM/GEN, nb; 1 for data) and
  ``modWeight`` that weight for every kind; ``Jet_modRow`` (the jet's row in the MOD file) and
  ``Jet_modFileNumber`` (``fn``) keep the provenance, the record beside each ROOT file the MOD
  path and its ``filenames``.

Jets are grouped into events by (run, lumiblock, event): the keys of the whole file are read
first (24 bytes a jet), events are formed in order of first appearance (a file stored event by
event, as EnergyFlow writes them, keeps its order; scattered jets are gathered), each chunk's
jets are pT-ordered within their event (a numpy ``lexsort``; their particles follow) and the
collections are nested with awkward (``ak.unflatten`` by jets / particles per event).

Streaming: a file is converted in chunks of whole events of at most ``chunk_jets`` jets (one
larger event makes its own chunk), each read by slices from HDF5 and appended to the ROOT
tree, so memory holds one chunk, never the file. Files are converted in parallel (worker
processes like ``generate``, or the tasks of a Dask cluster), each written to a temporary name
and renamed into place with a JSON record (source path, size, mtime, settings fingerprint);
a rerun reuses every file whose record matches and whose ``Runs`` tree says it was finished.

Errors: a missing file, a file of another format (not HDF5, truncated), a missing array or
column, or an index inconsistent with its particle array is one InputError line naming the
file and the array.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analysis.core.atomic import atomic_path, remove_stale, write_json
from analysis.core.errors import ConfigError, InputError
from analysis.events.generation import (
    MAX_WORKERS,
    check_out_dir,
    finished_events,
    mark_incomplete,
    record_path,
    run_jobs,
    split_finished,
    update_fileset,
)
from analysis.events.jets import count_offsets, segments_take

FORMAT_VERSION = 1  # of the ROOT files this module writes; part of the reuse fingerprint
ModKind = Literal["cms", "sim", "gen"]
KEY_COLUMNS = ("rn", "lbn", "evn")  # an event's identity
JETS_I_NEEDED = ("fn", *KEY_COLUMNS)
JETS_F_NEEDED = ("jet_pt", "jet_y", "jet_phi", "jet_m", "jet_eta", "weight")
PARTICLE_NEEDED = ("pt", "y", "phi", "m", "pid")
NB_TO_PB = 1000.0

MAX_CHUNK_JETS = 10_000_000
_POSITIVE_CHARGE = (211, 321, 2212)  # charged PF hadrons: charge = sign(pdgId)
_NEGATIVE_CHARGE = (11, 13)  # leptons: charge = -sign(pdgId)
_FILE_SUFFIX = re.compile(r"(_\d+)?(_compressed)?$")


class ImportOptions(BaseModel):
    """How MOD files are imported (the `import-mod` flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None  # fileset name (None: the files' common MOD name, else mod_<kind>)
    chunk_jets: int = Field(20_000, ge=1, le=MAX_CHUNK_JETS)  # jets read and written at a time
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS)  # None: all cores (or Dask's default)
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None  # tcp://host:port of a Dask scheduler (implies executor dask)


class ModLayout(BaseModel):
    """What one MOD file holds (checked when it is opened)."""

    path: str
    kind: ModKind
    n_jets: int
    jets_i_cols: list[str]
    jets_f_cols: list[str]
    particles: str  # the imported particle array: pfcs (CMS/SIM) or gens (GEN)
    particle_cols: list[str]
    n_particles: int


class ImportJob(BaseModel):
    """Everything a worker needs to convert one MOD file."""

    model_config = ConfigDict(frozen=True)

    source: str
    out: str
    index: int
    chunk_jets: int
    fingerprint: str


class ModFileRecord(BaseModel):
    """What a finished ROOT file holds (saved beside it as JSON; the reuse check)."""

    format_version: int = FORMAT_VERSION
    file: str
    source: str
    source_size: int
    source_mtime_ns: int
    fingerprint: str
    kind: ModKind
    n_jets: int
    n_events: int
    n_chunks: int
    sumw: float
    sumw2: float
    mod_weight_sum: float  # nb, first jet of each event
    cms_filenames: list[str]  # the MOD file's ``filenames`` (what Jet_modFileNumber indexes)


# -- reading and checking a MOD file ---------------------------------------------------------
def open_mod(path: str | Path) -> Any:
    """Open a MOD file for reading; a missing file or one that is not (complete) HDF5 is an
    InputError naming it."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: MOD file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: not a readable MOD HDF5 file (truncated or another format: {reason})") from None


def _array(hf: Any, path: str, name: str, kind: str) -> Any:
    import h5py

    if name not in hf:
        raise InputError(f"{path}: array {name!r} missing (a {kind.upper()} MOD file needs it)")
    ds = hf[name]
    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{path}: array {name!r} is not an HDF5 dataset")
    return ds


def _columns(hf: Any, path: str, name: str, kind: str, needed: tuple[str, ...]) -> list[str]:
    """Column names of a 2-D MOD array (its ``cols`` attribute), checked against its shape."""
    ds = _array(hf, path, name, kind)
    if "cols" not in ds.attrs:
        raise InputError(f"{path}: array {name!r} has no 'cols' attribute (column names)")
    cols = [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(ds.attrs["cols"]).ravel()]
    if ds.ndim != 2 or ds.shape[1] != len(cols):
        raise InputError(f"{path}: array {name!r} has shape {ds.shape}, not (rows, {len(cols)}) for its columns")
    missing = [c for c in needed if c not in cols]
    if missing:
        raise InputError(f"{path}: array {name!r} has no column {', '.join(missing)} (columns: {', '.join(cols)})")
    return cols


def inspect_mod(hf: Any, path: str | Path) -> ModLayout:
    """The kind, arrays and columns of an open MOD file (metadata only; InputError naming the
    file and the array when something is missing or misshapen)."""
    path = str(path)
    if "jets_i" not in hf:
        raise InputError(f"{path}: array 'jets_i' missing (not a MOD jets file?)")
    ji = _columns(hf, path, "jets_i", "mod", JETS_I_NEEDED)
    kind: ModKind
    if "quality" in ji:
        kind = "sim" if "hard_pid" in ji else "cms"
    elif "hard_pid" in ji:
        kind = "gen"
    else:
        raise InputError(f"{path}: array 'jets_i' has neither 'quality' nor 'hard_pid' (not CMS, SIM or GEN MOD jets)")
    jf_needed = JETS_F_NEEDED + (("jec",) if kind != "gen" else ())
    jf = _columns(hf, path, "jets_f", kind, jf_needed)
    n_jets = hf["jets_i"].shape[0]
    if hf["jets_f"].shape[0] != n_jets:
        raise InputError(f"{path}: array 'jets_f' has {hf['jets_f'].shape[0]} rows, 'jets_i' {n_jets}")
    particles = "gens" if kind == "gen" else "pfcs"
    pcols = _columns(hf, path, particles, kind, PARTICLE_NEEDED)
    for name in (f"{particles}_index", "filenames"):
        _array(hf, path, name, kind)
    if kind == "sim" and "gens" in hf:  # not imported, but a broken array means a broken file
        _columns(hf, path, "gens", kind, PARTICLE_NEEDED)
        _array(hf, path, "gens_index", kind)
    return ModLayout(
        path=path, kind=kind, n_jets=n_jets, jets_i_cols=ji, jets_f_cols=jf, particles=particles,
        particle_cols=pcols, n_particles=hf[particles].shape[0],
    )  # fmt: skip


def _read(hf: Any, path: str, name: str, sl: slice | tuple[slice, Any]) -> np.ndarray:
    """``hf[name][sl]``; a failed read (damaged data) is an InputError naming file and array."""
    try:
        return hf[name][sl]
    except Exception as exc:  # h5py raises OSError, ValueError, ... for damaged chunks
        reason = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: array {name!r}: cannot read it ({reason}; truncated or corrupt file?)") from None


def read_index(hf: Any, layout: ModLayout, name: str | None = None) -> np.ndarray:
    """A particle index (``pfcs_index``, ``gens_index``) as int64, checked against its array:
    ``n_jets + 1`` entries from 0, non-decreasing, ending at the array's length."""
    name = name or f"{layout.particles}_index"
    particles = name.removesuffix("_index")
    index = np.asarray(_read(hf, layout.path, name, slice(None)), dtype=np.int64).ravel()
    n_particles = hf[particles].shape[0]
    if len(index) != layout.n_jets + 1:
        why = f"{len(index)} entries for {layout.n_jets} jets (needs {layout.n_jets + 1})"
    elif index[0] != 0:
        why = f"starts at {index[0]}, not 0"
    elif np.any(np.diff(index) < 0):
        why = f"decreases at jet {int(np.flatnonzero(np.diff(index) < 0)[0])}"
    elif index[-1] != n_particles:
        why = f"ends at {index[-1]} but {particles!r} has {n_particles} rows"
    else:
        return index
    raise InputError(f"{layout.path}: array {name!r} is inconsistent with {particles!r}: {why}")


def read_keys(hf: Any, layout: ModLayout, block: int = 1_000_000) -> np.ndarray:
    """(run, lumiblock, event) of every jet, read in blocks of rows: an (n_jets, 3) int64 array."""
    cols = [layout.jets_i_cols.index(c) for c in KEY_COLUMNS]
    out = np.empty((layout.n_jets, 3), dtype=np.int64)
    for start in range(0, layout.n_jets, block):
        stop = min(start + block, layout.n_jets)
        out[start:stop] = _read(hf, layout.path, "jets_i", slice(start, stop))[:, cols]
    return out


def group_events(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group jets by event key: ``(order, counts)``, the rows of the jets event by event (events
    in order of first appearance, jets in file order within an event) and jets per event.

    A file stored event by event (every event's jets adjacent) keeps its row order."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    starts = np.flatnonzero(new)
    if len(starts) == len(first):  # adjacent jets of one event: the file's order
        return np.arange(n, dtype=np.int64), np.diff(np.append(starts, n))
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    event = rank[inverse.ravel()]
    return np.argsort(event, kind="stable").astype(np.int64), np.bincount(event)


def chunk_bounds(counts: np.ndarray, chunk_jets: int) -> list[tuple[int, int]]:
    """Event ranges ``[a, b)`` of at most ``chunk_jets`` jets each (at least one event each)."""
    offsets = np.concatenate([[0], np.cumsum(counts)])
    bounds, a, n = [], 0, len(counts)
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + chunk_jets, side="right")) - 1
        b = min(max(b, a + 1), n)
        bounds.append((a, b))
        a = b
    return bounds


def _segments(rows: np.ndarray) -> Iterator[tuple[int, int]]:
    """Runs of consecutive rows as ``(start, stop)`` (one run for a file stored event by event)."""
    if len(rows) == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for first, last in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]]), strict=True):
        yield int(rows[first]), int(rows[last - 1]) + 1


def read_rows(hf: Any, layout: ModLayout, index: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The jets ``rows`` (in that order) of a MOD file: their jets_i, jets_f and particles
    (jet after jet) and the particles per jet. Contiguous runs of rows are read as slices."""
    if len(rows) and not np.all(np.diff(rows) > 0):  # gathered rows: read sorted, then reorder
        ordered = np.sort(rows)
        data = read_rows(hf, layout, index, ordered)
        pos = np.searchsorted(ordered, rows)
        counts = data["particle_counts"][pos]
        take = segments_take(count_offsets(data["particle_counts"])[pos], counts)
        return {"jets_i": data["jets_i"][pos], "jets_f": data["jets_f"][pos], "particles": data["particles"][take],
                "particle_counts": counts}  # fmt: skip
    parts: dict[str, list[np.ndarray]] = {"jets_i": [], "jets_f": [], "particles": []}
    for lo, hi in _segments(rows):
        parts["jets_i"].append(_read(hf, layout.path, "jets_i", slice(lo, hi)))
        parts["jets_f"].append(_read(hf, layout.path, "jets_f", slice(lo, hi)))
        parts["particles"].append(_read(hf, layout.path, layout.particles, slice(int(index[lo]), int(index[hi]))))
    widths = {"jets_i": len(layout.jets_i_cols), "jets_f": len(layout.jets_f_cols),
              "particles": len(layout.particle_cols)}  # fmt: skip
    out = {
        k: (v[0] if len(v) == 1 else np.concatenate(v) if v else np.zeros((0, widths[k]))) for k, v in parts.items()
    }
    out["particle_counts"] = (index[rows + 1] - index[rows]).astype(np.int64)
    return out


# -- conversion ------------------------------------------------------------------------------
def pdg_charge(pid: np.ndarray) -> np.ndarray:
    """Electric charge of PF candidate / particle ids (hadrons +-211, 321, 2212 carry the id's
    sign, electrons and muons the opposite; everything else is neutral)."""
    pid = np.asarray(pid, dtype=np.int32)
    apid = np.abs(pid)
    positive = functools.reduce(np.logical_or, [apid == i for i in _POSITIVE_CHARGE])
    negative = functools.reduce(np.logical_or, [apid == i for i in _NEGATIVE_CHARGE])
    return (np.sign(pid) * (positive.astype(np.int32) - negative)).astype(np.int32)


def pseudorapidity(pt: np.ndarray, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """eta of particles given pT, rapidity y and mass: pz = mT sinh(y), eta = asinh(pz / pT)."""
    mt = np.sqrt(pt**2 + m**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arcsinh(np.divide(mt * np.sinh(y), pt, out=np.zeros_like(pt), where=pt > 0))


def convert_chunk(data: dict[str, np.ndarray], rows: np.ndarray, counts: np.ndarray, layout: ModLayout) -> dict[str, Any]:
    """NanoAOD-like columns of a chunk of whole events (``counts`` jets each, rows in event
    order): event ids, ``Jet``, ``PFCands``, ``JetPFCands``, ``genWeight``, ``modWeight``."""
    ji, jf, pf = data["jets_i"], data["jets_f"], data["particles"]

    def col_i(name: str) -> np.ndarray:
        return ji[:, layout.jets_i_cols.index(name)].astype(np.int64)

    def col_f(name: str) -> np.ndarray:
        return jf[:, layout.jets_f_cols.index(name)].astype(np.float64)

    def col_p(name: str, dtype: type = np.float32) -> np.ndarray:
        return pf[:, layout.particle_cols.index(name)].astype(dtype)

    n_jets = len(rows)
    jec = col_f("jec") if "jec" in layout.jets_f_cols else np.ones(n_jets)
    jet = {
        "pt": col_f("jet_pt") * jec, "eta": col_f("jet_eta"), "phi": col_f("jet_phi"), "mass": col_f("jet_m") * jec,
        "rapidity": col_f("jet_y"),
    }  # fmt: skip
    jet = {k: v.astype(np.float32) for k, v in jet.items()}
    if "quality" in layout.jets_i_cols:
        jet["jetId"] = col_i("quality").astype(np.int32)
    hard = col_i("hard_pid") if "hard_pid" in layout.jets_i_cols else np.zeros(n_jets, np.int64)
    jet["partonFlavour"] = hard.astype(np.int32)
    if "jec" in layout.jets_f_cols:
        with np.errstate(divide="ignore"):
            jet["rawFactor"] = (1.0 - 1.0 / jec).astype(np.float32)
    if "jet_area" in layout.jets_f_cols:
        jet["area"] = col_f("jet_area").astype(np.float32)
    jet["modRow"] = rows.astype(np.int64)
    jet["modFileNumber"] = col_i("fn").astype(np.int32)

    pt, m, pid = col_p("pt"), col_p("m"), col_p("pid", np.int32)  # float32, as the ROOT branches
    cand = {
        "pt": pt, "eta": pseudorapidity(pt, col_p("y"), m), "phi": col_p("phi"), "mass": m, "pdgId": pid,
        "charge": pdg_charge(pid),
    }  # fmt: skip
    if "vertex" in layout.particle_cols:
        cand["vertex"] = col_p("vertex", np.int32)

    # pT order within each event (stable); the particles follow their jets
    n_events = len(counts)
    event_of_jet = np.repeat(np.arange(n_events), counts)
    order = np.lexsort((-jet["pt"], event_of_jet))
    particle_counts = data["particle_counts"]
    if np.any(order != np.arange(n_jets)):
        cand = {k: v[segments_take(count_offsets(particle_counts)[:-1][order], particle_counts[order])]
                for k, v in cand.items()}  # fmt: skip
        particle_counts = particle_counts[order]
        jet = {k: v[order] for k, v in jet.items()}
    jet["nConstituents"] = particle_counts.astype(np.int32)
    # links: each particle's jet (index within its event) and its own index within the event
    pf_per_event = np.bincount(event_of_jet, weights=particle_counts, minlength=n_events).astype(np.int64)
    local_jet = np.arange(n_jets) - np.repeat(count_offsets(counts)[:-1], counts)
    pf_event = np.repeat(np.arange(n_events), pf_per_event)
    link = {
        "jetIdx": np.repeat(local_jet, particle_counts).astype(np.int32),
        "pFCandsIdx": (np.arange(len(pf_event)) - count_offsets(pf_per_event)[:-1][pf_event]).astype(np.int32),
    }

    def collection(cols: dict[str, np.ndarray], per_event: np.ndarray) -> ak.Array:
        return ak.unflatten(ak.zip(cols, depth_limit=1), per_event)

    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)[: len(counts)]
    mod_weight = col_f("weight")[first]
    gen_weight = np.ones(len(counts)) if layout.kind == "cms" else mod_weight
    return {
        "run": col_i("rn")[first].astype(np.uint32),
        "luminosityBlock": col_i("lbn")[first].astype(np.uint32),
        "event": col_i("evn")[first].astype(np.uint64),
        "Jet": collection(jet, counts),
        "PFCands": collection(cand, pf_per_event),
        "JetPFCands": collection(link, pf_per_event),
        "genWeight": gen_weight.astype(np.float32),
        "modWeight": mod_weight,
    }


def import_file(job: ImportJob, progress: Callable[[int], None] | None = None) -> ModFileRecord:
    """Convert one MOD file into one ROOT file, chunk by chunk (temporary name, then renamed;
    then its JSON record). ``progress`` gets the jets of each written chunk."""
    import uproot

    source, out = Path(job.source), Path(job.out)
    with open_mod(source) as hf:
        stat = source.stat()
        layout = inspect_mod(hf, source)
        index = read_index(hf, layout)
        if layout.kind == "sim" and "gens" in hf:
            read_index(hf, layout, "gens_index")
        order, counts = group_events(read_keys(hf, layout))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        names = np.asarray(_read(hf, layout.path, "filenames", slice(None)))
        cms_filenames = [" ".join(_text(v) for v in np.atleast_1d(row)) for row in names]
        sumw = sumw2 = mod_sum = 0.0
        bounds = chunk_bounds(counts, job.chunk_jets) or [(0, 0)]
        with atomic_path(out) as tmp:
            # ZSTD(1): files as small as with ZLIB(1) (what generate uses), ~10x faster to write
            with uproot.recreate(tmp, compression=uproot.ZSTD(1)) as fh:
                for i, (a, b) in enumerate(bounds):
                    rows = order[offsets[a] : offsets[b]]
                    cols = convert_chunk(read_rows(hf, layout, index, rows), rows, counts[a:b], layout)
                    if i == 0:  # mktree splits collections into nJet, Jet_pt, ... (NanoAOD style)
                        tree = fh.mktree("Events", cols)
                    else:
                        tree.extend(cols)
                    w = cols["genWeight"].astype(np.float64)
                    sumw += float(w.sum())
                    sumw2 += float((w**2).sum())
                    mod_sum += float(cols["modWeight"].sum())
                    if progress is not None:
                        progress(len(rows))
                fh.mktree("Runs", {
                    "run": np.ones(1, dtype=np.uint32),
                    "genEventCount": np.array([len(counts)], dtype=np.int64),
                    "genEventSumw": np.array([sumw]),
                    "genEventSumw2": np.array([sumw2]),
                })  # fmt: skip
            record = ModFileRecord(
                file=out.name, source=str(source), source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns,
                fingerprint=job.fingerprint, kind=layout.kind, n_jets=layout.n_jets, n_events=len(counts),
                n_chunks=len(bounds), sumw=sumw, sumw2=sumw2, mod_weight_sum=mod_sum, cms_filenames=cms_filenames,
            )  # fmt: skip
            write_json(record_path(out), record.model_dump())
    return record


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reusable(job: ImportJob) -> ModFileRecord | None:
    """The record of an already converted file for ``job``, or None when it must be (re)made."""
    out = Path(job.out)
    try:
        record = ModFileRecord.model_validate_json(record_path(out).read_text())
        stat = Path(job.source).stat()
    except (OSError, ValueError):
        return None
    same = (record.source, record.source_size, record.source_mtime_ns, record.fingerprint) == (
        job.source, stat.st_size, stat.st_mtime_ns, job.fingerprint,
    )  # fmt: skip
    return record if same and finished_events(out) == record.n_events else None


# -- the stage -------------------------------------------------------------------------------
def default_dataset(paths: list[Path], kind: str) -> str:
    """The files' common MOD name (``CMS_Jet300_pT375-infGeV`` of ``..._0_compressed.h5``), or
    ``mod_<kind>`` when they differ."""
    stems = {_FILE_SUFFIX.sub("", p.stem) for p in paths}
    name = stems.pop() if len(stems) == 1 else f"mod_{kind}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or f"mod_{kind}"


def plan_import(files: list[str | Path], out_dir: Path, options: ImportOptions) -> tuple[str, ModKind, list[ImportJob]]:
    """Check every file (metadata only: format, arrays, columns, one kind for all) and plan one
    job per file: ``(dataset name, kind, jobs)``."""
    if not files:
        raise ConfigError("--files: no MOD file given")
    paths = [Path(f).resolve() for f in files]
    dupes = {p for p in paths if paths.count(p) > 1}
    if dupes:
        raise ConfigError(f"--files: {sorted(dupes)[0]} is given more than once")
    kinds: dict[Path, ModKind] = {}
    for path in paths:
        with open_mod(path) as hf:
            kinds[path] = inspect_mod(hf, path).kind
    kind = kinds[paths[0]]
    other = next((p for p in paths if kinds[p] != kind), None)
    if other is not None:
        raise InputError(
            f"{other}: a {kinds[other].upper()} MOD file among {kind.upper()} ones ({paths[0]}); "
            "import each kind as its own dataset (--dataset)"
        )
    name = options.dataset or default_dataset(paths, kind)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"--dataset {name!r}: use letters, digits, '_', '.' and '-' only")
    fingerprint = hashlib.sha256(json.dumps([FORMAT_VERSION, options.chunk_jets]).encode()).hexdigest()[:16]
    jobs = [
        ImportJob(source=str(p), out=str(out_dir / f"{name}_{i:04d}.root"), index=i, chunk_jets=options.chunk_jets,
                  fingerprint=fingerprint)
        for i, p in enumerate(paths)
    ]  # fmt: skip
    return name, kind, jobs


def import_mod(
    files: list[str | Path], out_dir: str | Path, options: ImportOptions | None = None, quiet: bool = False
) -> Path:
    """Convert MOD HDF5 files into NanoAOD-like ROOT files and add their dataset to
    ``out_dir/fileset.json`` (returned), ready for ``process``.

    Files already converted from the same source (path, size, mtime) with the same settings
    are kept; the others are converted in parallel (local worker processes, or Dask tasks with
    ``executor="dask"`` / ``scheduler``). While files are rewritten, an existing entry of the
    dataset is marked incomplete.
    """
    options = options or ImportOptions()
    out_dir = check_out_dir(Path(out_dir))
    remove_stale(out_dir, recursive=False)
    name, kind, jobs = plan_import(files, out_dir, options)
    records, todo = split_finished(jobs, reusable)
    if todo:
        mark_incomplete(out_dir, name)

    from tqdm import tqdm

    total = sum(r.n_jets for r in records.values())
    with tqdm(initial=total, unit="jet", desc=f"import-mod {name}", disable=quiet) as bar:
        done = _run(todo, options, bar.update)
    records.update({job.index: rec for job, rec in zip(todo, done, strict=True)})
    return write_fileset(out_dir, name, kind, [records[j.index] for j in jobs])


def _run(todo: list[ImportJob], options: ImportOptions, progress: Callable[[int], None]) -> list[ModFileRecord]:
    """Convert the files: in this process, a local pool, or as tasks of a Dask cluster."""
    if not todo:
        return []
    from analysis.core.cluster import open_cluster

    executor = "dask" if options.executor == "dask" else None
    n_workers = min(options.workers or os.cpu_count() or 1, len(todo))
    with open_cluster(executor, options.workers, options.scheduler) as cluster:
        return run_jobs(import_file, todo, n_workers, progress, cluster=cluster, units=lambda record: record.n_jets)


def write_fileset(out_dir: Path, name: str, kind: ModKind, records: list[ModFileRecord]) -> Path:
    """Add the imported dataset to ``out_dir/fileset.json`` (metadata: ``process: qcd`` so the
    injection and the realisations take it as the background; ``xsec_pb`` is 1000 x the sum of
    the events' MOD weights, nb -> pb)."""
    mod_sum = sum(r.mod_weight_sum for r in records)
    metadata = {
        "process": "qcd", "mass": None, "source": "mod", "mod_kind": kind,
        "n_generated": sum(r.n_events for r in records), "n_jets": sum(r.n_jets for r in records),
        "sumw": sum(r.sumw for r in records), "xsec_pb": mod_sum * NB_TO_PB if mod_sum > 0 else None,
        "jet_pt": "jet_pt * jec (EnergyFlow's corr_jet_pts)" if kind != "gen" else "jet_pt",
        "mod_files": [r.source for r in records],
    }  # fmt: skip
    return update_fileset(out_dir, name, [r.file for r in records], metadata)
