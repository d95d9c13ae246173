"""p-value map datasets for the autoencoders (the reference tool's layout).

A dataset directory holds::

    dataset_config.json        every parameter (and the meaning of a signal size)
    reference_backgrounds.npy  (toys, S, B) float32 |CWT| maps of the reference ensemble: the
                               background-only toys every cell's p-value is ranked against
    train_backgrounds.npy      (train, S, B) float32 -ln p maps of background-only toys
    test_backgrounds.npy       (test, S, B)
    test_signals_<size>.npy    (test, S, B) background + <size> signal events (0: background only)

A *signal size* is a number of signal events: the signal template (a toy signal definition,
or the xgg m_jj histogram) normalised to that integral and added to the background expectation
before the Poisson fluctuation, the same meaning as the event-level injection sizes.

Three sources: toy definitions (:func:`build_toy_dataset`), a processed ``histograms.root``
(:func:`build_dataset_from_histograms`) and the sensitivity protocol's realisations
(:func:`build_dataset_from_realizations`: the background expectation is the realisations' smooth
model over the searched range, and there are no test-signal arrays; the realisations' own
spectra are the test maps, scored by :func:`analysis.wavelets.autoencoders.ae_sensitivity`). The stored
reference lets any later spectrum be mapped exactly as the dataset's maps
(:meth:`Dataset.neg_log_p_maps`).

Every array has its own random stream (``SeedSequence(seed).spawn``: reference, train, test
backgrounds, then one per signal size), so a resumed build, which skips finished arrays, gives
the same arrays as an uninterrupted one. Arrays are written atomically; an existing directory
whose ``dataset_config.json`` differs is an error naming the first differing parameter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from analysis.core.atomic import check_complete, read_npy, write_json, write_npy
from analysis.core.binning import bin_centres
from analysis.core.errors import ConfigError, InputError
from analysis.toys.definitions import WaveletDef
from analysis.wavelets.pvalues import ModulusMaps, Reference, map_shape, pvalue_maps, toy_maps

if TYPE_CHECKING:
    from analysis.core.cluster import Cluster
    from analysis.core.config import AnalysisConfig
    from analysis.sensitivity.realizations import Realizations

CONFIG_FILE = "dataset_config.json"
REFERENCE_FILE = "reference_backgrounds.npy"
TRAIN_FILE = "train_backgrounds.npy"
TEST_FILE = "test_backgrounds.npy"
FORMAT_VERSION = 2  # 2: the reference ensemble's |CWT| maps are stored
NORMALISE_REALIZATIONS = True  # maps of the realisations see shapes only (see build_dataset_from_realizations)
SIZE_UNIT = (
    "signal events: the signal template normalised to this integral is added to the background "
    "expectation before the Poisson fluctuation (0: background only)"
)

# Bounds on a dataset's sizes, checked before anything is written (exit 2 naming the flag or
# parameter). A map is S x B float32 (48 x 64: 12 KiB); the reference tool used 10,000 toys,
# 25,000 training maps and 5,000 test maps per array (about 0.8 GB in all).
MAX_TOYS = 200_000  # 20x the reference; the build holds the toys twice (maps + per-cell sorted copy): 4.9 GB at 48x64
MAX_TRAIN = 500_000  # 20x the reference: 6.1 GB at 48x64
MAX_TEST = 200_000  # 40x the reference, per array: 2.5 GB at 48x64
MAX_SIGNAL_SIZES = 50  # each size is one more array of `test` maps
MAX_SIGNAL_SIZE = 1e12  # signal events per spectrum (the bound of a background's expected counts)
MAX_DATASET_BYTES = 16 * 2**30  # the largest of: the build's peak, the arrays on disk, a loaded dataset


def signal_file(size: float) -> str:
    """``test_signals_<size>.npy`` with the size written compactly (250, not 250.0)."""
    return f"test_signals_{size:g}.npy"


@dataclass(frozen=True)
class DatasetInputs:
    """What a dataset is built from: expectations per bin, the wavelet, and a description."""

    background: np.ndarray  # expected background counts per bin
    template: np.ndarray  # signal shape per bin, normalised to unit integral
    wavelet: WaveletDef
    edges: np.ndarray  # mass bin edges
    source: dict[str, Any] = field(default_factory=dict)  # where the inputs came from (JSON-able)


def _first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The key path of the first difference between two JSON-like values (None if equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:  # the parameters' own order
            where = f"{path}.{key}" if path else key
            if key not in old or key not in new:
                return where
            found = _first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else path or "<top level>"


def _lookup(data: Any, path: str) -> Any:
    for part in path.replace("[", ".").replace("]", "").split("."):
        try:
            data = data[int(part)] if isinstance(data, list) else data[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return "<absent>"
    return data


def dataset_parameters(
    inputs: DatasetInputs, *, toys: int, train: int, test: int, signal_sizes: list[float], seed: int,
    shape: tuple[int, int], normalise: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Every parameter of a dataset, as written to dataset_config.json (JSON-normalised)."""
    sizes = [float(s) for s in signal_sizes]
    params = {
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "toys": int(toys),
        "train": int(train),
        "test": int(test),
        "signal_sizes": sizes,
        "signal_size_unit": SIZE_UNIT,
        "map_shape": [int(v) for v in shape],
        "cwt_shape": [len(inputs.wavelet.scales), len(inputs.background)],
        "rebin": "mean of adjacent cells (scales x mass bins)",
        "map_values": "-ln p, p = (k+1)/(N+1), k = reference toys with |CWT| >= the cell's, N = toys",
        "normalised_total": float(np.sum(inputs.background)) if normalise else None,
        "normalisation": (
            "every spectrum (toys and tested spectra) scaled to normalised_total events before the CWT: the maps "
            "see shapes only" if normalise else "none: the maps see the spectra's normalisation too"
        ),
        "dtype": "float32",
        "wavelet": inputs.wavelet.model_dump(mode="json"),
        "mass_edges": [float(e) for e in inputs.edges],
        "background_expected": [float(v) for v in inputs.background],
        "signal_template": [float(v) for v in inputs.template],
        "source": inputs.source,
        "files": {
            "reference": REFERENCE_FILE,
            "train": TRAIN_FILE,
            "test_backgrounds": TEST_FILE,
            "test_signals": {f"{s:g}": signal_file(s) for s in sizes},
        },
        "streams": "SeedSequence(seed).spawn(3 + len(signal_sizes)): reference, train, test backgrounds, signal sizes in order",
    }
    return json.loads(json.dumps(params))


