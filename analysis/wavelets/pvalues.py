"""Local p-value maps: |CWT| of a spectrum, rebinned, ranked against background-only toys.

For every cell (scale, mass block) of a map the local p-value is the empirical survival
function of a background-only reference ensemble of N toys, with the (k+1)/(N+1) convention
(k = reference toys at least as large as the cell), so p is never 0 and, for a background-only
spectrum independent of the ensemble, P(p <= a) = floor(a (N+1)) / (N+1) exactly. Maps hold
-ln p (0 for the most background-like cell, at most ln(N+1)).

The reference is sorted per cell once; the count k of a cell is one ``np.searchsorted`` per
cell over a whole chunk of maps (exact: no grid, no interpolation). Map values are float32
(the CWT runs in single precision, ~1e-4 relative); p-values are exact for these values. Spectra go through the CWT
in chunks, so 10,000 x 48 x 512 complex coefficients never sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analysis.toys.definitions import WaveletDef
from analysis.wavelets.cwt import CwtPlan

CHUNK = 256  # spectra per CWT chunk (fixed: the chunking must not change a resumed build's bits)
Progress = Callable[[int], object]


def map_shape(wavelet: WaveletDef, n_bins: int, shape: tuple[int, int]) -> tuple[int, int]:
    """Validate the rebin target against the CWT's (scales x bins); return it as ints."""
    ts, tb = (int(v) for v in shape)
    s = len(wavelet.scales)
    if ts < 1 or tb < 1 or s % ts or n_bins % tb:
        raise ValueError(f"map shape {ts}x{tb} must divide the CWT shape {s}x{n_bins} (scales x bins)")
    return ts, tb


class ModulusMaps:
    """Rebinned |CWT| maps (n x shape) of stacks of spectra, computed in chunks.

    ``total``: if given, every spectrum is scaled to this many events before the transform, so
    the maps see the spectrum's shape only (not its normalisation)."""

    def __init__(self, wavelet: WaveletDef, n_bins: int, shape: tuple[int, int], total: float | None = None) -> None:
        self.shape = map_shape(wavelet, n_bins, shape)
        self.plan = CwtPlan(wavelet, n_bins)
        self.bin_factor = n_bins // self.shape[1]
        self.scale_factor = len(wavelet.scales) // self.shape[0]
        self.total = None if total is None else float(total)

    def __call__(self, spectra: np.ndarray) -> np.ndarray:
        """Maps of ``spectra`` (n x bins) -> (n, scales', bins'), float32; scales are averaged too."""
        spectra = np.asarray(spectra, dtype=float)
        if self.total is not None:
            sums = spectra.sum(axis=1, keepdims=True)
            spectra = spectra * (self.total / np.where(sums > 0, sums, 1.0))
        out = np.empty((len(spectra), *self.shape), dtype=np.float32)
        for start in range(0, len(spectra), CHUNK):
            mod = self.plan.modulus(spectra[start : start + CHUNK], self.bin_factor)
            n = len(mod)
            out[start : start + n] = mod.reshape(n, self.shape[0], self.scale_factor, self.shape[1]).mean(axis=2)
        return out


class Reference:
    """A background-only ensemble sorted per cell: the exact survival function of every cell."""

    def __init__(self, maps: np.ndarray) -> None:
        maps = np.asarray(maps, dtype=np.float32)
        self.shape = maps.shape[1:]
        self.n = len(maps)
        # (cells, N), each row sorted ascending and contiguous for searchsorted
        self.sorted = np.ascontiguousarray(np.sort(maps.reshape(self.n, -1).T, axis=1))

    def counts(self, maps: np.ndarray) -> np.ndarray:
        """k per cell: the number of reference toys >= the map's value (int64, maps' shape)."""
        maps = np.asarray(maps, dtype=np.float32)
        if maps.shape[1:] != self.shape:
            raise ValueError(f"maps of shape {maps.shape[1:]} do not match the reference's {self.shape}")
        values = maps.reshape(len(maps), -1).T  # (cells, maps)
        # queries sorted per cell: searchsorted then walks each reference row forwards (cache-friendly)
        order = np.argsort(values, axis=1)
        queries = np.take_along_axis(values, order, axis=1)
        below_sorted = np.empty(queries.shape, dtype=np.int64)
        for cell, (ref, row) in enumerate(zip(self.sorted, queries, strict=True)):
            below_sorted[cell] = np.searchsorted(ref, row, side="left")  # reference toys < value
        below = np.empty_like(below_sorted)
        np.put_along_axis(below, order, below_sorted, axis=1)
        return (self.n - below).T.reshape(maps.shape)

    def p_values(self, maps: np.ndarray) -> np.ndarray:
        """(k+1)/(N+1) per cell."""
        return (self.counts(maps) + 1.0) / (self.n + 1.0)

    def neg_log_p(self, maps: np.ndarray) -> np.ndarray:
        """-ln p per cell, float32 (the stored map)."""
        return (-np.log(self.p_values(maps))).astype(np.float32)


def draw_spectra(expected: np.ndarray, n: int, rng: np.random.Generator, chunk: int = CHUNK):
    """Yield Poisson toys of ``expected`` in chunks; the draws do not depend on ``chunk``."""
    for start in range(0, n, chunk):
        yield rng.poisson(expected, size=(min(chunk, n - start), len(expected))).astype(float)


def toy_maps(
    expected: np.ndarray, n_toys: int, rng: np.random.Generator, maps: ModulusMaps, progress: Progress | None = None
) -> np.ndarray:
    """|CWT| maps (n_toys x shape, float32) of Poisson toys of ``expected`` (a reference ensemble)."""
    out = np.empty((n_toys, *maps.shape), dtype=np.float32)
    start = 0
    for spectra in draw_spectra(expected, n_toys, rng):
        out[start : start + len(spectra)] = maps(spectra)
        start += len(spectra)
        if progress:
            progress(len(spectra))
    return out


def build_reference(
    expected: np.ndarray, n_toys: int, rng: np.random.Generator, maps: ModulusMaps, progress: Progress | None = None
) -> Reference:
    """Reference ensemble of ``n_toys`` Poisson toys of the background expectation."""
    return Reference(toy_maps(expected, n_toys, rng, maps, progress))


def pvalue_maps(
    expected: np.ndarray,
    n: int,
    rng: np.random.Generator,
    maps: ModulusMaps,
    reference: Reference,
    progress: Progress | None = None,
) -> np.ndarray:
    """-ln p maps (n x shape, float32) of ``n`` Poisson toys of ``expected``."""
    out = np.empty((n, *maps.shape), dtype=np.float32)
    start = 0
    for spectra in draw_spectra(expected, n, rng):
        out[start : start + len(spectra)] = reference.neg_log_p(maps(spectra))
        start += len(spectra)
        if progress:
            progress(len(spectra))
    return out
