"""The coffea dijet processor and `process`: numbers against uproot + numpy, executors,
injection, real NanoAOD, bad and empty files, constituents, substructure (jet mass, tau21 against
a brute-force N-subjettiness), config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
import yaml

from analysis.cli import main as cli_main
from analysis.core.config import AnalysisConfig, load_config
from analysis.core.errors import ConfigError, InputError
from analysis.events.injection import plan_injection
from analysis.events.processing import process_fileset

# coffea's NanoAOD schema warns about collections real NanoAOD files reference but do not store
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.nanoevents.schemas.nanoaod")

REPO = Path(__file__).resolve().parent.parent
NANOAOD = (REPO / ".." / "shared" / "data" / "nanoaod").resolve()

# A selection loose enough for the small real NanoAOD files (Drell-Yan and PFNano ttbar).
LOOSE = {"jet_pt_min": 20.0, "jet_pt_max": 5000.0, "jet_abs_eta_max": 2.4, "jet_id_min": 2, "n_jets": 2}
WIDE = {"mjj_min": 0.0, "mjj_max": 5000.0, "mjj_bin_width": 50.0}


def nanoaod(name: str) -> Path:
    path = NANOAOD / name
    if not path.exists():
        pytest.skip(f"real NanoAOD test file {path} is absent (../shared/data/nanoaod)")
    return path


def config(**sections: dict[str, Any]) -> AnalysisConfig:
    """The default config with some sections overridden (validated like a YAML file)."""
    return load_config(None, sections)


def fileset_of(sample: Any) -> dict[str, Any]:
    """The fileset dict of a generated sample (fixture value: fileset.json or its directory)."""
    path = Path(sample)
    path = path / "fileset.json" if path.is_dir() else path
    data = json.loads(path.read_text())
    out = {}
    for name, entry in data.items():
        files = entry["files"]
        files = files if isinstance(files, dict) else dict.fromkeys(files, "Events")
        out[name] = {
            "files": {str(p if Path(p).is_absolute() else path.parent / p): t for p, t in files.items()},
            "metadata": entry.get("metadata", {}),
        }
    return out


@pytest.fixture(scope="session")
def gen_fileset(qcd_sample: Any, xgg_sample: Any) -> dict[str, Any]:
    """The generated qcd and xgg samples as one fileset."""
    return {**fileset_of(qcd_sample), **fileset_of(xgg_sample)}


@pytest.fixture(scope="session")
def gen_processed(gen_fileset: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):
    """The generated samples processed once with the default selection (iterative executor)."""
    out = tmp_path_factory.mktemp("gen_processed")
    cfg = config(injection={"kind": "resonance", "sizes": [5, 20]})
    return process_fileset(gen_fileset, out, cfg, executor="iterative", quiet=True)


# -- the independent computation -----------------------------------------------------------
def reference(paths: list[str], sel: dict[str, Any]) -> dict[str, Any]:
    """Select with uproot + numpy only: cutflow counts, m_jj and weights of the selected events."""
    cut_counts = {"all": 0, "finite": 0, "jet_pt": 0, "jet_eta": 0, "jet_id": 0, "n_jets": 0}
    masses, weights, events = [], [], []
    for path in paths:
        with uproot.open(path) as fh:
            tree = fh["Events"]
            if tree.num_entries == 0:
                continue
            names = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "genWeight", "event"]
            available = set(tree.keys())
            arr = tree.arrays([n for n in names if n in available], library="ak")
        counts = ak.to_numpy(ak.num(arr.Jet_pt))
        flat = {k: ak.to_numpy(ak.flatten(arr[k])).astype(np.float64) for k in names[:5] if k in arr.fields}
        owner = np.repeat(np.arange(len(counts)), counts)
        pt_ok = (flat["Jet_pt"] >= sel["jet_pt_min"]) & (flat["Jet_pt"] <= sel["jet_pt_max"])
        eta_ok = pt_ok & (np.abs(flat["Jet_eta"]) < sel["jet_abs_eta_max"])
        good = eta_ok & (flat["Jet_jetId"] >= sel["jet_id_min"]) if sel["jet_id_min"] > 0 else eta_ok
        n = sel["n_jets"]
        per_event = {c: np.bincount(owner, weights=m, minlength=len(counts)) for c, m in
                     (("jet_pt", pt_ok), ("jet_eta", eta_ok), ("good", good))}  # fmt: skip
        cut_counts["all"] += len(counts)
        cut_counts["finite"] += len(counts)  # these files hold no NaN or inf (see test_hostile.py)
        cut_counts["jet_pt"] += int(np.sum(per_event["jet_pt"] >= n))
        cut_counts["jet_eta"] += int(np.sum(per_event["jet_eta"] >= n))
        cut_counts["jet_id"] += int(np.sum(per_event["good"] >= n))
        keep = per_event["good"] == n
        cut_counts["n_jets"] += int(np.sum(keep))
        use = good & keep[owner]
        pt, eta, phi, m = (flat[k][use] for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"))
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
        idx = owner[use]
        s = {k: np.bincount(idx, weights=v, minlength=len(counts))[keep] for k, v in
             (("e", e), ("px", px), ("py", py), ("pz", pz))}  # fmt: skip
        masses.append(np.sqrt(np.maximum(s["e"] ** 2 - s["px"] ** 2 - s["py"] ** 2 - s["pz"] ** 2, 0)))
        w = (
            ak.to_numpy(arr.genWeight).astype(np.float64)
            if "genWeight" in arr.fields
            else np.ones(len(counts))
        )
        weights.append(w[keep])
        events.append(ak.to_numpy(arr.event)[keep])
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return {"cutflow": cut_counts, "mjj": cat(masses), "weight": cat(weights), "event": cat(events)}


def root_hist(out_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with uproot.open(out_dir / "histograms.root") as fh:
        h = fh[name]
        return h.values(flow=False), h.variances(flow=False), h.axis().edges()


# -- numbers against uproot + numpy --------------------------------------------------------
def test_generated_histograms_equal_independent_computation(gen_processed, gen_fileset) -> None:
    res = gen_processed
    sel = load_config().selection.model_dump()
    assert set(res.cutflow["datasets"]) == set(gen_fileset)
    for name, entry in gen_fileset.items():
        ref = reference(list(entry["files"]), sel)
        assert res.cutflow["datasets"][name]["cutflow"] == ref["cutflow"]
        assert ref["cutflow"]["n_jets"] > 0, "the tiny sample must select some events"
        values, variances, edges = root_hist(res.out_dir, f"mjj_{name}")
        assert edges[0] == 500 and edges[-1] == 1500 and len(edges) == 101
        expected, _ = np.histogram(ref["mjj"], bins=edges, weights=ref["weight"])
        np.testing.assert_array_equal(values, expected)
        np.testing.assert_array_equal(variances, expected)  # unit weights: sumw2 == sumw
        bins, _, bin_edges = root_hist(res.out_dir, f"mjj_bins_{name}")
        np.testing.assert_array_equal(bin_edges, [660, 760, 860, 960, 1060, 1160])
        np.testing.assert_array_equal(bins, np.histogram(ref["mjj"], bins=bin_edges)[0])
        # columnar output: the same events, in file order, with the same m_jj
        cols = ak.from_parquet(res.out_dir / "events" / f"{name}.parquet")
        np.testing.assert_array_equal(ak.to_numpy(cols.event), ref["event"])
        np.testing.assert_allclose(ak.to_numpy(cols.mjj), ref["mjj"], rtol=1e-12)
        assert set(cols.dataset.tolist()) == {name}
        assert ak.all(ak.num(cols.jets) == 2)
        assert set(cols.jets.fields) >= {
            "pt",
            "eta",
            "phi",
            "mass",
            "rapidity",
            "partonFlavour",
            "jetId",
            "constituents",
            "tau21",
        }
        assert set(cols.jets.constituents.fields) == {"pt", "rapidity", "phi", "pdgId"}
        assert ak.all(
            (cols.jets.pt >= 350)
            & (cols.jets.pt <= 450)
            & (abs(cols.jets.eta) < 1.9)
            & (cols.jets.jetId >= 2)
        )
    run = json.loads((res.out_dir / "run.json").read_text())
    assert run["config"]["selection"] == sel and "process.coffea" in run["timings_s"]


def test_real_nanoaod_histograms_equal_independent_computation(tmp_path: Path) -> None:
    files = [str(nanoaod("nano_dy.root")), str(nanoaod("pfnano.root"))]
    cfg = config(selection=LOOSE, histograms=WIDE, injection={"kind": "none"})
    res = process_fileset({"real": files}, tmp_path, cfg, executor="iterative", quiet=True)
    ref = reference(files, LOOSE)
    assert ref["cutflow"]["n_jets"] > 5
    assert res.cutflow["datasets"]["real"]["cutflow"] == ref["cutflow"]
    values, variances, edges = root_hist(tmp_path, "mjj_real")
    expected, _ = np.histogram(ref["mjj"], bins=edges, weights=ref["weight"])
    sumw2, _ = np.histogram(ref["mjj"], bins=edges, weights=ref["weight"] ** 2)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    np.testing.assert_allclose(variances, sumw2, rtol=1e-12)
    cols = ak.from_parquet(tmp_path / "events" / "real.parquet")
    np.testing.assert_allclose(ak.to_numpy(cols.weight), ref["weight"])
    # rapidity computed from pt/eta/mass (real NanoAOD has no Jet_rapidity)
    j = cols.jets
    e = np.sqrt((j.pt * np.cosh(j.eta)) ** 2 + j.mass**2)
    pz = j.pt * np.sinh(j.eta)
    np.testing.assert_allclose(
        ak.flatten(j.rapidity), ak.flatten(0.5 * np.log((e + pz) / (e - pz))), atol=1e-6
    )
    # tau21 from the PFNano file's PF candidates, -1 for the plain NanoAOD file's jets
    with_pf = np.isin(ak.to_numpy(cols.event), uproot.open(files[1])["Events"]["event"].array(library="np"))
    tau21 = cols.jets.tau21
    assert ak.all(tau21[~with_pf] == -1) and ak.all((tau21[with_pf] >= 0) & (tau21[with_pf] <= 1))
    assert ak.sum(with_pf) > 0 and ak.sum(~with_pf) > 0


# -- executors ---------------------------------------------------------------------------------
def test_iterative_futures_and_dask_give_identical_results(gen_fileset, tmp_path: Path) -> None:
    cfg = config(processing={"chunksize": 700}, injection={"kind": "resonance", "sizes": [5]})
    results = {}
    for executor in ("iterative", "futures", "dask"):
        results[executor] = process_fileset(gen_fileset, tmp_path / executor, cfg, executor=executor,
                                            workers=2, quiet=True)  # fmt: skip
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        results["scheduler"] = process_fileset(gen_fileset, tmp_path / "scheduler", cfg, executor="dask",
                                               scheduler=cluster.scheduler_address, quiet=True)  # fmt: skip
    base = results["iterative"]
    n_chunks = sum(
        -(-uproot.open(p)["Events"].num_entries // 700) for e in gen_fileset.values() for p in e["files"]
    )
    assert n_chunks > 3, "several chunks per run, so the merge order is exercised"
    for executor in ("futures", "dask", "scheduler"):
        other = results[executor]
        assert other.cutflow["datasets"] == base.cutflow["datasets"]
        named, base_named = other.spectra.named(), base.spectra.named()
        assert set(named) == set(base_named) and any("injected" in name for name in named)
        for name, h in base_named.items():
            np.testing.assert_array_equal(named[name].values(flow=True), h.values(flow=True))
            np.testing.assert_array_equal(named[name].variances(flow=True), h.variances(flow=True))
        for name in gen_fileset:
            a = ak.from_parquet(base.events[name])
            b = ak.from_parquet(other.events[name])
            assert ak.to_list(a) == ak.to_list(b)


# -- injection -------------------------------------------------------------------------------
def test_resonance_injection_is_background_plus_k_signal_events(gen_processed, gen_fileset) -> None:
    res = gen_processed
    qcd = [n for n, e in gen_fileset.items() if e["metadata"].get("process") == "qcd"]
    xgg = [n for n, e in gen_fileset.items() if e["metadata"].get("process") == "xgg"]
    inj = res.cutflow["injection"]
    assert inj["kind"] == "resonance" and inj["background_datasets"] == qcd and inj["pool_datasets"] == xgg
    assert inj["sizes"] == [5, 20]
    assert res.spectra.sizes == [5, 20] and res.spectra.kind == "resonance"
    for prefix in ("mjj", "mjj_bins"):
        bkg = res.spectra.injected("background", 5, prefix)
        # the background is the qcd sample itself (the pool is the disjoint xgg sample)
        np.testing.assert_array_equal(
            bkg.values(flow=True), sum(res.spectra.dataset(n, prefix) for n in qcd).values(flow=True)
        )
        for k in (5, 20):
            sig = res.spectra.injected("signal", k, prefix)
            injected = res.spectra.injected("injected", k, prefix)
            assert sig.sum(flow=True).value == k  # exactly k unit-weight events
            np.testing.assert_array_equal(
                injected.values(flow=True), bkg.values(flow=True) + sig.values(flow=True)
            )
            np.testing.assert_array_equal(
                injected.variances(flow=True), bkg.variances(flow=True) + sig.variances(flow=True)
            )
            values, _, _ = root_hist(res.out_dir, f"{prefix}_injected_resonance_{k}")
            np.testing.assert_array_equal(values, injected.values())
    # the drawn events: without replacement, from the pool, reproducible from the seed
    cols = {n: ak.from_parquet(res.events[n]) for n in gen_fileset}
    meta = {n: e["metadata"] for n, e in gen_fileset.items()}
    cfg = config(injection={"kind": "resonance", "sizes": [5, 20]})
    a = plan_injection(cols, meta, cfg.injection, cfg.histograms, cfg.seed)
    b = plan_injection(cols, meta, cfg.injection, cfg.histograms, cfg.seed)
    c = plan_injection(cols, meta, cfg.injection, cfg.histograms, cfg.seed + 1)
    for k in (5, 20):
        assert len(np.unique(a.draws[k])) == k and a.draws[k].max() < len(a.pool)
        np.testing.assert_array_equal(a.draws[k], b.draws[k])
    assert not np.array_equal(a.draws[20], c.draws[20])
    sig = res.spectra.injected("signal", 20)
    expected, _ = np.histogram(ak.to_numpy(a.pool.mjj[a.draws[20]]), bins=sig.axes[0].edges)
    np.testing.assert_array_equal(sig.values(), expected)


def test_histograms_root_reads_back_as_the_written_spectra(gen_processed, gen_fileset) -> None:
    """The ROOT names are made and parsed in one module: reading gives back the category axes."""
    from analysis.events.histograms import read_spectra

    res = gen_processed
    back = read_spectra(res.out_dir / "histograms.root")
    assert back.dataset_names == list(gen_fileset) and back.sizes == [5, 20] and back.kind == "resonance"
    with uproot.open(res.out_dir / "histograms.root") as fh:
        keys = {k.split(";")[0] for k in fh}
    assert keys == set(res.spectra.named()) and "mjj_injected_resonance_20" in keys and "mjj_bins_background" in keys
    for binning in ("mjj", "mjj_bins"):
        for axis in ("dataset", "mjj"):
            assert list(back.datasets[binning].axes[axis]) == list(res.spectra.datasets[binning].axes[axis])
        np.testing.assert_array_equal(back.datasets[binning].values(flow=True), res.spectra.datasets[binning].values(flow=True))
        np.testing.assert_array_equal(back.injection[binning].values(flow=True), res.spectra.injection[binning].values(flow=True))
        np.testing.assert_array_equal(
            back.injection[binning].variances(flow=True), res.spectra.injection[binning].variances(flow=True)
        )


def test_a_dataset_named_like_an_injected_histogram_is_refused(gen_fileset, tmp_path: Path) -> None:
    qcd = next(e for e in gen_fileset.values() if e["metadata"].get("process") == "qcd")
    xgg = next(e for e in gen_fileset.values() if e["metadata"].get("process") == "xgg")
    fileset = {"signal_resonance_5": qcd, "xgg": xgg}
    cfg = config(injection={"kind": "resonance", "sizes": [5]})
    with pytest.raises(ConfigError, match="'signal_resonance_5' clashes with the injected histograms"):
        process_fileset(fileset, tmp_path / "out", cfg, executor="iterative", quiet=True)
    assert not (tmp_path / "out" / "histograms.root").exists()


def test_gluon_pair_injection_draws_from_a_disjoint_pool(gen_processed, gen_fileset) -> None:
    res = gen_processed
    cols = {n: ak.from_parquet(res.events[n]) for n in gen_fileset}
    meta = {n: e["metadata"] for n, e in gen_fileset.items()}
    cfg = config(
        histograms={"analysis_bins": [500, 1500]},
        injection={"kind": "gluon_pairs", "bin": 0, "sizes": [3, 10**6], "pool_fraction": 0.5},
    )
    inj = plan_injection(cols, meta, cfg.injection, cfg.histograms, cfg.seed)
    assert len(inj.pool) >= 3, "the tiny qcd sample must hold a few gluon pairs"
    assert ak.all(inj.pool.jets.partonFlavour == 21)
    assert ak.all((inj.pool.mjj >= 500) & (inj.pool.mjj < 1500))
    pool_ids = {(d, e) for d, e in zip(inj.pool.dataset.tolist(), inj.pool.event.tolist(), strict=True)}
    bkg_ids = {
        (d, e) for d, e in zip(inj.background.dataset.tolist(), inj.background.event.tolist(), strict=True)
    }
    assert not pool_ids & bkg_ids
    qcd_total = sum(len(cols[n]) for n in inj.background_datasets)
    assert len(inj.background) < qcd_total and len(inj.background) + len(inj.pool) <= qcd_total
    assert list(inj.draws) == [3] and list(inj.skipped) == [10**6]
    from analysis.events.injection import injected_spectra
    from processors.dijet import mjj_hist

    spectra = injected_spectra(inj, {"mjj": mjj_hist(cfg.histograms)})["mjj"]
    assert list(spectra.axes["size"]) == [3]
    np.testing.assert_array_equal(
        spectra["injected", hist.loc(3), :].values(flow=True),
        spectra["background", hist.loc(3), :].values(flow=True) + spectra["signal", hist.loc(3), :].values(flow=True),
    )
    assert spectra["signal", hist.loc(3), :].sum(flow=True).value == 3
    with pytest.raises(ConfigError, match=r"injection\.bin"):
        bad = config(injection={"kind": "gluon_pairs", "bin": 5})
        plan_injection(cols, meta, bad.injection, bad.histograms, bad.seed)


# -- bad, empty and incomplete input -----------------------------------------------------------
def truncated_copy(src: str, dst: Path, fraction: float = 0.6) -> Path:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupt_copy(src: str, dst: Path) -> Path:
    """Same length, but the middle quarter of the bytes (compressed baskets) overwritten."""
    data = bytearray(Path(src).read_bytes())
    n = len(data)
    data[n // 4 : n // 2] = b"Z" * (n // 2 - n // 4)
    dst.write_bytes(bytes(data))
    return dst


def test_bad_file_fails_with_one_line_naming_it(gen_fileset, tmp_path: Path, capsys) -> None:
    qcd = next(n for n, e in gen_fileset.items() if e["metadata"].get("process") == "qcd")
    good = list(gen_fileset[qcd]["files"])
    bad = truncated_copy(good[0], tmp_path / "truncated.root")
    cfg = config(injection={"kind": "none"})
    with pytest.raises(InputError, match=r"truncated\.root"):
        process_fileset({"qcd": [*good, str(bad)]}, tmp_path / "out", cfg, executor="iterative", quiet=True)
    corrupt = corrupt_copy(good[0], tmp_path / "corrupt.root")  # opens fine, fails while reading
    with pytest.raises(InputError, match=r"corrupt\.root: unreadable"):
        process_fileset(
            {"qcd": [str(corrupt)]}, tmp_path / "out", cfg, executor="futures", workers=2, quiet=True
        )
    for broken in (tmp_path / "missing.root", tmp_path / "garbage.root"):
        if broken.name == "garbage.root":
            broken.write_bytes(b"not a ROOT file" * 100)
        with pytest.raises(InputError, match=broken.name):
            process_fileset({"qcd": [str(broken)]}, tmp_path / "out", cfg, executor="iterative", quiet=True)
    # the command line: exit 1, one line naming the file, no traceback
    (tmp_path / "fs.json").write_text(json.dumps({"qcd": {"files": {str(bad): "Events"}}}))
    code = cli_main(["process", "--fileset", str(tmp_path / "fs.json"), "--out", str(tmp_path / "cli"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err


def test_skip_bad_files_keeps_the_good_results(gen_fileset, tmp_path: Path) -> None:
    qcd = next(n for n, e in gen_fileset.items() if e["metadata"].get("process") == "qcd")
    good = list(gen_fileset[qcd]["files"])
    bad = [str(truncated_copy(good[0], tmp_path / "truncated.root")), str(tmp_path / "missing.root"),
           str(tmp_path / "garbage.root"), str(corrupt_copy(good[0], tmp_path / "corrupt.root"))]  # fmt: skip
    Path(bad[2]).write_bytes(b"\x00" * 5000)
    mixed = [good[0], bad[0], bad[1], bad[3], *good[1:], bad[2]]
    cfg = config(injection={"kind": "none"}, processing={"chunksize": 1000})
    res = process_fileset({"qcd": mixed}, tmp_path / "skip", cfg, executor="futures", workers=2,
                          skip_bad_files=True, quiet=True)  # fmt: skip
    clean = process_fileset({"qcd": good}, tmp_path / "clean", cfg, executor="iterative", quiet=True)
    skipped = json.loads((tmp_path / "skip" / "cutflow.json").read_text())["skipped_files"]
    assert sorted(s["file"] for s in skipped) == sorted(bad)
    assert all(s["reason"] for s in skipped)
    assert res.cutflow["datasets"]["qcd"]["cutflow"] == clean.cutflow["datasets"]["qcd"]["cutflow"]
    np.testing.assert_array_equal(
        res.spectra.dataset("qcd").values(flow=True), clean.spectra.dataset("qcd").values(flow=True)
    )
    assert ak.to_list(ak.from_parquet(res.events["qcd"]).event) == ak.to_list(
        ak.from_parquet(clean.events["qcd"]).event
    )


def test_empty_file_gives_empty_histograms(tmp_path: Path) -> None:
    empty, dy = str(nanoaod("nano_dy_empty.root")), str(nanoaod("nano_dy.root"))
    cfg = config(selection=LOOSE, histograms=WIDE, injection={"kind": "none"})
    res = process_fileset({"empty": [empty], "dy": [empty, dy], "dy_only": [dy]}, tmp_path, cfg,
                          executor="iterative", quiet=True)  # fmt: skip
    values, _, _ = root_hist(tmp_path, "mjj_empty")
    assert values.shape == (100,) and not values.any()
    flow = res.cutflow["datasets"]["empty"]
    assert flow["cutflow"] == {"all": 0, "finite": 0, "jet_pt": 0, "jet_eta": 0, "jet_id": 0, "n_jets": 0}
    assert flow["empty_files"] == [empty]
    assert len(ak.from_parquet(res.events["empty"])) == 0
    # an empty file adds nothing to the others
    assert res.cutflow["datasets"]["dy"]["cutflow"] == res.cutflow["datasets"]["dy_only"]["cutflow"]
    np.testing.assert_array_equal(res.spectra.dataset("dy").values(), res.spectra.dataset("dy_only").values())


def test_missing_jet_id_branch_is_named_unless_not_needed(tmp_path: Path) -> None:
    src = nanoaod("nano_dy.root")
    with uproot.open(src) as fh:
        arr = fh["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "genWeight", "event"])
    path = tmp_path / "nano_without_jetid.root"
    with uproot.recreate(path) as fh:
        jets = ak.zip({k[4:]: arr[k] for k in ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")})
        data = {"Jet": jets, "genWeight": arr.genWeight, "event": arr.event}
        fh.mktree("Events", {k: v.type for k, v in data.items()})
        fh["Events"].extend(data)
    cfg = config(selection=LOOSE, histograms=WIDE, injection={"kind": "none"})
    with pytest.raises(InputError, match=r"nano_without_jetid.root: branch Jet_jetId is missing.*jet_id_min"):
        process_fileset({"dy": [str(path)]}, tmp_path / "a", cfg, executor="iterative", quiet=True)
    no_id = {**LOOSE, "jet_id_min": 0}
    cfg = config(selection=no_id, histograms=WIDE, injection={"kind": "none"})
    res = process_fileset({"dy": [str(path)]}, tmp_path / "b", cfg, executor="iterative", quiet=True)
    ref = reference([str(src)], no_id)
    assert res.cutflow["datasets"]["dy"]["cutflow"] == ref["cutflow"] and ref["cutflow"]["n_jets"] > 0
    cols = ak.from_parquet(res.events["dy"])
    assert ak.all(cols.jets.jetId == -1) and ak.all(cols.jets.partonFlavour == 0)
    assert "constituents" not in cols.jets.fields and ak.all(cols.jets.tau21 == -1)  # no PF candidates


# -- constituents (events.Jet.constituents) --------------------------------------------------
def test_constituents_of_generated_jets(gen_processed, gen_fileset) -> None:
    name = next(iter(gen_fileset))
    cols = ak.from_parquet(gen_processed.events[name])
    n_const = ak.num(cols.jets.constituents, axis=2)
    # the PF candidates linked to each selected jet: nConstituents of that jet, read with uproot
    expected = {}
    for path in gen_fileset[name]["files"]:
        with uproot.open(path) as fh:
            a = fh["Events"].arrays(["event", "Jet_pt", "Jet_nConstituents", "JetPFCands_jetIdx"])
        for ev, pts, nc, links in zip(a.event.tolist(), a.Jet_pt.tolist(), a.Jet_nConstituents.tolist(),
                                      a.JetPFCands_jetIdx.tolist(), strict=True):  # fmt: skip
            expected[ev] = (pts, nc, links)
    for ev, jets_pt, counts in zip(cols.event.tolist(), cols.jets.pt.tolist(), n_const.tolist(), strict=True):
        pts, nc, links = expected[ev]
        for pt, count in zip(jets_pt, counts, strict=True):
            j = int(np.argmin(np.abs(np.asarray(pts) - pt)))
            assert count == links.count(j) == nc[j] > 0
    assert ak.all(cols.jets.constituents.pt > 0)


def rewrite_links(src: str, dst: Path, bad_links: int = 0, extra_constituent: bool = False) -> None:
    """A copy of a generated file with ``bad_links`` JetPFCands links pointing outside their
    event's PF candidates (half -1, half 10**5), or one jet's nConstituents one too many."""
    with uproot.open(src) as fh:
        a = fh["Events"].arrays()

    def coll(prefix: str) -> ak.Array:
        return ak.zip({f[len(prefix) + 1 :]: a[f] for f in a.fields if f.startswith(prefix + "_")})

    jets, links = coll("Jet"), coll("JetPFCands")
    idx = ak.to_numpy(ak.flatten(links.pFCandsIdx)).copy()
    bad = np.random.default_rng(5).choice(len(idx), bad_links, replace=False)
    idx[bad[: bad_links // 2]], idx[bad[bad_links // 2 :]] = -1, 100_000
    links = ak.with_field(links, ak.unflatten(idx, ak.num(links)), "pFCandsIdx")
    if extra_constituent:
        counts = ak.to_numpy(ak.flatten(jets.nConstituents)).copy()
        counts[10] += 1
        jets = ak.with_field(jets, ak.unflatten(counts, ak.num(jets)), "nConstituents")
    data = {"Jet": jets, "PFCands": coll("PFCands"), "JetPFCands": links,
            **{k: a[k] for k in ("run", "luminosityBlock", "event", "genWeight")}}  # fmt: skip
    with uproot.recreate(dst) as fh:
        fh.mktree("Events", {k: v.type for k, v in data.items()})
        fh["Events"].extend(data)


def test_constituent_links_outside_the_candidates_are_dropped(gen_fileset, tmp_path: Path) -> None:
    """As coffea's ``Jet.constituents.pf``: a link outside its event's PF candidates is dropped
    (the jet keeps the others); nConstituents that do not add up to the links: unreadable."""
    src = next(iter(gen_fileset["qcd"]["files"]))
    path = tmp_path / "bad_links.root"
    rewrite_links(src, path, bad_links=4000)
    cfg = config(injection={"kind": "none"})
    res = process_fileset({"qcd": [str(path)]}, tmp_path / "out", cfg, executor="iterative", quiet=True)
    cols = ak.from_parquet(res.events["qcd"])
    with uproot.open(path) as fh:
        a = fh["Events"].arrays(["event", "Jet_pt", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt"])
    by_event = {ev: i for i, ev in enumerate(a.event.tolist())}
    dropped = 0
    for ev, jets in zip(cols.event.tolist(), cols.jets.tolist(), strict=True):
        i = by_event[ev]
        pts, n_cands = a.Jet_pt[i].tolist(), len(a.PFCands_pt[i])
        for jet in jets:
            j = pts.index(next(p for p in pts if abs(p - jet["pt"]) < 1e-6 * jet["pt"]))
            links = [c for jet_idx, c in zip(a.JetPFCands_jetIdx[i].tolist(), a.JetPFCands_pFCandsIdx[i].tolist(),
                                             strict=True) if jet_idx == j]  # fmt: skip
            valid = [c for c in links if 0 <= c < n_cands]
            dropped += len(links) - len(valid)
            assert [c["pt"] for c in jet["constituents"]] == [float(a.PFCands_pt[i][c]) for c in valid]
    assert dropped > 0
    rewrite_links(src, tmp_path / "bad_counts.root", extra_constituent=True)
    with pytest.raises(InputError, match=r"bad_counts\.root: unreadable .*nConstituents"):
        process_fileset({"qcd": [str(tmp_path / "bad_counts.root")]}, tmp_path / "out2", cfg,
                        executor="iterative", quiet=True)  # fmt: skip


def test_constituents_of_pfnano_jets(tmp_path: Path) -> None:
    path = str(nanoaod("pfnano.root"))
    sel = {**LOOSE, "jet_pt_min": 30.0}
    cfg = config(selection=sel, histograms=WIDE, injection={"kind": "none"})
    res = process_fileset({"pfnano": [path]}, tmp_path, cfg, executor="iterative", quiet=True)
    cols = ak.from_parquet(res.events["pfnano"])
    assert len(cols) > 0
    with uproot.open(path) as fh:
        a = fh["Events"].arrays(
            ["event", "Jet_pt", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "PFCands_pt", "PFCands_pdgId"]
        )
    by_event = {ev: i for i, ev in enumerate(a.event.tolist())}
    for ev, jets in zip(cols.event.tolist(), cols.jets.tolist(), strict=True):
        i = by_event[ev]
        pts = a.Jet_pt[i].tolist()
        for jet in jets:
            j = pts.index(next(p for p in pts if abs(p - jet["pt"]) < 1e-3 * jet["pt"]))
            links = [
                c
                for jet_idx, c in zip(
                    a.JetPFCands_jetIdx[i].tolist(), a.JetPFCands_pFCandsIdx[i].tolist(), strict=True
                )
                if jet_idx == j
            ]
            const = jet["constituents"]
            assert len(const) == len(links) > 0
            np.testing.assert_allclose(
                [c["pt"] for c in const], [a.PFCands_pt[i][c] for c in links], rtol=1e-6
            )
            assert [c["pdgId"] for c in const] == [a.PFCands_pdgId[i][c] for c in links]
    tau21 = ak.to_numpy(ak.flatten(cols.jets.tau21))
    assert np.all(np.isfinite(tau21)) and np.all(tau21 >= 0) and np.median(tau21) < 1


# -- substructure: jet mass and N-subjettiness ------------------------------------------------
def brute_force_tau21(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> float:
    """tau2 / tau1 of one jet, independently of processors.substructure: beta = 1, distances in
    (rapidity, phi), axes from exclusive kT clustering done by hand with winner-take-all
    recombination (at R = 1000 every step merges the pair with the smallest
    min(pT_i^2, pT_j^2) dR_ij^2 into the summed pT along the harder one, until N are left)."""
    pt, eta, phi, mass = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass))
    pz, e = pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    y = 0.5 * np.log((e + pz) / (e - pz))

    def dr(y1, f1, y2, f2):
        return np.hypot(y1 - y2, (f1 - f2 + np.pi) % (2 * np.pi) - np.pi)

    def tau(n: int) -> float:
        jpt, jy, jphi = pt.copy(), y.copy(), phi.copy()
        while len(jpt) > n:
            d = np.minimum.outer(jpt**2, jpt**2) * dr(jy[:, None], jphi[:, None], jy, jphi) ** 2
            d[np.diag_indices(len(jpt))] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            hard = i if jpt[i] >= jpt[j] else j
            merged = (jpt[i] + jpt[j], jy[hard], jphi[hard])
            jpt, jy, jphi = (
                np.append(np.delete(a, [i, j]), m) for a, m in zip((jpt, jy, jphi), merged, strict=True)
            )
        distance = np.min(dr(y[:, None], phi[:, None], jy[None, :], jphi[None, :]), axis=1)
        return float(np.sum(pt * distance) / (pt.sum() * 0.5))

    return tau(2) / tau(1)


def test_substructure_of_hand_made_jets() -> None:
    from processors.substructure import tau21

    # two equal prongs at (y, phi) = (0, +-0.2): tau1 = 0.2 / R0, tau2 = 0; one constituent: 0
    pt = ak.Array([[[100.0, 100.0], [50.0]]])
    zero = ak.zeros_like(pt)
    phi = ak.Array([[[0.2, -0.2], [1.0]]])
    assert tau21(pt, zero, phi, zero).tolist() == [[0.0, 0.0]]
    # random jets: two hard prongs plus soft spray, against the brute-force computation
    rng = np.random.default_rng(3)
    jets = []
    for _ in range(6):
        n = int(rng.integers(3, 40))
        jets.append({"pt": rng.exponential(10.0, n) + 0.5, "eta": rng.normal(0.5, 0.2, n),
                     "phi": rng.normal(3.0, 0.2, n), "mass": rng.uniform(0, 0.5, n)})  # fmt: skip
    arrays = {k: ak.Array([[j[k] for j in jets[:4]], [j[k] for j in jets[4:]]]) for k in jets[0]}
    got = ak.to_numpy(ak.flatten(tau21(arrays["pt"], arrays["eta"], arrays["phi"], arrays["mass"])))
    expected = [brute_force_tau21(j["pt"], j["eta"], j["phi"], j["mass"]) for j in jets]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.fixture(scope="module")
def wprime_processed(wprime_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    """The W' sample processed with the default selection."""
    out = tmp_path_factory.mktemp("wprime_processed")
    return process_fileset(fileset_of(wprime_sample), out, config(injection={"kind": "none"}),
                           executor="iterative", quiet=True)  # fmt: skip


