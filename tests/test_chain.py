"""The whole chain (`run`, every stage) on tiny generated samples: outputs, report, reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli


def test_chain_writes_the_report_and_every_method(chain_results: Path) -> None:
    methods = {m["method"]: m for m in json.loads((chain_results / "sensitivity.json").read_text())["methods"]}
    assert "pfn_auc" in methods
    assert any(name.endswith("_ae") for name in methods)
    assert any("bump" in name for name in methods) and any("fit" in name for name in methods)
    for entry in methods.values():
        assert entry["points"][0]["n_signal"] == 0
        assert {"n_signal_3sigma", "n_signal_5sigma"} <= set(entry)
    record = json.loads((chain_results / "run.json").read_text())
    assert set(record["timings_s"]) >= {"toys", "generate", "process", "scan", "autoencoders", "baselines", "report"}
    report = (chain_results / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "comparison.png" in linked and "scan/auc_scan.png" in linked
    for rel in linked:
        assert (chain_results / rel).is_file(), rel
    for name in methods:
        assert f"| {name} |" in report, name
    html = (chain_results / "report.html").read_text()
    assert "<table>" in html and 'src="comparison.png"' in html


def test_rerun_reuses_every_finished_stage(chain_results: Path) -> None:
    before = (chain_results / "sensitivity.json").read_text()
    config = chain_results.parent / "tiny.yaml"
    proc = run_cli("run", "--config", str(config), cwd=chain_results.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("process", "scan", "autoencoders", "baselines"):
        assert re.search(rf"\[\d/7 {stage}\] unchanged since its last run: reused", proc.stdout), proc.stdout
    assert (chain_results / "sensitivity.json").read_text() == before


def test_bad_stage_name_is_a_config_error(tmp_path: Path) -> None:
    proc = run_cli("run", "--stages", "toys,fit", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--stages toys,fit" in proc.stderr and "Traceback" not in proc.stderr


def test_baselines_find_the_injected_resonance_on_processed_spectra(chain_results: Path) -> None:
    data = json.loads((chain_results / "baselines" / "baselines.json").read_text())
    bump, fit = (next(m for m in data["methods"] if m["method"] == name) for name in ("bumphunter", "dijet_fit"))
    mass, width = data["signal_mass_gev"], data["signal_width_gev"]
    assert 0.85 * 900 < mass < 1.0 * 900  # the reconstructed xgg peak, a little below M = 900 GeV
    null, strongest = bump["points"][0], bump["points"][-1]
    assert null["n_signal"] == 0 and null["z_global"] < 2.0
    low, high = strongest["window_gev"]
    assert low - width <= mass <= high + width and strongest["z"] > 3.0
    assert fit["points"][0]["z"] < 2.0 and fit["points"][-1]["z"] > 3.0
    assert data["background_fit"]["chi2_ndf"] < 2.0