def check_signal_sizes(sizes: list[float], name: str = "signal sizes") -> list[float]:
    """Finite, non-negative (at most MAX_SIGNAL_SIZE), distinct sizes, at most MAX_SIGNAL_SIZES of
    them; a ConfigError names ``name`` (the flag or parameter) and the offending value."""
    sizes = [float(s) for s in sizes]
    for s in sizes:
        if not np.isfinite(s):
            raise ConfigError(f"{name}: {s!r} is not a finite number of signal events")
        if s < 0:
            raise ConfigError(f"{name}: {s:g} is negative (sizes are numbers of signal events, 0 for background only)")
        if s > MAX_SIGNAL_SIZE:
            raise ConfigError(f"{name}: {s:g} is more than the limit of {MAX_SIGNAL_SIZE:g} signal events")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"{name}: sizes must be distinct (got {', '.join(f'{s:g}' for s in sizes)})")
    if len(sizes) > MAX_SIGNAL_SIZES:
        raise ConfigError(f"{name}: {len(sizes)} sizes, more than the limit of {MAX_SIGNAL_SIZES}")
    return sizes


def check_count(name: str, value: int, limit: int) -> None:
    """1 <= value <= limit, else a ConfigError naming ``name`` (flag or parameter) and the bound."""
    if value < 1:
        raise ConfigError(f"{name} {value}: must be at least 1")
    if value > limit:
        raise ConfigError(f"{name} {value}: more than the limit of {limit}")


