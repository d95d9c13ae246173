"""The shared pseudo-datasets of the sensitivity protocol: background realisations, nested signal.

Every method (histogram, autoencoder, PFN) runs on exactly these events:

* **Background realisation r**: every event e of the background sample enters with a Poisson
  multiplicity ``w_re ~ Poisson(lambda_e)``, drawn from its own seeded stream. With
  ``resampling: model_poisson`` (the default) ``lambda_e = mu_b / n_b`` for an event in m_jj
  bin b of the searched range, where n_b is the sample's count and mu_b the smooth background
  model fitted to it; outside the range ``lambda_e = 1``. Each bin's count is then a sum of
  independent Poissons, ``Poisson(mu_b)`` exactly: realisations scatter about the smooth model
  with Poisson spread and are independent of each other. The plain Poisson bootstrap
  (``resampling: poisson``, ``lambda_e = 1``) scatters about the *observed* counts instead, so
  a method comparing with a smooth model sees the sample's own fluctuation in every realisation
  on top of a fresh one (twice the Poisson variance about the model, tested): its nulls would
  not be calibrated.
* **Signal draw (r, N)**: the first N events of a seeded permutation of the signal pool, one
  permutation per realisation, so the N = 300 draw contains the N = 100 draw.

Both use the full luminosity of the background sample (its expected events per realisation
equal the sample's in the range), so a method never runs at another S/B than the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.baselines.background_fit import BackgroundFit, fit_background
from analysis.core.binning import bin_centres
from analysis.core.errors import ConfigError, InputError
from analysis.sensitivity.model import Protocol

_BACKGROUND_STREAM, _SIGNAL_STREAM = 0xB6, 0x516


def range_edges(hist_min: float, hist_max: float, width: float, low: float, high: float) -> np.ndarray:
    """Edges of the histogram bins (``hist_min..hist_max`` in ``width``) inside ``[low, high]``."""
    n = round((hist_max - hist_min) / width)
    edges = hist_min + width * np.arange(n + 1)
    inside = edges[(edges >= low - 1e-9 * width) & (edges <= high + 1e-9 * width)]
    if inside.size < 11:
        raise ConfigError(f"sensitivity.mjj_min/mjj_max: {low:g}-{high:g} GeV holds fewer than 10 histogram bins")
    return inside


@dataclass(frozen=True)
class Realizations:
    """Background multiplicities and signal draws of every realisation (drawn on demand)."""

    seed: int
    n_realizations: int
    n_signal: tuple[int, ...]
    resampling: str
    edges: np.ndarray  # m_jj bins of the searched range (GeV)
    background_mjj: np.ndarray  # the background sample's events
    pool_mjj: np.ndarray  # the signal pool's events
    rates: np.ndarray  # Poisson rate of every background event
    model: BackgroundFit  # smooth fit of the background sample over the range
    signal: str  # name of the injected signal, e.g. xgg_m900
    luminosity_pb: float | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        digest.update(repr((self.seed, self.n_realizations, self.n_signal, self.resampling, self.signal)).encode())
        for array in (self.edges, self.background_mjj, self.pool_mjj, self.rates):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        object.__setattr__(self, "fingerprint", digest.hexdigest()[:16])

    @property
    def background_fingerprint(self) -> str:
        """Hash of what the background-only (N = 0) realisations depend on: the same for every
        signal injected into the same events (their N = 0 results can be shared)."""
        digest = hashlib.sha256(repr((self.seed, self.n_realizations, self.resampling)).encode())
        for array in (self.edges, self.background_mjj, self.rates):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()[:16]

    @property
    def background_events(self) -> int:
        """Expected background events of one realisation (= the sample's, up to the model)."""
        return round(float(self.rates.sum()))

    @property
    def centres(self) -> np.ndarray:
        return bin_centres(self.edges)

    def weights(self, r: int) -> np.ndarray:
        """Multiplicity of every background event in realisation ``r`` (int64)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _BACKGROUND_STREAM, r]))
        return rng.poisson(self.rates)

    def signal_events(self, r: int, n: int) -> np.ndarray:
        """Pool indices of the N-event signal draw of realisation ``r`` (nested in N)."""
        if n > len(self.pool_mjj):
            raise ConfigError(f"sensitivity.n_signal: {n} events requested, the signal pool holds {len(self.pool_mjj)}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SIGNAL_STREAM, r]))
        return rng.permutation(len(self.pool_mjj))[:n]

    def background_spectrum(self, r: int) -> np.ndarray:
        return np.histogram(self.background_mjj, self.edges, weights=self.weights(r))[0].astype(float)

    def signal_spectrum(self, r: int, n: int) -> np.ndarray:
        return np.histogram(self.pool_mjj[self.signal_events(r, n)], self.edges)[0].astype(float)

    def spectra(self, n_realizations: int | None = None) -> np.ndarray:
        """m_jj counts of every (realisation, N): shape (R, len(n_signal), bins)."""
        n_real = self.n_realizations if n_realizations is None else n_realizations
        out = np.empty((n_real, len(self.n_signal), len(self.edges) - 1))
        for r in range(n_real):
            background = self.background_spectrum(r)
            for k, n in enumerate(self.n_signal):
                out[r, k] = background + self.signal_spectrum(r, n)
        return out

    def expected_background(self) -> np.ndarray:
        """The model's expectation per bin of the range (the realisations' mean)."""
        return np.bincount(self._bins(), weights=self.rates, minlength=len(self.edges) + 1)[1:-1]

    def signal_region(self) -> tuple[float, float]:
        """The central 68 % (16-84 %) m_jj interval of the signal pool."""
        lo, hi = np.quantile(self.pool_mjj, [0.16, 0.84])
        return float(lo), float(hi)

    def s_over_b(self) -> list[float]:
        """Injected events in the signal region over expected background events there, per N."""
        lo, hi = self.signal_region()
        inside = (self.background_mjj >= lo) & (self.background_mjj < hi)
        background = float(self.rates[inside].sum())
        signal_share = float(np.mean((self.pool_mjj >= lo) & (self.pool_mjj < hi)))
        return [n * signal_share / background if background > 0 else float("inf") for n in self.n_signal]

    def protocol(self) -> Protocol:
        return Protocol(
            realizations=self.n_realizations, resampling=self.resampling, n_signal=list(self.n_signal),
            seed=self.seed, background_events=len(self.background_mjj),
            mjj_range_gev=(float(self.edges[0]), float(self.edges[-1])),
            signal_region_gev={self.signal: self.signal_region()}, luminosity_pb=self.luminosity_pb,
            background_model=self.model.to_dict(),
        )  # fmt: skip

    def _bins(self) -> np.ndarray:
        """0 below the range, 1..bins inside, bins + 1 above (np.digitize)."""
        return np.digitize(self.background_mjj, self.edges)


def build_realizations(
    background_mjj: np.ndarray, pool_mjj: np.ndarray, *, seed: int, n_realizations: int,
    n_signal: list[int], resampling: str, edges: np.ndarray, sqrt_s: float, signal: str,
    luminosity_pb: float | None = None,
) -> Realizations:  # fmt: skip
    """Fit the background model over ``edges`` and set every event's Poisson rate."""
    background_mjj = np.asarray(background_mjj, dtype=np.float64)
    pool_mjj = np.asarray(pool_mjj, dtype=np.float64)
    if not len(pool_mjj):
        raise InputError(f"{signal}: the signal pool is empty")
    if max(n_signal) > len(pool_mjj):
        raise ConfigError(f"sensitivity.n_signal: {max(n_signal)} events requested, the {signal} pool holds {len(pool_mjj)}")
    counts = np.histogram(background_mjj, edges)[0].astype(float)
    try:
        model = fit_background(counts, edges, sqrt_s)
    except ValueError as exc:
        raise InputError(f"background sample: {exc}") from None
    rates = np.ones(len(background_mjj))
    if resampling == "model_poisson":
        bins = np.digitize(background_mjj, edges)  # 1..n inside
        inside = (bins >= 1) & (bins < len(edges))
        expected = model.expected(bin_centres(edges))
        with np.errstate(divide="ignore", invalid="ignore"):
            per_event = np.where(counts > 0, expected / np.where(counts > 0, counts, 1.0), 0.0)
        rates[inside] = per_event[bins[inside] - 1]
    elif resampling != "poisson":
        raise ConfigError(f"sensitivity.resampling: {resampling!r} (model_poisson|poisson)")
    return Realizations(
        seed=seed, n_realizations=n_realizations, n_signal=tuple(int(n) for n in sorted(n_signal)),
        resampling=resampling, edges=np.asarray(edges, dtype=float), background_mjj=background_mjj,
        pool_mjj=pool_mjj, rates=rates, model=model, signal=signal, luminosity_pb=luminosity_pb,
    )  # fmt: skip


