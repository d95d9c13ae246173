"""CWoLa hunting (``cwola_pfn``): windows, statistics, the k-fold guarantee, the truth-level gain of
a separable signal, sculpting on background-only QCD, the format-2 entry and an exact resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.core.config import load_config
from analysis.core.errors import ConfigError

TINY_NET = {"epochs": 2, "phi_sizes": [16, 16], "f_sizes": [16], "batch_size": 100, "learning_rate": 0.01}
SCAN_NET = {"epochs": None, "phi_sizes": None, "f_sizes": None, "batch_size": None}  # cwola: the scan's network
# the default sample's background fit (dijet function x logistic turn-on): the synthetic m_jj shape
THETA = (125.37, 131.33, -87.195, -18.331, 791.16, 3.4428)


# -- pure pieces ------------------------------------------------------------------------------
def test_windows_slide_on_bin_edges_with_sidebands_inside_the_range() -> None:
    from analysis.core.config import CwolaConfig
    from analysis.pfn.cwola import signal_windows

    edges = np.arange(760.0, 1481.0, 10.0)
    cw = CwolaConfig(sr_width=100, sb_width=50, sr_step=50, sr_min=800, sr_max=1100)
    windows = signal_windows(cw, edges)
    # SR 800-900 would need a sideband from 750 GeV: dropped
    assert [w.sr for w in windows] == [(850.0, 950.0), (900.0, 1000.0), (950.0, 1050.0), (1000.0, 1100.0)]
    assert all(w.low == (w.sr[0] - 50, w.sr[0]) and w.high == (w.sr[1], w.sr[1] + 50) for w in windows)
    region = windows[0].region(np.array([799.0, 800.0, 849.9, 850.0, 949.9, 950.0, 999.9, 1000.0]))
    np.testing.assert_array_equal(region, [-1, 0, 0, 1, 1, 0, 0, -1])
    snapped = signal_windows(CwolaConfig(sr_width=95, sb_width=52, sr_step=50, sr_min=812, sr_max=1000),
                             edges)  # fmt: skip
    assert snapped[0].sr == (810.0, 910.0) and snapped[0].low == (760.0, 810.0)  # on the bins' edges
    with pytest.raises(ConfigError, match="sidebands"):
        signal_windows(CwolaConfig(sr_width=100, sb_width=100, sr_min=760, sr_max=860), edges)


def test_excess_pvalue_is_poisson_and_conservative_for_overdispersed_counts() -> None:
    from scipy import stats

    from analysis.pfn.cwola import excess_pvalue

    assert excess_pvalue(0, 3.0, 1.0) == 1.0
    assert excess_pvalue(7, 3.0, 0.0) == pytest.approx(stats.poisson.sf(6, 3.0))
    assert excess_pvalue(7, 3.0, 1.0) > excess_pvalue(7, 3.0, 0.0)  # the fit's uncertainty widens the null
    # counts of variance 2 x mean (a compound Poisson of zero-truncated Poisson(1) multiplicities, as a
    # cut on a realisation's events makes them): calibrated with dispersion 2, not without
    rng = np.random.default_rng(1)
    mean_events = 40.0 / 1.582  # distinct events, so that the count's mean is 40
    draws = [rng.poisson(1.0, size=rng.poisson(mean_events) * 3) for _ in range(20_000)]
    counts = np.array([c[c > 0][: len(c) // 3].sum() for c in draws])
    mean, dispersion = counts.mean(), counts.var() / counts.mean()
    assert 1.8 < dispersion < 2.2
    p = np.array([excess_pvalue(c, mean, 0.0, dispersion) for c in counts])
    naive = np.array([excess_pvalue(c, mean, 0.0) for c in counts])
    for level in (0.01, 0.05):
        assert np.mean(p <= level) < 1.3 * level
        assert np.mean(naive <= level) > 2 * level  # Poisson alone: far too many small p


def test_selection_dispersion_matches_a_simulated_cut() -> None:
    """Per-bin variance / mean of the selected counts of realisations, cut as the method cuts (the
    top epsilon of the events, with their copies, by a score unrelated to the copies)."""
    from analysis.pfn.cwola import Window, fold_ranks, selection_dispersion
    from analysis.sensitivity.realizations import Realizations

    rng = np.random.default_rng(3)
    n_bins, per_bin, eps = 20, 100, 0.1
    mjj = np.repeat(np.arange(n_bins) + 0.5, per_bin)
    rates = rng.uniform(0.8, 1.2, len(mjj))
    real = Realizations(
        seed=0, n_realizations=1, n_signal=(0,), resampling="model_poisson", edges=np.arange(n_bins + 1.0),
        background_mjj=mjj, pool_mjj=np.array([0.5]), rates=rates, model=None, signal="toy",
    )  # fmt: skip
    counts = []
    for _ in range(3000):
        w = rng.poisson(rates)
        present = np.nonzero(w > 0)[0]  # the realisation's distinct events
        rank = fold_ranks(rng.uniform(size=len(present)), w[present], np.zeros(len(present), int))
        chosen = present[rank < eps]
        counts.append(np.bincount(chosen // per_bin, w[chosen], minlength=n_bins))
    counts = np.array(counts, dtype=float)
    measured = float(np.mean(counts.var(axis=0) / counts.mean(axis=0)))
    expected = selection_dispersion(real, Window(0, (5.0, 15.0), (0.0, 5.0), (15.0, 20.0)), eps)
    assert expected == pytest.approx(1 + 0.9 * np.mean(rates**2) / np.mean(rates))
    assert measured == pytest.approx(expected, rel=0.06)  # the window's fixed total takes ~1/20 off a bin's


# -- the event-level PFN ------------------------------------------------------------------------
@pytest.mark.parametrize("jit", [False, True])
def test_event_pfn_joins_the_jets_latent_sums_before_f(jit: bool) -> None:
    """EventPFN = F(Phi-sum of the leading jet, Phi-sum of the second jet), computed by hand; the
    reused (reset) model trains to the same bits as a fresh one."""
    from models.batches import PackedJets
    from models.pfn import build_pfn, dense_weights, pack_events
    from models.training import TrainSettings, predict_pfn, train_pfn

    rng = np.random.default_rng(0)
    counts = rng.integers(1, 30, size=40)
    jets = PackedJets(rng.normal(size=(int(counts.sum()), 4)).astype(np.float32), counts)
    events = pack_events(jets, 2)
    assert len(events) == 20 and events.features.shape[1] == 5
    model = build_pfn(5, (8, 8), (8,), seed=3, event_jets=2, jit_compile=jit)
    probs, used = predict_pfn(model, events, batch_size=7)

    def mlp(x: np.ndarray, layers: list, last_linear: bool) -> np.ndarray:
        for i, (kernel, bias) in enumerate(layers):
            x = x @ kernel + bias
            x = x if last_linear and i == len(layers) - 1 else np.maximum(x, 0.0)
        return x

    phi, f = dense_weights(model)
    offsets = jets.offsets
    latent = np.array([mlp(jets.features[offsets[j] : offsets[j + 1]].astype(float), phi, False).sum(axis=0)
                       for j in range(len(jets))]).reshape(20, 16)  # fmt: skip
    logits = mlp(latent, f, True)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, (expected / expected.sum(axis=1, keepdims=True))[used], atol=1e-5)
    if not jit:
        settings = TrainSettings(phi_sizes=(8, 8), f_sizes=(8,), epochs=2, batch_size=8, validate=False,
                                 event_jets=2)  # fmt: skip
        labels = rng.integers(0, 2, 20)
        first = predict_pfn(train_pfn(events, labels, settings, 5, reuse=True), events)[0]
        train_pfn(events, labels, settings, 9, reuse=True)
        again = predict_pfn(train_pfn(events, labels, settings, 5, reuse=True), events)[0]
        fresh = predict_pfn(train_pfn(events, labels, settings, 5), events)[0]
        np.testing.assert_array_equal(again, first)
        np.testing.assert_array_equal(fresh, first)


# -- a separable signal on a synthetic sample --------------------------------------------------
def _jets(rng: np.random.Generator, n_events: int, signal: bool):
    """Two jets per event: background with 8-20 constituents, a quarter photons, spread about the
    axis; the signal's with 10-24, 40 % photons, in two prongs: separable, not perfectly."""
    from analysis.pfn.inputs import PID2FLOAT
    from models.batches import PackedJets

    n_jets = 2 * n_events
    counts = rng.integers(10, 25, n_jets) if signal else rng.integers(8, 21, n_jets)
    total = int(counts.sum())
    pt = rng.exponential(1.0, total)
    jet = np.repeat(np.arange(n_jets), counts)
    pt /= np.bincount(jet, pt)[jet]
    centre = rng.choice([-0.1, 0.1], total) if signal else np.zeros(total)
    y = centre + rng.normal(0.0, 0.06 if signal else 0.12, total)
    phi = rng.normal(0.0, 0.06 if signal else 0.12, total)
    photon = rng.uniform(size=total) < (0.4 if signal else 0.25)
    hadrons = rng.choice([PID2FLOAT[211], PID2FLOAT[-211], PID2FLOAT[130]], total)
    pid = np.where(photon, PID2FLOAT[22], hadrons)
    features = np.column_stack([pt, y, phi, pid]).astype(np.float32)
    return PackedJets(features, counts.astype(np.int64)), np.arange(0, n_jets + 1, 2, dtype=np.int64)


