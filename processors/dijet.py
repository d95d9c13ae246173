"""The dijet processor: 2-jet selection, m_jj histograms, a cutflow and columnar output.

A pure coffea ``ProcessorABC``: it reads one chunk of NanoEvents, selects and fills; it writes
nothing (the ``process`` command writes ``histograms.root``, ``cutflow.json`` and Parquet).

Selection (config ``selection:``): events whose jets all have finite kinematics and whose
weight is finite; jets with ``jet_pt_min <= pT <= jet_pt_max``, ``|eta| < jet_abs_eta_max`` and
``jetId >= jet_id_min``; events with exactly ``n_jets`` selected jets. m_jj is the mass of the
sum of the selected jets' four-vectors (``vector`` Lorentz vectors; rapidities from coffea's
Lorentz-vector behaviour). The cutflow (coffea ``PackedSelection``) counts events whose jets'
pt, eta, phi, mass and the event weight are all finite (``finite``: an event with a NaN or
infinite value anywhere in them is dropped whole, never half-selected), then those with at
least ``n_jets`` jets passing the pT cut, then pT and eta, then pT, eta and jet id, and finally
exactly ``n_jets`` selected jets. A selected event whose other output columns (rapidity, PF
candidates) are not finite makes the file a ``non_finite`` problem: no NaN reaches a
histogram, the Parquet output or a model.

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
from functools import partial
from typing import Any

import awkward as ak
import hist
import numpy as np
import vector as vector_lib
from coffea import processor
from coffea.analysis_tools import PackedSelection
from coffea.nanoevents.methods import vector

from analysis.core.config import HistogramsConfig, SelectionConfig
from processors.substructure import tau21

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
        none = np.zeros(0, np.int64)

        def jagged(dtype: type, depth: int = 1) -> ak.Array:
            out = ak.Array(np.zeros(0, dtype))
            for _ in range(depth):
                out = ak.unflatten(out, none)
            return out

        kin = {name: jagged(np.float64) for name in ("pt", "eta", "phi", "mass")}
        data = {
            "jets": ak.zip(kin, with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior),
            "jetId": jagged(np.int32), "partonFlavour": jagged(np.int32), "rapidity": jagged(np.float32),
            "weight": np.zeros(0), "event": np.zeros(0, np.uint64),
        }  # fmt: skip
        pf = {name: jagged(np.float32, 2) for name in ("pt", "eta", "phi", "mass")}
        empty_pf = ak.zip(
            {**pf, "pdgId": jagged(np.int32, 2)}, with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior
        )
        reader = (lambda keep, jet_mask: empty_pf) if constituents else None
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
    def _read(self, events: ak.Array) -> dict[str, ak.Array]:
        """Materialise the jet columns the selection and the output need."""
        try:
            return self._read_jets(events)
        except Exception as exc:
            raise _ReadError from exc

    def _read_constituents(self, events: ak.Array, keep: np.ndarray, jet_mask: ak.Array) -> ak.Array:
        """The selected jets' PF candidates (``events.Jet.constituents.pf``), as Lorentz vectors.

        The cross-reference is built for the selected events only: most of the cost of the
        columnar output is this indexing, and few events pass the selection. The jet ->
        JetPFCands step is coffea's (``Jet.constituents``); the JetPFCands -> PFCands step takes
        the candidates with the links' per-event index (``pFCandsIdx``) from the selected
        events' ``PFCands`` (jagged awkward indexing): the same candidates as coffea's ``.pf``,
        whose global index (``local2global`` over every event of the chunk) and option-typed
        take cost ~2x more here. As there, a link outside the event's candidates is dropped.
        """
        try:
            selected = events[keep]
            link = selected.Jet[jet_mask].constituents.pFCandsIdx  # [event][jet][constituent]
            cands = selected.PFCands
            link = link[(link >= 0) & (link < ak.num(cands, axis=1))]
            per_jet = ak.flatten(ak.num(link, axis=2), axis=None)
            flat = ak.flatten(link, axis=2)  # [event][constituents of its selected jets]
            return ak.zip(
                {name: ak.unflatten(ak.materialize(cands[name])[flat], per_jet, axis=1)
                 for name in ("pt", "eta", "phi", "mass", "pdgId")},
                with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior,
            )  # fmt: skip
        except Exception as exc:
            raise _ReadError from exc

    def _read_jets(self, events: ak.Array) -> dict[str, ak.Array]:
        """Jet four-vectors (float64: m_jj must not depend on the file's float precision), the
        weight and the jet id when cut on; for the columnar output also rapidity, flavour, event."""
        jets = events.Jet
        fields = set(jets.fields)
        n = len(events)
        kin = ak.zip(
            {name: ak.values_astype(ak.materialize(jets[name]), np.float64) for name in ("pt", "eta", "phi", "mass")},
            with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior,
        )  # fmt: skip
        data = {
            "jets": kin,
            "weight": ak.materialize(events.genWeight) if "genWeight" in events.fields else np.ones(n),
        }
        if self.selection.jet_id_min > 0 or self.columnar:
            data["jetId"] = ak.materialize(jets.jetId) if "jetId" in fields else _int_like(kin.pt, -1)
        if self.columnar:
            data["partonFlavour"] = (
                ak.materialize(jets.partonFlavour) if "partonFlavour" in fields else _int_like(kin.pt, 0)
            )
            data["rapidity"] = ak.materialize(jets["rapidity"]) if "rapidity" in fields else kin.rapidity
            data["event"] = ak.materialize(events.event) if "event" in events.fields else np.arange(n)
        return data

    # -- selection and filling -----------------------------------------------------------
    def _select_and_fill(
        self, data: dict[str, ak.Array], dataset: str, entrystart: int,
        constituents: Callable[[np.ndarray, ak.Array], ak.Array] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """Cutflow, m_jj histograms and (``columnar``) the selected events' columns."""
        s = self.selection
        jets = data["jets"]
        pt, eta = jets["pt"], jets["eta"]  # plain fields (faster than the behaviour's properties)
        finite = _finite_events(jets, data["weight"])
        pt_ok = (pt >= s.jet_pt_min) & (pt <= s.jet_pt_max)
        eta_ok = pt_ok & (abs(eta) < s.jet_abs_eta_max)
        good = eta_ok & (data["jetId"] >= s.jet_id_min) if s.jet_id_min > 0 else eta_ok
        n = s.n_jets
        n_good = ak.to_numpy(ak.sum(good, axis=1))
        cuts = PackedSelection()
        cuts.add("finite", finite)
        cuts.add("jet_pt", ak.to_numpy(ak.sum(pt_ok, axis=1)) >= n)
        cuts.add("jet_eta", ak.to_numpy(ak.sum(eta_ok, axis=1)) >= n)
        cuts.add("jet_id", n_good >= n)
        cuts.add("n_jets", n_good == n)
        flow = cuts.cutflow(*CUTS).result()
        cutflow = {
            "all": int(flow.nevcutflow[0]),
            **{c: int(v) for c, v in zip(CUTS, flow.nevcutflow[1:], strict=True)},
        }

        keep = cuts.all(*CUTS)
        jet_mask = good[keep]
        selected = jets[keep][jet_mask]
        # every kept event has exactly n selected jets: add their Lorentz vectors (vector, numpy backend)
        p4 = vector_lib.array(
            {k: ak.to_numpy(ak.flatten(selected[k])).reshape(-1, n) for k in ("pt", "eta", "phi", "mass")}
        )
        mjj = np.ascontiguousarray(functools.reduce(operator.add, (p4[:, i] for i in range(n))).mass, np.float64)
        weight = ak.to_numpy(data["weight"][keep]).astype(np.float64)
        _check_finite({"mjj": mjj})  # finite four-vectors can still overflow (mass 1e308)

        result = self.empty_result()
        result["cutflow"] = cutflow
        result["mjj"].fill(mjj=mjj, weight=weight)
        result["mjj_bins"].fill(mjj=mjj, weight=weight)
        if self.columnar:
            jet_cols = {
                "pt": selected["pt"], "eta": selected["eta"], "phi": selected["phi"], "mass": selected["mass"],
                "rapidity": data["rapidity"][keep][jet_mask],
                "partonFlavour": data["partonFlavour"][keep][jet_mask],
                "jetId": data["jetId"][keep][jet_mask],
            }  # fmt: skip
            if constituents is not None:
                pf = constituents(keep, jet_mask)
                # cross-references are option-typed; links of a valid file always resolve
                jet_cols["constituents"] = ak.zip(
                    {
                        name: ak.drop_none(pf[name] if name != "rapidity" else pf.rapidity)
                        for name in CONSTITUENT_FIELDS
                    },
                    depth_limit=3,
                )
                jet_cols["tau21"] = tau21(*(ak.drop_none(pf[name]) for name in ("pt", "eta", "phi", "mass")))
            else:
                jet_cols["tau21"] = ak.full_like(selected["pt"], NO_TAU21, dtype=np.float64)
            outputs = {"jets.rapidity": jet_cols["rapidity"]}
            if "constituents" in jet_cols:
                pf_cols = jet_cols["constituents"]
                outputs |= {f"jets.constituents.{k}": pf_cols[k] for k in ("pt", "rapidity", "phi")}
                outputs["jets.tau21"] = jet_cols["tau21"]  # a NaN PF mass reaches only tau21
            _check_finite(outputs)
            columns = ak.zip(
                {
                    "dataset": string_column(dataset, len(mjj)),
                    "event": ak.to_numpy(data["event"][keep]),
                    "mjj": mjj,
                    "weight": weight,
                    "jets": ak.without_parameters(ak.zip(jet_cols, depth_limit=2)),
                },
                depth_limit=1,
            )
            # plain layout: no coffea/vector behaviours (they do not pickle between processes)
            result["columns"] = [(int(entrystart), ak.Array(columns.layout))]
        return result


def _finite_events(jets: ak.Array, weight: ak.Array | np.ndarray) -> np.ndarray:
    """Per event: every jet's pt, eta, phi and mass and the weight are finite numbers."""
    ok = np.isfinite(ak.to_numpy(weight).astype(np.float64))
    for name in ("pt", "eta", "phi", "mass"):
        ok &= ak.to_numpy(ak.all(np.isfinite(jets[name]), axis=1))
    return ok


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


def _int_like(template: ak.Array, value: int) -> ak.Array:
    """An int32 array shaped like ``template`` filled with ``value`` (for absent branches)."""
    return ak.values_astype(ak.zeros_like(template), np.int32) + np.int32(value)


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
