"""Event generation (Pythia8 + FastJet -> NanoAOD-like ROOT): schema, constituents, physics,
determinism across worker counts, reuse of finished files, bad arguments.

The samples come from the session fixtures ``qcd_sample`` / ``xgg_sample`` / ``wprime_sample``
(tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from scipy.optimize import minimize
from scipy.stats import gaussian_kde

from analysis.cli import main as cli_main
from analysis.core.config import load_config
from analysis.core.errors import ConfigError
from analysis.events.generation import file_seed, generate
from tests.conftest import GEN_SEED, QCD_EVENTS, XGG_EVENTS, XGG_MASS

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.nanoevents.schemas.nanoaod")

EVENT_BRANCHES = {
    "run", "luminosityBlock", "event", "nJet",
    *(f"Jet_{k}" for k in ("pt", "eta", "phi", "mass", "rapidity", "nConstituents", "jetId", "partonFlavour")),
    "nPFCands", *(f"PFCands_{k}" for k in ("pt", "eta", "phi", "mass", "pdgId", "charge")),
    "nJetPFCands", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx", "genWeight",
}  # fmt: skip


def files_of(fileset_json: Path) -> list[Path]:
    data = json.loads(Path(fileset_json).read_text())
    (entry,) = data.values()
    return [fileset_json.parent / name for name in entry["files"]]


def read(fileset_json: Path, branches: list[str] | None = None) -> ak.Array:
    """All events of a one-dataset sample, read with plain uproot."""
    return ak.concatenate([uproot.open(p)["Events"].arrays(branches) for p in files_of(fileset_json)])


def nano_events(path: Path, schema: str = "PFNanoAODSchema"):
    """Events of one file through coffea. NanoAODSchema builds Jet, PFCands, JetPFCands and the
    Jet -> JetPFCands link; its PFNano subclass adds the JetPFCands -> PFCands link (``.pf``)."""
    from coffea import nanoevents

    schemaclass = getattr(nanoevents, schema)
    return nanoevents.NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=schemaclass, mode="eager").events()


def leading_mjj(jets: ak.Array) -> np.ndarray:
    """m_jj of the two leading jets of events with at least two jets (plain numpy algebra)."""
    two = jets[ak.num(jets.pt) >= 2][:, :2]
    pt, eta, phi, m = (ak.to_numpy(two[k]).astype(np.float64) for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    s = lambda a: a.sum(axis=1)  # noqa: E731
    return np.sqrt(np.maximum(s(e) ** 2 - s(px) ** 2 - s(py) ** 2 - s(pz) ** 2, 0.0))


def jets_of(events: ak.Array) -> ak.Array:
    return ak.zip({k: events[f"Jet_{k}"] for k in ("pt", "eta", "phi", "mass", "partonFlavour")})


# -- file format -------------------------------------------------------------------------------
def test_files_have_the_design_branches_runs_tree_and_fileset(qcd_sample: Path) -> None:
    data = json.loads(qcd_sample.read_text())
    assert list(data) == ["qcd"]
    meta = data["qcd"]["metadata"]
    assert meta["process"] == "qcd" and meta["seed"] == GEN_SEED and meta["mass"] is None
    assert meta["n_generated"] == QCD_EVENTS and meta["xsec_pb"] > 0
    paths = files_of(qcd_sample)
    assert len(paths) == 3 and all(p.exists() for p in paths)
    events = []
    for path in paths:
        with uproot.open(path) as fh:
            assert set(fh["Events"].keys()) == EVENT_BRANCHES
            runs = fh["Runs"].arrays(library="np")
            n = fh["Events"].num_entries
            assert runs["genEventCount"][0] == n
            assert runs["genEventSumw"][0] == pytest.approx(float(np.sum(fh["Events"]["genWeight"].array(library="np"))))
            events.append(fh["Events"]["event"].array(library="np"))
    ev = np.concatenate(events)
    assert len(ev) == QCD_EVENTS and len(np.unique(ev)) == QCD_EVENTS  # unique event numbers
    # hard QCD with pT-hat in [290, 560] GeV at 7 TeV: ~1.8 nb (CMS QCD_Pt-300to470: ~1.2 nb)
    assert 500 < meta["xsec_pb"] < 5000


def test_nanoaod_schema_reads_the_files(qcd_sample: Path) -> None:
    events = nano_events(files_of(qcd_sample)[0], "NanoAODSchema")
    assert {"Jet", "PFCands", "JetPFCands", "genWeight", "run", "luminosityBlock", "event"} <= set(events.fields)
    assert len(events) == 1000
    assert ak.all(ak.num(events.Jet.constituents, axis=2) == events.Jet.nConstituents)
    # the jet -> constituent links of the schema agree with the raw jetIdx branch
    jet_idx = ak.flatten(events.Jet.constituents.jetIdx, axis=2)
    local = ak.flatten(ak.local_index(events.Jet.constituents, axis=1)[..., None] * ak.ones_like(
        events.Jet.constituents.jetIdx), axis=2)  # fmt: skip
    assert ak.all(jet_idx == local)
    # the schema's vector behaviours: the two leading jets' summed four-vector has the mass of an
    # independent computation from (pt, eta, phi, mass)
    two = events.Jet[ak.num(events.Jet) >= 2]
    pair = (two[:, 0] + two[:, 1]).mass
    pt, eta, phi, mass = (ak.to_numpy(getattr(two, f)[:, :2]) for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    expected = np.sqrt(np.maximum(energy.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2, 0.0))
    assert len(expected) > 100
    np.testing.assert_allclose(ak.to_numpy(pair), expected, rtol=2e-4)
    assert ak.all(abs(events.Jet.eta) < 6)


def test_pfnano_schema_resolves_jets_and_constituents(qcd_sample: Path) -> None:
    events = nano_events(files_of(qcd_sample)[0])
    jets = events.Jet
    assert ak.all(jets.pt[:, :-1] >= jets.pt[:, 1:])  # pT-ordered
    assert ak.min(jets.pt) >= 20.0
    assert ak.all(ak.num(jets.constituents, axis=2) == jets.nConstituents)
    pf = jets.constituents.pf
    # every constituent points at its own jet, and every PF candidate belongs to one jet
    assert ak.all(events.JetPFCands.jet.pt == ak.flatten(ak.broadcast_arrays(jets.pt[..., None], pf.pt)[0], axis=2))
    assert ak.all(ak.num(events.PFCands) == ak.sum(jets.nConstituents, axis=1))
    owners = ak.flatten(pf.pt, axis=None)
    assert len(owners) == ak.sum(ak.num(events.PFCands))
    # four-momenta: constituents sum back to the jet (float64 sums of the stored float32 values)
    pt, eta, phi, m = (ak.values_astype(pf[k], np.float64) for k in ("pt", "eta", "phi", "mass"))
    px = ak.sum(pt * np.cos(phi), axis=2)
    py = ak.sum(pt * np.sin(phi), axis=2)
    pz = ak.sum(pt * np.sinh(eta), axis=2)
    e = ak.sum(np.sqrt((pt * np.cosh(eta)) ** 2 + m**2), axis=2)
    rel = np.abs(np.hypot(px, py) - jets.pt) / jets.pt
    assert ak.max(rel) < 1e-3
    assert ak.max(np.abs(np.arctan2(py, px) - jets.phi + np.pi) % (2 * np.pi) - np.pi) < 1e-3
    rapidity = 0.5 * np.log((e + pz) / (e - pz))
    assert ak.max(np.abs(rapidity - jets.rapidity)) < 1e-3
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
    assert ak.max(np.abs(mass - jets.mass) / jets.pt) < 1e-3


def test_charges_and_visible_particles(qcd_sample: Path) -> None:
    ev = read(qcd_sample, ["PFCands_pdgId", "PFCands_charge", "PFCands_eta"])
    pid = ak.to_numpy(ak.flatten(ev.PFCands_pdgId))
    charge = ak.to_numpy(ak.flatten(ev.PFCands_charge))
    expected = {211: 1, -211: -1, 321: 1, 2212: 1, -2212: -1, 22: 0, 130: 0, 2112: 0, 11: -1, -11: 1, 13: -1}
    for code, q in expected.items():
        assert np.all(charge[pid == code] == q), code
    assert not np.isin(np.abs(pid), [12, 14, 16]).any()  # no neutrinos
    assert ak.max(abs(ev.PFCands_eta)) < 5.0
    assert {211, 22, 321}.issubset(np.abs(pid))


def test_jet_id_bits_match_an_independent_recomputation(qcd_sample: Path) -> None:
    events = nano_events(files_of(qcd_sample)[1])
    jets = events.Jet
    pf = jets.constituents.pf
    energy = np.sqrt((pf.pt * np.cosh(pf.eta)) ** 2 + pf.mass**2)
    jet_e = ak.sum(energy, axis=2)
    apid = abs(pf.pdgId)

    def frac(mask):
        return ak.sum(energy * mask, axis=2) / jet_e

    chf = frac((pf.charge != 0) & (apid != 11) & (apid != 13))
    nhf = frac((pf.charge == 0) & (apid != 22))
    nemf, cemf, muf = frac(apid == 22), frac(apid == 11), frac(apid == 13)
    chm = ak.sum(pf.charge != 0, axis=2)
    central = abs(jets.eta) < 2.4
    loose = (nhf < 0.99) & (nemf < 0.99) & (jets.nConstituents > 1) & (~central | ((chf > 0) & (chm > 0) & (cemf < 0.99)))
    tight = loose & (nhf < 0.9) & (nemf < 0.9)
    veto = tight & (muf < 0.8) & (~central | (cemf < 0.9))
    expected = ak.flatten(loose * 1 + tight * 2 + veto * 4)
    got = ak.flatten(jets.jetId)
    assert np.mean(ak.to_numpy(expected == got)) > 0.999  # float32 storage may flip a cut edge
    values = np.unique(ak.to_numpy(got))
    assert set(values) <= {0, 1, 3, 7}
    # hard jets are mostly tight; some soft jets fail (the cut means something)
    hard = ak.to_numpy(ak.flatten(jets.jetId[jets.pt > 300]))
    assert np.mean(hard >= 2) > 0.95
    assert np.any(ak.to_numpy(got) < 2)


# -- physics -------------------------------------------------------------------------------------
def test_xgg_mass_peak_and_gluon_jets(xgg_sample: Path) -> None:
    data = json.loads(xgg_sample.read_text())
    (name,) = data
    assert name == "xgg_m900" and data[name]["metadata"]["mass"] == XGG_MASS
    assert data[name]["metadata"]["n_generated"] == XGG_EVENTS
    jets = jets_of(read(xgg_sample))
    jets = jets[ak.num(jets.pt) >= 2]
    mjj = leading_mjj(jets)
    # R = 0.5 gluon jets from a colour-singlet decay lose energy out of the cone (the m_jj
    # plateau spans ~0.85-0.98 M with a long low tail), and the spin-2 decay often sends a
    # gluon forward. The peak: mode of a kernel density estimate (bandwidth ~ 30 GeV, about
    # the pair's mass resolution) of the central (|Delta eta| < 1.3, as in CMS dijet
    # searches), gluon-matched pairs; it sits near 0.92 M.
    lead = jets[:, :2]
    central = ak.to_numpy(abs(lead.eta[:, 0] - lead.eta[:, 1]) < 1.3)
    central &= ak.to_numpy(ak.all(lead.partonFlavour == 21, axis=1))
    assert central.sum() > 0.2 * len(mjj)
    grid = np.arange(300.0, 1500.0, 2.0)
    peak = grid[np.argmax(gaussian_kde(mjj[central], bw_method=0.3)(grid))]
    assert abs(peak - XGG_MASS) < 0.1 * XGG_MASS, peak
    assert np.mean(mjj > 1.1 * XGG_MASS) < 0.1  # jets gain little (underlying event only)
    flav = ak.to_numpy(ak.flatten(jets.partonFlavour[:, :2]))
    matched = flav[flav != 0]
    assert len(matched) > 0.6 * len(flav)  # the rest: ISR jets or a decay gluon far forward
    assert np.mean(matched == 21) > 0.9


def test_wprime_jets_are_merged_w_and_z_decays(wprime_sample: Path) -> None:
    data = json.loads(wprime_sample.read_text())
    (name,) = data
    meta = data[name]["metadata"]
    assert name == "wprime_m900" and meta["process"] == "wprime" and meta["mass"] == 900.0
    assert meta["seed"] == GEN_SEED and meta["n_generated"] == 1500 and meta["xsec_pb"] > 0
    ev = read(wprime_sample, ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "Jet_partonFlavour"])
    sel = (ev.Jet_pt >= 350) & (ev.Jet_pt <= 450) & (abs(ev.Jet_eta) < 1.9) & (ev.Jet_jetId >= 2)
    two = jets_of(ev)[sel][ak.sum(sel, axis=1) == 2]
    # the bosons carry pT up to ~440 GeV: most events have two such jets
    assert len(two) > 0.25 * meta["n_generated"]
    mjj = leading_mjj(two)
    assert 0.85 * 900 < np.median(mjj) < 1.02 * 900
    # each selected jet holds one boson's two quarks: the jet mass peaks at m_W / m_Z
    mass = ak.to_numpy(ak.flatten(two.mass))
    counts, edges = np.histogram(mass, bins=np.arange(0.0, 200.0, 10.0))
    assert 70 <= edges[np.argmax(counts)] < 100, counts
    assert np.mean((mass > 65) & (mass < 105)) > 0.6
    # partonFlavour: the nearer decay quark of the boson (never a gluon: no hard gluons here)
    flav = ak.to_numpy(ak.flatten(two.partonFlavour))
    assert set(np.unique(flav).tolist()) <= set(range(-5, 6))
    assert np.mean(flav != 0) > 0.9


def _smooth_fit(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Poisson maximum-likelihood fit of exp(cubic in x); returns the fitted counts."""
    t = (x - x.mean()) / (x.max() - x.min())

    def model(p: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(np.polyval(p, t), -50, 50))

    def nll(p: np.ndarray) -> float:
        mu = model(p)
        return float(np.sum(mu - n * np.log(mu)))

    start = np.array([0.0, 0.0, 0.0, np.log(max(n.mean(), 1.0))])
    res = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-8})
    return model(res.x)