def test_wprime_jets_have_w_z_mass_and_lower_tau21_than_qcd(wprime_processed, gen_processed) -> None:
    wprime = ak.from_parquet(wprime_processed.events["wprime_m900"]).jets
    qcd = ak.from_parquet(gen_processed.events["qcd"]).jets
    assert len(wprime) > 300 and len(qcd) > 200
    # the jet column is the jet's own mass: the four-vector sum of its constituents
    jet_mass = ak.to_numpy(ak.flatten(wprime.mass))
    counts, edges = np.histogram(jet_mass, bins=np.arange(0.0, 200.0, 10.0))
    assert 70 <= edges[np.argmax(counts)] < 100, counts
    peak = np.arange(60.0, 120.0, 1.0)
    from scipy.stats import gaussian_kde

    mode = peak[np.argmax(gaussian_kde(jet_mass)(peak))]
    assert 70 < mode < 100, mode
    tau_w, tau_qcd = (ak.to_numpy(ak.flatten(j.tau21)) for j in (wprime, qcd))
    assert np.all(np.isfinite(tau_w)) and np.all(np.isfinite(tau_qcd))
    # nested WTA axes: the tau1 axis is one of the tau2 axes, so 0 <= tau21 <= 1
    assert np.all((tau_w >= 0) & (tau_w <= 1)) and np.all((tau_qcd >= 0) & (tau_qcd <= 1))
    # two-prong W/Z jets against one-prong QCD jets: well separated medians
    assert np.median(tau_w) < np.median(tau_qcd) - 0.1, (np.median(tau_w), np.median(tau_qcd))