def synthetic(n_background: int = 4000, n_pool: int = 600, seed: int = 11, n_signal: tuple = (0, 300)):
    """ScanInputs and Realizations of a synthetic sample: m_jj of the dijet x turn-on shape, a
    Gaussian signal at 880 GeV whose jets are clearly different."""
    from analysis.baselines.background_fit import dijet_turnon
    from analysis.pfn.scan import EventPool, ScanInputs
    from analysis.sensitivity.realizations import build_realizations, range_edges

    rng = np.random.default_rng(seed)
    grid = np.linspace(700.0, 1600.0, 9001)
    cdf = np.cumsum(dijet_turnon(np.array(THETA), grid, 7000.0, "logistic"))
    background_mjj = np.interp(rng.uniform(size=n_background), cdf / cdf[-1], grid)
    pool_mjj = rng.normal(880.0, 25.0, n_pool)
    pools = [EventPool(mjj, *_jets(rng, len(mjj), signal))
             for mjj, signal in ((background_mjj, False), (pool_mjj, True))]  # fmt: skip
    inputs = ScanInputs(pools[0], pools[1], "resonance", 880.0, "synthetic")
    real = build_realizations(
        background_mjj, pool_mjj, seed=seed, n_realizations=2, n_signal=list(n_signal),
        resampling="model_poisson", edges=range_edges(500.0, 1500.0, 10.0, 760.0, 1480.0), sqrt_s=7000.0,
        signal="toy_m880",
    )  # fmt: skip
    return inputs, real