def plan_bytes(toys: int, train: int, test: int, n_sizes: int, shape: tuple[int, int]) -> int:
    """Bytes a dataset needs at once: the largest of the build's peak (the reference toys twice,
    as maps and sorted per cell, plus the largest array being built), the arrays on disk, and a
    loaded dataset (every array in memory, as `train-ae` and `pvalue-scan` read it)."""
    per_map = 4 * int(shape[0]) * int(shape[1])
    stored = toys + train + test * (1 + n_sizes)
    build = 2 * toys + max(train, test)
    return per_map * max(stored, build)


def check_plan(
    toys: int, train: int, test: int, signal_sizes: list[float], shape: tuple[int, int],
    names: dict[str, str] | None = None,
) -> None:  # fmt: skip
    """Every size bound of a dataset (ConfigError, exit 2): toys, train, test, the signal sizes and
    the memory plan (:func:`plan_bytes` at most MAX_DATASET_BYTES). ``names``: the flag or
    parameter to name for ``toys``, ``train``, ``test`` and ``signal_sizes``."""
    names = {"toys": "toys", "train": "train", "test": "test", "signal_sizes": "signal sizes", **(names or {})}
    check_count(names["toys"], toys, MAX_TOYS)
    check_count(names["train"], train, MAX_TRAIN)
    check_count(names["test"], test, MAX_TEST)
    check_signal_sizes(signal_sizes, names["signal_sizes"])
    need = plan_bytes(toys, train, test, len(signal_sizes), shape)
    if need > MAX_DATASET_BYTES:
        raise ConfigError(
            f"{names['toys']} {toys}, {names['train']} {train}, {names['test']} {test} x {1 + len(signal_sizes)} "
            f"arrays (test backgrounds and {len(signal_sizes)} signal sizes) of {shape[0]}x{shape[1]} float32 maps: "
            f"{need / 2**30:.1f} GiB, more than the limit of {MAX_DATASET_BYTES / 2**30:g} GiB; use fewer maps"
        )


def _valid_array(path: Path, shape: tuple[int, ...]) -> bool:
    """A finished array: it loads (no pickle) with the expected shape and dtype."""
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return array.shape == shape and array.dtype == np.float32


def check_existing(out_dir: Path, params: dict[str, Any]) -> None:
    """An existing dataset_config.json must equal ``params``; else name the differing parameter."""
    path = out_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable dataset config ({exc})") from None
    where = _first_difference(old, params)
    if where is None:
        return
    arrays = _dataset_arrays(out_dir)
    if not arrays:
        return  # a build that failed before its first array: nothing to protect, its config is replaced
    expected = _expected_arrays(old)
    unfinished = expected is not None and not expected <= {p.name for p in arrays}
    raise ConfigError(
        f"{path}: an existing {'unfinished ' if unfinished else ''}dataset with different parameters ({where}: "
        f"{_lookup(old, where)!r} there, {_lookup(params, where)!r} now); "
        f"{'rerun with its parameters to finish it, ' if unfinished else ''}use another --out or remove it"
    )


def _dataset_arrays(out_dir: Path) -> list[Path]:
    """The arrays of the dataset layout present in ``out_dir``."""
    return [
        p for p in sorted(out_dir.glob("*.npy"))
        if p.name in (REFERENCE_FILE, TRAIN_FILE, TEST_FILE) or p.name.startswith("test_signals_")
    ]  # fmt: skip


def _expected_arrays(config: Any) -> set[str] | None:
    """The array files a dataset config lists (None if it lists none readably)."""
    try:
        files = config["files"]
        return {files["reference"], files["train"], files["test_backgrounds"], *files["test_signals"].values()}
    except (KeyError, TypeError, AttributeError):
        return None


def _remove_dataset(out_dir: Path) -> None:
    """Delete a dataset's own files (its config and the arrays of its layout), nothing else."""
    for path in out_dir.glob("*.npy"):
        if path.name in (REFERENCE_FILE, TRAIN_FILE, TEST_FILE) or path.name.startswith("test_signals_"):
            path.unlink()
    (out_dir / CONFIG_FILE).unlink(missing_ok=True)