def test_tau21_equals_brute_force_on_the_files_constituents(
    wprime_processed, wprime_sample, gen_processed, gen_fileset
) -> None:
    """A few selected jets of each sample: tau21 from the Parquet output against the brute-force
    computation on the jet's constituents read from the ROOT file with uproot (JetPFCands links)."""
    samples = {
        "wprime_m900": (wprime_processed, fileset_of(wprime_sample)["wprime_m900"]["files"]),
        "qcd": (gen_processed, gen_fileset["qcd"]["files"]),
    }
    checked = 0
    for name, (res, paths) in samples.items():
        cols = ak.from_parquet(res.events[name])[:3]
        wanted = set(cols.event.tolist())
        found = {}
        for path in paths:
            with uproot.open(path) as fh:
                a = fh["Events"].arrays([
                    "event", "Jet_pt", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx",
                    "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass",
                ])  # fmt: skip
            for i in np.flatnonzero(np.isin(ak.to_numpy(a.event), list(wanted))):
                found[int(a.event[i])] = a[i]
        assert set(found) == wanted
        for ev, jets in zip(cols.event.tolist(), cols.jets.tolist(), strict=True):
            rec = found[ev]
            for jet in jets:
                j = int(np.argmin(np.abs(ak.to_numpy(rec.Jet_pt) - jet["pt"])))
                idx = ak.to_numpy(rec.JetPFCands_pFCandsIdx)[ak.to_numpy(rec.JetPFCands_jetIdx) == j]
                pf = [ak.to_numpy(rec[f"PFCands_{k}"])[idx] for k in ("pt", "eta", "phi", "mass")]
                assert len(idx) > 2
                assert jet["tau21"] == pytest.approx(brute_force_tau21(*pf), rel=1e-9)
                checked += 1
    assert checked >= 10


