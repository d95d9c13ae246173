"""``sensitivity.json``, format 2: one typed model, one reader, one writer.

Every method stage writes its entries into ``<stage>/sensitivity.json``; the report collects
them into the results directory's ``sensitivity.json``. The report, the notebooks and the tests
read it with :meth:`Sensitivity.read` only. Design: "Sensitivity protocol".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.core.atomic import write_text
from analysis.core.errors import InputError

FORMAT_VERSION = 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Band(_Model):
    """Median and 16 / 84 % quantiles of a quantity over the realisations."""

    median: float
    lo: float
    hi: float


class Point(_Model):
    """Z at one injected signal size: local and global, median and band over realisations.

    ``bound`` (``bound_local``) marks a global (local) median that is only a lower bound: more
    than half of the realisations have a p-value past what the toys or the tail fit support.
    """

    n_signal: int
    z_local: Band
    z_global: Band
    bound: bool = False
    bound_local: bool = False
    s_over_b: float | None = Field(None, description="injected signal / background events in the signal region")


class Crossing(_Model):
    """Injected events where the median Z first reaches a threshold (null: not reached)."""

    global_: float | None = Field(None, alias="global")
    local: float | None = None


class CrossingBand(_Model):
    """The crossings of the 84 % and 16 % Z curves (the band of N); ``*_limit``: where a curve
    reaches the threshold only as a bound (its crossing lies below that N)."""

    global_: tuple[float | None, float | None] = Field((None, None), alias="global")
    local: tuple[float | None, float | None] = (None, None)
    global_limit: tuple[float | None, float | None] = (None, None)
    local_limit: tuple[float | None, float | None] = (None, None)


class MethodEntry(_Model):
    """One method's sensitivity to one signal on the protocol's realisations."""

    method: str
    signal: str
    background_events: int = Field(description="background events of one realisation (its expectation)")
    realizations: int = Field(description="realisations the method ran on (the first ones of the protocol)")
    fingerprint: str = Field(description="hash of the realisations' events: equal for methods on the same events")
    luminosity_fraction: float = Field(1.0, description="1: the analysis luminosity; <1: N rescaled to it")
    points: list[Point]
    null_p_global: list[float] = Field(description="global p of every background-only realisation")
    null_ks_pvalue: float | None = Field(description="KS test of null_p_global against the uniform distribution")
    n_signal_3sigma: Crossing
    n_signal_5sigma: Crossing
    n_signal_3sigma_band: CrossingBand = CrossingBand()
    n_signal_5sigma_band: CrossingBand = CrossingBand()
    n_signal_3sigma_limit: Crossing = Field(
        Crossing(), description="where the median reaches the threshold only as a bound: the crossing is below this N"
    )
    n_signal_5sigma_limit: Crossing = Crossing()
    z_global_meaning: str = Field(description="what 'global' means for this method (its look-elsewhere effect)")
    notes: list[str] = []
    details: dict[str, Any] = {}

    def point(self, n_signal: int) -> Point:
        return next(p for p in self.points if p.n_signal == n_signal)

    def crossing_text(self, sigma: int = 3, kind: str = "global") -> str:
        """``821``, ``< 1000 (bound)`` or ``not reached``: where the median Z reaches ``sigma``."""
        attr = "global_" if kind == "global" else "local"
        value = getattr(getattr(self, f"n_signal_{sigma}sigma"), attr)
        limit = getattr(getattr(self, f"n_signal_{sigma}sigma_limit"), attr)
        if value is not None:
            return f"{value:.0f}"
        return f"< {limit:.0f} (bound)" if limit is not None else "not reached"


class Protocol(_Model):
    """The shared pseudo-datasets every method runs on."""

    realizations: int
    resampling: Literal["model_poisson", "poisson"]
    nested_signal: bool = True
    n_signal: list[int]
    seed: int
    background_events: int = Field(description="selected background events of the analysis sample")
    mjj_range_gev: tuple[float, float]
    signal_region_gev: dict[str, tuple[float, float]] = Field({}, description="per signal: the 16-84 % m_jj interval")
    luminosity_pb: float | None = Field(None, description="background events / (cross section x efficiency), if known")
    background_model: dict[str, Any] = Field({}, description="fit behind the realisations' rates: chi2, ndf, parameters")


class Sensitivity(_Model):
    """``sensitivity.json``: the protocol and every method's entries."""

    format_version: Literal[2] = FORMAT_VERSION
    protocol: Protocol | None = None
    methods: list[MethodEntry] = []

    @classmethod
    def read(cls, path: str | Path) -> Sensitivity:
        """Read and validate a format-2 ``sensitivity.json`` (errors name the file)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable sensitivity.json ({exc})") from None
        if isinstance(data, dict) and data.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{path}: {where}: {err['msg']}") from None

    @classmethod
    def read_or_empty(cls, path: str | Path) -> Sensitivity:
        return cls.read(path) if Path(path).is_file() else cls()

    def write(self, path: str | Path) -> None:
        """Write atomically (JSON; ``null`` for missing values)."""
        write_text(path, self.model_dump_json(by_alias=True, indent=2) + "\n")

    def with_entry(self, entry: MethodEntry, protocol: Protocol | None = None) -> Sensitivity:
        """A copy with ``entry`` replacing any entry of the same method and signal (the signal
        regions of the two protocols are joined: one protocol, one region per signal)."""
        methods = [m for m in self.methods if (m.method, m.signal) != (entry.method, entry.signal)]
        if protocol is not None and self.protocol is not None:
            regions = {**self.protocol.signal_region_gev, **protocol.signal_region_gev}
            protocol = protocol.model_copy(update={"signal_region_gev": regions})
        return self.model_copy(update={"methods": [*methods, entry], "protocol": protocol or self.protocol})

    @classmethod
    def combined(cls, paths: Iterable[str | Path]) -> Sensitivity:
        """The entries of several ``sensitivity.json`` files (e.g. one per signal) in one."""
        out = cls()
        for path in paths:
            part = cls.read(path)
            for entry in part.methods:
                out = out.with_entry(entry, part.protocol)
        return out


def merge_entries(path: str | Path, entries: list[MethodEntry], protocol: Protocol) -> Sensitivity:
    """Put ``entries`` into the ``sensitivity.json`` at ``path`` (created if absent)."""
    data = Sensitivity.read_or_empty(path)
    for entry in entries:
        data = data.with_entry(entry, protocol)
    data.write(path)
    return data
