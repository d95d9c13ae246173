"""`import-mod`: small MOD HDF5 files in EnergyFlow's layout (CMS and SIM, with a three-jet and
a one-jet event) that ``energyflow.datasets.mod.MODDataset`` opens, imported and processed; the
m_jj histogram, the cutflow and the selected m_jj against an independent computation from the
HDF5 arrays (h5py + numpy, a Python dict over events); the PF candidates and their links;
gathered (non-adjacent) jets; resume; bad files as one line naming the file and the array."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from analysis.cli import main as cli_main
from analysis.core.config import load_config
from analysis.events.mod_import import ImportOptions, import_mod
from analysis.events.processing import process_fileset

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.nanoevents.schemas.nanoaod")

CMS_I = ["fn", "rn", "lbn", "evn", "npv", "quality"]
CMS_F = ["jet_pt", "jet_y", "jet_phi", "jet_m", "jet_eta", "jec", "jet_area", "jet_max_nef", "weight"]
SIM_I = [*CMS_I, "hard_pid"]
SIM_F = [*CMS_F[:-1], "gen_jet_pt", "gen_jet_y", "gen_jet_phi", "gen_jet_m", "gen_jet_eta",
         "hard_pt", "hard_y", "hard_phi", "weight"]  # fmt: skip
PFC_COLS = ["pt", "y", "phi", "m", "pid", "vertex"]
PIDS = np.array([211, -211, 130, 22, 11, -13, 1, 2])
SELECTION = {"jet_pt_min": 350.0, "jet_pt_max": 450.0, "jet_abs_eta_max": 1.9, "jet_id_min": 2, "n_jets": 2}


# -- writing MOD files -------------------------------------------------------------------------
def _rapidity(pt: np.ndarray, eta: np.ndarray, m: np.ndarray) -> np.ndarray:
    pz, e = pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
    return 0.5 * np.log((e + pz) / (e - pz))


def mod_arrays(kind: str, n_events: int, seed: int) -> dict[str, Any]:
    """Random jets in the MOD layout: 1-3 jets per event (event 0 has three, event 1 one),
    corrected pT around the 350-450 GeV window, every quality, particles per jet."""
    rng = np.random.default_rng(seed)
    per_event = rng.integers(1, 4, n_events)
    per_event[:2] = (3, 1)
    n = int(per_event.sum())
    jec = rng.uniform(1.0, 1.15, n)
    pt = rng.uniform(300, 480, n) / jec
    eta = rng.uniform(-2.4, 2.4, n)
    m = rng.uniform(5, 60, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    weight = np.repeat(rng.uniform(0.5, 2.0, n_events) * 1e-3, per_event) if kind == "sim" else np.full(n, 4e-7)
    ints = {"fn": rng.integers(0, 3, n), "rn": np.repeat(160000 + rng.integers(0, 5, n_events), per_event),
            "lbn": np.repeat(rng.integers(1, 50, n_events), per_event), "evn": np.repeat(1000 + np.arange(n_events), per_event),
            "npv": rng.integers(1, 20, n), "quality": rng.integers(0, 4, n), "hard_pid": rng.choice([21, 1, -2, 0], n)}  # fmt: skip
    floats = {"jet_pt": pt, "jet_y": _rapidity(pt, eta, m), "jet_phi": phi, "jet_m": m, "jet_eta": eta, "jec": jec,
              "jet_area": rng.uniform(0.7, 0.9, n), "jet_max_nef": rng.uniform(0, 1, n), "weight": weight}  # fmt: skip
    for col in SIM_F:
        floats.setdefault(col, rng.uniform(-1, 400, n))
    cols_i, cols_f = (SIM_I, SIM_F) if kind == "sim" else (CMS_I, CMS_F)

    def particles(per_jet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = int(per_jet.sum())
        owner = np.repeat(np.arange(n), per_jet)
        p = np.column_stack([rng.exponential(10, k) + 0.5, floats["jet_y"][owner] + rng.normal(0, 0.1, k),
                             phi[owner] + rng.normal(0, 0.1, k), rng.choice([0, 0.13957, 0.000511], k),
                             rng.choice(PIDS, k), rng.integers(-1, 3, k)])  # fmt: skip
        return p, np.concatenate([[0], np.cumsum(per_jet)]).astype(np.uint32)

    pfcs, pfcs_index = particles(rng.integers(1, 25, n))
    out = {"jets_i": (np.column_stack([ints[c] for c in cols_i]).astype(np.int64), cols_i),
           "jets_f": (np.column_stack([floats[c] for c in cols_f]), cols_f),
           "pfcs": (pfcs, PFC_COLS), "pfcs_index": pfcs_index}  # fmt: skip
    if kind == "sim":
        gens, gens_index = particles(rng.integers(1, 15, n))
        out |= {"gens": (gens, PFC_COLS), "gens_index": gens_index,
                "filenames": np.array([["470", f"/store/mc/file{i}.root"] for i in range(3)], dtype="S")}  # fmt: skip
    else:
        out["filenames"] = np.array([f"/store/data/Run2011A/Jet/AOD/file{i}.root" for i in range(3)], dtype="S")
    return out


def write_mod(path: Path, arrays: dict[str, Any], drop: tuple[str, ...] = ()) -> Path:
    """Write ``arrays`` as EnergyFlow's ``MODDataset.save`` does (gzip, ``cols`` attributes)."""
    with h5py.File(path, "w") as hf:
        for name, value in arrays.items():
            if name in drop:
                continue
            data, cols = value if isinstance(value, tuple) else (value, None)
            ds = hf.create_dataset(name, data=data, compression="gzip", compression_opts=4)
            if cols is not None:
                ds.attrs.create("cols", np.asarray(cols, dtype="S"))
    return path


