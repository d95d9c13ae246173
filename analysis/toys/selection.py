"""Select toy definitions (signal, background, wavelet) for a config and optional overrides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.toys.definitions import SignalDef, WaveletDef, load_entries, select
from analysis.toys.spectra import Background


@dataclass(frozen=True)
class ToySetup:
    """The chosen entries and the files they came from."""

    signal: SignalDef
    background: Background
    wavelet: WaveletDef
    files: dict[str, Path]


def toy_setup(
    config: AnalysisConfig,
    *,
    signal_id: int | None = None,
    bg_id: int | None = None,
    wavelet_id: int | None = None,
    files: dict[str, Path | None] | None = None,
) -> ToySetup:
    """Load the definition files (config paths unless ``files`` overrides one) and pick entries."""
    toys = config.toys
    paths = {kind: config.resolve(getattr(toys, kind)) for kind in ("signals", "backgrounds", "wavelets")}
    paths.update({k: Path(v) for k, v in (files or {}).items() if v is not None})
    ids = {
        "signals": toys.signal_id if signal_id is None else signal_id,
        "backgrounds": toys.bg_id if bg_id is None else bg_id,
        "wavelets": toys.wavelet_id if wavelet_id is None else wavelet_id,
    }
    chosen = {
        kind: select(load_entries(kind, path), ids[kind], kind.rstrip("s"), str(path))
        for kind, path in paths.items()
    }
    return ToySetup(chosen["signals"], chosen["backgrounds"], chosen["wavelets"], paths)
