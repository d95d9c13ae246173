"""The processing stage's m_jj spectra, and the one writer and one reader of ``histograms.root``.

In memory the spectra are ``hist`` histograms with category axes, per binning (``mjj``: the
uniform bins of ``histograms:``; ``mjj_bins``: the analysis bins):

- ``datasets[binning]``: axes (``dataset``, ``mjj``), one row per fileset dataset;
- ``injection[binning]``: axes (``component``: background / signal / injected, ``size``: the
  injected signal events, ``mjj``); absent without an injection. The background row is the
  same for every size; injected = background + signal, bin contents and variances.

Names exist only in the file. :func:`write_spectra` makes them and :func:`read_spectra` parses
them back (this module is the whole naming contract):

  mjj_<dataset>            a dataset's spectrum (the dataset's file-safe name)
  mjj_background           the injection's background sample
  mjj_signal_<kind>_<k>    the k signal events drawn (kind: resonance, gluon_pairs)
  mjj_injected_<kind>_<k>  background + signal
  mjj_bins_...             each of the above in the analysis bins
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import hist
import numpy as np

from analysis.core.errors import ConfigError, InputError

BINNINGS = ("mjj", "mjj_bins")  # uniform bins, analysis bins: the names' prefixes
COMPONENTS = ("background", "signal", "injected")  # the injection's component axis
_INJECTED = re.compile(r"^(?P<component>signal|injected)_(?P<kind>[A-Za-z_]+)_(?P<size>\d+)$")


@dataclass
class Spectra:
    """The processed m_jj spectra: datasets, and the injection when there is one."""

    datasets: dict[str, hist.Hist]  # binning -> Hist(dataset, mjj)
    injection: dict[str, hist.Hist] = field(default_factory=dict)  # binning -> Hist(component, size, mjj)
    kind: str | None = None  # the injection kind

    @property
    def dataset_names(self) -> list[str]:
        return list(self.datasets["mjj"].axes["dataset"])

    @property
    def sizes(self) -> list[int]:
        return list(self.injection["mjj"].axes["size"]) if self.injection else []

    def dataset(self, name: str, binning: str = "mjj") -> hist.Hist:
        """One dataset's 1D spectrum."""
        return self.datasets[binning][{"dataset": name}]

    def injected(self, component: str, size: int, binning: str = "mjj") -> hist.Hist:
        """The 1D ``component`` (background, signal, injected) spectrum of injection size ``size``."""
        return self.injection[binning][{"component": component, "size": hist.loc(size)}]

    def named(self) -> dict[str, hist.Hist]:
        """``{ROOT key: 1D histogram}``: the names of the file, made here and nowhere else."""
        out = {}
        for binning in BINNINGS:
            for name in self.dataset_names:
                out[dataset_key(name, binning)] = self.dataset(name, binning)
        for binning in BINNINGS if self.sizes else ():
            out[f"{binning}_background"] = self.injected("background", self.sizes[0], binning)
            for size in self.sizes:
                for component in ("signal", "injected"):
                    out[f"{binning}_{component}_{self.kind}_{size}"] = self.injected(component, size, binning)
        return out


def dataset_key(dataset: str, binning: str = "mjj") -> str:
    """The ROOT key of a dataset's spectrum (``dataset`` is its file-safe name)."""
    return f"{binning}_{dataset}"


def dataset_spectra(per_dataset: Mapping[str, hist.Hist]) -> hist.Hist:
    """Stack 1D spectra of one binning into a Hist(dataset, mjj), in the given order."""
    names = list(per_dataset)
    template = next(iter(per_dataset.values()))
    out = hist.Hist(hist.axis.StrCategory(names, name="dataset"), *template.axes, storage=hist.storage.Weight())
    for i, name in enumerate(names):
        out.view(flow=True)[i] = per_dataset[name].view(flow=True)
    return out


def injection_spectra(background: hist.Hist, signals: Mapping[int, hist.Hist]) -> hist.Hist:
    """Hist(component, size, mjj) from the background spectrum and the signal spectrum per size."""
    sizes = list(signals)
    out = hist.Hist(
        hist.axis.StrCategory(list(COMPONENTS), name="component"), hist.axis.IntCategory(sizes, name="size"),
        *background.axes, storage=hist.storage.Weight(),
    )  # fmt: skip
    view = out.view(flow=True)
    for j, size in enumerate(sizes):
        view[0, j] = background.view(flow=True)
        view[1, j] = signals[size].view(flow=True)
        view[2, j] = (background + signals[size]).view(flow=True)
    return out