@pytest.fixture(scope="module")
def mod_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two CMS files and one SIM file, named as EnergyFlow names them."""
    d = tmp_path_factory.mktemp("mod")
    cms = [write_mod(d / f"CMS_Jet300_pT375-infGeV_{i}_compressed.h5", mod_arrays("cms", 300, 10 + i)) for i in range(2)]
    sim = [write_mod(d / "SIM470_Jet300_pT375-infGeV_0_compressed.h5", mod_arrays("sim", 300, 20))]
    return {"cms": cms, "sim": sim}


# -- the independent computation -------------------------------------------------------------------
def reference(paths: list[Path], kind: str) -> dict[str, Any]:
    """Cutflow, selected m_jj and weights straight from the HDF5 arrays: events by a dict over
    (run, lumiblock, event), corrected pT = jet_pt * jec rounded to float32 as the ROOT files."""
    counts = dict.fromkeys(("all", "finite", "jet_pt", "jet_eta", "jet_id", "n_jets"), 0)
    masses, weights = [], []
    for path in paths:
        with h5py.File(path, "r") as hf:
            ji, jf = hf["jets_i"][:], hf["jets_f"][:]
            ci = [c.decode() for c in hf["jets_i"].attrs["cols"]]
            cf = [c.decode() for c in hf["jets_f"].attrs["cols"]]
        events: dict[tuple[int, int, int], list[int]] = {}
        for row in range(len(ji)):
            key = (int(ji[row, ci.index("rn")]), int(ji[row, ci.index("lbn")]), int(ji[row, ci.index("evn")]))
            events.setdefault(key, []).append(row)
        for rows in events.values():
            jets = {c: jf[rows, i] for i, c in enumerate(cf)}
            f = jets.__getitem__
            jec = f("jec")
            pt = (f("jet_pt") * jec).astype(np.float32).astype(np.float64)
            eta = f("jet_eta").astype(np.float32).astype(np.float64)
            phi = f("jet_phi").astype(np.float32).astype(np.float64)
            mass = (f("jet_m") * jec).astype(np.float32).astype(np.float64)
            quality = ji[rows, ci.index("quality")]
            pt_ok = (pt >= SELECTION["jet_pt_min"]) & (pt <= SELECTION["jet_pt_max"])
            eta_ok = pt_ok & (np.abs(eta) < SELECTION["jet_abs_eta_max"])
            good = eta_ok & (quality >= SELECTION["jet_id_min"])
            counts["all"] += 1
            counts["finite"] += 1
            counts["jet_pt"] += int(pt_ok.sum() >= 2)
            counts["jet_eta"] += int(eta_ok.sum() >= 2)
            counts["jet_id"] += int(good.sum() >= 2)
            if good.sum() == 2:
                counts["n_jets"] += 1
                px, py = pt[good] * np.cos(phi[good]), pt[good] * np.sin(phi[good])
                pz = pt[good] * np.sinh(eta[good])
                e = np.sqrt(px**2 + py**2 + pz**2 + mass[good] ** 2)
                masses.append(np.sqrt(e.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2))
                w = float(np.float32(f("weight")[0])) if kind == "sim" else 1.0
                weights.append(w)
    return {"cutflow": counts, "mjj": np.array(masses), "weight": np.array(weights)}


@pytest.fixture(scope="module")
def imported(mod_files: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both kinds imported into one directory (small chunks: several per file), in two processes."""
    out = tmp_path_factory.mktemp("imported")
    opts = ImportOptions(chunk_jets=150, workers=2)
    import_mod(mod_files["cms"], out, opts.model_copy(update={"dataset": "cms"}), quiet=True)
    fileset = import_mod(mod_files["sim"], out, opts.model_copy(update={"dataset": "sim"}), quiet=True)
    return {"out": out, "fileset": fileset}


