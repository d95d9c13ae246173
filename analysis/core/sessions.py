"""Sessions: named snapshots of the analysis config and the toy definition files.

``sessions/<name>/`` holds ``config.yaml`` (toys paths pointing at the copies beside it),
``signals.yaml``, ``backgrounds.yaml``, ``wavelets.yaml`` and ``session.json``. A saved session
is itself a valid config directory (``run --config sessions/<name>/config.yaml``). Everything is
validated on save and on load; nothing in a session is ever executed.

``session.json`` is written last and is what makes a session complete: ``save --force``
removes it before overwriting, so an interrupted save is refused by ``load`` instead of being
half old and half new. A symbolic link at ``sessions/<name>`` is refused by every action
(``save --force`` would otherwise write wherever it points). ``--sessions-dir`` and ``--into``
naming a file are errors naming the path (exit 2).
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from analysis.core.atomic import check_out_dir, remove_stale, write_json, write_text
from analysis.core.config import AnalysisConfig, load_config, read_yaml
from analysis.core.errors import ConfigError
from analysis.toys.definitions import parse_entries

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
    """``root/name``; a symbolic link there is refused (a ConfigError naming it)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--sessions-dir {root}: exists and is not a directory")
    path = root / check_name(name)
    if path.is_symlink():
        raise ConfigError(f"{path}: is a symbolic link; sessions must be plain directories (remove the link)")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a session directory")
    return path


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
    check_out_dir(root, "--sessions-dir")
    check_out_dir(target, "session")
    remove_stale(target)
    (target / MANIFEST).unlink(missing_ok=True)  # incomplete until the manifest is written again, last
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
    if not (source / MANIFEST).is_file():
        raise ConfigError(f"{source}: incomplete session (no {MANIFEST}: an interrupted save?); save again")
    into = Path(into)
    if into.exists() and not into.is_dir():
        raise ConfigError(f"--into {into}: exists and is not a directory")
    config = load_config(source / CONFIG_FILE)
    texts = _validated_definitions(config)
    for kind in DEFINITIONS:
        if config.resolve(getattr(config.toys, kind)).resolve().parent != source.resolve():
            raise ConfigError(f"{source / CONFIG_FILE}: toys.{kind} must point at the session's own copy")
    manifest = read_manifest(source)
    config_name = Path(str(manifest.get("config_name", "default.yaml"))).name
    if not config_name.endswith((".yaml", ".yml")):
        raise ConfigError(f"{source / MANIFEST}: config_name {config_name!r} is not a .yaml file name")
    check_out_dir(into, "--into")
    remove_stale(into, recursive=False)
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
        why = " ".join(str(exc).split())
        raise ConfigError(f"{path / MANIFEST}: unreadable session manifest ({why})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path / MANIFEST}: expected a JSON object")
    return data


def list_sessions(root: Path) -> list[dict[str, Any]]:
    """The saved sessions (name and creation time), sorted by name."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--sessions-dir {root}: exists and is not a directory")
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if (path.is_dir() and not path.is_symlink() and NAME_PATTERN.fullmatch(path.name)
                and (path / MANIFEST).is_file()):  # fmt: skip
            found.append({"name": path.name, "created": read_manifest(path).get("created", "?")})
    return found


def delete(root: Path, name: str) -> None:
    """Delete a saved session (an incomplete one too); a missing one is an error, and so is a
    directory holding anything but a session's files."""
    target = session_dir(root, name)
    if not target.is_dir():
        raise ConfigError(f"no session '{name}' in {root} (see 'session list')")
    ours = {MANIFEST, CONFIG_FILE, *(f"{kind}.yaml" for kind in DEFINITIONS)}
    foreign = sorted(p.name for p in target.iterdir() if p.name not in ours and not p.name.endswith(".tmp"))
    if foreign:
        also = ", ".join(foreign[:3])
        raise ConfigError(f"{target}: not a session directory (it also holds {also}); not deleted")
    shutil.rmtree(target)
