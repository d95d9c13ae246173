"""The analysis configuration: YAML files validated by typed (pydantic) models.

Every section is a strict model: unknown keys, wrong types and out-of-range values are
rejected, and the error names the file and the key path (``toys.signal_id: ...``).
Relative paths inside a config are resolved against the config file's directory, so a config
works from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors; validated values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToysConfig(StrictModel):
    """Toy mass spectra: which definition files and which entries to use."""

    signals: Path = Field(Path("signals.yaml"), description="signal definitions (YAML list)")
    backgrounds: Path = Field(Path("backgrounds.yaml"), description="background definitions")
    wavelets: Path = Field(Path("wavelets.yaml"), description="wavelet definitions")
    signal_id: int = Field(0, ge=0)
    bg_id: int = Field(0, ge=0)
    wavelet_id: int = Field(0, ge=0)
    n_fluctuations: int = Field(3, ge=1, le=1000, description="fluctuated spectra drawn by `run`")


class AnalysisConfig(StrictModel):
    """The whole analysis: one seed drives every random choice."""

    seed: int = Field(1, ge=0, lt=2**32)
    output: Path = Field(Path("results/default"), description="results directory of `run`")
    toys: ToysConfig = ToysConfig()

    # The directory the config was read from; relative paths resolve against it.
    base_dir: Path = Field(Path("."), exclude=True)

    def resolve(self, path: Path) -> Path:
        """Resolve a path from the config against the config file's directory."""
        return path if path.is_absolute() else self.base_dir / path

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data (for run.json)."""
        return self.model_dump(mode="json")


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line naming the source, the key path and the problem of the first error."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"]) or "<top level>"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{shown}{more}"


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with the safe loader; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def validate(model: type[M], data: Any, source: str, **context: Any) -> M:
    """Validate ``data`` against ``model``; a failure is a ConfigError naming source and key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate({**data, **context})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> AnalysisConfig:
    """Load and validate an analysis config (default: ``configs/default.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    if "base_dir" in data:
        raise ConfigError(f"{path}: base_dir: unknown key")
    data = _merge(data, overrides or {})
    return validate(AnalysisConfig, data, str(path), base_dir=path.resolve().parent)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge command-line overrides (nested dicts) into the config data."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