def signal_name(kind: str, mass: float | None, bin_index: int, process: str = "xgg") -> str:
    """``xgg_m900`` / ``wprime_m900`` for a resonance, ``gluon_pairs_bin2`` for gluon pairs."""
    if kind == "resonance":
        return process if mass is None else f"{process}_m{mass:g}"
    return f"{kind}_bin{bin_index}"


def luminosity(metadata: dict[str, dict[str, Any]], datasets: list[str], fraction: float = 1.0) -> float | None:
    """Integrated luminosity (pb^-1) of the background datasets: generated events / cross section."""
    try:
        values = [float(metadata[d]["n_generated"]) / float(metadata[d]["xsec_pb"]) for d in datasets]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return fraction * sum(values) if values else None


def from_config(cfg: Any, background_mjj: np.ndarray, pool_mjj: np.ndarray, *, kind: str, mass: float | None,
                luminosity_pb: float | None = None) -> Realizations:  # fmt: skip
    """The protocol's realisations of an analysis config (sections ``sensitivity``, ``histograms``)."""
    s, h = cfg.sensitivity, cfg.histograms
    edges = range_edges(h.mjj_min, h.mjj_max, h.mjj_bin_width, s.mjj_min, s.mjj_max)
    return build_realizations(
        background_mjj, pool_mjj, seed=cfg.seed, n_realizations=s.realizations, n_signal=list(s.n_signal),
        resampling=s.resampling, edges=edges, sqrt_s=cfg.generation.sqrt_s,
        signal=signal_name(kind, mass, cfg.injection.bin, cfg.injection.signal), luminosity_pb=luminosity_pb,
    )  # fmt: skip


