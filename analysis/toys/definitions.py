"""Toy definitions: signals, backgrounds and wavelets, each a YAML list of entries with an ``id``.

Signals are sums over periods ``n = 0..T-1`` of Gaussians whose ``center``, ``height`` and
``width`` are safe expressions of ``n`` (see :mod:`analysis.core.expressions`); backgrounds are an
exponential ``amplitude * exp(-rate * m)`` or the 4-parameter dijet function; wavelets are
complex Morlets ``cmor{B}-{C}`` with a range of scales.

Everything is checked when a file is loaded, not when a spectrum is drawn: numbers must be
finite (``.inf``, ``.nan``, ``1e999`` are refused), a signal's expressions are evaluated at
every period index ``n = 0..periods-1`` and must be finite and within bounds (``width > 0``,
``height >= 0``, ``|value| <= 1e12``), and a background's expected counts must be finite and
within the same bound in every bin. Errors name the file, the entry and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from analysis.core.binning import bin_centres
from analysis.core.config import StrictModel, read_yaml
from analysis.core.errors import ConfigError
from analysis.core.expressions import MAX_VALUE, Expression, ExpressionError, check_values, parse

_FINITE = ConfigDict(allow_inf_nan=False)  # merged with StrictModel's: unknown keys, frozen


class Binning(StrictModel):
    """A regular mass binning [low, high) in GeV."""

    model_config = _FINITE

    low: float = 0.0
    high: float = 512.0
    bins: int = Field(512, ge=2, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> Binning:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be larger than low ({self.low})")
        return self

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)

    @property
    def centers(self) -> np.ndarray:
        return bin_centres(self.edges)


class _Entry(StrictModel):
    model_config = _FINITE

    id: int = Field(ge=0)
    name: str = ""


class SignalDef(_Entry):
    """Sum over ``n = 0..periods-1`` of ``height(n) * exp(-decay_rate * n)`` Gaussians."""

    periods: int = Field(1, ge=1, le=10_000)
    center: str | float
    height: str | float
    width: str | float
    decay_rate: float = Field(0.0, ge=0.0)

    @field_validator("center", "height", "width")
    @classmethod
    def _expression(cls, value: str | float, info: ValidationInfo) -> str | float:
        expression = parse(value)  # raises ExpressionError (a ValueError) for anything not allowed
        periods = info.data.get("periods")
        if periods is not None:  # (an invalid periods is reported on its own)
            check_values(expression, periods, positive=info.field_name == "width",
                         non_negative=info.field_name == "height")  # fmt: skip
        return value

    def expression(self, field: str) -> Expression:
        return parse(getattr(self, field))


class ExponentialBackground(_Entry):
    """``amplitude * exp(-rate * m)`` (the reference tool's default background)."""

    kind: Literal["exponential"] = "exponential"
    amplitude: float = Field(gt=0.0)
    rate: float = Field(ge=0.0)
    binning: Binning = Binning()

    def counts(self) -> np.ndarray:
        """Expected counts at the bin centres of the binning."""
        return self.amplitude * np.exp(-self.rate * self.binning.centers)

    @model_validator(mode="after")
    def _counts(self) -> ExponentialBackground:
        _check_counts(self)
        return self


class DijetBackground(_Entry):
    """The standard dijet function ``p0 (1-x)^p1 / x^(p2 + p3 ln x)``, ``x = m / sqrt_s``."""

    kind: Literal["dijet"]
    p0: float = Field(gt=0.0)
    p1: float
    p2: float
    p3: float = 0.0
    sqrt_s: float = Field(7000.0, gt=0.0, description="centre-of-mass energy in GeV")
    binning: Binning = Binning(low=500.0, high=1524.0, bins=512)

    def counts(self) -> np.ndarray:
        """Expected counts at the bin centres of the binning (the dijet function)."""
        return dijet_function(self.binning.centers, self.p0, self.p1, self.p2, self.p3, self.sqrt_s)

    @model_validator(mode="after")
    def _inside(self) -> DijetBackground:
        if self.binning.low <= 0 or self.binning.high >= self.sqrt_s:
            raise ValueError("binning must lie inside (0, sqrt_s)")
        _check_counts(self)
        return self


def dijet_function(mass: np.ndarray, p0: float, p1: float, p2: float, p3: float, sqrt_s: float) -> np.ndarray:
    """The standard dijet function f(x) = p0 (1-x)^p1 / x^(p2 + p3 ln x), x = m / sqrt(s)."""
    x = np.asarray(mass, dtype=float) / sqrt_s
    return p0 * (1.0 - x) ** p1 / x ** (p2 + p3 * np.log(x))


def _check_counts(background: ExponentialBackground | DijetBackground) -> None:
    """The expected counts must be finite and within ±MAX_VALUE in every bin (else the toys fail)."""
    with np.errstate(all="ignore"):
        counts = background.counts()
    bad = ~(np.isfinite(counts) & (np.abs(counts) <= MAX_VALUE))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"expected counts are not finite or beyond ±{MAX_VALUE:g} (bin {first}: {counts[first]:g}); "
            "check the parameters and the binning"
        )