@pytest.fixture(scope="module")
def processed(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("processed")
    cfg = load_config(None, {"selection": SELECTION, "injection": {"kind": "none"}})
    return process_fileset(imported["fileset"], out, cfg, executor="iterative", quiet=True)


# -- tests -----------------------------------------------------------------------------------------
def test_energyflow_opens_the_test_files(mod_files: dict[str, list[Path]]) -> None:
    from energyflow.datasets.mod import MODDataset

    for kind, paths in mod_files.items():
        ds = MODDataset(str(paths[0]))
        assert ds.dataset == kind
        with h5py.File(paths[0], "r") as hf:
            ji, jf, index = hf["jets_i"][:], hf["jets_f"][:], hf["pfcs_index"][:]
        assert len(ds) == len(ji)
        np.testing.assert_allclose(ds.corr_jet_pts, jf[:, CMS_F.index("jet_pt")] * jf[:, CMS_F.index("jec")])
        assert [len(p) for p in ds.pfcs] == list(np.diff(index))
        assert (ds.gens is not None) == (kind == "sim")
        ds.close()


def test_fileset_and_events(imported: dict[str, Path], mod_files: dict[str, list[Path]]) -> None:
    fileset = json.loads(imported["fileset"].read_text())
    assert set(fileset) == {"cms", "sim"}
    assert list(fileset["cms"]["files"]) == ["cms_0000.root", "cms_0001.root"]
    meta = fileset["sim"]["metadata"]
    assert meta["process"] == "qcd" and meta["mod_kind"] == "sim" and meta["n_generated"] == 300
    assert meta["mod_files"] == [str(p.resolve()) for p in mod_files["sim"]]
    with uproot.open(imported["out"] / "cms_0000.root") as fh:
        ev = fh["Events"].arrays(library="ak")
        assert fh["Runs"]["genEventCount"].array(library="np")[0] == 300
    arrays = mod_arrays("cms", 300, 10)
    ji, jf = arrays["jets_i"][0], arrays["jets_f"][0]
    assert ak.to_list(ak.num(ev.Jet_pt)[:2]) == [3, 1]  # the three-jet and the one-jet event
    assert ak.all(ev.Jet_pt[:, :-1] >= ev.Jet_pt[:, 1:])  # pT-ordered
    # provenance: every jet's MOD row, its corrected pT and quality
    rows = ak.to_numpy(ak.flatten(ev.Jet_modRow))
    assert sorted(rows) == list(range(len(ji)))
    np.testing.assert_allclose(ak.flatten(ev.Jet_pt), (jf[:, 0] * jf[:, 5])[rows], rtol=1e-6)
    np.testing.assert_array_equal(ak.flatten(ev.Jet_jetId), ji[rows, CMS_I.index("quality")])
    np.testing.assert_array_equal(ev.event, 1000 + np.arange(300))
    np.testing.assert_array_equal(ev.genWeight, 1.0)
    # PF candidates: each jet's links point to its own particles, in MOD order
    pfcs, index = arrays["pfcs"][0], arrays["pfcs_index"]
    jet0 = ev[0]
    for j in range(3):
        cand = jet0.JetPFCands_pFCandsIdx[jet0.JetPFCands_jetIdx == j]
        row = int(jet0.Jet_modRow[j])
        mine = pfcs[index[row] : index[row + 1]]
        np.testing.assert_allclose(jet0.PFCands_pt[cand], mine[:, 0], rtol=1e-6)
        np.testing.assert_array_equal(jet0.PFCands_pdgId[cand], mine[:, 4])
        assert jet0.Jet_nConstituents[j] == len(mine)
    charge = ak.to_numpy(ak.flatten(ev.PFCands_charge))
    pid = ak.to_numpy(ak.flatten(ev.PFCands_pdgId))
    np.testing.assert_array_equal(charge[pid == 211], 1)
    np.testing.assert_array_equal(charge[pid == -13], 1)
    np.testing.assert_array_equal(charge[np.isin(pid, (22, 130, 1, 2))], 0)


@pytest.mark.parametrize("kind", ["cms", "sim"])
def test_processed_histogram_and_cutflow_equal_independent_computation(
    processed, mod_files: dict[str, list[Path]], kind: str
) -> None:
    ref = reference(mod_files[kind], kind)
    assert processed.cutflow["datasets"][kind]["cutflow"] == ref["cutflow"]
    assert 0 < ref["cutflow"]["n_jets"] <= ref["cutflow"]["jet_id"] < ref["cutflow"]["jet_eta"] < ref["cutflow"]["jet_pt"]
    h = processed.spectra.dataset(kind)
    edges = h.axes[0].edges
    expected, _ = np.histogram(ref["mjj"], bins=edges, weights=ref["weight"])
    expected_var, _ = np.histogram(ref["mjj"], bins=edges, weights=ref["weight"] ** 2)
    np.testing.assert_allclose(h.values(), expected, rtol=1e-6)
    np.testing.assert_allclose(h.variances(), expected_var, rtol=1e-6)
    events = ak.from_parquet(processed.events[kind])
    np.testing.assert_allclose(np.sort(ak.to_numpy(events.mjj)), np.sort(ref["mjj"]), rtol=1e-9)
    assert ak.all(ak.num(events.jets.constituents.pt, axis=2) > 0)  # the PFN stages have constituents


def test_jets_of_an_event_need_not_be_adjacent(tmp_path: Path) -> None:
    """A file whose rows are shuffled imports to the same events (gathered by key)."""
    arrays = mod_arrays("cms", 300, 10)
    perm = np.random.default_rng(5).permutation(len(arrays["jets_i"][0]))
    pfcs, index = arrays["pfcs"][0], arrays["pfcs_index"].astype(np.int64)
    parts = [pfcs[index[r] : index[r + 1]] for r in perm]
    shuffled = {**arrays, "jets_i": (arrays["jets_i"][0][perm], CMS_I), "jets_f": (arrays["jets_f"][0][perm], CMS_F),
                "pfcs": (np.concatenate(parts), PFC_COLS),
                "pfcs_index": np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.uint32)}  # fmt: skip
    path = write_mod(tmp_path / "CMS_shuffled_0.h5", shuffled)
    import_mod([path], tmp_path / "out", ImportOptions(chunk_jets=64, workers=1), quiet=True)
    with uproot.open(tmp_path / "out" / "CMS_shuffled_0000.root") as fh:
        ev = fh["Events"].arrays(["event", "Jet_pt", "Jet_modRow", "PFCands_pt", "nPFCands"], library="ak")
    order = np.argsort(ak.to_numpy(ev.event))
    assert len(ev) == 300
    np.testing.assert_array_equal(ak.to_numpy(ev.event)[order], 1000 + np.arange(300))
    original_rows = perm[ak.to_numpy(ak.flatten(ev.Jet_modRow))]
    np.testing.assert_array_equal(np.sort(original_rows), np.arange(len(perm)))
    # each event's particles are its jets' particles
    n_pf = np.diff(index)[original_rows]
    jets_per_event = ak.to_numpy(ak.num(ev.Jet_pt))
    np.testing.assert_array_equal(ak.to_numpy(ev.nPFCands), np.add.reduceat(n_pf, np.cumsum(jets_per_event) - jets_per_event))