def from_processed(cfg: Any, columns: dict[str, Any], metadata: dict[str, dict[str, Any]]) -> Realizations:
    """The realisations of a processing directory's events, with the processor's injection rules
    (:func:`analysis.events.injection.plan_injection`: background sample and signal pool)."""
    import awkward as ak

    from analysis.events.injection import plan_injection

    inj = cfg.injection
    if inj.kind == "none":
        raise ConfigError("injection.kind: none: the sensitivity protocol needs a signal to inject")
    plan = plan_injection(columns, metadata, inj.model_copy(update={"sizes": []}), cfg.histograms, cfg.seed)
    if plan.background is None or plan.pool is None:
        raise InputError(f"sensitivity: cannot inject {inj.kind}: {plan.note}")
    mass = inj.mass
    if inj.kind == "resonance":
        masses = {metadata[d].get("mass") for d in plan.pool_datasets}
        mass = float(masses.pop()) if len(masses) == 1 and None not in masses else inj.mass
    fraction = 1.0 - inj.pool_fraction if inj.kind == "gluon_pairs" else 1.0
    return from_config(
        cfg, ak.to_numpy(plan.background.mjj), ak.to_numpy(plan.pool.mjj), kind=inj.kind, mass=mass,
        luminosity_pb=luminosity(metadata, plan.background_datasets, fraction),
    )  # fmt: skip


def load_realizations(cfg: Any, process_dir: Any) -> Realizations:
    """The realisations of a ``process`` output directory (event and jet columns only)."""
    from analysis.pfn.scan import load_processed

    columns, metadata = load_processed(process_dir, constituents=False)
    return from_processed(cfg, columns, metadata)