def _unit_hashes(units) -> list[str]:
    """One hash per event unit (its constituents' bytes): copies of an event hash alike."""
    offsets = units.offsets
    rows = units.features
    return [hashlib.sha1(rows[offsets[i] : offsets[i + 1]].tobytes()).hexdigest() for i in range(len(units))]


@pytest.fixture(scope="module")
def separable_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """cwola_pfn on the synthetic sample (one window around the signal, 3 folds), every training's
    and every prediction's events recorded."""
    import models.training as training
    from analysis.pfn.cwola import run_cwola_sensitivity

    inputs, real = synthetic()
    cfg = load_config(None, {
        "seed": 5, "scan": TINY_NET,
        "cwola": {**SCAN_NET, "sr_width": 100, "sb_width": 50, "sr_step": 50, "sr_min": 830, "sr_max": 930, "folds": 3,
                  "realizations": 1},
    })  # fmt: skip
    calls: list[tuple[str, list[str]]] = []
    train, predict = training.train_pfn, training.predict_pfn

    def recording_train(units, labels, *args, **kwargs):
        calls.append(("train", _unit_hashes(units)))
        return train(units, labels, *args, **kwargs)

    def recording_predict(model, units, *args, **kwargs):
        calls.append(("predict", _unit_hashes(units)))
        return predict(model, units, *args, **kwargs)

    out = tmp_path_factory.mktemp("cwola_separable")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_pfn", recording_train)
        mp.setattr(training, "predict_pfn", recording_predict)
        entry = run_cwola_sensitivity(cfg, inputs, real, out, quiet=True)
    return {"entry": entry, "calls": calls, "cfg": cfg, "inputs": inputs, "real": real}