# -- configuration and command line --------------------------------------------------------
@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"selection": {"jet_pt_min": -5}}, "selection.jet_pt_min"),
        ({"selection": {"jet_pt_cut": 300}}, "selection.jet_pt_cut: unknown key"),
        ({"selection": {"jet_pt_min": 500, "jet_pt_max": 400}}, "jet_pt_max"),
        ({"histograms": {"mjj_bin_width": 7}}, "mjj_bin_width"),
        ({"histograms": {"analysis_bins": [660, 600]}}, "analysis_bins"),
        ({"injection": {"kind": "bump"}}, "injection.kind"),
        ({"injection": {"sizes": [0]}}, "sizes"),
        ({"processing": {"executor": "spark"}}, "processing.executor"),
        ({"processing": {"chunksize": 0}}, "processing.chunksize"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, sections: dict, message: str, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sections))
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    (tmp_path / "fs.json").write_text("{}")
    code = cli_main(
        [
            "process",
            "--fileset",
            str(tmp_path / "fs.json"),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message.split(":")[0] in err and str(path) in err


def fileset_path(sample: Any) -> str:
    path = Path(sample)
    return str(path / "fileset.json" if path.is_dir() else path)


def test_command_line_writes_every_output(qcd_sample, xgg_sample, gen_fileset, tmp_path: Path, capsys) -> None:
    # the two samples' fileset.json files, merged by `process` (relative paths stay valid)
    filesets = [fileset_path(qcd_sample), fileset_path(xgg_sample)]
    code = cli_main(
        ["process", "--fileset", *filesets, "--out", str(tmp_path / "out"), "--executor", "iterative", "-q"]
    )
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out"
    assert capsys.readouterr().out == ""  # quiet: no progress bars, no summary
    with uproot.open(out / "histograms.root") as fh:
        names = set(fh.keys(cycle=False))
    assert {f"mjj_{n}" for n in gen_fileset} <= names
    assert {f"events/{n}.parquet" for n in gen_fileset} == {
        str(p.relative_to(out)) for p in (out / "events").iterdir()
    }
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "process" and run["process"]["executor"] == "iterative"
    assert not [p for p in out.rglob("*.tmp")]
    shutil.rmtree(out)
    assert cli_main(["process", "--fileset", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