def test_rerun_reuses_files_and_redoes_changed_ones(mod_files: dict[str, list[Path]], tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = ImportOptions(dataset="cms", workers=1)
    import_mod(mod_files["cms"], out, opts, quiet=True)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.root")}
    import_mod(mod_files["cms"], out, opts, quiet=True)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.root")} == first
    (out / "cms_0001.root").write_bytes(b"half a file")  # a killed run's leftover under the final name
    import_mod(mod_files["cms"], out, opts, quiet=True)
    assert (out / "cms_0000.root").stat().st_mtime_ns == first["cms_0000.root"]
    with uproot.open(out / "cms_0001.root") as fh:
        assert fh["Events"].num_entries == 300


def _bad(tmp_path: Path, name: str, **change: Any) -> Path:
    arrays = mod_arrays("cms", 20, 3)
    drop = change.pop("drop", ())
    arrays.update(change)
    return write_mod(tmp_path / name, arrays, drop=drop)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli_main(["import-mod", "-q", *args])
    return code, capsys.readouterr().err.strip()


def test_truncated_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _bad(tmp_path, "CMS_trunc_0.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, err = _cli(capsys, "--files", str(path), "--out", str(tmp_path / "out"))
    assert code == 1
    assert err.count("\n") == 0 and str(path) in err and "truncated" in err, err


def test_other_format_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "CMS_notmod.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("images", data=np.zeros((3, 4)))
    code, err = _cli(capsys, "--files", str(path), "--out", str(tmp_path / "out"))
    assert code == 1 and err.count("\n") == 0 and str(path) in err and "'jets_i'" in err, err
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    code, err = _cli(capsys, "--files", str(text), "--out", str(tmp_path / "out"))
    assert code == 1 and str(text) in err and "not a readable MOD HDF5 file" in err, err


@pytest.mark.parametrize(
    ("change", "array", "words"),
    [
        ({"drop": ("pfcs_index",)}, "'pfcs_index'", "missing"),
        ({"drop": ("filenames",)}, "'filenames'", "missing"),
        ({"jets_f": (np.zeros((5, 8)), CMS_F[:-1])}, "'jets_f'", "no column weight"),
        ({"pfcs_index": np.array([0, 5, 3], dtype=np.uint32)}, "'pfcs_index'", "entries for"),
    ],
)
def test_bad_arrays_are_one_line_naming_file_and_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, array: str, words: str
) -> None:
    path = _bad(tmp_path, "CMS_bad_0.h5", **change)
    code, err = _cli(capsys, "--files", str(path), "--out", str(tmp_path / "out"))
    assert code == 1, err
    assert err.count("\n") == 0 and str(path) in err and array in err and words in err, err
    assert not list((tmp_path / "out").glob("*.root"))


def test_bad_index_values_name_the_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arrays = mod_arrays("cms", 20, 3)
    index = arrays["pfcs_index"].astype(np.int64)
    index[-1] += 7  # points past the end of pfcs
    path = _bad(tmp_path, "CMS_badindex_0.h5", pfcs_index=index.astype(np.uint32))
    code, err = _cli(capsys, "--files", str(path), "--out", str(tmp_path / "out"))
    assert code == 1 and str(path) in err and "'pfcs_index' is inconsistent with 'pfcs'" in err, err
    index = arrays["pfcs_index"].astype(np.int64)
    index[4], index[5] = index[5], index[4] - 1
    path = _bad(tmp_path, "CMS_badindex_1.h5", pfcs_index=index.astype(np.uint32))
    code, err = _cli(capsys, "--files", str(path), "--out", str(tmp_path / "out2"))
    assert code == 1 and "'pfcs_index'" in err and "decreases" in err, err


def test_mixed_kinds_and_bad_flags(mod_files: dict[str, list[Path]], tmp_path: Path, capsys) -> None:
    code, err = _cli(capsys, "--files", *map(str, mod_files["cms"] + mod_files["sim"]), "--out", str(tmp_path / "o"))
    assert code == 1 and str(mod_files["sim"][0].resolve()) in err and "SIM MOD file among CMS" in err, err
    code, err = _cli(capsys, "--files", str(mod_files["cms"][0]), "--out", str(tmp_path / "o"), "--chunk-jets", "0")
    assert code == 2 and "--chunk-jets" in err, err
    code, err = _cli(capsys, "--files", str(tmp_path / "absent.h5"), "--out", str(tmp_path / "o"))
    assert code == 1 and "absent.h5: MOD file not found" in err, err


def test_command_line_import(mod_files: dict[str, list[Path]], tmp_path: Path, capsys) -> None:
    code = cli_main(["import-mod", "--files", str(mod_files["sim"][0]), "--out", str(tmp_path), "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "SIM470_Jet300_pT375-infGeV: 300 events" in out, out
    assert (tmp_path / "run.json").exists() and (tmp_path / "SIM470_Jet300_pT375-infGeV_0000.json").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cms2011_config_is_valid() -> None:
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "cms2011.yaml")
    assert cfg.selection.model_dump() == SELECTION
    assert cfg.scan.sizes == [50000, 70000, 100000] and cfg.scan.n_samples == 50
    assert cfg.histograms.analysis_bins == [660, 760, 860, 960, 1060, 1160]


def gen_arrays(n_events: int, seed: int) -> dict[str, Any]:
    """A GEN file: no quality, no JEC, particles in ``gens``."""
    sim = mod_arrays("sim", n_events, seed)
    cols_i = ["fn", "rn", "lbn", "evn", "hard_pid"]
    cols_f = ["jet_pt", "jet_y", "jet_phi", "jet_m", "jet_eta", "hard_pt", "hard_y", "hard_phi", "weight"]
    ji, jf = sim["jets_i"][0], sim["jets_f"][0]
    return {"jets_i": (ji[:, [SIM_I.index(c) for c in cols_i]], cols_i),
            "jets_f": (jf[:, [SIM_F.index(c) for c in cols_f]], cols_f),
            "gens": sim["gens"], "gens_index": sim["gens_index"], "filenames": sim["filenames"]}  # fmt: skip


def test_gen_files(tmp_path: Path) -> None:
    """GEN: pT without JEC, hard_pid as partonFlavour, no Jet_jetId, gen particles as PFCands."""
    from energyflow.datasets.mod import MODDataset

    arrays = gen_arrays(50, 30)
    path = write_mod(tmp_path / "GEN470_pT375-infGeV_0_compressed.h5", arrays)
    ds = MODDataset(str(path))
    assert ds.dataset == "gen" and len(ds) == len(arrays["jets_i"][0])
    ds.close()
    fileset = import_mod([path], tmp_path / "out", ImportOptions(workers=1), quiet=True)
    entry = json.loads(fileset.read_text())["GEN470_pT375-infGeV"]
    assert entry["metadata"]["mod_kind"] == "gen"
    with uproot.open(tmp_path / "out" / "GEN470_pT375-infGeV_0000.root") as fh:
        tree = fh["Events"]
        branches = set(tree.keys())
        assert "Jet_jetId" not in branches and "Jet_rawFactor" not in branches
        ev = tree.arrays(library="ak")
    rows = ak.to_numpy(ak.flatten(ev.Jet_modRow))
    ji, jf = arrays["jets_i"][0], arrays["jets_f"][0]
    np.testing.assert_allclose(ak.flatten(ev.Jet_pt), jf[rows, 0], rtol=1e-6)
    np.testing.assert_array_equal(ak.flatten(ev.Jet_partonFlavour), ji[rows, 4])
    assert int(ak.sum(ev.nPFCands)) == len(arrays["gens"][0])
    first = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(ev.Jet_pt)))[:-1]])
    np.testing.assert_allclose(ev.genWeight, jf[np.sort(rows)[first], -1].astype(np.float32))


def test_dask_executor_writes_the_same_files(mod_files: dict[str, list[Path]], tmp_path: Path) -> None:
    local = import_mod(mod_files["cms"], tmp_path / "local", ImportOptions(dataset="d", workers=1), quiet=True)
    dask = import_mod(mod_files["cms"], tmp_path / "dask", ImportOptions(dataset="d", workers=2, executor="dask"), quiet=True)
    assert json.loads(local.read_text())["d"]["files"] == json.loads(dask.read_text())["d"]["files"]
    for name in ("d_0000.root", "d_0001.root"):
        with uproot.open(tmp_path / "local" / name) as a, uproot.open(tmp_path / "dask" / name) as b:
            x, y = a["Events"].arrays(library="ak"), b["Events"].arrays(library="ak")
            assert ak.to_list(x[["event", "Jet_pt", "PFCands_pt"]]) == ak.to_list(y[["event", "Jet_pt", "PFCands_pt"]])
