"""What the workbench pages show, computed from the library and the files the CLI writes.

- :func:`plot_view`: the plot view's figures, made by :func:`analysis.toys.plots.toy_figure`
  (the ``plot`` command's functions) on the chosen entries, as PNG data URLs.
- :func:`session_changes`: what loading a session would change (entries added, removed or
  changed per definitions file, and the config), before and after a load.
- :func:`list_runs` / :func:`run_view`: results directories and one run's report (``report.md``
  rendered, images pointing at the file route), method tables (``sensitivity.json`` through
  :func:`analysis.report.method_table`), ``run.json`` and plots.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from analysis.core.config import AnalysisConfig, read_yaml
from analysis.core.errors import ConfigError
from analysis.core.sessions import CONFIG_FILE, DEFINITIONS, MANIFEST, read_manifest, session_dir
from analysis.workbench.security import contained, split

PLOT_KINDS = ("clean", "fluctuations", "cwt-clean", "cwt-fluctuations")
VIEW_KINDS = ("clean", "fluctuations")  # plus one |CWT| map, of the clean or the fluctuated spectrum
MAX_TOYS = 50  # fluctuated spectra overlaid in the plot view
FILE_TYPES = {".png": "image/png", ".json": "application/json", ".md": "text/plain; charset=utf-8",
              ".csv": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8"}  # fmt: skip
MAX_DEPTH = 3  # of results directories below the results root
_PLOT_LOCK = threading.Lock()  # pyplot's state is global: one figure at a time


class PlotRequest(BaseModel):
    """The plot view's choices."""

    model_config = {"extra": "forbid"}

    signal_id: int
    bg_id: int
    wavelet_id: int
    seed: int = 1
    n_toys: int = 3
    cwt: str = "cwt-clean"


def plot_view(config: AnalysisConfig, request: PlotRequest, dpi: int = 60) -> dict[str, Any]:
    """The clean spectrum, the Poisson toys and one |CWT| map as PNG data URLs, and the time taken."""
    from analysis.core.plots import png_bytes
    from analysis.toys.plots import toy_figure
    from analysis.toys.selection import toy_setup

    if not 1 <= request.n_toys <= MAX_TOYS:
        raise ConfigError(f"toys {request.n_toys}: must be between 1 and {MAX_TOYS}")
    if not 0 <= request.seed < 2**63:
        raise ConfigError(f"seed {request.seed}: must be between 0 and 2**63-1")
    if request.cwt not in ("cwt-clean", "cwt-fluctuations"):
        raise ConfigError(f"cwt {request.cwt!r}: cwt-clean or cwt-fluctuations")
    start = time.perf_counter()
    setup = toy_setup(config, signal_id=request.signal_id, bg_id=request.bg_id, wavelet_id=request.wavelet_id)
    images = {}
    with _PLOT_LOCK:
        for kind in (*VIEW_KINDS, request.cwt):
            png = png_bytes(toy_figure(kind, setup, request.seed, request.n_toys), dpi=dpi)
            images[kind] = "data:image/png;base64," + base64.b64encode(png).decode()
    return {"images": images, "seconds": round(time.perf_counter() - start, 3)}


# -- sessions -------------------------------------------------------------------------------------
def _entries(text: str) -> dict[Any, Any]:
    data = yaml.safe_load(text) or []
    return {e.get("id"): e for e in data if isinstance(e, dict)} if isinstance(data, list) else {}


def compare_definitions(kind: str, before: str, after: str) -> dict[str, list[Any]]:
    """Entry ids added, removed and changed between two texts of a definitions file."""
    old, new = _entries(before), _entries(after)
    return {
        "added": sorted(set(new) - set(old), key=str),
        "removed": sorted(set(old) - set(new), key=str),
        "changed": sorted((i for i in set(old) & set(new) if old[i] != new[i]), key=str),
    }


