"""Particle-level jets of whole event batches: FastJet anti-kT, constituents, flavour, jet ID.

Everything works on flat numpy arrays of a batch of events plus per-event counts (no Python
loop over particles or jets): FastJet clusters all events of a batch in one call through its
array interface, and the per-jet sums (constituent energy fractions, multiplicities) are
``np.bincount`` reductions over the constituent list.

The output of :func:`build_batch` is one dict of awkward arrays in NanoAOD form (``Jet``,
``PFCands``, ``JetPFCands`` collections plus event-level columns), ready for uproot.

Jet ID (``Jet_jetId``, CMS-like bits of the 2011-2016 PF jet ID, computed from the
constituents; energy fractions are constituent energy over jet energy):

- categories: charged hadrons (charged, not e/mu), neutral hadrons (neutral, not photons),
  photons (neutral EM), electrons (charged EM), muons; neutrinos are never constituents;
- bit 1 (value 1), loose: NHF < 0.99, NEMF < 0.99, nConstituents > 1 and, for |eta| < 2.4,
  CHF > 0, charged multiplicity > 0, CEMF < 0.99;
- bit 2 (value 2), tight: loose with NHF < 0.90 and NEMF < 0.90;
- bit 3 (value 4), tight lepton veto: tight with MUF < 0.80 and, for |eta| < 2.4, CEMF < 0.90.

So ``jetId >= 2`` means tight (values 0, 1, 3, 7 occur), as in CMS NanoAOD.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import awkward as ak
import fastjet
import numpy as np

NEUTRINOS = (12, 14, 16)
JET_ID_ETA_TRACKER = 2.4  # charged-fraction criteria apply inside the tracker


@dataclass(frozen=True)
class JetSettings:
    """How jets are built from final-state particles."""

    radius: float = 0.5  # anti-kT distance parameter R
    pt_min: float = 20.0  # GeV, jets kept above this
    particle_abs_eta_max: float = 5.0  # visible final-state particles with |eta| < this
    flavour_match_dr: float = 0.4  # Delta-R of a jet to its hard parton for partonFlavour


@dataclass
class EventBatch:
    """A batch of generated events as flat particle arrays (the event record's final state).

    ``counts[i]`` particles belong to event ``i``; ``partons`` are the outgoing partons of the
    hard process (status 23), with their own counts.
    """

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    mass: np.ndarray
    pdg_id: np.ndarray
    parton_counts: np.ndarray
    parton_eta: np.ndarray
    parton_phi: np.ndarray
    parton_id: np.ndarray
    weight: np.ndarray


def from_pythia_batch(batch: ak.Array, abs_eta_max: float = 5.0) -> EventBatch:
    """Visible final-state particles (status > 0, no neutrinos, |eta| < abs_eta_max) and the
    hard outgoing partons of a ``Pythia.nextBatch`` array."""
    prt = batch.prt
    counts_all = ak.to_numpy(ak.num(prt, axis=1))
    flat = ak.flatten(prt, axis=1)
    status = ak.to_numpy(flat.status)
    pid = ak.to_numpy(flat.id)
    mom = flat.p
    px, py, pz, e = (ak.to_numpy(getattr(mom, c)) for c in ("px", "py", "pz", "e"))
    mass = ak.to_numpy(flat.m)
    owner = np.repeat(np.arange(len(counts_all)), counts_all)
    n_events = len(counts_all)

    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(pz, pt, out=np.full_like(pz, np.inf), where=pt > 0))
    visible = (status > 0) & ~np.isin(np.abs(pid), NEUTRINOS) & (np.abs(eta) < abs_eta_max)
    hard = np.abs(status) == 23

    # the event weight (1 for unweighted generation): first entry of Pythia's weight list
    if "weights" in batch.info.fields:
        weight = np.asarray(ak.to_numpy(ak.fill_none(ak.firsts(batch.info.weights), 1.0)), dtype=np.float64)
    else:
        weight = np.ones(n_events)
    return EventBatch(
        counts=np.bincount(owner[visible], minlength=n_events),
        px=px[visible], py=py[visible], pz=pz[visible], e=e[visible], mass=mass[visible],
        pdg_id=pid[visible].astype(np.int32),
        parton_counts=np.bincount(owner[hard], minlength=n_events),
        parton_eta=eta[hard], parton_phi=np.arctan2(py[hard], px[hard]),
        parton_id=pid[hard].astype(np.int32),
        weight=weight.astype(np.float64),
    )  # fmt: skip


def count_offsets(counts: np.ndarray) -> np.ndarray:
    """Offsets of consecutive segments of ``counts`` elements: ``[0, c0, c0 + c1, ...]`` (int64)."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def segments_take(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices that gather segments ``[starts[i], starts[i] + counts[i])`` one after another
    (reorders ragged data given its segments' new order, without a loop)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - count_offsets(counts)[:-1], counts) + np.arange(counts.sum())


def cluster(ev: EventBatch, settings: JetSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anti-kT jets of every event in one FastJet call.

    Returns ``(jet_p4, jet_counts, const_counts, const_index)``: jets' (px, py, pz, E) as an
    (n_jets, 4) array, pT-ordered within each event; jets per event; constituents per jet; and
    for every constituent (jet by jet) its index into the batch's flat particle arrays.
    """
    offsets = count_offsets(ev.counts)
    content = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(a, dtype=np.float64)) for a in (ev.px, ev.py, ev.pz, ev.e)],
        ["px", "py", "pz", "E"],
    )
    particles = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
    seq = _cluster_sequence(particles, settings.radius)
    jets = seq.inclusive_jets(settings.pt_min)
    jpx, jpy, jpz, je = (ak.to_numpy(ak.flatten(jets[c], axis=1)) for c in ("px", "py", "pz", "E"))
    jet_counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    local = seq.constituent_index(settings.pt_min)
    const_counts = ak.to_numpy(ak.flatten(ak.num(local, axis=2), axis=1)).astype(np.int64)
    const_local = ak.to_numpy(ak.flatten(local, axis=None))
    # constituent indices are per event: make them batch-global
    jet_event = np.repeat(np.arange(len(jet_counts)), jet_counts)
    const_index = np.asarray(const_local, dtype=np.int64) + np.repeat(offsets[:-1][jet_event], const_counts)

    # pT order within each event (stable: ties keep FastJet's order)
    pt = np.hypot(jpx, jpy)
    order = np.lexsort((-pt, jet_event))
    const_start = count_offsets(const_counts)[:-1]
    const_counts = const_counts[order]
    take = segments_take(const_start[order], const_counts)
    p4 = np.stack([jpx, jpy, jpz, je], axis=1)[order]
    return p4, jet_counts, const_counts, const_index[take]


_BANNER_SHOWN = False


def _cluster_sequence(particles: ak.Array, radius: float) -> fastjet.ClusterSequence:
    """FastJet's multi-event cluster sequence; its once-per-process banner goes to /dev/null."""
    global _BANNER_SHOWN
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    if _BANNER_SHOWN:
        return fastjet.ClusterSequence(particles, jetdef)
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            seq = fastjet.ClusterSequence(particles, jetdef)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_SHOWN = True
    return seq


def kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """pt, eta, phi, mass and rapidity of four-vectors (mass 0 where E < |p| by rounding)."""
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
        rapidity = 0.5 * np.log((e + pz) / (e - pz))
    return {
        "pt": pt,
        "eta": eta,
        "phi": np.arctan2(py, px),
        "mass": np.sqrt(np.maximum(e**2 - p**2, 0.0)),
        "rapidity": np.nan_to_num(rapidity, nan=0.0, posinf=0.0, neginf=0.0),
    }


def parton_flavour(
    jet_eta: np.ndarray, jet_phi: np.ndarray, jet_counts: np.ndarray, ev: EventBatch, max_dr: float
) -> np.ndarray:
    """pdgId of the closest hard outgoing parton within ``max_dr`` of each jet (0: none).

    Delta R is vector's, between unit directions (rho = 1) of the jets and the partons."""
    import vector

    def directions(eta: np.ndarray, phi: np.ndarray, counts: np.ndarray, **extra: np.ndarray) -> ak.Array:
        return ak.unflatten(vector.zip({"rho": np.ones_like(eta), "eta": eta, "phi": phi, **extra}), counts)

    jets = directions(jet_eta, jet_phi, jet_counts)
    partons = directions(ev.parton_eta, ev.parton_phi, ev.parton_counts, id=ev.parton_id)
    pairs = ak.cartesian({"j": jets, "p": partons}, axis=1, nested=True)
    dr = pairs.j.deltaR(pairs.p)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.fill_none(ak.flatten(dr[best], axis=2), np.inf)
    best_id = ak.fill_none(ak.flatten(pairs.p.id[best], axis=2), 0)
    flav = ak.to_numpy(ak.flatten(ak.where(best_dr < max_dr, best_id, 0), axis=1))
    return flav.astype(np.int32)


def jet_id(
    jet_eta: np.ndarray, jet_e: np.ndarray, const_counts: np.ndarray, pdg_id: np.ndarray,
    charge: np.ndarray, energy: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """CMS-like jet ID bits (see the module docstring) from the constituents of each jet.

    ``pdg_id``, ``charge`` and ``energy`` are per constituent, jet by jet (``const_counts``).
    """
    n_jets = len(const_counts)
    owner = np.repeat(np.arange(n_jets), const_counts)
    apid = np.abs(pdg_id)
    charged = charge != 0
    cat = {
        "electron": apid == 11,
        "muon": apid == 13,
        "photon": apid == 22,
    }
    cat["charged_hadron"] = charged & ~cat["electron"] & ~cat["muon"]
    cat["neutral_hadron"] = ~charged & ~cat["photon"]
    frac = {
        k: np.bincount(owner, weights=energy * m, minlength=n_jets) / np.where(jet_e > 0, jet_e, 1.0)
        for k, m in cat.items()
    }
    n_charged = np.bincount(owner, weights=charged, minlength=n_jets)
    central = np.abs(jet_eta) < JET_ID_ETA_TRACKER
    tracker_ok = ~central | ((frac["charged_hadron"] > 0) & (n_charged > 0) & (frac["electron"] < 0.99))
    loose = (frac["neutral_hadron"] < 0.99) & (frac["photon"] < 0.99) & (const_counts > 1) & tracker_ok
    tight = loose & (frac["neutral_hadron"] < 0.90) & (frac["photon"] < 0.90)
    lep_veto = tight & (frac["muon"] < 0.80) & (~central | (frac["electron"] < 0.90))
    return (loose * 1 + tight * 2 + lep_veto * 4).astype(np.int32)


def build_batch(
    ev: EventBatch, settings: JetSettings, charge_of: Callable[[np.ndarray], np.ndarray]
) -> dict[str, ak.Array | np.ndarray]:
    """Cluster a batch and return its NanoAOD-like columns (collections as awkward records).

    ``PFCands`` are the constituents of the kept jets in event-record order; ``JetPFCands``
    links each jet (jet by jet, as ``Jet_nConstituents`` counts them) to its ``PFCands``.
    """
    p4, jet_counts, const_counts, const_index = cluster(ev, settings)
    jk = kinematics(p4[:, 0], p4[:, 1], p4[:, 2], p4[:, 3])
    n_events = len(ev.counts)
    jet_event = np.repeat(np.arange(n_events), jet_counts)

    # PFCands: each particle belongs to at most one jet, so sorting the constituents' batch
    # indices gives every event's candidates in event-record order
    pf_index = np.sort(const_index)
    pf_event = np.repeat(jet_event, const_counts)
    pf_counts = np.bincount(pf_event, minlength=n_events)
    pf_offsets = count_offsets(pf_counts)
    link_pf = np.searchsorted(pf_index, const_index) - pf_offsets[pf_event]
    link_jet = np.arange(len(const_counts)) - count_offsets(jet_counts)[:-1][jet_event]
    link_jet = np.repeat(link_jet, const_counts)

    pk = kinematics(ev.px[pf_index], ev.py[pf_index], ev.pz[pf_index], ev.e[pf_index])
    pf_pdg = ev.pdg_id[pf_index]
    pf_charge = charge_of(pf_pdg)
    const_charge = charge_of(ev.pdg_id[const_index])

    jet = {
        "pt": jk["pt"], "eta": jk["eta"], "phi": jk["phi"], "mass": jk["mass"], "rapidity": jk["rapidity"],
        "nConstituents": const_counts.astype(np.int32),
        "jetId": jet_id(jk["eta"], p4[:, 3], const_counts, ev.pdg_id[const_index], const_charge, ev.e[const_index]),
        "partonFlavour": parton_flavour(jk["eta"], jk["phi"], jet_counts, ev, settings.flavour_match_dr),
    }  # fmt: skip
    pf = {
        "pt": pk["pt"], "eta": pk["eta"], "phi": pk["phi"], "mass": ev.mass[pf_index],
        "pdgId": pf_pdg, "charge": pf_charge.astype(np.int32),
    }  # fmt: skip
    link = {"jetIdx": link_jet.astype(np.int32), "pFCandsIdx": link_pf.astype(np.int32)}

    def collection(cols: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
        cols = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in cols.items()}
        return ak.unflatten(ak.zip(cols, depth_limit=1), counts)

    return {
        "Jet": collection(jet, jet_counts),
        "PFCands": collection(pf, pf_counts),
        "JetPFCands": collection(link, pf_counts),
        "genWeight": ev.weight.astype(np.float32),
    }


class ChargeTable:
    """Electric charge by pdgId, looked up in bulk (ids cached from a ``charge(id)`` function)."""

    def __init__(self, charge: Callable[[int], float]):
        self._charge = charge
        self._ids = np.zeros(0, dtype=np.int64)
        self._values = np.zeros(0, dtype=np.int32)

    def __call__(self, pdg_id: np.ndarray) -> np.ndarray:
        ids = np.unique(pdg_id)
        new = ids[~np.isin(ids, self._ids)]
        if len(new):
            all_ids = np.concatenate([self._ids, new])
            all_vals = np.concatenate([self._values, [round(self._charge(int(i))) for i in new]])
            order = np.argsort(all_ids)
            self._ids, self._values = all_ids[order], all_vals[order].astype(np.int32)
        return self._values[np.searchsorted(self._ids, pdg_id)]
