"""Sessions: named snapshots of the analysis config and the toy definition files.

``sessions/<name>/`` holds ``config.yaml`` (toys paths pointing at the copies beside it),
``signals.yaml``, ``backgrounds.yaml``, ``wavelets.yaml`` and ``session.json``. A saved session
is itself a valid config directory (``run --config sessions/<name>/config.yaml``). Everything is
validated on save and on load; nothing in a session is ever executed.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from analysis.atomic import write_json, write_text
from analysis.config import AnalysisConfig, load_config, read_yaml
from analysis.definitions import parse_entries
from analysis.errors import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFINITIONS = ("signals", "backgrounds", "wavelets")
CONFIG_FILE = "config.yaml"
MANIFEST = "session.json"


def check_name(name: str) -> str:
    """Session names are letters, digits, '-' and '_' (so no path can be smuggled in)."""
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ConfigError(
            f"session name {name!r}: use 1-64 letters, digits, '-' or '_' (no paths, dots or spaces)"
        )
    return name


def session_dir(root: Path, name: str) -> Path:
    return Path(root) / check_name(name)


def _validated_definitions(config: AnalysisConfig) -> dict[str, str]:
    """Read and validate the three definition files of ``config``; return their texts."""
    texts = {}
    for kind in DEFINITIONS:
        path = config.resolve(getattr(config.toys, kind))
        parse_entries(kind, read_yaml(path), str(path))
        texts[kind] = path.read_text()
    return texts


def save(root: Path, name: str, config_path: Path | None = None, force: bool = False) -> Path:
    """Snapshot the config and its definition files under ``root/name``."""
    target = session_dir(root, name)
    if target.exists() and not force:
        raise ConfigError(f"session '{name}' already exists in {root} (use --force to overwrite)")
    config = load_config(config_path)
    texts = _validated_definitions(config)
    data: dict[str, Any] = read_yaml(config_path) if config_path else read_yaml(config.base_dir / "default.yaml")
    data.setdefault("toys", {})
    for kind in DEFINITIONS:
        data["toys"][kind] = f"{kind}.yaml"
        write_text(target / f"{kind}.yaml", texts[kind])
    write_text(target / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False))
    source = Path(config_path) if config_path else config.base_dir / "default.yaml"
    write_json(target / MANIFEST, {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_config": str(source.resolve()),
        "config_name": source.name,
    })  # fmt: skip
    return target


def load(root: Path, name: str, into: Path) -> list[Path]:
    """Validate a session and restore its files into ``into``; returns the written paths."""
    source = session_dir(root, name)
    if not source.is_dir():
        raise ConfigError(f"no session '{name}' in {root} (see 'session list')")
    config = load_config(source / CONFIG_FILE)
    texts = _validated_definitions(config)
    for kind in DEFINITIONS:
        if config.resolve(getattr(config.toys, kind)).resolve().parent != source.resolve():
            raise ConfigError(f"{source / CONFIG_FILE}: toys.{kind} must point at the session's own copy")
    manifest = read_manifest(source)
    config_name = Path(str(manifest.get("config_name", "default.yaml"))).name
    if not config_name.endswith((".yaml", ".yml")):
        raise ConfigError(f"{source / MANIFEST}: config_name {config_name!r} is not a .yaml file name")
    written = []
    for kind in DEFINITIONS:
        write_text(into / f"{kind}.yaml", texts[kind])
        written.append(into / f"{kind}.yaml")
    write_text(into / config_name, (source / CONFIG_FILE).read_text())
    written.append(into / config_name)
    return written


def read_manifest(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path / MANIFEST}: unreadable session manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path / MANIFEST}: expected a JSON object")
    return data


def list_sessions(root: Path) -> list[dict[str, Any]]:
    """The saved sessions (name and creation time), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and NAME_PATTERN.fullmatch(path.name) and (path / MANIFEST).is_file():
            found.append({"name": path.name, "created": read_manifest(path).get("created", "?")})
    return found


def delete(root: Path, name: str) -> None:
    """Delete a saved session; a missing one is an error."""
    target = session_dir(root, name)
    if not (target / MANIFEST).is_file():
        raise ConfigError(f"no session '{name}' in {root} (see 'session list')")
    shutil.rmtree(target)