BackgroundDef = Annotated[ExponentialBackground | DijetBackground, Field(discriminator="kind")]


class WaveletDef(_Entry):
    """Complex Morlet ``cmor{bandwidth}-{center_frequency}`` over ``scale_min..scale_max``."""

    family: Literal["cmor"] = "cmor"
    bandwidth: float = Field(1.5, gt=0.0)
    center_frequency: float = Field(1.0, gt=0.0)
    scale_min: float = Field(1.0, gt=0.0)
    scale_max: float = Field(48.0, gt=0.0)
    n_scales: int = Field(48, ge=1, le=1024)

    @model_validator(mode="after")
    def _ordered(self) -> WaveletDef:
        if self.scale_max < self.scale_min:
            raise ValueError("scale_max must not be smaller than scale_min")
        return self

    @property
    def pywt_name(self) -> str:
        return f"{self.family}{self.bandwidth:g}-{self.center_frequency:g}"

    @property
    def scales(self) -> np.ndarray:
        return np.linspace(self.scale_min, self.scale_max, self.n_scales)


E = TypeVar("E")


class DefinitionError(ConfigError):
    """An invalid definitions entry; ``index`` and ``field`` say where (for forms that show the
    message next to the field), the message names the file, the entry and the field."""

    def __init__(self, message: str, index: int | None = None, field: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.field = field


class _SignalList(StrictModel):
    entries: list[SignalDef]


class _BackgroundList(StrictModel):
    entries: list[BackgroundDef]


class _WaveletList(StrictModel):
    entries: list[WaveletDef]


_LISTS: dict[str, type[StrictModel]] = {
    "signals": _SignalList,
    "backgrounds": _BackgroundList,
    "wavelets": _WaveletList,
}


def parse_entries(kind: str, data: Any, source: str) -> list[Any]:
    """Validate a list of ``kind`` entries; errors name the file, the entry id and the field."""
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of {kind} entries, got {type(data).__name__}")
    try:
        entries = _LISTS[kind].model_validate({"entries": data}).entries
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])[1:]  # drop "entries"
        index = loc.pop(0) if loc and isinstance(loc[0], int) else None
        entry = data[index] if index is not None and index < len(data) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        where = f"entry id={ident}" if ident is not None else f"entry #{index}"
        loc = [part for part in loc if part not in ("exponential", "dijet")]
        field = ".".join(str(part) for part in loc)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "kind"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        ctx_error = err.get("ctx", {}).get("error")
        if isinstance(ctx_error, ExpressionError):
            msg = f"unsafe or invalid expression: {ctx_error}"
        where += f" field '{field}'" if field else ""
        raise DefinitionError(f"{source}: {where}: {msg}", index, field) from None
    ids = [entry.id for entry in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DefinitionError(f"{source}: duplicate {kind} id(s) {duplicates}", ids.index(duplicates[0]), "id")
    return entries


def load_entries(kind: str, path: str | Path) -> list[Any]:
    """Read and validate a definitions file (``signals``, ``backgrounds`` or ``wavelets``)."""
    return parse_entries(kind, read_yaml(path), str(path))


def select(entries: list[E], ident: int, kind: str, source: str) -> E:
    """The entry with ``id == ident``; an unknown id is an error that lists the valid ids."""
    for entry in entries:
        if entry.id == ident:  # type: ignore[attr-defined]
            return entry
    valid = ", ".join(str(e.id) for e in entries)  # type: ignore[attr-defined]
    raise ConfigError(f"{source}: no {kind} entry with id {ident} (valid ids: {valid})")
