"""The whole chain (`run`, every stage) on tiny generated samples: outputs, report, reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

from analysis.sensitivity.model import Sensitivity
from tests.conftest import run_cli


def test_chain_writes_the_report_and_every_method_on_the_same_events(chain_results: Path) -> None:
    data = Sensitivity.read(chain_results / "sensitivity.json")
    methods = {m.method: m for m in data.methods}
    assert {"cwola_pfn", "pfn_auc", "bumphunter", "dijet_fit", "dense_ae", "conv_kl_ae"} <= set(methods)
    assert data.protocol.n_signal == [0, 60, 180] and data.protocol.realizations == 6
    # every method ran on the same realisations: one fingerprint, one background count
    assert len({m.fingerprint for m in data.methods}) == 1
    assert len({m.background_events for m in data.methods}) == 1
    for entry in data.methods:
        assert [p.n_signal for p in entry.points] == [0, 60, 180]
        assert entry.realizations == {"pfn_auc": 3, "cwola_pfn": 2}.get(entry.method, 6)
        assert len(entry.null_p_global) == entry.realizations
        assert entry.z_global_meaning
    record = json.loads((chain_results / "run.json").read_text())
    assert set(record["timings_s"]) >= {"toys", "generate", "process", "scan", "cwola", "autoencoders", "baselines", "report"}
    report = (chain_results / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"comparison.png", "null_calibration.png", "scan/auc_scan.png"} <= set(linked)
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
    for stage in ("process", "scan", "cwola", "autoencoders", "baselines"):
        assert re.search(rf"\[\d/8 {stage}\] unchanged since its last run: reused", proc.stdout), proc.stdout
    assert (chain_results / "sensitivity.json").read_text() == before


def test_bad_stage_name_is_a_config_error(tmp_path: Path) -> None:
    proc = run_cli("run", "--stages", "toys,fit", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--stages toys,fit" in proc.stderr and "Traceback" not in proc.stderr


def test_baselines_find_the_injected_resonance_on_processed_spectra(chain_results: Path) -> None:
    data = Sensitivity.read(chain_results / "baselines" / "sensitivity.json")
    lo, hi = data.protocol.signal_region_gev["xgg_m900"]
    assert 0.8 * 900 < lo < hi < 1.05 * 900  # the reconstructed xgg peak, a little below M = 900 GeV
    for entry in data.methods:  # 180 injected events on ~1100 background events (S/B ~ 0.4 in the signal region)
        assert entry.point(180).z_global.median > entry.point(0).z_global.median + 0.75, entry.method
        assert abs(entry.point(0).z_global.median) < 1.5, entry.method
    assert next(e for e in data.methods if e.method == "dijet_fit").point(180).z_local.median > 3.0
    assert data.protocol.background_model["chi2_ndf"] < 2.0