def check_names(datasets: list[str], spectra: Spectra) -> None:
    """Dataset names must not read back as the injection's histograms (a ConfigError naming it)."""
    if not spectra.injection:
        return
    for name in datasets:
        if name == "background" or _INJECTED.match(name):
            raise ConfigError(f"dataset name {name!r} clashes with the injected histograms; rename the dataset")


def write_spectra(path: Path, spectra: Spectra) -> None:
    """Write every spectrum as a TH1 under its name (uproot)."""
    import uproot

    check_names(spectra.dataset_names, spectra)
    with uproot.recreate(path) as fh:
        for name, h in spectra.named().items():
            fh[name] = h


def read_spectra(path: str | Path) -> Spectra:
    """The spectra of a ``histograms.root``, as written by :func:`write_spectra`.

    Unreadable files, non-finite contents or invalid binnings are an InputError naming the file
    and histogram."""
    import uproot

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: histograms file not found")
    try:
        with uproot.open(path) as fh:
            hists = {k.split(";")[0]: _named_axis(fh[k].to_hist()) for k, cls in fh.classnames().items() if cls.startswith("TH1")}
    except Exception as exc:  # uproot raises many types for damaged files
        raise InputError(f"{path}: cannot read histograms ({type(exc).__name__}: {exc})") from None
    for name, h in hists.items():
        edges = h.axes[0].edges
        if not np.all(np.isfinite(h.values(flow=True))):
            raise InputError(f"{path}: histogram {name} has NaN or infinite bin contents")
        if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise InputError(f"{path}: histogram {name} has no valid binning (edges must be finite and increasing)")
    by_binning: dict[str, dict[str, hist.Hist]] = {b: {} for b in BINNINGS}
    for name, h in hists.items():
        binning = "mjj_bins" if name.startswith("mjj_bins_") else "mjj"
        if name.startswith(f"{binning}_"):
            by_binning[binning][name.removeprefix(f"{binning}_")] = h
    if not by_binning["mjj"]:
        raise InputError(f"{path}: no mjj_<dataset> histograms")
    for binning, named in by_binning.items():
        _check_one_binning(path, binning, named)
    return _parse(by_binning)


def _check_one_binning(path: Path, binning: str, hists: dict[str, hist.Hist]) -> None:
    """The spectra of one binning share its bins: an InputError naming two that differ and their bins."""

    def bins(edges: np.ndarray) -> str:
        return f"{len(edges) - 1} bins of {edges[0]:g}-{edges[-1]:g} GeV"

    (first, reference), *others = hists.items() if hists else [(None, None)]
    for name, h in others:
        a, b = reference.axes[0].edges, h.axes[0].edges
        if len(a) != len(b) or not np.allclose(a, b):
            raise InputError(
                f"{path}: {dataset_key(first, binning)} ({bins(a)}) and {dataset_key(name, binning)} ({bins(b)}) "
                "have different binnings"
            )


def _named_axis(h: hist.Hist) -> hist.Hist:
    """The file's histogram with its axis named ``mjj`` again (ROOT keeps no axis names)."""
    axis = h.axes[0]
    if isinstance(axis, hist.axis.Regular):
        new = hist.axis.Regular(len(axis), axis.edges[0], axis.edges[-1], name="mjj", label="m_jj [GeV]")
    else:
        new = hist.axis.Variable(axis.edges, name="mjj", label="m_jj [GeV]")
    out = hist.Hist(new, storage=hist.storage.Weight())
    values = h.values(flow=True)
    variances = h.variances(flow=True)
    out.view(flow=True)["value"] = values
    out.view(flow=True)["variance"] = values if variances is None else variances  # no Sumw2: Poisson
    return out


def _parse(by_binning: dict[str, dict[str, hist.Hist]]) -> Spectra:
    injected = "background" in by_binning["mjj"]
    datasets, injection, kind = {}, {}, None
    for binning, hists in by_binning.items():
        signals: dict[int, hist.Hist] = {}
        names = {}
        for name, h in hists.items():
            match = _INJECTED.match(name) if injected else None
            if match and match["component"] == "signal":
                signals[int(match["size"])], kind = h, match["kind"]
            elif not match and not (injected and name == "background"):
                names[name] = h
        if names:
            datasets[binning] = dataset_spectra(names)
        if injected and "background" in hists:
            injection[binning] = injection_spectra(hists["background"], dict(sorted(signals.items())))
    return Spectra(datasets, injection, kind)