def build_dataset(
    out_dir: str | Path,
    inputs: DatasetInputs,
    *,
    toys: int,
    train: int,
    test: int,
    signal_sizes: list[float],
    seed: int,
    shape: tuple[int, int],
    normalise: bool = False,
    replace: bool = False,
    quiet: bool = False,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Build (or finish) a dataset directory; returns its parameters. Finished arrays are reused.
    ``normalise``: scale every spectrum to the background expectation's total before the CWT.
    ``replace``: a dataset with other parameters in ``out_dir`` is removed (its own files only)
    and rebuilt, instead of being an error. With a ``cluster``, each array after the reference
    ensemble (training maps, test maps, one per signal size) is one Dask task that writes it
    (each array has its own random stream, so the arrays do not depend on where they are made)."""
    out_dir = Path(out_dir)
    # every bound before anything is written (no sizes: a dataset without test signals, e.g. from realisations)
    signal_sizes = check_signal_sizes(signal_sizes)
    try:
        total = float(np.sum(inputs.background)) if normalise else None
        maps = ModulusMaps(inputs.wavelet, len(inputs.background), shape, total)
    except ValueError as exc:
        raise ConfigError(f"dataset shape: {exc}") from None
    check_plan(toys, train, test, signal_sizes, maps.shape)
    params = dataset_parameters(
        inputs, toys=toys, train=train, test=test, signal_sizes=signal_sizes, seed=seed, shape=maps.shape,
        normalise=normalise,
    )  # fmt: skip
    if replace:
        try:
            check_existing(out_dir, params)
        except (ConfigError, InputError):
            _remove_dataset(out_dir)
    check_existing(out_dir, params)
    write_json(out_dir / CONFIG_FILE, params)

    streams = np.random.SeedSequence(seed).spawn(3 + len(signal_sizes))
    background = np.asarray(inputs.background, dtype=float)
    jobs = [(TRAIN_FILE, background, train, streams[1]), (TEST_FILE, background, test, streams[2])]
    jobs += [
        (signal_file(s), background + s * np.asarray(inputs.template, dtype=float), test, streams[3 + i])
        for i, s in enumerate(signal_sizes)
    ]
    missing = [job for job in jobs if not _valid_array(out_dir / job[0], (job[2], *maps.shape))]
    stored = _valid_array(out_dir / REFERENCE_FILE, (toys, *maps.shape))
    if stored and not missing:
        return params
    total = (0 if stored else toys) + sum(job[2] for job in missing)
    with tqdm(total=total, desc="p-value maps", unit="map", disable=quiet) as bar:
        if stored:
            reference = Reference(read_npy(out_dir / REFERENCE_FILE))
        else:
            bar.set_postfix_str("reference")
            reference_maps = toy_maps(background, toys, np.random.default_rng(streams[0]), maps, bar.update)
            write_npy(out_dir / REFERENCE_FILE, reference_maps)
            reference = Reference(reference_maps)
        if cluster is not None:
            for (_, _, n, _), _ in cluster.map(write_pvalue_array, missing, shared=(out_dir, maps, reference)):
                bar.update(n)
            return params
        for name, expected, n, stream in missing:
            bar.set_postfix_str(name)
            array = pvalue_maps(expected, n, np.random.default_rng(stream), maps, reference, bar.update)
            write_npy(out_dir / name, array)
    return params


def write_pvalue_array(shared: tuple[Path, ModulusMaps, Reference], job: tuple[str, np.ndarray, int, Any]) -> str:
    """One array of -ln p maps, written atomically into the dataset directory (a cluster task)."""
    out_dir, maps, reference = shared
    name, expected, n, stream = job
    write_npy(out_dir / name, pvalue_maps(expected, n, np.random.default_rng(stream), maps, reference))
    return name


@dataclass(frozen=True)
class Dataset:
    """A dataset read back: parameters, reference ensemble, training maps, test backgrounds and
    test signals per size (none for a dataset built from realisations)."""

    config: dict[str, Any]
    reference: np.ndarray  # |CWT| maps of the reference toys (toys, S, B)
    train: np.ndarray
    test_backgrounds: np.ndarray
    signals: dict[float, np.ndarray]

    @property
    def scale(self) -> float:
        """ln(N+1): the largest -ln p; maps divided by it lie in (0, 1] for the autoencoders."""
        return float(np.log(self.config["toys"] + 1.0))

    @property
    def fingerprint(self) -> str:
        """Hash of the parameters: a model trained on this dataset records it."""
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def edges(self) -> np.ndarray:
        return np.asarray(self.config["mass_edges"], dtype=float)

    def neg_log_p_maps(self, spectra: np.ndarray) -> np.ndarray:
        """-ln p maps (n, S, B) of given spectra (n x bins): the dataset's wavelet, rebinning and
        reference ensemble, so they are exactly comparable with its stored maps."""
        spectra = np.atleast_2d(np.asarray(spectra, dtype=float))
        if spectra.shape[1] != len(self.edges) - 1:
            raise ValueError(f"spectra of {spectra.shape[1]} bins; the dataset's maps need {len(self.edges) - 1}")
        wavelet = WaveletDef.model_validate(self.config["wavelet"])
        maps = ModulusMaps(wavelet, spectra.shape[1], tuple(self.config["map_shape"]), self.config["normalised_total"])
        return Reference(self.reference).neg_log_p(maps(spectra))


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset directory (errors name the missing or malformed file)."""
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: not found (build the dataset with `build-dataset --out {path}`)")
    try:
        config = json.loads(cfg_path.read_text())
        sizes = [float(s) for s in config["signal_sizes"]]
        shape = tuple(config["map_shape"])
        version = config["format_version"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{cfg_path}: malformed dataset config ({exc})") from None
    if version != FORMAT_VERSION:
        raise InputError(f"{cfg_path}: dataset format {version}, expected {FORMAT_VERSION} (rebuild it with build-dataset)")

    def array(name: str, n: int) -> np.ndarray:
        file = path / name
        if not _valid_array(file, (n, *shape)):
            raise InputError(f"{file}: missing or not a float32 array of shape {(n, *shape)} (rerun build-dataset)")
        return read_npy(file)

    return Dataset(
        config=config,
        reference=array(REFERENCE_FILE, config["toys"]),
        train=array(TRAIN_FILE, config["train"]),
        test_backgrounds=array(TEST_FILE, config["test"]),
        signals={s: array(signal_file(s), config["test"]) for s in sizes},
    )


def toy_inputs(signal: Any, background: Any, wavelet: WaveletDef, ids: dict[str, int] | None = None) -> DatasetInputs:
    """Inputs from toy definitions: the background expectation and the unit-normalised signal."""
    from analysis.toys.spectra import background_counts, signal_counts

    expected = background_counts(background)
    template = signal_counts(signal, background.binning.centers)
    if not np.sum(template) > 0:
        raise ConfigError(f"signal id={signal.id}: no signal inside the background's mass range")
    source = {
        "kind": "toys",
        "signal": signal.model_dump(mode="json"),
        "background": background.model_dump(mode="json"),
        **({"ids": ids} if ids else {}),
    }
    return DatasetInputs(expected, template / np.sum(template), wavelet, background.binning.edges, source)


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def build_toy_dataset(
    config: Any, out_dir: str | Path, *, signal_id: int | None = None, bg_id: int | None = None,
    wavelet_id: int | None = None, toys: int | None = None, train: int | None = None, test: int | None = None,
    signal_sizes: list[float] | None = None, seed: int | None = None, quiet: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A dataset of toy spectra (definitions and ids from ``config.toys`` unless given)."""
    from analysis.toys.selection import toy_setup

    setup = toy_setup(config, signal_id=signal_id, bg_id=bg_id, wavelet_id=wavelet_id)
    ids = {"signal_id": setup.signal.id, "bg_id": setup.background.id, "wavelet_id": setup.wavelet.id}
    ds = config.dataset
    return build_dataset(
        out_dir, toy_inputs(setup.signal, setup.background, setup.wavelet, ids),
        toys=_pick(toys, ds.toys), train=_pick(train, ds.train), test=_pick(test, ds.test),
        signal_sizes=list(ds.signal_sizes if signal_sizes is None else signal_sizes),
        seed=_pick(seed, config.seed), shape=tuple(ds.shape), quiet=quiet,
    )  # fmt: skip


def read_histograms(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{ROOT key: (counts, edges)}`` of the datasets' m_jj spectra (uniform bins) of a
    processing directory's histograms.root; an interrupted `process` run is refused."""
    from analysis.events.histograms import dataset_key, read_spectra

    path = Path(path)
    check_complete(path.parent)
    spectra = read_spectra(path)
    out = {}
    for name in spectra.dataset_names:
        h = spectra.dataset(name)
        out[dataset_key(name)] = (np.asarray(h.values(), dtype=float), np.asarray(h.axes[0].edges, dtype=float))
    return out


def _choose(hists: dict[str, Any], given: str | None, process: str, path: Path) -> str:
    if given is not None:
        name = given if given in hists else f"mjj_{given}"
        if name not in hists:
            raise ConfigError(f"{path}: no histogram {given!r} (found: {', '.join(sorted(hists))})")
        return name
    matches = [n for n in hists if n.removeprefix("mjj_").startswith(process)]
    if len(matches) != 1:
        raise ConfigError(
            f"{path}: {'no' if not matches else 'several'} {process} histogram(s) {matches or ''} "
            f"(found: {', '.join(sorted(hists))}); name one with --{'background' if process == 'qcd' else 'signal'}-hist"
        )
    return matches[0]


def _wavelet(config: Any, wavelet_id: int | None) -> WaveletDef:
    """The config's wavelet entry (``toys.wavelets``, ``toys.wavelet_id`` unless given)."""
    from analysis.toys.definitions import load_entries, select

    path = config.resolve(config.toys.wavelets)
    return select(load_entries("wavelets", path), _pick(wavelet_id, config.toys.wavelet_id), "wavelet", str(path))


def _check_shape(wavelet: WaveletDef, n_bins: int, shape: list[int], low: float, high: float) -> tuple[int, int]:
    """``dataset.histogram_shape`` must divide the CWT of the searched range (a ConfigError naming both)."""
    try:
        return map_shape(wavelet, n_bins, tuple(shape))
    except ValueError as exc:
        raise ConfigError(f"dataset.histogram_shape: {exc} ({n_bins} bins of {low:g}-{high:g} GeV)") from None


def build_dataset_from_histograms(
    histograms: str | Path, out_dir: str | Path, config: Any, *, background_hist: str | None = None,
    signal_hist: str | None = None, wavelet_id: int | None = None, toys: int | None = None,
    train: int | None = None, test: int | None = None, signal_sizes: list[float] | None = None,
    seed: int | None = None, quiet: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A dataset of processed spectra over the searched range (``sensitivity.mjj_min..mjj_max``,
    where the background model describes the spectrum): background toys from a smooth fit
    (dijet function x turn-on, :mod:`analysis.baselines.background_fit`) to the background m_jj histogram,
    signals from the xgg histogram normalised to each size (default sizes: 0 and
    ``injection.sizes``)."""
    from analysis.baselines.background_fit import fit_background

    path = Path(histograms)
    hists = read_histograms(path)
    bg_name = _choose(hists, background_hist, "qcd", path)
    sig_name = _choose(hists, signal_hist, "xgg", path)
    counts, edges = hists[bg_name]
    signal, _ = hists[sig_name]  # one binning: read_spectra checks it
    low, high = config.sensitivity.mjj_min, config.sensitivity.mjj_max
    keep = np.nonzero((edges[:-1] >= low - 1e-9) & (edges[1:] <= high + 1e-9))[0]
    if keep.size < 10:
        raise InputError(f"{path}: {bg_name} has fewer than 10 bins inside sensitivity.mjj_min..mjj_max ({low:g}-{high:g} GeV)")
    counts, signal, edges = counts[keep], signal[keep], edges[keep[0] : keep[-1] + 2]
    if not np.sum(np.clip(signal, 0, None)) > 0:
        raise InputError(f"{path}: {sig_name} is empty in {edges[0]:g}-{edges[-1]:g} GeV")
    wavelet = _wavelet(config, wavelet_id)
    _check_shape(wavelet, len(counts), config.dataset.histogram_shape, edges[0], edges[-1])
    try:
        fit = fit_background(counts, edges, config.generation.sqrt_s)
    except ValueError as exc:
        raise InputError(f"{path}: {bg_name}: {exc}") from None
    expected = fit.expected(bin_centres(edges))
    template = np.clip(signal, 0, None) / np.sum(np.clip(signal, 0, None))
    source = {
        "kind": "histograms", "file": str(path.resolve()), "background_hist": bg_name, "signal_hist": sig_name,
        "background_events": float(counts.sum()), "signal_events_in_histogram": float(signal.sum()),
        "mjj_range_gev": [float(edges[0]), float(edges[-1])], "background_fit": fit.to_dict(),
    }  # fmt: skip
    ds = config.dataset
    sizes = signal_sizes if signal_sizes is not None else [0.0, *[float(k) for k in config.injection.sizes]]
    return build_dataset(
        out_dir, DatasetInputs(expected, template, wavelet, edges, source),
        toys=_pick(toys, ds.toys), train=_pick(train, ds.train), test=_pick(test, ds.test),
        signal_sizes=list(sizes), seed=_pick(seed, config.seed), shape=tuple(ds.histogram_shape), quiet=quiet,
    )  # fmt: skip


def build_dataset_from_realizations(
    real: Realizations, out_dir: str | Path, cfg: AnalysisConfig, quiet: bool = False, normalise: bool | None = None,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """A dataset whose background expectation is the realisations' smooth model over the searched
    range (:meth:`Realizations.expected_background`, the mean every realisation scatters about
    with Poisson spread), so the reference toys, training maps and test-background maps are
    distributed exactly as a background-only realisation's map. No test-signal arrays: the
    realisations' own spectra (background + the nested signal draws) are the test maps
    (:func:`analysis.wavelets.autoencoders.ae_sensitivity`). Sizes, seed and map shape from ``cfg.dataset``
    (``histogram_shape``), ``cfg.seed``; the wavelet ``cfg.toys.wavelet_id``.

    ``normalise`` (default ``NORMALISE_REALIZATIONS``, True): every spectrum is scaled to the
    model's total before the CWT, so the maps test the spectrum's *shape*. Without it the
    background normalisation is known exactly, and at the largest scales (a wavelet as wide as
    the range) the maps measure the total count: an excess anywhere lifts them, a counting test
    that the fitted baselines (normalisation free) do not get. A dataset of other parameters
    in ``out_dir`` (a previous run's) is replaced: it is a cache of the model, rebuilt in seconds."""
    edges = np.asarray(real.edges, dtype=float)
    wavelet = _wavelet(cfg, None)
    ds = cfg.dataset
    _check_shape(wavelet, len(edges) - 1, ds.histogram_shape, edges[0], edges[-1])
    expected = np.asarray(real.expected_background(), dtype=float)
    pool = np.histogram(real.pool_mjj, edges)[0].astype(float)
    template = pool / pool.sum() if pool.sum() > 0 else pool
    sample = np.histogram(real.background_mjj, edges)[0].astype(float)
    source = {
        "kind": "realizations", "signal": real.signal, "resampling": real.resampling,
        "mjj_range_gev": [float(edges[0]), float(edges[-1])],
        "background_events": float(expected.sum()), "sample_events_in_range": float(sample.sum()),
        "background_fit": real.model.to_dict(),
        "signal_template": "the signal pool's m_jj histogram over the range, normalised (information only)",
    }  # fmt: skip
    return build_dataset(
        out_dir, DatasetInputs(expected, template, wavelet, edges, source), toys=ds.toys, train=ds.train,
        test=ds.test, signal_sizes=[], seed=cfg.seed, shape=tuple(ds.histogram_shape),
        normalise=NORMALISE_REALIZATIONS if normalise is None else normalise, replace=True, quiet=quiet,
        cluster=cluster,
    )  # fmt: skip