def test_qcd_mjj_is_smooth_and_covers_the_analysis_bins(qcd_sample: Path) -> None:
    mjj = leading_mjj(jets_of(read(qcd_sample)))
    per_100, _ = np.histogram(mjj, bins=np.arange(660, 1160 + 100, 100))
    assert np.all(per_100 >= 20), per_100
    counts, edges = np.histogram(mjj, bins=np.arange(660, 1160 + 20, 20))
    centres = 0.5 * (edges[1:] + edges[:-1])
    fit = _smooth_fit(centres, counts.astype(float))
    pulls = (counts - fit) / np.sqrt(fit)
    assert np.max(np.abs(pulls)) < 4, pulls
    # the fit itself is sensible (a spectrum with a spike would fail here)
    assert np.sum(pulls**2) < 3 * len(counts)


def test_default_window_fills_the_selection(qcd_sample: Path) -> None:
    """Events with exactly two selected jets (350-450 GeV, |eta| < 1.9, tight) exist and lie in
    660-1160 GeV."""
    ev = read(qcd_sample, ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "Jet_partonFlavour"])
    jets = jets_of(ev)
    sel = (ev.Jet_pt >= 350) & (ev.Jet_pt <= 450) & (abs(ev.Jet_eta) < 1.9) & (ev.Jet_jetId >= 2)
    two = jets[sel][ak.sum(sel, axis=1) == 2]
    assert len(two) > 0.05 * QCD_EVENTS
    mjj = leading_mjj(two)
    # most selected events lie in the analysis range (the rest: large |Delta eta| above it)
    assert np.mean((mjj > 660) & (mjj < 1160)) > 0.75
    per_bin, _ = np.histogram(mjj, bins=np.arange(660, 1160 + 100, 100))
    assert np.all(per_bin > 0.03 * len(mjj)), per_bin


