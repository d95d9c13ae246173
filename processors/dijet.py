"""The dijet processor: 2-jet selection, m_jj histograms, a cutflow and columnar output.

A pure coffea ``ProcessorABC``: it reads one chunk of NanoEvents, selects and fills; it writes
nothing (the ``process`` command writes ``histograms.root``, ``cutflow.json`` and Parquet).

Selection (config ``selection:``): events whose jets all have finite kinematics and whose
weight is finite; jets with ``jet_pt_min <= pT <= jet_pt_max``, ``|eta| < jet_abs_eta_max`` and
``jetId >= jet_id_min``; events with exactly ``n_jets`` selected jets. m_jj is the mass of the
sum of the selected jets' four-vectors (coffea's Lorentz-vector behaviour on contiguous columns,
so that its last bit does not depend on memory layout; rapidities likewise). The cutflow (coffea
``PackedSelection``) counts events whose jets' pt, eta, phi, mass and the event weight are all
finite (``finite``: an event with a NaN or infinite value anywhere in them is dropped whole,
never half-selected), then those with at least ``n_jets`` jets passing the pT cut, then pT and
eta, then pT, eta and jet id, and finally exactly ``n_jets`` selected jets. A selected event
whose other output columns (rapidity, PF candidates) are not finite makes the file a
``non_finite`` problem: no NaN reaches a histogram, the Parquet output or a model.

Inputs: any NanoAOD with ``Jet_pt/eta/phi/mass`` (generated files and CMS NanoAOD alike).
``Jet_jetId`` is needed only when ``jet_id_min > 0``: a file without it is reported with the
branch and the file named (recent NanoAOD versions dropped it; select with ``jet_id_min: 0``
there). ``Jet_rapidity`` is used when present, else computed from pT, eta and mass;
``Jet_partonFlavour`` is used when present, else 0 (unmatched); ``jetId`` is -1 in the output
when the file has no ``Jet_jetId``; the event weight is ``genWeight`` (1 when absent).
Constituents are the candidates of ``events.Jet.constituents.pf`` (coffea's PFNano schema; taken
by the links' per-event index, :meth:`DijetProcessor._read_constituents`) when the file has
``PFCands``/``JetPFCands``; otherwise the columnar output has no ``constituents`` field.

Per-jet substructure for the diagnostics: ``mass`` is the jet's own mass (``Jet_mass``: the
four-vector mass of its constituents in generated files), and ``tau21`` the N-subjettiness
ratio tau_2 / tau_1 (beta = 1, exclusive winner-take-all kT axes; :mod:`processors.substructure`)
computed from the jet's PF candidates, in [0, 1]. On NanoAOD without PF candidates it cannot be
computed and is -1 (as ``jetId`` is -1 without ``Jet_jetId``): the column is always there, so
a dataset mixing PFNano and plain NanoAOD files keeps one jet record type (the ``constituents``
field is dropped from such a dataset, ``tau21`` is not); select ``tau21 >= 0`` before using it.

Output of one chunk (accumulated by coffea): ``{"files": {dataset: {filename: result}},
"problems": {(kind, dataset, filename, message)}}`` where ``result`` holds the two histograms,
the cutflow counts and the columnar chunks ``[(entrystart, array)]``. Errors are returned as
data (``kind`` is ``"unreadable"``, ``"missing_branch"`` or ``"non_finite"``) rather than
raised, so the file at fault is known under every executor and a skipped file's other chunks
can be dropped whole.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection
from coffea.nanoevents.methods import vector

from analysis.core.config import HistogramsConfig, SelectionConfig
from processors.substructure import tau21_flat

# coffea's schema warns, once per file, about collections that real NanoAOD files reference but
# do not store and about photon branches it overrides; neither concerns the dijet selection.
warnings.filterwarnings("ignore", message="Missing cross-reference index")
warnings.filterwarnings("ignore", message="Branch .* already exists but its values will be replaced")

CUTS = ("finite", "jet_pt", "jet_eta", "jet_id", "n_jets")
JET_FIELDS = ("pt", "eta", "phi", "mass", "rapidity", "partonFlavour", "jetId", "tau21")
NO_TAU21 = -1.0  # tau21 of jets in files without PF candidates
CONSTITUENT_FIELDS = ("pt", "rapidity", "phi", "pdgId")


def mjj_hist(h: HistogramsConfig) -> hist.Hist:
    """Empty uniform m_jj histogram (weighted storage) from the ``histograms:`` config."""
    axis = hist.axis.Regular(h.n_bins, h.mjj_min, h.mjj_max, name="mjj", label="m_jj [GeV]")
    return hist.Hist(axis, storage=hist.storage.Weight())


def bins_hist(h: HistogramsConfig) -> hist.Hist:
    """Empty m_jj histogram in the analysis bins (660-760-...-1160 GeV by default)."""
    axis = hist.axis.Variable(h.analysis_bins, name="mjj", label="m_jj [GeV]")
    return hist.Hist(axis, storage=hist.storage.Weight())


def required_branches(selection: SelectionConfig) -> list[str]:
    """Branches a file must have for this selection."""
    needed = ["nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
    if selection.jet_id_min > 0:
        needed.append("Jet_jetId")
    return needed


class DijetProcessor(processor.ProcessorABC):
    """Select dijet events, fill m_jj histograms and return the selected events' columns."""

    def __init__(self, selection: SelectionConfig, histograms: HistogramsConfig, columnar: bool = True) -> None:
        self.selection = selection
        self.histograms = histograms
        self.columnar = columnar

    # -- output pieces -------------------------------------------------------------------
    def empty_result(self) -> dict[str, Any]:
        """The result of a file without events (empty histograms, zero cutflow)."""
        return {
            "mjj": mjj_hist(self.histograms),
            "mjj_bins": bins_hist(self.histograms),
            "cutflow": {"all": 0, **dict.fromkeys(CUTS, 0)},
            "columns": [],
        }

    def empty_columns(self, dataset: str, constituents: bool = True) -> ak.Array:
        """Typed zero-length columnar output (for datasets without any events)."""
        float64, int32 = np.zeros(0), np.zeros(0, np.int32)
        data = _Jets(
            offsets=np.zeros(1, np.int64), pt=float64, eta=float64, phi=float64, mass=float64,
            weight=float64, jet_id=int32, parton_flavour=int32, rapidity=np.zeros(0, np.float32),
            event=np.zeros(0, np.uint64),
        )  # fmt: skip
        float32 = np.zeros(0, np.float32)
        empty_pf = {"pt": float32, "eta": float32, "phi": float32, "mass": float32, "pdgId": int32}
        reader = (lambda jets, jet_event: (empty_pf, np.zeros(0, np.int64))) if constituents else None
        return self._select_and_fill(data, dataset, 0, reader)["columns"][0][1]

    def process(self, events: ak.Array) -> dict[str, Any]:
        dataset = events.metadata["dataset"]
        filename = events.metadata["filename"]
        missing = [b for b in required_branches(self.selection) if not _has_branch(events, b)]
        if missing:
            why = (
                f"needed by selection.jet_id_min = {self.selection.jet_id_min}"
                if missing == ["Jet_jetId"]
                else "needed by the dijet selection"
            )
            return _problem(
                "missing_branch", dataset, filename, f"branch {', '.join(missing)} missing ({why})"
            )
        has_pf = "PFCands" in events.fields and "JetPFCands" in events.fields
        reader = partial(self._read_constituents, events) if self.columnar and has_pf else None
        try:
            data = self._read(events)
            result = self._select_and_fill(data, dataset, events.metadata.get("entrystart", 0), reader)
        except _ReadError as exc:  # any read/decompression failure marks the file unreadable
            cause = exc.__cause__
            return _problem(
                "unreadable",
                dataset,
                filename,
                f"{type(cause).__name__}: {' '.join(str(cause).split())[:300]}",
            )
        except _NonFiniteError as exc:
            return _problem("non_finite", dataset, filename, str(exc))
        return {"files": {dataset: {filename: result}}, "problems": set()}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator

    # -- reading -------------------------------------------------------------------------
    def _read(self, events: ak.Array) -> _Jets:
        """Materialise the jet columns the selection and the output need."""
        try:
            return self._read_jets(events)
        except Exception as exc:
            raise _ReadError from exc

    def _read_constituents(
        self, events: ak.Array, jets: np.ndarray, jet_event: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The PF candidates (pt, eta, phi, mass, pdgId) of the chunk's jets ``jets`` (flat
        indices, in order; ``jet_event``: their events), flat, and their number per jet.

        The candidates of ``events.Jet.constituents.pf`` (coffea's PFNano schema), taken from
        the flat buffers with numpy, for the selected jets only (few events pass the selection;
        coffea's awkward cross-reference over the chunk cost as much as reading the file). As
        there, jet j's links are the ``Jet_nConstituents[j]`` rows of ``JetPFCands`` that follow
        those of the chunk's earlier jets (coffea's ``counts2nestedindex``; the counts must add
        up to the links), each link's ``pFCandsIdx`` indexes the candidates of the jet's event,
        and a link outside them is dropped.
        """
        try:
            n_const = _values(events.Jet["nConstituents"]).astype(np.int64)
            link = _values(events.JetPFCands["pFCandsIdx"]).astype(np.int64)
            if n_const.sum() != len(link):
                raise ValueError(
                    f"Jet_nConstituents add up to {n_const.sum()} but there are {len(link)} JetPFCands"
                )
            cands = events.PFCands
            cand_offsets, pt = _flat(cands["pt"])
            # the selected jets' rows of JetPFCands, jet by jet
            first = np.cumsum(n_const) - n_const
            per_jet = n_const[jets]
            rows = np.arange(per_jet.sum()) + np.repeat(first[jets] - (np.cumsum(per_jet) - per_jet), per_jet)
            event = np.repeat(jet_event, per_jet)
            link = link[rows]
            n_cands = np.diff(cand_offsets)[event]
            ok = (link >= 0) & (link < n_cands)
            if not ok.all():
                owner = np.repeat(np.arange(len(jets)), per_jet)
                per_jet = np.bincount(owner[ok], minlength=len(jets))
                link, event = link[ok], event[ok]
            index = cand_offsets[event] + link
            pf = {"pt": pt[index]} | {name: _values(cands[name])[index] for name in ("eta", "phi", "mass", "pdgId")}
            return pf, per_jet
        except Exception as exc:
            raise _ReadError from exc

    def _read_jets(self, events: ak.Array) -> _Jets:
        """Jet four-vectors (float64: m_jj must not depend on the file's float precision), the
        weight and the jet id when cut on; for the columnar output also rapidity, flavour, event."""
        jets = events.Jet
        fields = set(jets.fields)
        n = len(events)
        offsets, pt = _flat(jets["pt"])
        kin = {"pt": pt.astype(np.float64)}
        kin |= {name: _values(jets[name]).astype(np.float64) for name in ("eta", "phi", "mass")}
        data = _Jets(
            offsets=offsets, **kin,
            weight=ak.to_numpy(ak.materialize(events.genWeight)) if "genWeight" in events.fields else np.ones(n),
        )  # fmt: skip
        if self.selection.jet_id_min > 0 or self.columnar:
            data.jet_id = _values(jets["jetId"]) if "jetId" in fields else np.full(len(kin["pt"]), -1, np.int32)
        if self.columnar:
            data.parton_flavour = (
                _values(jets["partonFlavour"]) if "partonFlavour" in fields else np.zeros(len(kin["pt"]), np.int32)
            )
            data.rapidity = _values(jets["rapidity"]) if "rapidity" in fields else _p4(kin).rapidity.to_numpy()
            data.event = ak.to_numpy(ak.materialize(events.event)) if "event" in events.fields else np.arange(n)
        return data

    # -- selection and filling -----------------------------------------------------------
    def _select_and_fill(
        self, data: _Jets, dataset: str, entrystart: int,
        constituents: Callable[[np.ndarray, np.ndarray], tuple[dict[str, np.ndarray], np.ndarray]] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """Cutflow, m_jj histograms and (``columnar``) the selected events' columns.

        numpy on the flat jet arrays (per-event counts from cumulative sums over the jet
        offsets): the same cuts and values as on awkward's jagged arrays, without their
        per-operation broadcasting."""
        s = self.selection
        offsets, pt, eta = data.offsets, data.pt, data.eta
        finite = _finite_events(data)
        pt_ok = (pt >= s.jet_pt_min) & (pt <= s.jet_pt_max)
        eta_ok = pt_ok & (abs(eta) < s.jet_abs_eta_max)
        good = eta_ok & (data.jet_id >= s.jet_id_min) if s.jet_id_min > 0 else eta_ok
        n = s.n_jets
        n_good = _per_event(good, offsets)
        cuts = PackedSelection()
        cuts.add("finite", finite)
        cuts.add("jet_pt", _per_event(pt_ok, offsets) >= n)
        cuts.add("jet_eta", _per_event(eta_ok, offsets) >= n)
        cuts.add("jet_id", n_good >= n)
        cuts.add("n_jets", n_good == n)
        flow = cuts.cutflow(*CUTS).result()
        cutflow = {
            "all": int(flow.nevcutflow[0]),
            **{c: int(v) for c, v in zip(CUTS, flow.nevcutflow[1:], strict=True)},
        }

        keep = cuts.all(*CUTS)
        # the selected jets (flat indices, event by event): every kept event has exactly n
        jets = np.flatnonzero(good & np.repeat(keep, np.diff(offsets)))
        kin = {k: getattr(data, k)[jets] for k in ("pt", "eta", "phi", "mass")}
        # add their Lorentz vectors, the i-th selected jets of all events at a time; contiguous
        # columns: on vector's strided numpy records the last bit of m_jj depended on where the
        # allocator placed them (so on the executor and the code run before)
        p4 = [_p4({k: np.ascontiguousarray(v.reshape(-1, n)[:, i]) for k, v in kin.items()}) for i in range(n)]
        mjj = np.ascontiguousarray(ak.to_numpy(functools.reduce(operator.add, p4).mass), np.float64)
        weight = np.asarray(data.weight[keep]).astype(np.float64)
        _check_finite({"mjj": mjj})  # finite four-vectors can still overflow (mass 1e308)

        result = self.empty_result()
        result["cutflow"] = cutflow
        result["mjj"].fill(mjj=mjj, weight=weight)
        result["mjj_bins"].fill(mjj=mjj, weight=weight)
        if self.columnar:
            jet_cols = {
                **kin, "rapidity": data.rapidity[jets], "partonFlavour": data.parton_flavour[jets],
                "jetId": data.jet_id[jets],
            }  # fmt: skip
            outputs: dict[str, np.ndarray] = {"jets.rapidity": jet_cols["rapidity"]}
            if constituents is not None:
                pf, per_jet = constituents(jets, np.repeat(np.flatnonzero(keep), n))
                pf_cols = {"pt": pf["pt"], "rapidity": _p4(pf).rapidity.to_numpy(), "phi": pf["phi"],
                           "pdgId": pf["pdgId"]}  # fmt: skip
                tau21 = tau21_flat(pf["pt"], pf["eta"], pf["phi"], pf["mass"], per_jet)
                outputs |= {f"jets.constituents.{k}": pf_cols[k] for k in ("pt", "rapidity", "phi")}
                outputs["jets.tau21"] = tau21  # a NaN PF mass reaches only tau21
                jet_cols["constituents"] = _jagged(_counts_to_offsets(per_jet), _record(pf_cols))
            else:
                tau21 = np.full(len(jets), NO_TAU21)
            jet_cols["tau21"] = tau21
            _check_finite(outputs)
            jet_offsets = np.arange(len(mjj) + 1, dtype=np.int64) * n
            columns = ak.contents.RecordArray(
                [
                    string_column(dataset, len(mjj)).layout,
                    ak.contents.NumpyArray(np.asarray(data.event[keep])),
                    ak.contents.NumpyArray(mjj),
                    ak.contents.NumpyArray(weight),
                    _jagged(jet_offsets, _record(jet_cols)),
                ],
                ["dataset", "event", "mjj", "weight", "jets"],
                length=len(mjj),
            )
            # plain layout: no coffea/vector behaviours (they do not pickle between processes)
            result["columns"] = [(int(entrystart), ak.Array(columns))]
        return result


@dataclass
class _Jets:
    """A chunk's jets as flat numpy arrays (jet j of event i at ``offsets[i] + j``) and its
    per-event columns; the columns not needed by the configuration are ``None``."""

    offsets: np.ndarray  # int64, one more than events, from 0
    pt: np.ndarray  # float64
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    weight: np.ndarray  # per event, the file's dtype
    jet_id: np.ndarray | None = None
    parton_flavour: np.ndarray | None = None
    rapidity: np.ndarray | None = None
    event: np.ndarray | None = None


def _flat(jagged: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, values) of a jagged ``[event][item]`` numeric array, materialised: its
    own buffers when it is a plain list of numbers (as read), else flattened by awkward."""
    layout = ak.to_layout(ak.materialize(jagged))
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data).astype(np.int64)
        values = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
        return offsets - offsets[0], values
    return _counts_to_offsets(ak.to_numpy(ak.num(layout, axis=1))), ak.to_numpy(ak.flatten(layout, axis=1))


def _values(jagged: ak.Array) -> np.ndarray:
    """The flat values of a jagged ``[event][item]`` numeric array (materialised)."""
    return _flat(jagged)[1]


def _counts_to_offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _per_event(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per event, the number of its items (flat, at ``offsets``) where ``mask`` is true."""
    total = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=total[1:])
    return total[offsets[1:]] - total[offsets[:-1]]


def _p4(kin: dict[str, np.ndarray]) -> ak.Array:
    """Flat pt, eta, phi, mass as coffea Lorentz vectors (for their behaviours, e.g. rapidity)."""
    return ak.zip(
        {k: kin[k] for k in ("pt", "eta", "phi", "mass")}, with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior
    )


def _record(columns: dict[str, Any]) -> ak.contents.RecordArray:
    """A record layout of equal-length columns (numpy arrays or layouts)."""
    contents = [c if isinstance(c, ak.contents.Content) else ak.contents.NumpyArray(c) for c in columns.values()]
    return ak.contents.RecordArray(contents, list(columns))


def _jagged(offsets: np.ndarray, content: ak.contents.Content) -> ak.contents.ListOffsetArray:
    return ak.contents.ListOffsetArray(ak.index.Index64(offsets), content)


def _finite_events(data: _Jets) -> np.ndarray:
    """Per event: every jet's pt, eta, phi and mass and the weight are finite numbers."""
    finite_jet = np.isfinite(data.pt) & np.isfinite(data.eta) & np.isfinite(data.phi) & np.isfinite(data.mass)
    return np.isfinite(np.asarray(data.weight).astype(np.float64)) & (_per_event(~finite_jet, data.offsets) == 0)


class _NonFiniteError(Exception):
    """A selected event has a non-finite output column (the message names the columns)."""


def _check_finite(columns: dict[str, Any]) -> None:
    """Raise :class:`_NonFiniteError` naming the columns with NaN or infinite values."""
    bad = {}
    for name, values in columns.items():
        if isinstance(values, ak.Array):
            values = ak.to_numpy(ak.flatten(values, axis=None))
        flat = np.asarray(values)
        n_bad = int(np.count_nonzero(~np.isfinite(flat.astype(np.float64))))
        if n_bad:
            bad[name] = n_bad
    if bad:
        what = ", ".join(f"{name} ({n} value(s))" for name, n in bad.items())
        raise _NonFiniteError(f"non-finite values in the selected events' {what}")


class _ReadError(Exception):
    """Reading the file failed (the cause is chained)."""


def string_column(value: str, n: int) -> ak.Array:
    """``n`` copies of a string as an awkward string array (typed even when empty)."""
    raw = np.frombuffer(value.encode(), np.uint8)
    chars = ak.contents.NumpyArray(np.tile(raw, n), parameters={"__array__": "char"})
    offsets = ak.index.Index64(np.arange(n + 1, dtype=np.int64) * len(raw))
    return ak.Array(ak.contents.ListOffsetArray(offsets, chars, parameters={"__array__": "string"}))


def _has_branch(events: ak.Array, branch: str) -> bool:
    """Whether a NanoAOD branch (``Jet_pt``, ``nJet``) exists in the events."""
    if branch.startswith("n") and "_" not in branch:
        return branch[1:] in events.fields
    collection, _, field = branch.partition("_")
    return collection in events.fields and field in events[collection].fields


def _problem(kind: str, dataset: str, filename: str, message: str) -> dict[str, Any]:
    return {"files": {}, "problems": {(kind, dataset, filename, message)}}