def session_changes(root: Path, name: str, config: AnalysisConfig, config_path: Path) -> dict[str, Any]:
    """What ``session load NAME`` would change in the served config's files."""
    source = session_dir(root, name)
    if not (source / MANIFEST).is_file():
        raise ConfigError(f"no complete session '{name}' in {root}")
    files: dict[str, Any] = {}
    for kind in DEFINITIONS:
        current = config.resolve(getattr(config.toys, kind))
        before = current.read_text() if current.is_file() else ""
        files[kind] = compare_definitions(kind, before, (source / f"{kind}.yaml").read_text())
    saved = read_yaml(source / CONFIG_FILE)
    now = read_yaml(config_path)
    keys = sorted(k for k in set(saved) | set(now) if k != "toys" and saved.get(k) != now.get(k))
    return {"session": name, "created": read_manifest(source).get("created"), "definitions": files, "config_keys": keys,
            "unchanged": not keys and not any(any(v.values()) for v in files.values())}  # fmt: skip


# -- results --------------------------------------------------------------------------------------
class RunSummary(BaseModel):
    """One results directory (it holds run.json or report.md)."""

    path: str
    command: str
    started: str
    report: bool


def _run_json(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_runs(root: Path) -> list[RunSummary]:
    """Results directories below ``root`` (at most three levels; links and hidden names skipped)."""
    found = []
    todo = [(root, 0)]
    while todo:
        directory, depth = todo.pop()
        if directory != root and ((directory / "run.json").is_file() or (directory / "report.md").is_file()):
            run = _run_json(directory)
            found.append(RunSummary(path=directory.relative_to(root).as_posix(), command=str(run.get("command", "?")),
                                    started=str(run.get("started", "?")), report=(directory / "report.md").is_file()))  # fmt: skip
        if depth < MAX_DEPTH and directory.is_dir():
            todo.extend((child, depth + 1) for child in directory.iterdir()
                        if child.is_dir() and not child.is_symlink() and not child.name.startswith("."))  # fmt: skip
    return sorted(found, key=lambda r: r.path)


def run_directory(root: Path, relative: str) -> Path:
    """A results directory given by its path below the root (contained, no links)."""
    path = contained(root, split(relative), "results path")
    if not path.is_dir():
        raise ConfigError(f"results {relative!r}: no such directory")
    return path


def result_file(root: Path, relative: str) -> tuple[Path, str]:
    """A file of a results directory, with its media type (png, json, md, csv, log only)."""
    path = contained(root, split(relative), "results path")
    media = FILE_TYPES.get(path.suffix.lower())
    if media is None or not path.is_file():
        raise ConfigError(f"results file {relative!r}: not found (or not a plot, table or log)")
    return path, media


def _rewrite_links(tokens: list[Any], base: str) -> None:
    """Relative image and link targets of a report point at the results file route."""
    for token in tokens:
        _rewrite_links(token.children or [], base)
        attr = "src" if token.type == "image" else "href" if token.type == "link_open" else None
        target = token.attrGet(attr) if attr else None
        if isinstance(target, str) and "://" not in target and not target.startswith(("/", "#")):
            token.attrSet(attr, f"{base}/{target}")


def render_markdown(text: str, base: str) -> str:
    """``report.md`` as HTML (raw HTML in it is escaped, not rendered)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    _rewrite_links(tokens, base)
    return md.renderer.render(tokens, md.options, {})


def run_view(root: Path, relative: str, file_route: str) -> dict[str, Any]:
    """One run: its report (HTML), method tables, run.json and plots."""
    from analysis.report import method_table, signal_names
    from analysis.sensitivity.model import Sensitivity

    directory = run_directory(root, relative)
    rel = directory.relative_to(root).as_posix()
    base = f"{file_route}/{rel}"
    report = directory / "report.md"
    tables = []
    if (directory / "sensitivity.json").is_file():
        data = Sensitivity.read(directory / "sensitivity.json")
        for signal in signal_names(data):
            head, rows = method_table([e for e in data.methods if e.signal == signal])
            tables.append({"signal": signal, "head": head, "rows": rows})
    plots = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.png")
                   if not any(part.startswith(".") for part in p.relative_to(directory).parts)
                   and not any(q.is_symlink() for q in [p, *p.parents] if q != directory and directory in q.parents))  # fmt: skip
    run = _run_json(directory)
    return {
        "path": rel, "base": base,
        "report": render_markdown(report.read_text(errors="replace"), base) if report.is_file() else None,
        "tables": tables, "run_json": json.dumps(run, indent=2) if run else None, "plots": plots,
        "files": sorted(p.name for p in directory.iterdir() if p.is_file() and p.suffix.lower() in FILE_TYPES),
    }  # fmt: skip