# -- determinism, reuse, resume -----------------------------------------------------------------
def _arrays(fileset_json: Path) -> dict[str, np.ndarray]:
    ev = read(fileset_json)
    return {k: ak.to_numpy(ak.flatten(ev[k], axis=None)) for k in ev.fields}


@pytest.fixture(scope="module")
def small_cfg():
    return load_config(None, {"generation": {"events_per_file": 120, "batch_size": 50}}).generation


def test_same_seed_same_events_with_one_and_two_workers(tmp_path: Path, small_cfg) -> None:
    one = generate("qcd", 300, 11, tmp_path / "w1", workers=1, cfg=small_cfg, quiet=True)
    two = generate("qcd", 300, 11, tmp_path / "w2", workers=2, cfg=small_cfg, quiet=True)
    a, b = _arrays(one), _arrays(two)
    assert set(a) == set(b) == EVENT_BRANCHES
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert json.loads(one.read_text())["qcd"]["metadata"] == json.loads(two.read_text())["qcd"]["metadata"]
    # per-file seeds differ between files, seeds and processes
    seeds = {file_seed(11, "qcd", None, i) for i in range(3)} | {file_seed(12, "qcd", None, 0)}
    assert len(seeds | {file_seed(11, "xgg", 900.0, 0)}) == 5