def test_no_event_is_scored_by_a_model_that_trained_on_it(separable_run) -> None:
    from analysis.pfn.cwola import window_events

    calls = separable_run["calls"]
    cfg, real = separable_run["cfg"], separable_run["real"]
    assert [kind for kind, _ in calls] == ["train", "predict"] * (len(real.n_signal) * cfg.cwola.folds)
    for k, n in enumerate(real.n_signal):
        block = calls[2 * k * cfg.cwola.folds : 2 * (k + 1) * cfg.cwola.folds]
        scored_all: list[str] = []
        for (_, trained), (_, scored) in zip(block[::2], block[1::2], strict=True):
            assert not set(trained) & set(scored)  # no copy of a scored event was trained on
            assert len(set(scored)) == len(scored)  # each distinct event scored once
            assert len(trained) > len(set(trained))  # Poisson copies train, all in the same fold
            scored_all += scored
        events = window_events(real, _window(cfg, real), 0, n, cfg.cwola.folds, cfg.seed)
        assert sorted(scored_all) == sorted(set(scored_all)) and len(scored_all) == len(events)


def _window(cfg, real):
    from analysis.pfn.cwola import signal_windows

    (window,) = signal_windows(cfg.cwola, real.edges)
    return window


def test_a_separable_injection_enriches_the_signal_region(separable_run) -> None:
    entry = separable_run["entry"]
    truth = entry.details["truth"]
    assert truth["n_signal"] == 300 and truth["window"]["sr"] == [830.0, 930.0]
    cut = next(c for c in truth["cuts"] if c["efficiency"] == 0.01)
    before = truth["s_over_b_before"]
    assert 0.1 < before < 1.0
    assert cut["background"] > 0 and cut["s_over_b"] >= 3 * before  # measured: ~17-fold (4 background left)
    assert truth["max_sic"] > 1.2 and truth["auc"] > 0.65  # two epochs of a tiny PFN: ~1.4 and ~0.76
    # the selected SR count stands above its sideband fit's prediction (measured: Z 3.8 against 0.7 at N = 0)
    assert entry.point(300).z_local.median > entry.point(0).z_local.median + 2


# -- background-only QCD (the session's processed sample) ---------------------------------------
QCD_CONFIG = {
    "seed": 4, "scan": TINY_NET,
    "injection": {"kind": "resonance"},
    "sensitivity": {"realizations": 3, "pfn_realizations": 3, "n_signal": [0, 300]},
    "cwola": {**SCAN_NET, "sr_width": 100, "sb_width": 50, "sr_step": 50, "sr_min": 810, "sr_max": 960, "folds": 3,
              "realizations": 3},
}  # fmt: skip


