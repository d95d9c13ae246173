"""PFN inputs from jet constituents, as in EnergyFlow's PFN example (vectorised numpy).

Each jet is centred on its pT-weighted (y, phi), its constituent pTs are normalised to unit
sum, and particle ids are remapped to small floats (``energyflow.utils.remap_pids``). Phi is
taken relative to the jet axis first, so jets near phi = +-pi are not torn apart.
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
    counts: np.ndarray, jet_phi: np.ndarray | None = None,
) -> PackedJets:  # fmt: skip
    """Flat constituents (grouped by jet, ``counts`` per jet) -> centred, normalised PFN inputs.

    ``jet_phi`` (per jet) is the axis phi is measured from before averaging; by default each
    jet's first constituent.
    """
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
    features[:, 3] = remap_pids(pid)
    return PackedJets(features, counts)


def preprocess_awkward(constituents: ak.Array, jet_phi: ak.Array | np.ndarray | None = None) -> PackedJets:
    """PFN inputs from a jagged array of jets' constituents (fields pt, rapidity, phi, pdgId)."""
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    flat = ak.flatten(constituents, axis=1)
    return preprocess(
        ak.to_numpy(flat.pt), ak.to_numpy(flat.rapidity), ak.to_numpy(flat.phi), ak.to_numpy(flat.pdgId),
        counts, None if jet_phi is None else np.asarray(ak.to_numpy(jet_phi), dtype=np.float64),
    )  # fmt: skip
