"""PFN inputs from jet constituents, as in EnergyFlow's PFN example (vectorised numpy).

Each jet is centred on its pT-weighted (y, phi), its constituent pTs are normalised to unit
sum, and particle ids are remapped to small floats (``energyflow.utils.remap_pids``). Phi is
taken relative to the jet axis first, so jets near phi = +-pi are not torn apart.

Particle ids (``scan.particle_ids``):

* ``pf_classes`` (the default): before the remap, every id becomes the class a CMS particle-flow
  candidate carries: charged hadron -> +-211 (sign of its charge), neutral hadron -> 130,
  photon 22, electron +-11, muon +-13 (:func:`pf_class_ids`). Generated events know K+-, p, n,
  K_L apart, CMS PF candidates (the reference's Open Data) do not: with full ids the PFN would
  separate quark from gluon jets by information the data lack. PF ids map to themselves, and
  the forward-calorimeter ids 1 (HF hadron) and 2 (HF EM) to 130 and 22.
* ``full``: the ids as stored (generator level for generated events), as before.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from models.batches import PackedJets

# EnergyFlow's PID2FLOAT_MAP (energyflow.utils.data_utils); other ids map to 0, as its
# remap_pids(error_on_unknown=False)
PID2FLOAT = {
    22: 0.0, 211: 0.1, -211: 0.2, 321: 0.3, -321: 0.4, 130: 0.5, 2112: 0.6, -2112: 0.7,
    2212: 0.8, -2212: 0.9, 11: 1.0, -11: 1.1, 13: 1.2, -13: 1.3,
}  # fmt: skip
_KEYS = np.array(sorted(PID2FLOAT), dtype=np.int64)
_VALUES = np.array([PID2FLOAT[k] for k in _KEYS], dtype=np.float32)

N_FEATURES = 4  # pT fraction, y - <y>, phi - <phi>, remapped pid
PARTICLE_IDS = ("pf_classes", "full")

_QUARK_THREE_CHARGE = np.array([0, -1, 2, -1, 2, -1, 2])  # 3 x charge of quarks d u s c b t (index 1..6)
_LEPTON_THREE_CHARGE = {11: -3, 13: -3, 15: -3, 17: -3, 24: 3, 37: 3}  # particles (positive ids) below 100
_NEUTRAL_KAONS = (130, 310)  # K_L, K_S: codes outside the quark-content scheme
_HF_CLASS = {1: 130, 2: 22}  # CMS HF candidates: hadronic, electromagnetic


def three_charge(pid: int) -> int:
    """Three times the electric charge of a PDG id (leptons, bosons, mesons, baryons; 0 otherwise).

    Hadron codes follow the PDG numbering scheme: quark digits nq1 nq2 nq3 (then nJ). A meson
    (nq1 = 0) is q(nq2) anti-q(nq3) when nq2 is up-type and anti-q(nq2) q(nq3) when it is
    down-type (pi+ = 211 = u dbar, K+ = 321 = u sbar); a baryon holds q(nq1) q(nq2) q(nq3).
    """
    a = abs(int(pid))
    sign = 1 if pid > 0 else -1
    if a < 100:
        return sign * _LEPTON_THREE_CHARGE.get(a, 0)
    if a in _NEUTRAL_KAONS or a >= 1_000_000_000:  # nuclei: not PFN constituents
        return 0
    nq1, nq2, nq3 = (a // 1000) % 10, (a // 100) % 10, (a // 10) % 10
    if max(nq1, nq2, nq3) > 6:
        return 0
    q = _QUARK_THREE_CHARGE
    if nq1:  # baryon
        return sign * int(q[nq1] + q[nq2] + q[nq3])
    return sign * int(q[nq2] - q[nq3] if nq2 % 2 == 0 else q[nq3] - q[nq2])  # meson


def pf_class_id(pid: int) -> int:
    """The CMS PF candidate id of a particle (see the module docstring)."""
    a = abs(int(pid))
    if a in (11, 13, 22, 211, 130):
        return int(pid)
    if a in _HF_CLASS:
        return _HF_CLASS[a]
    if a < 100:
        return int(pid)  # neutrinos, taus, bosons: not PF classes, left to the remap (-> 0)
    charge = three_charge(pid)
    return 211 * int(np.sign(charge)) if charge else 130


def pf_class_ids(pids: np.ndarray) -> np.ndarray:
    """PDG ids -> CMS PF candidate classes, vectorised over the (few) distinct ids."""
    pids = np.asarray(pids).astype(np.int64)
    unique, inverse = np.unique(pids, return_inverse=True)
    return np.array([pf_class_id(p) for p in unique], dtype=np.int64)[inverse].reshape(pids.shape)


def remap_pids(pids: np.ndarray, unknown: float = 0.0) -> np.ndarray:
    """PDG ids -> EnergyFlow's small floats (vectorised lookup)."""
    pids = np.asarray(pids).astype(np.int64)
    pos = np.clip(np.searchsorted(_KEYS, pids), 0, len(_KEYS) - 1)
    found = _KEYS[pos] == pids
    return np.where(found, _VALUES[pos], np.float32(unknown)).astype(np.float32)


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Angle differences into [-pi, pi)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def preprocess(
    pt: np.ndarray, rapidity: np.ndarray, phi: np.ndarray, pid: np.ndarray,
    counts: np.ndarray, jet_phi: np.ndarray | None = None, particle_ids: str = "pf_classes",
) -> PackedJets:  # fmt: skip
    """Flat constituents (grouped by jet, ``counts`` per jet) -> centred, normalised PFN inputs.

    ``jet_phi`` (per jet) is the axis phi is measured from before averaging; by default each
    jet's first constituent. ``particle_ids``: ``pf_classes`` or ``full`` (module docstring).
    """
    if particle_ids not in PARTICLE_IDS:
        raise ValueError(f"particle_ids {particle_ids!r} (pf_classes|full)")
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) and counts.min() < 1:
        raise ValueError("preprocess: a jet without constituents")
    n_jets = len(counts)
    jet = np.repeat(np.arange(n_jets), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    pt = np.asarray(pt, dtype=np.float64)
    axis = phi[starts] if jet_phi is None else np.asarray(jet_phi, dtype=np.float64)
    dphi = wrap_phi(np.asarray(phi, dtype=np.float64) - axis[jet])
    sum_pt = np.bincount(jet, pt, minlength=n_jets)
    y_mean = np.bincount(jet, pt * rapidity, minlength=n_jets) / sum_pt
    phi_mean = np.bincount(jet, pt * dphi, minlength=n_jets) / sum_pt
    features = np.empty((len(pt), N_FEATURES), dtype=np.float32)
    features[:, 0] = pt / sum_pt[jet]
    features[:, 1] = np.asarray(rapidity, dtype=np.float64) - y_mean[jet]
    features[:, 2] = dphi - phi_mean[jet]
    features[:, 3] = remap_pids(pf_class_ids(pid) if particle_ids == "pf_classes" else pid)
    return PackedJets(features, counts)


def preprocess_awkward(
    constituents: ak.Array, jet_phi: ak.Array | np.ndarray | None = None, particle_ids: str = "pf_classes"
) -> PackedJets:
    """PFN inputs from a jagged array of jets' constituents (fields pt, rapidity, phi, pdgId)."""
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    flat = ak.flatten(constituents, axis=1)
    return preprocess(
        ak.to_numpy(flat.pt), ak.to_numpy(flat.rapidity), ak.to_numpy(flat.phi), ak.to_numpy(flat.pdgId),
        counts, None if jet_phi is None else np.asarray(ak.to_numpy(jet_phi), dtype=np.float64), particle_ids,
    )  # fmt: skip
