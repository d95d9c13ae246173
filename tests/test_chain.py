"""The whole chain (`run`, every stage) on tiny generated samples: outputs, report, reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

from analysis.sensitivity.model import Sensitivity
from tests.conftest import run_cli


def test_chain_writes_the_report_and_every_method_on_the_same_events(chain_results: Path) -> None:
    data = Sensitivity.read(chain_results / "sensitivity.json")
    signals = ["xgg_m900", "wprime_m900"]
    methods = {(m.method, m.signal): m for m in data.methods}
    for signal in signals:  # every method measured on each signal
        assert {(name, signal) for name in ("cwola_pfn", "pfn_auc", "bumphunter", "dijet_fit", "dense_ae", "conv_kl_ae")} <= set(methods)
    assert data.protocol.n_signal == [0, 60, 180] and data.protocol.realizations == 6
    assert set(data.protocol.signal_region_gev) == set(signals)
    for signal in signals:  # every method of a signal ran on the same realisations: one fingerprint, one background
        entries = [m for m in data.methods if m.signal == signal]
        assert len({m.fingerprint for m in entries}) == 1 and len({m.background_events for m in entries}) == 1
    for entry in data.methods:
        assert [p.n_signal for p in entry.points] == [0, 60, 180]
        assert entry.realizations == {"pfn_auc": 3, "cwola_pfn": 2}.get(entry.method, 6)
        assert len(entry.null_p_global) == entry.realizations
        assert entry.z_global_meaning
    record = json.loads((chain_results / "run.json").read_text())
    assert set(record["timings_s"]) >= {"toys", "generate", "process", "scan", "cwola", "autoencoders", "baselines", "report"}
    report = (chain_results / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    for signal in signals:
        assert f"## Method comparison: {signal}" in report
        assert {f"comparison_{signal}.png", f"null_calibration_{signal}.png"} <= set(linked)
    assert {"scan/auc_scan.png", "cwola/wprime/cwola_roc_sic.png", "baselines/xgg/spectrum_fit.png"} <= set(linked)
    for rel in linked:
        assert (chain_results / rel).is_file(), rel
    for name, _ in methods:
        assert re.search(rf"\| {name}( \(null not calibrated\))? \|", report), name
    html = (chain_results / "report.html").read_text()
    assert "<table>" in html and 'src="comparison_wprime_m900.png"' in html


def test_signals_share_their_background_only_realisations(chain_results: Path) -> None:
    """N = 0 is the same pseudo-data for every signal: the same null p of every method, and the
    PFN methods' background-only trainings run once (the shared store) for both signals."""
    data = Sensitivity.read(chain_results / "sensitivity.json")
    by_method: dict[str, dict[str, list[float]]] = {}
    for m in data.methods:
        by_method.setdefault(m.method, {})[m.signal] = m.null_p_global
    for method, nulls in by_method.items():
        assert nulls["xgg_m900"] == nulls["wprime_m900"], method
    shared = {stage: len(list((chain_results / stage / "background_only").rglob("checkpoints/*_n0_*.json")))
              for stage in ("scan", "cwola")}  # fmt: skip
    own = {stage: sum(1 for p in (chain_results / stage / "xgg").rglob("checkpoints/*.json") if "_n0_" in p.name)
           for stage in ("scan", "cwola")}  # fmt: skip
    # 3 realisations x 4 bin pairs (pfn_auc), 2 realisations x windows x 3 folds (cwola_pfn)
    assert shared["scan"] == 3 * 4 and shared["cwola"] % 6 == 0 and shared["cwola"] > 0, shared
    assert own == {"scan": 0, "cwola": 0}, own


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
    for entry in [e for e in data.methods if e.signal == "xgg_m900"]:  # 180 injected events on ~1100 background events (S/B ~ 0.4 in the signal region)
        assert entry.point(180).z_global.median > entry.point(0).z_global.median + 0.75, entry.method
        assert abs(entry.point(0).z_global.median) < 1.5, entry.method
    assert next(e for e in data.methods if (e.method, e.signal) == ("dijet_fit", "xgg_m900")).point(180).z_local.median > 3.0
    assert data.protocol.background_model["chi2_ndf"] < 2.0
