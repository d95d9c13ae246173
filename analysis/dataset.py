"""p-value map datasets for the autoencoders (the reference tool's layout).

A dataset directory holds::

    dataset_config.json        every parameter (and the meaning of a signal size)
    train_backgrounds.npy      (train, S, B) float32 -ln p maps of background-only toys
    test_backgrounds.npy       (test, S, B)
    test_signals_<size>.npy    (test, S, B) background + <size> signal events (0: background only)

A *signal size* is a number of signal events: the signal template (a toy signal definition,
or the xgg m_jj histogram) normalised to that integral and added to the background expectation
before the Poisson fluctuation, the same meaning as the event-level injection sizes.

Every array has its own random stream (``SeedSequence(seed).spawn``: reference, train, test
backgrounds, then one per signal size), so a resumed build, which skips finished arrays, gives
the same arrays as an uninterrupted one. Arrays are written atomically; an existing directory
whose ``dataset_config.json`` differs is an error naming the first differing parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from analysis.atomic import read_npy, write_json, write_npy
from analysis.definitions import WaveletDef
from analysis.errors import ConfigError, InputError
from analysis.pvalues import ModulusMaps, build_reference, pvalue_maps

CONFIG_FILE = "dataset_config.json"
TRAIN_FILE = "train_backgrounds.npy"
TEST_FILE = "test_backgrounds.npy"
FORMAT_VERSION = 1
SIZE_UNIT = (
    "signal events: the signal template normalised to this integral is added to the background "
    "expectation before the Poisson fluctuation (0: background only)"
)


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
    shape: tuple[int, int],
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
        "dtype": "float32",
        "wavelet": inputs.wavelet.model_dump(mode="json"),
        "mass_edges": [float(e) for e in inputs.edges],
        "background_expected": [float(v) for v in inputs.background],
        "signal_template": [float(v) for v in inputs.template],
        "source": inputs.source,
        "files": {"train": TRAIN_FILE, "test_backgrounds": TEST_FILE, "test_signals": {f"{s:g}": signal_file(s) for s in sizes}},
        "streams": "SeedSequence(seed).spawn(3 + len(signal_sizes)): reference, train, test backgrounds, signal sizes in order",
    }
    return json.loads(json.dumps(params))


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
    if where is not None:
        raise ConfigError(
            f"{path}: an existing dataset with different parameters ({where}: {_lookup(old, where)!r} there, "
            f"{_lookup(params, where)!r} now); use another --out or remove it"
        )


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
    quiet: bool = False,
) -> dict[str, Any]:
    """Build (or finish) a dataset directory; returns its parameters. Finished arrays are reused."""
    out_dir = Path(out_dir)
    if any(s < 0 for s in signal_sizes) or len(set(signal_sizes)) != len(signal_sizes):
        raise ConfigError(f"signal sizes must be distinct and non-negative (got {signal_sizes})")
    if min(toys, train, test) < 1:
        raise ConfigError(f"toys, train and test must be positive (got {toys}, {train}, {test})")
    try:
        maps = ModulusMaps(inputs.wavelet, len(inputs.background), shape)
    except ValueError as exc:
        raise ConfigError(f"dataset shape: {exc}") from None
    params = dataset_parameters(
        inputs, toys=toys, train=train, test=test, signal_sizes=signal_sizes, seed=seed, shape=maps.shape
    )
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
    if not missing:
        return params
    total = toys + sum(job[2] for job in missing)
    with tqdm(total=total, desc="p-value maps", unit="map", disable=quiet) as bar:
        bar.set_postfix_str("reference")
        reference = build_reference(background, toys, np.random.default_rng(streams[0]), maps, bar.update)
        for name, expected, n, stream in missing:
            bar.set_postfix_str(name)
            array = pvalue_maps(expected, n, np.random.default_rng(stream), maps, reference, bar.update)
            write_npy(out_dir / name, array)
    return params


@dataclass(frozen=True)
class Dataset:
    """A dataset read back: parameters, training maps, test backgrounds and test signals per size."""

    config: dict[str, Any]
    train: np.ndarray
    test_backgrounds: np.ndarray
    signals: dict[float, np.ndarray]

    @property
    def scale(self) -> float:
        """ln(N+1): the largest -ln p; maps divided by it lie in (0, 1] for the autoencoders."""
        return float(np.log(self.config["toys"] + 1.0))


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
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{cfg_path}: malformed dataset config ({exc})") from None

    def array(name: str, n: int) -> np.ndarray:
        file = path / name
        if not _valid_array(file, (n, *shape)):
            raise InputError(f"{file}: missing or not a float32 array of shape {(n, *shape)} (rerun build-dataset)")
        return read_npy(file)

    return Dataset(
        config=config,
        train=array(TRAIN_FILE, config["train"]),
        test_backgrounds=array(TEST_FILE, config["test"]),
        signals={s: array(signal_file(s), config["test"]) for s in sizes},
    )


def toy_inputs(signal: Any, background: Any, wavelet: WaveletDef, ids: dict[str, int] | None = None) -> DatasetInputs:
    """Inputs from toy definitions: the background expectation and the unit-normalised signal."""
    from analysis.spectra import background_counts, signal_counts

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
    from analysis.toys import toy_setup

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
    """``{name: (counts, edges)}`` of the ``mjj_<dataset>`` TH1s of a histograms.root."""
    import uproot

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: histograms file not found")
    try:
        with uproot.open(path) as fh:
            names = [k.split(";")[0] for k, cls in fh.classnames().items() if cls.startswith("TH1")]
            out = {}
            for name in names:
                if name.startswith("mjj_") and not name.startswith("mjj_bins"):
                    counts, edges = fh[name].to_numpy()
                    out[name] = (np.asarray(counts, dtype=float), np.asarray(edges, dtype=float))
    except Exception as exc:  # uproot raises many types for damaged files
        raise InputError(f"{path}: cannot read histograms ({type(exc).__name__}: {exc})") from None
    if not out:
        raise InputError(f"{path}: no mjj_<dataset> histograms")
    return out


def _choose(hists: dict[str, Any], given: str | None, process: str, path: Path) -> str:
    if given is not None:
        name = given if given in hists else f"mjj_{given}"
        if name not in hists:
            raise ConfigError(f"{path}: no histogram {given!r} (found: {', '.join(sorted(hists))})")
        return name
    matches = [n for n in hists if n.removeprefix("mjj_").startswith(process) and "inject" not in n]
    if len(matches) != 1:
        raise ConfigError(
            f"{path}: {'no' if not matches else 'several'} {process} histogram(s) {matches or ''} "
            f"(found: {', '.join(sorted(hists))}); name one with --{'background' if process == 'qcd' else 'signal'}-hist"
        )
    return matches[0]


def build_dataset_from_histograms(
    histograms: str | Path, out_dir: str | Path, config: Any, *, background_hist: str | None = None,
    signal_hist: str | None = None, wavelet_id: int | None = None, toys: int | None = None,
    train: int | None = None, test: int | None = None, signal_sizes: list[float] | None = None,
    seed: int | None = None, quiet: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A dataset of processed spectra: background toys from a smooth fit (dijet function x
    turn-on, :mod:`analysis.background_fit`) to the background m_jj histogram, signals from
    the xgg histogram normalised to each size (default sizes: 0 and ``injection.sizes``)."""
    from analysis.background_fit import fit_background
    from analysis.definitions import load_entries, select

    path = Path(histograms)
    hists = read_histograms(path)
    bg_name = _choose(hists, background_hist, "qcd", path)
    sig_name = _choose(hists, signal_hist, "xgg", path)
    counts, edges = hists[bg_name]
    signal, sig_edges = hists[sig_name]
    if not np.allclose(edges, sig_edges):
        raise InputError(f"{path}: {bg_name} and {sig_name} have different binnings")
    if not np.sum(np.clip(signal, 0, None)) > 0:
        raise InputError(f"{path}: {sig_name} is empty")
    try:
        fit = fit_background(counts, edges, config.generation.sqrt_s)
    except ValueError as exc:
        raise InputError(f"{path}: {bg_name}: {exc}") from None
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = fit.expected(centres)
    template = np.clip(signal, 0, None) / np.sum(np.clip(signal, 0, None))
    wavelets_file = config.resolve(config.toys.wavelets)
    wavelet = select(load_entries("wavelets", wavelets_file), _pick(wavelet_id, config.toys.wavelet_id), "wavelet", str(wavelets_file))
    source = {
        "kind": "histograms", "file": str(path.resolve()), "background_hist": bg_name, "signal_hist": sig_name,
        "background_events": float(counts.sum()), "signal_events_in_histogram": float(signal.sum()),
        "background_fit": fit.to_dict(),
    }  # fmt: skip
    ds = config.dataset
    sizes = signal_sizes if signal_sizes is not None else [0.0, *[float(k) for k in config.injection.sizes]]
    return build_dataset(
        out_dir, DatasetInputs(expected, template, wavelet, edges, source),
        toys=_pick(toys, ds.toys), train=_pick(train, ds.train), test=_pick(test, ds.test),
        signal_sizes=list(sizes), seed=_pick(seed, config.seed), shape=tuple(ds.histogram_shape), quiet=quiet,
    )  # fmt: skip
