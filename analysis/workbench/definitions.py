"""Edit the definition files (signals, backgrounds, wavelets) as the CLI reads them.

Every change is validated by :func:`analysis.toys.definitions.parse_entries` on the whole new
list (the same typed models and expression parser as ``plot`` and ``run``) before anything is
written; the write is atomic (:func:`analysis.core.atomic.write_text`) and keeps the file's
leading comment block. Each read returns the file's ``version`` (a hash of its text); a change
must name the version it was made from, so two tabs cannot silently overwrite each other.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from analysis.core.atomic import write_text
from analysis.core.config import read_yaml
from analysis.core.errors import ConfigError
from analysis.toys.definitions import (
    Binning,
    DefinitionError,
    DijetBackground,
    ExponentialBackground,
    SignalDef,
    WaveletDef,
    parse_entries,
)

Kind = Literal["signals", "backgrounds", "wavelets"]
KINDS: tuple[Kind, ...] = ("signals", "backgrounds", "wavelets")
TEXT_FIELDS = frozenset({"name", "kind", "family"})  # kept as typed, never read as YAML scalars
_MODELS: dict[str, type[BaseModel]] = {
    "signals": SignalDef, "exponential": ExponentialBackground, "dijet": DijetBackground, "wavelets": WaveletDef,
}  # fmt: skip
_LOCK = threading.Lock()  # one read-check-write at a time


class Conflict(ConfigError):
    """The file changed since the page read it (another tab, the CLI, a session load)."""


class FieldError(ConfigError):
    """An invalid entry: the parser's message and the form field it belongs to ('' if none)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class DefinitionsFile(BaseModel):
    """A definitions file as read: its raw entries (validated) and its version."""

    kind: str
    path: Path
    version: str
    entries: list[dict[str, Any]]


def form_fields(kind: str, variant: str | None = None) -> list[str]:
    """The form's field names for an entry (``binning`` flattened to ``binning.low`` ...)."""
    model = _MODELS["exponential" if kind == "backgrounds" and variant is None else (variant or kind)]
    names = []
    for name in model.model_fields:
        if name == "binning":
            names.extend(f"binning.{key}" for key in Binning.model_fields)
        else:
            names.append(name)
    return names


def flatten(entry: dict[str, Any]) -> dict[str, str]:
    """An entry as form values (strings)."""
    values = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            values.update({f"{key}.{k}": _text(v) for k, v in value.items()})
        else:
            values[key] = _text(value)
    return values


def _text(value: Any) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value).removesuffix("\n...\n").strip()


def unflatten(values: dict[str, str]) -> dict[str, Any]:
    """Form values as an entry: empty fields are left out (the model's default), numbers and
    expressions are read as YAML scalars (as in the file), names stay text."""
    entry: dict[str, Any] = {}
    for key, raw in values.items():
        if not isinstance(raw, str):
            raise FieldError(f"field '{key}': expected text", key)
        text = raw.strip()
        if not text:
            continue
        value: Any = text if key in TEXT_FIELDS else _scalar(text)
        head, _, tail = key.partition(".")
        if tail:
            entry.setdefault(head, {})[tail] = value
        else:
            entry[key] = value
    return entry


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, int | float | str) else text


def read(kind: str, path: Path) -> DefinitionsFile:
    """Read and validate a definitions file."""
    text = path.read_text(encoding="utf-8")
    data = read_yaml(path)
    parse_entries(kind, data, str(path))
    return DefinitionsFile(kind=kind, path=path, version=_version(text), entries=data)


def _version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _header(text: str) -> str:
    """The leading comment block of a file (kept on every write)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def _change(kind: str, path: Path, version: str, edit: Any) -> DefinitionsFile:
    """Apply ``edit(entries) -> entries`` to the file read at ``version``; validate; write atomically."""
    with _LOCK:
        text = path.read_text(encoding="utf-8")
        if _version(text) != version:
            raise Conflict(
                f"{path.name} was changed elsewhere since this page loaded it (another tab, the CLI or a "
                "session load); reload the page and apply your change again"
            )
        entries = edit([dict(e) for e in read_yaml(path)])
        try:
            parse_entries(kind, entries, path.name)
        except DefinitionError as exc:
            raise FieldError(str(exc), exc.field) from None
        new = _header(text) + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True)
        write_text(path, new)
        return DefinitionsFile(kind=kind, path=path, version=_version(new), entries=entries)


def _index(entries: list[dict[str, Any]], ident: int, path: Path) -> int:
    for i, entry in enumerate(entries):
        if entry.get("id") == ident:
            return i
    raise ConfigError(f"{path.name}: no entry with id {ident}")


def _next_id(entries: list[dict[str, Any]]) -> int:
    return 1 + max((e["id"] for e in entries if isinstance(e.get("id"), int)), default=-1)


def create(kind: str, path: Path, version: str, values: dict[str, str]) -> tuple[DefinitionsFile, int]:
    """Append a new entry (its id: the given one, or the next free one)."""
    entry = unflatten(values)
    result: dict[str, int] = {}

    def edit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entry.setdefault("id", _next_id(entries))
        result["id"] = entry["id"]
        return [*entries, entry]

    return _change(kind, path, version, edit), result["id"]


def update(kind: str, path: Path, version: str, ident: int, values: dict[str, str]) -> tuple[DefinitionsFile, int]:
    """Replace the entry ``ident`` by the form's values."""
    entry = unflatten(values)
    entry.setdefault("id", ident)

    def edit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries[_index(entries, ident, path)] = entry
        return entries

    return _change(kind, path, version, edit), entry["id"]


def duplicate(kind: str, path: Path, version: str, ident: int) -> tuple[DefinitionsFile, int]:
    """Copy the entry ``ident`` under the next free id ('copy of' its name)."""
    result: dict[str, int] = {}

    def edit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        copy = dict(entries[_index(entries, ident, path)])
        copy["id"] = result["id"] = _next_id(entries)
        copy["name"] = f"copy of {copy.get('name') or ident}"
        return [*entries, copy]

    return _change(kind, path, version, edit), result["id"]


def delete(kind: str, path: Path, version: str, ident: int) -> DefinitionsFile:
    """Remove the entry ``ident``."""

    def edit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        del entries[_index(entries, ident, path)]
        return entries

    return _change(kind, path, version, edit)
