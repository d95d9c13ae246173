"""Jet substructure from the jets' constituents: N-subjettiness tau_N and the ratio tau21.

N-subjettiness (Thaler and Van Tilburg, arXiv:1011.2268), beta = 1, normalised:

    tau_N = sum_k pT_k min(dR_1k, ..., dR_Nk) / (sum_k pT_k R0)

over the constituents k of a jet, with dR in (rapidity, phi). The N axes are the exclusive
kT subjets of the jet's constituents with winner-take-all recombination (FastJet's kt_algorithm
with R = 1000, so every step is a pairwise merge, and WTA_pt_scheme: a merged pair has the
summed pT and the direction of the harder one; fjcontrib's ``WTA_KT_Axes``). The WTA axes are
recoil-free and nested: the tau_1 axis is one of the two tau_2 axes, so 0 <= tau21 <= 1
(E-scheme kT axes give tau21 > 1 for ~8 % of QCD jets, with a slightly weaker W/QCD
separation). tau21 = tau_2 / tau_1 is small for two-prong jets such as merged W/Z decays
(median ~0.25 at pT 350-450 GeV) and larger for one-prong QCD jets (median ~0.69); R0 cancels
in it. Jets with fewer than three constituents have tau_2 = 0; a jet whose tau_1 is 0 (one
constituent, or none) gets tau21 = 0.

fjcontrib's Nsubjettiness has no Python binding in the ``fastjet`` package (it ships only the
C++ library), so the axes come from FastJet's multi-event array interface: every jet is one
"event" of a single ClusterSequence call per chunk, and the distances and sums are numpy
operations on the flat constituent arrays.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

KT_R = 1000.0  # FastJet's JetDefinition::max_allowable_R: exclusive kT clustering never merges with the beam
R0 = 0.5  # tau_N normalisation (the jets' anti-kT R); cancels in tau21

_BANNER_OFF = False


def tau21(pt: ak.Array, eta: ak.Array, phi: ak.Array, mass: ak.Array) -> ak.Array:
    """tau_2 / tau_1 of every jet, from its constituents' pt, eta, phi and mass.

    The inputs are ragged arrays ``[..., jet, constituent]`` (e.g. ``[event][jet][constituent]``);
    the result has their shape without the constituent axis, in float64.
    """
    depth = pt.ndim
    jets_pt, jets_eta, jets_phi, jets_mass = pt, eta, phi, mass
    for _ in range(depth - 2):  # down to [jet][constituent]
        jets_pt, jets_eta, jets_phi, jets_mass = (
            ak.flatten(a, axis=1) for a in (jets_pt, jets_eta, jets_phi, jets_mass)
        )
    counts = ak.to_numpy(ak.num(jets_pt, axis=1))
    flat = [ak.to_numpy(ak.flatten(a, axis=None)) for a in (jets_pt, jets_eta, jets_phi, jets_mass)]
    out: ak.Array = ak.Array(tau21_flat(*flat, counts))
    for level in range(depth - 2, 0, -1):  # back to the input's outer structure
        out = ak.unflatten(out, _num_at(pt, level))
    return out


def tau21_flat(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """tau_2 / tau_1 per jet (float64) from flat constituent arrays, ``counts[j]`` constituents
    of jet j: :func:`tau21` without the awkward structure, for callers that hold flat buffers."""
    flat = [np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass)]
    tau1, tau2 = nsubjettiness(*flat, np.asarray(counts).astype(np.int64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tau1 > 0, tau2 / np.where(tau1 > 0, tau1, 1.0), 0.0)


def _num_at(array: ak.Array, level: int) -> np.ndarray:
    """Lengths of the lists at nesting ``level`` (1: the outermost lists), flattened."""
    for _ in range(level - 1):
        array = ak.flatten(array, axis=1)
    return ak.to_numpy(ak.num(array, axis=1))


def nsubjettiness(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(tau_1, tau_2) per jet from flat constituent arrays, ``counts[j]`` constituents of jet j."""
    n_jets = len(counts)
    if n_jets == 0 or counts.sum() == 0:
        return np.zeros(n_jets), np.zeros(n_jets)
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    rap = _rapidity(e, pz)
    owner = np.repeat(np.arange(n_jets), counts)
    norm = np.bincount(owner, weights=pt, minlength=n_jets) * R0

    def tau(distance: np.ndarray) -> np.ndarray:
        numerator = np.bincount(owner, weights=pt * distance, minlength=n_jets)
        return np.divide(numerator, norm, out=np.zeros(n_jets), where=norm > 0)

    (n1, rap1, phi1), (n2, rap2, phi2) = exclusive_kt_axes(px, py, pz, e, counts, (1, 2))
    # tau_1: one axis per jet with constituents
    first = (np.cumsum(n1) - n1)[owner]
    tau1 = tau(_delta_r(rap, phi, rap1[first], phi1[first]))
    # tau_2: two axes (one for a jet of one constituent: the "second" repeats the first)
    first = (np.cumsum(n2) - n2)[owner]
    second = first + (n2[owner] > 1)
    d2 = np.minimum(
        _delta_r(rap, phi, rap2[first], phi2[first]), _delta_r(rap, phi, rap2[second], phi2[second])
    )
    return tau1, tau(d2)


def _delta_r(rap: np.ndarray, phi: np.ndarray, rap_axis: np.ndarray, phi_axis: np.ndarray) -> np.ndarray:
    dphi = (phi - phi_axis + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((rap - rap_axis) ** 2 + dphi**2)


def exclusive_kt_axes(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, counts: np.ndarray, ns: tuple[int, ...]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The exclusive WTA-kT axes of every jet clustered to each N in ``ns`` (to fewer when a jet
    has fewer constituents), from one clustering: per N ``(axes per jet, rapidity, phi)`` with the
    axes flat, jet by jet."""
    import fastjet

    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    content = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(a, dtype=np.float64)) for a in (px, py, pz, e)],
        ["px", "py", "pz", "E"],
    )
    jets = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
    _banner_off()
    seq = fastjet.ClusterSequence(
        jets, fastjet.JetDefinition(fastjet.kt_algorithm, KT_R, fastjet.WTA_pt_scheme)
    )
    out = []
    # fastjet warns for every exclusive clustering (it compares the JetDefinition, not its
    # algorithm, with kt_algorithm) and replaces warnings.formatwarning while doing so
    saved = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dcut and exclusive jets")
            for n in ns:
                # [jet][axis] records: read the flat buffers (offsets from 0, as fastjet makes them)
                axes = seq.exclusive_jets_up_to(n).layout
                offsets = np.asarray(axes.offsets.data).astype(np.int64)
                ax = {
                    c: np.asarray(axes.content[c].data[offsets[0] : offsets[-1]]).astype(np.float64)
                    for c in ("px", "py", "pz", "E")
                }
                n_axes = np.diff(offsets)
                out.append((n_axes, _rapidity(ax["E"], ax["pz"]), np.arctan2(ax["py"], ax["px"])))
    finally:
        warnings.formatwarning = saved
    return out


def _rapidity(e: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Rapidity, finite also for E == |pz| (massless along the beam: clipped at |y| = 1e3)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((e + pz) / (e - pz))
    return np.nan_to_num(y, nan=0.0, posinf=1e3, neginf=-1e3)


def _banner_off() -> None:
    """FastJet prints its banner to stdout at the first clustering of a process; not here."""
    global _BANNER_OFF
    if not _BANNER_OFF:
        from fastjet import _swig

        _swig.ClusterSequence.set_fastjet_banner_stream(None)
        _BANNER_OFF = True
