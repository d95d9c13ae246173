"""Packed batches of jets for :class:`models.pfn.PackedPFN` (pure numpy).

Jets are stored flat: ``features`` (n_constituents, n_features) and ``counts`` (n_jets,).
A batch gathers the constituents of its jets into ``(G, P, n_features)`` slots (G groups, one
per data-parallel replica), with each slot's jet index in ``segments`` (B marks padding, after
the jets' slots). P is either exact (the largest group total: no padding; for kernels that take
any shape) or a cap shared by many batches (so that one XLA-compiled shape serves a whole
training), rounded up to a multiple of 256; those padding slots cost a few per cent, not the
padding to the longest jet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOT_MULTIPLE = 256


@dataclass(frozen=True)
class PackedJets:
    """Flat constituents of many jets: ``features[offsets[j]:offsets[j + 1]]`` is jet j."""

    features: np.ndarray  # (n_constituents, n_features) float32
    counts: np.ndarray  # (n_jets,) int64

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.counts.ndim != 1 or int(self.counts.sum()) != len(self.features):
            raise ValueError("PackedJets: features must be (n, f) and counts sum to n")
        if len(self.counts) and self.counts.min() < 1:
            raise ValueError("PackedJets: every jet needs at least one constituent")

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.counts)

    def take(self, jets: np.ndarray) -> PackedJets:
        """The jets with indices ``jets``, in that order."""
        jets = np.asarray(jets, dtype=np.int64)
        return PackedJets(self.features[constituent_index(self.offsets, self.counts, jets)], self.counts[jets])

    @staticmethod
    def concatenate(parts: list[PackedJets]) -> PackedJets:
        return PackedJets(np.concatenate([p.features for p in parts]), np.concatenate([p.counts for p in parts]))


def constituent_index(offsets: np.ndarray, counts: np.ndarray, jets: np.ndarray) -> np.ndarray:
    """Indices of the constituents of ``jets`` (in jet order), without a Python loop."""
    lengths = counts[jets]
    total = int(lengths.sum())
    starts = np.repeat(offsets[jets] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return starts + np.arange(total, dtype=np.int64)


def to_padded(jets: PackedJets, max_len: int | None = None) -> np.ndarray:
    """Zero-padded (n_jets, max_len, n_features) array (EnergyFlow's input layout)."""
    max_len = int(jets.counts.max()) if max_len is None else int(max_len)
    out = np.zeros((len(jets), max_len, jets.features.shape[1]), dtype=jets.features.dtype)
    jet = np.repeat(np.arange(len(jets)), jets.counts)
    pos = np.arange(len(jets.features)) - np.repeat(jets.offsets[:-1], jets.counts)
    keep = pos < max_len
    out[jet[keep], pos[keep]] = jets.features[keep]
    return out


def round_up(n: int, multiple: int = SLOT_MULTIPLE) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


@dataclass(frozen=True)
class PackedBatches:
    """Several packed batches, concatenated: batch b is ``particles[slots[b]:slots[b + 1]]``
    reshaped to (G, P_b, n_features), with ``segments`` likewise, and holds the jets
    ``jets[b]:jets[b + 1]`` of the batches' jet order (G * B_b of them)."""

    particles: np.ndarray  # (sum of G * P_b, n_features) float32
    segments: np.ndarray  # (sum of G * P_b,) int32
    slots: np.ndarray  # (n_batches + 1,) int64
    jets: np.ndarray  # (n_batches + 1,) int64

    def batch(self, b: int, n_groups: int) -> dict[str, np.ndarray]:
        """The model inputs of batch b."""
        s0, s1, n = self.slots[b], self.slots[b + 1], self.jets[b + 1] - self.jets[b]
        return {
            "particles": self.particles[s0:s1].reshape(n_groups, -1, self.particles.shape[1]),
            "segments": self.segments[s0:s1].reshape(n_groups, -1),
            "jets": np.ones((n_groups, n // n_groups), np.float32),
        }


def pack_batches(
    jets: PackedJets, offsets: np.ndarray, batches: list[np.ndarray], n_groups: int,
    caps: list[int | None] | None = None, multiple: int = SLOT_MULTIPLE,
) -> PackedBatches:  # fmt: skip
    """Pack many batches at once, with vectorised numpy (no loop over jets or batches' slots).

    Every batch is split into ``n_groups`` equal groups (at most n_groups - 1 jets left out);
    its slots per group are ``caps[b]`` if its group totals fit, else the largest group total
    rounded up to ``multiple`` (1: exact). Padding slots, after the jets', carry segment B.
    """
    sizes = np.array([len(b) // n_groups for b in batches], dtype=np.int64)  # jets per group
    order = np.concatenate([b[: s * n_groups] for b, s in zip(batches, sizes, strict=True)]).astype(np.int64)
    counts = jets.counts[order]
    # (batch, group) pairs in order: each jet's pair, its position in the group, the pair totals
    pair_sizes = np.repeat(sizes, n_groups)
    pair = np.repeat(np.arange(len(pair_sizes)), pair_sizes)
    position = np.arange(len(order)) - np.repeat(np.cumsum(pair_sizes) - pair_sizes, pair_sizes)
    totals = np.bincount(pair, counts, minlength=len(pair_sizes)).astype(np.int64).reshape(len(batches), n_groups)
    largest = totals.max(axis=1)
    slots = np.array([
        cap if cap is not None and most <= cap else round_up(most, multiple)
        for most, cap in zip(largest, caps or [None] * len(batches), strict=True)
    ], dtype=np.int64)  # fmt: skip
    batch_start = np.concatenate([[0], np.cumsum(slots * n_groups)])
    pair_start = (batch_start[:-1, None] + np.arange(n_groups)[None, :] * slots[:, None]).ravel()
    # every constituent: its slot (pair start + rank inside the pair) and its jet's position
    idx = constituent_index(offsets, jets.counts, order)
    pair_totals = totals.ravel()
    const_pair = np.repeat(pair, counts)
    rank = np.arange(len(idx)) - np.repeat(np.cumsum(pair_totals) - pair_totals, pair_totals)
    flat = pair_start[const_pair] + rank
    particles = np.zeros((int(batch_start[-1]), jets.features.shape[1]), dtype=np.float32)
    particles[flat] = jets.features.take(idx, axis=0)
    segments = np.repeat(sizes.astype(np.int32), slots * n_groups)  # padding: B of its batch
    segments[flat] = np.repeat(position.astype(np.int32), counts)
    return PackedBatches(particles, segments, batch_start, np.concatenate([[0], np.cumsum(sizes * n_groups)]))


def pack_batch(
    jets: PackedJets, offsets: np.ndarray, batch: np.ndarray, n_groups: int, cap: int | None,
    multiple: int = SLOT_MULTIPLE,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Model inputs for the jets ``batch`` split into ``n_groups`` equal groups: ``cap`` slots
    per group if they fit, else the largest group total rounded up to ``multiple`` (1: exact)."""
    return pack_batches(jets, offsets, [batch], n_groups, [cap], multiple).batch(0, n_groups)


def batch_order(n_jets: int, batch_size: int, n_groups: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Jet indices of each batch (shuffled with ``rng`` if given); with several groups every
    batch holds a multiple of ``n_groups`` jets (at most n_groups - 1 jets are left out)."""
    order = rng.permutation(n_jets) if rng is not None else np.arange(n_jets)
    batches = [order[i : i + batch_size] for i in range(0, n_jets, batch_size)]
    if n_groups > 1:
        batches = [b[: len(b) // n_groups * n_groups] for b in batches]
    return [b for b in batches if len(b) >= n_groups]