@pytest.fixture(scope="module")
def qcd_run(processed_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from analysis.pfn.cwola import run_cwola_sensitivity
    from analysis.pfn.scan import load_processed, scan_inputs
    from analysis.sensitivity.model import Sensitivity
    from analysis.sensitivity.realizations import from_processed

    out = tmp_path_factory.mktemp("cwola_qcd")
    config = out / "cwola.yaml"
    config.write_text(json.dumps(QCD_CONFIG))
    cfg = load_config(config)
    columns, metadata = load_processed(processed_sample)
    real = from_processed(cfg, columns, metadata)
    inputs = scan_inputs(columns, metadata, cfg, "resonance")
    entry = run_cwola_sensitivity(cfg, inputs, real, out, quiet=True)
    return {"entry": entry, "data": Sensitivity.read(out / "sensitivity.json"), "out": out, "cfg": cfg,
            "real": real, "inputs": inputs}  # fmt: skip


def test_background_only_selections_are_not_sculpted(qcd_run) -> None:
    sculpting = qcd_run["entry"].details["sculpting"]
    chi2 = np.array(sculpting["chi2_ndf"])  # realisations x windows x efficiencies
    ndf = np.array(sculpting["ndf"])
    assert chi2.shape == (3, 2, 3) and np.isfinite(chi2).all()
    pooled = (chi2 * ndf).sum(axis=(0, 1)) / ndf.sum(axis=(0, 1))
    assert np.all(pooled < 1.5), pooled
    np.testing.assert_allclose(sculpting["pooled_chi2_ndf_per_efficiency"], pooled, rtol=1e-3)
    assert (qcd_run["out"] / "cwola_sculpting.png").is_file()


def test_entry_is_format_2_and_resume_is_exact(qcd_run) -> None:
    from analysis.pfn.cwola import CHECKPOINTS, PLOT, ROC_PLOT, run_cwola_sensitivity
    from analysis.sensitivity.model import Sensitivity

    data, real, out = qcd_run["data"], qcd_run["real"], qcd_run["out"]
    (entry,) = data.methods
    assert entry == qcd_run["entry"]
    assert entry.method == "cwola_pfn" and entry.signal == real.signal
    assert entry.fingerprint == real.fingerprint
    assert entry.background_events == real.background_events and entry.realizations == 3
    assert [p.n_signal for p in entry.points] == [0, 300] and len(entry.null_p_global) == 3
    assert entry.null_ks_pvalue is not None and "Sidak" in entry.z_global_meaning
    assert data.protocol == real.protocol()
    p = np.array(entry.details["p"])
    assert p.shape == (3, 2, 2, 3) and np.all((p > 0) & (p <= 1))
    assert entry.details["trials"] == 6
    for name in (PLOT, ROC_PLOT):
        assert (out / name).is_file()
    checkpoints = sorted((out / CHECKPOINTS).glob("*.json"))
    assert len(checkpoints) == 3 * 2 * 2 * 3
    for path in checkpoints[::4]:
        path.unlink()
    checkpoints[1].write_text("{")
    run_cwola_sensitivity(qcd_run["cfg"], qcd_run["inputs"], real, out, resume=True, quiet=True)
    assert Sensitivity.read(out / "sensitivity.json") == data
    other = qcd_run["cfg"].model_copy(update={"cwola": qcd_run["cfg"].cwola.model_copy(update={"folds": 4})})
    with pytest.raises(ConfigError, match="checkpoint of a different"):
        run_cwola_sensitivity(other, qcd_run["inputs"], real, out, resume=True, quiet=True)


# -- real W' -> WZ events (two-prong jets) injected into real QCD ----------------------------------
@pytest.fixture(scope="module")
def wprime_run(scan_qcd_sample: Path, wprime_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """cwola_pfn on the scan QCD sample with 300 of the W' sample's selected events injected, one
    window on the W' peak (the first realisation only)."""
    from analysis.events.processing import process_fileset
    from analysis.pfn.cwola import run_cwola_sensitivity
    from analysis.pfn.scan import load_processed, scan_inputs
    from analysis.sensitivity.realizations import from_processed

    out = tmp_path_factory.mktemp("cwola_wprime")
    settings = {
        "seed": 6, "injection": {"kind": "resonance", "signals": ["wprime"]},
        "sensitivity": {"realizations": 3, "pfn_realizations": 3, "n_signal": [0, 500]},
        "scan": {**TINY_NET, "epochs": 10, "phi_sizes": [64, 64], "f_sizes": [64], "learning_rate": 0.003},
    }  # fmt: skip
    cfg = load_config(None, settings)
    process_fileset([scan_qcd_sample, wprime_sample], out / "process", cfg, executor="iterative", quiet=True)
    columns, metadata = load_processed(out / "process")
    real = from_processed(cfg, columns, metadata)
    median = float(np.median(real.pool_mjj))
    low = 10.0 * round((median - 50.0) / 10.0)  # a 100 GeV window centred on the W' peak
    cwola = {**SCAN_NET, "sr_width": 100, "sb_width": 50, "sr_min": low, "sr_max": low + 100, "folds": 3, "realizations": 1}
    cfg = load_config(None, {**settings, "cwola": cwola})
    entry = run_cwola_sensitivity(cfg, scan_inputs(columns, metadata, cfg, "resonance"), real, out / "cwola", quiet=True)
    return {"entry": entry, "real": real, "median": median}


def test_a_wprime_injection_enriches_the_signal_region_threefold(wprime_run) -> None:
    """A strong W' injection (S/B ~ 0.3-0.5 in the window by truth): the top 1 % of the window's
    events by score hold at least 3 times the S/B of the window."""
    assert wprime_run["real"].signal == "wprime_m900"
    assert 820 < wprime_run["median"] < 920  # the W' peak (a little below M, like xgg's)
    truth = wprime_run["entry"].details["truth"]
    assert truth["n_signal"] == 500
    before = truth["s_over_b_before"]
    assert 0.1 < before < 2.0
    cut = next(c for c in truth["cuts"] if c["efficiency"] == 0.01)
    assert cut["s_over_b"] >= 3 * before, (cut, before)