def test_wprime_same_seed_same_events(tmp_path: Path, small_cfg) -> None:
    """Same seed, same W' events (the worker-count independence is the qcd test's: the same code)."""
    one = generate("wprime", 100, 11, tmp_path / "w1", mass=900.0, workers=1, cfg=small_cfg, quiet=True)
    two = generate("wprime", 100, 11, tmp_path / "w2", workers=1, cfg=small_cfg, quiet=True)  # default mass
    a, b = _arrays(one), _arrays(two)
    assert set(a) == EVENT_BRANCHES
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert json.loads(one.read_text()) == json.loads(two.read_text())
    other = generate("wprime", 30, 12, tmp_path / "w3", workers=1, cfg=small_cfg, quiet=True)
    assert not np.array_equal(_arrays(other)["Jet_pt"][:20], a["Jet_pt"][:20])
    assert file_seed(11, "wprime", 900.0, 0) != file_seed(11, "xgg", 900.0, 0)


def test_rerun_reuses_finished_files_and_resumes(tmp_path: Path, small_cfg) -> None:
    out = tmp_path / "sample"
    fileset = generate("qcd", 300, 5, out, workers=1, cfg=small_cfg, quiet=True)
    paths = files_of(fileset)
    before = _arrays(fileset)
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    generate("qcd", 300, 5, out, workers=2, cfg=small_cfg, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps  # nothing regenerated

    # a killed run: one file missing, one truncated, a stale temporary file
    paths[0].unlink()
    paths[1].write_bytes(paths[1].read_bytes()[:1000])
    (out / f".{paths[2].name}.abc.tmp").write_bytes(b"partial")
    generate("qcd", 300, 5, out, workers=2, cfg=small_cfg, quiet=True)
    assert paths[2].stat().st_mtime_ns == stamps[paths[2]]  # the good file was kept
    after = _arrays(fileset)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)

    # a different seed does not reuse the files
    generate("qcd", 300, 6, out, workers=1, cfg=small_cfg, quiet=True)
    assert not np.array_equal(_arrays(fileset)["Jet_pt"][:50], before["Jet_pt"][:50])


