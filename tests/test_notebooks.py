"""The jupytext-paired notebooks execute, and each .ipynb matches its .py pair."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("*.py"))
TOY_NOTEBOOKS = {"toy_spectra"}  # need only the configs; the others read a results directory of `run`


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_pair_in_sync(script: Path) -> None:
    ipynb = script.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run jupytext --sync {script}"
    from_py = [c.source for c in jupytext.read(script).cells]
    from_ipynb = [c.source for c in nbformat.read(ipynb, as_version=4).cells]
    assert from_py == from_ipynb, f"{script.name} and {ipynb.name} differ: run jupytext --sync"


@pytest.mark.parametrize("script", PAIRS, ids=lambda p: p.stem)
def test_notebook_executes(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    monkeypatch.setenv("DIJETSCAN_NOTEBOOK_SCRATCH", str(tmp_path))
    if script.stem not in TOY_NOTEBOOKS:  # the tiny chain's results (tests/conftest.py)
        monkeypatch.setenv("DIJETSCAN_RESULTS", str(request.getfixturevalue("chain_results")))
    notebook = jupytext.read(script)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" for o in outputs), "no figure was shown"