# -- command line ----------------------------------------------------------------------------------
def test_cli_generates_and_merges_filesets(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    base = ["generate", "--seed", "3", "--out", str(out), "--workers", "1", "--events-per-file", "20", "-q"]
    assert cli_main([*base, "--process", "xgg", "--mass", "800", "--events", "40"]) == 0
    assert cli_main([*base, "--process", "qcd", "--events", "25"]) == 0
    data = json.loads((out / "fileset.json").read_text())
    assert set(data) == {"xgg_m800", "qcd"}
    assert len(data["xgg_m800"]["files"]) == 2 and data["xgg_m800"]["metadata"]["n_generated"] == 40
    assert data["qcd"]["metadata"]["n_generated"] == 25 and len(data["qcd"]["files"]) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "generate" and "generate" in run["timings_s"]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent PID) of a process from /proc, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _alive_children(parent: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose parent is ``parent``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [p for p in pids if (stat := _proc_stat(p)) and stat[0] != "Z" and stat[1] == parent]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_workers_stop_when_generate_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "run_analysis.py", "generate", "-q", "--process", "qcd", "--events", "40000",
         "--events-per-file", "20000", "--seed", "1", "--workers", "2", "--out", str(out)],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while len(list(out.glob(".qcd_*.root.*.tmp"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)  # both workers are inside their files
        assert proc.poll() is None and len(list(out.glob(".qcd_*.root.*.tmp"))) == 2, "the workers did not start"
        workers = [p for p in _alive_children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) >= 2
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while any(_alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived the killed generate"
    finally:
        proc.kill()  # nothing left running if the test failed
        for pid in filter(_alive, workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not list(out.glob("qcd_*.root"))  # no file was finished, none is trusted later


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--process", "qcd", "--events", "0"], "--events"),
        (["--process", "qcd", "--events", "-5"], "--events"),
        (["--process", "ttbar", "--events", "10"], "unknown process 'ttbar'"),
        (["--process", "xgg", "--events", "10", "--mass", "5000"], "outside the kinematic range"),
        (["--process", "xgg", "--events", "10", "--mass", "10"], "outside the kinematic range"),
        (["--process", "wprime", "--events", "10", "--mass", "150"], "outside the kinematic range"),
        (["--process", "qcd", "--events", "10", "--mass", "900"], "--mass"),
        (["--process", "qcd", "--events", "10", "--workers", "0"], "--workers"),
        (["--process", "qcd", "--events", "10", "--events-per-file", "0"], "--events-per-file"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code = cli_main(["generate", "--seed", "1", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "fileset.json").exists()


def test_unwritable_output_directory_exits_2(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = cli_main(["generate", "--process", "qcd", "--events", "10", "--seed", "1", "--out", str(blocker / "sub")])
    assert code == 2
    assert str(blocker / "sub") in capsys.readouterr().err
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert cli_main(["generate", "--process", "qcd", "--events", "10", "--seed", "1", "--out", str(ro)]) == 2


def test_bad_generation_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pthat"):
        load_config(None, {"generation": {"pthat_min": 600, "pthat_max": 500}})
    cfg = load_config(None, {"generation": {"extra_pythia": ["NoSuchKey:foo = on"]}}).generation
    with pytest.raises(ConfigError, match="NoSuchKey"):
        generate("qcd", 5, 1, tmp_path, workers=1, cfg=cfg, quiet=True)


# -- jets.py on hand-made events (known answers) -------------------------------------------------
def _event_batch(events: list[list[tuple[float, float, float, int]]], partons: list[list[tuple[float, float, int]]]):
    """An EventBatch from particles (pt, eta, phi, pdgId; massless) and partons (eta, phi, id)."""
    from analysis.events.jets import EventBatch

    flat = [p for ev in events for p in ev]
    pt, eta, phi = (np.array([p[i] for p in flat], dtype=float) for i in range(3))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    fp = [p for ev in partons for p in ev]
    return EventBatch(
        counts=np.array([len(ev) for ev in events]), px=px, py=py, pz=pz, e=np.sqrt(px**2 + py**2 + pz**2),
        mass=np.zeros(len(flat)), pdg_id=np.array([p[3] for p in flat], dtype=np.int32),
        parton_counts=np.array([len(ev) for ev in partons]), parton_eta=np.array([p[0] for p in fp]),
        parton_phi=np.array([p[1] for p in fp]), parton_id=np.array([p[2] for p in fp], dtype=np.int32),
        weight=np.ones(len(events)),
    )  # fmt: skip


def test_jets_of_hand_made_events() -> None:
    from analysis.events.jets import JetSettings, build_batch

    charge = {211: 1, -211: -1, 22: 0, 13: -1, 2112: 0}
    events = [
        # event 0: a soft pion jet at phi=0 listed first, a harder photon-only jet at phi=pi
        [(30.0, 0.0, 0.0, 211), (20.0, 0.1, 0.05, -211), (60.0, 0.0, np.pi, 22), (40.0, 0.1, np.pi - 0.1, 22)],
        [],  # event 1: nothing
        # event 2: a muon-dominated jet (tight, fails the lepton veto) and a neutral-hadron jet
        [(150.0, 1.0, 1.0, 13), (20.0, 1.1, 1.0, 211), (50.0, -1.0, -2.0, 2112), (40.0, -1.0, -2.1, 211)],
    ]
    partons = [[(0.0, 0.02, 2), (0.0, 3.1, 21)], [], [(1.05, 1.0, 21)]]
    cols = build_batch(_event_batch(events, partons), JetSettings(pt_min=10.0), lambda ids: np.vectorize(charge.get)(ids))
    jet, pf, link = cols["Jet"], cols["PFCands"], cols["JetPFCands"]
    assert ak.num(jet).tolist() == [2, 0, 2]
    np.testing.assert_allclose(ak.to_numpy(jet.pt[0]), [100.0, 50.0], rtol=1e-2)  # pT-ordered
    np.testing.assert_allclose(ak.to_numpy(jet.pt[2]), [170.0, 90.0], rtol=1e-2)
    assert jet.nConstituents.tolist() == [[2, 2], [], [2, 2]]
    assert jet.partonFlavour.tolist() == [[21, 2], [], [21, 0]]
    # photons only: NEMF = 1 fails loose; pions: 7; muon energy fraction 0.87: tight, no lepton veto;
    # neutral hadron fraction 50/90 passes tight but the jet has charged hadrons
    assert jet.jetId.tolist() == [[0, 7], [], [3, 7]]
    # PFCands in event-record order; the links point at the right candidates
    assert pf.pdgId.tolist() == [[211, -211, 22, 22], [], [13, 211, 2112, 211]]
    assert link.jetIdx.tolist() == [[0, 0, 1, 1], [], [0, 0, 1, 1]]
    assert link.pFCandsIdx.tolist() == [[2, 3, 0, 1], [], [0, 1, 2, 3]]
    assert pf.charge.tolist() == [[1, -1, 0, 0], [], [-1, 1, 0, 1]]


def test_default_samples_of_the_chain_are_cached(tmp_path: Path) -> None:
    from analysis.events.generation import default_samples

    cfg = load_config(None, {"seed": 3, "generation": {
        "qcd_events": 40, "xgg_events": 30, "xgg_mass": 800, "events_per_file": 20, "data_dir": str(tmp_path / "data"),
    }})  # fmt: skip
    qcd, xgg = default_samples(cfg, workers=1, quiet=True)
    assert qcd == tmp_path / "data" / "qcd_seed3" / "fileset.json"
    assert xgg == tmp_path / "data" / "xgg_m800_seed3" / "fileset.json"
    assert json.loads(xgg.read_text())["xgg_m800"]["metadata"]["n_generated"] == 30
    stamps = [p.stat().st_mtime_ns for p in files_of(qcd) + files_of(xgg)]
    assert default_samples(cfg, workers=1, quiet=True) == [qcd, xgg]
    assert [p.stat().st_mtime_ns for p in files_of(qcd) + files_of(xgg)] == stamps
    # the W' signal on request (generation.wprime_events at generation.wprime_mass)
    cfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"wprime_events": 20})})
    paths = default_samples(cfg, workers=1, quiet=True, signals=("xgg", "wprime"))
    assert paths == [qcd, xgg, tmp_path / "data" / "wprime_m900_seed3" / "fileset.json"]
    assert json.loads(paths[2].read_text())["wprime_m900"]["metadata"]["n_generated"] == 20
    assert [p.stat().st_mtime_ns for p in files_of(qcd) + files_of(xgg)] == stamps
    with pytest.raises(ConfigError, match="signals: unknown signal process 'ttbar'"):
        default_samples(cfg, workers=1, quiet=True, signals=("ttbar",))
