"""The PFN, its inputs and its training helpers, on jets of generated + processed events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from analysis.pfn.inputs import PID2FLOAT, pf_class_ids, preprocess, preprocess_awkward, remap_pids
from models.batches import PackedJets, to_padded

REPO = Path(__file__).resolve().parent.parent
SMALL = {"phi_sizes": (16, 16), "f_sizes": (16,), "epochs": 8, "batch_size": 50, "learning_rate": 0.01}


@pytest.fixture(scope="session")
def real_jets(processed_sample: Path) -> tuple[ak.Array, PackedJets]:
    """Up to 600 selected jets of the processed background sample: raw columns and PFN inputs."""
    cutflow = json.loads((processed_sample / "cutflow.json").read_text())
    name = next(d for d, e in cutflow["datasets"].items() if e["metadata"].get("process") == "qcd")
    events = ak.from_parquet(processed_sample / cutflow["datasets"][name]["events"])
    jets = ak.flatten(events.jets, axis=1)[:600]
    return jets, preprocess_awkward(jets.constituents, jets.phi)


def test_preprocessing_matches_a_per_jet_computation(real_jets) -> None:
    jets, packed = real_jets
    offsets = packed.offsets
    for j in range(0, len(jets), 37):
        c = jets.constituents[j]
        pt, y = np.asarray(c.pt, float), np.asarray(c.rapidity, float)
        dphi = np.angle(np.exp(1j * (np.asarray(c.phi, float) - float(jets.phi[j]))))  # independent wrap
        feats = packed.features[offsets[j] : offsets[j + 1]]
        np.testing.assert_allclose(feats[:, 0], pt / pt.sum(), rtol=1e-5)
        np.testing.assert_allclose(feats[:, 1], y - np.average(y, weights=pt), atol=1e-5)
        np.testing.assert_allclose(feats[:, 2], dphi - np.average(dphi, weights=pt), atol=1e-5)
    # every jet: pT fractions sum to 1, pT-weighted centre at (0, 0)
    jet = np.repeat(np.arange(len(packed)), packed.counts)
    f = packed.features.astype(np.float64)
    np.testing.assert_allclose(np.bincount(jet, f[:, 0]), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.bincount(jet, f[:, 0] * f[:, 1]), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.bincount(jet, f[:, 0] * f[:, 2]), 0.0, atol=1e-5)


def test_pid_remap_agrees_with_energyflow() -> None:
    from energyflow.utils import remap_pids as ef_remap
    from energyflow.utils.data_utils import PID2FLOAT_MAP

    assert PID2FLOAT == PID2FLOAT_MAP
    pids = np.array(sorted(PID2FLOAT_MAP), dtype=float)
    events = np.zeros((1, len(pids), 4))
    events[0, :, 3] = pids
    ef_remap(events, pid_i=3)
    np.testing.assert_allclose(remap_pids(pids), events[0, :, 3], atol=1e-7)
    assert remap_pids(np.array([3122, 0]))[0] == 0.0  # unknown ids -> 0, as error_on_unknown=False


# generator id -> CMS PF class, written out by hand: charged hadrons by the sign of their charge
PF_CLASSES = {
    211: 211, -211: -211, 321: 211, -321: -211, 2212: 211, -2212: -211, 3222: 211, -3222: -211,
    3112: -211, -3112: 211, 3312: -211, -3312: 211, 3334: -211, -3334: 211, 411: 211, -431: -211,
    130: 130, 310: 130, 2112: 130, -2112: 130, 3122: 130, -3122: 130, 3212: 130, 3322: 130, 421: 130,
    22: 22, 11: 11, -11: -11, 13: 13, -13: -13, 1: 130, 2: 22,
}  # fmt: skip
PF_IDS = {22, 211, -211, 130, 11, -11, 13, -13}


def test_pf_classes_map_generator_ids() -> None:
    pids = np.array(list(PF_CLASSES))
    np.testing.assert_array_equal(pf_class_ids(pids), list(PF_CLASSES.values()))
    pf = np.array(sorted(PF_IDS))
    np.testing.assert_array_equal(pf_class_ids(pf), pf)  # PF candidates keep their ids
    np.testing.assert_array_equal(pf_class_ids(pids.reshape(2, -1)), pf_class_ids(pids).reshape(2, -1))


def test_particle_ids_option_reaches_the_pfn_inputs(real_jets) -> None:
    jets, full_packed = real_jets
    pids = ak.to_numpy(ak.flatten(jets.constituents.pdgId, axis=None))
    assert set(np.unique(pids)) - PF_IDS, "the sample should hold generator ids that PF candidates lack"
    full = preprocess_awkward(jets.constituents, jets.phi, "full")
    pf = preprocess_awkward(jets.constituents, jets.phi)  # the default: pf_classes
    np.testing.assert_array_equal(pf.features[:, :3], full.features[:, :3])
    np.testing.assert_array_equal(full.features[:, 3], remap_pids(pids))
    np.testing.assert_array_equal(pf.features[:, 3], remap_pids(np.vectorize(PF_CLASSES.get)(pids)))
    assert set(np.unique(pf.features[:, 3])) <= set(remap_pids(np.array(sorted(PF_IDS))))
    assert set(np.unique(full.features[:, 3])) > set(np.unique(pf.features[:, 3]))  # K, p, n are gone
    np.testing.assert_array_equal(full_packed.features[:, 3], pf.features[:, 3])
    with pytest.raises(ValueError, match="particle_ids"):
        preprocess_awkward(jets.constituents, jets.phi, "pdg")


def test_event_split_keeps_every_event_and_its_copies_together() -> None:
    from models.training import split_events

    rng = np.random.default_rng(3)
    copies = rng.poisson(1.0, 500)
    events = np.repeat(np.repeat(np.arange(500), copies), 2)  # two jets per event, w copies of each
    split = split_events(events, 600, 200, np.random.default_rng(9))
    parts = [events[split.train], events[split.test], events[split.val]]
    np.testing.assert_array_equal(np.sort(np.concatenate([split.train, split.test, split.val])), np.arange(len(events)))
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(parts[a]) & set(parts[b])
    assert 600 <= len(split.train) < 600 + 2 * copies.max() and 200 <= len(split.test) < 200 + 2 * copies.max()
    again = split_events(events, 600, 200, np.random.default_rng(9))
    np.testing.assert_array_equal(again.test, split.test)
    assert len(set(events[split.train])) > 100  # events, not an ordered block: random order
    assert not np.all(np.diff(events[split.train]) >= 0)


def test_phi_is_centred_across_the_pi_boundary() -> None:
    phi = np.array([np.pi - 0.05, -np.pi + 0.05])
    jets = preprocess(np.array([1.0, 1.0]), np.zeros(2), phi, np.array([22, 22]), np.array([2]))
    np.testing.assert_allclose(sorted(jets.features[:, 2]), [-0.05, 0.05], atol=1e-6)


def _padded_reference(model, x: np.ndarray, weights: tuple | None = None) -> np.ndarray:
    """Padded + masked PFN in numpy with the model's weights, or ``weights`` as
    ``models.pfn.dense_weights`` gives them (EnergyFlow's formulation)."""
    from models.pfn import dense_weights

    phi, f = weights or dense_weights(model)
    mask = np.any(x != 0, axis=-1).astype(np.float64)
    h = x.astype(np.float64)
    for w, b in phi:
        h = np.maximum(h @ w + b, 0)
    z = np.einsum("nm,nml->nl", mask, h)
    for i, (w, b) in enumerate(f):
        z = z @ w + b
        z = np.maximum(z, 0) if i < len(f) - 1 else z
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("jit", [False, True], ids=["oneDNN", "XLA"])
def test_packed_pfn_equals_padded_masked_computation(real_jets, jit: bool) -> None:
    from models.pfn import build_pfn
    from models.training import predict_pfn

    _, packed = real_jets
    jets = packed.take(np.arange(300))
    model = build_pfn(4, (32, 32, 16), (32, 16), seed=3, jit_compile=jit)
    assert model.jit_compile == jit  # XLA stays on under op determinism when asked for
    probs, used = predict_pfn(model, jets, batch_size=128)
    np.testing.assert_array_equal(np.sort(used), np.arange(300))  # every jet once
    np.testing.assert_allclose(probs, _padded_reference(model, to_padded(jets))[used], atol=2e-5)


JAX_MODEL = r"""
import sys
import numpy as np
from models.batches import PackedJets
from models.pfn import build_pfn, dense_weights
from models.training import predict_pfn
d = np.load(sys.argv[1])
model = build_pfn(4, (32, 32, 16), (32, 16), seed=3)
assert model.jit_compile  # XLA: JAX always compiles
probs, used = predict_pfn(model, PackedJets(d["features"], d["counts"]), batch_size=128)
phi, f = dense_weights(model)
layers = {f"{net}_{i}_{k}": a for net, ws in (("phi", phi), ("f", f)) for i, wb in enumerate(ws) for k, a in zip("wb", wb)}
np.savez(sys.argv[2], probs=probs, used=used, **layers)
"""


def test_packed_pfn_on_jax_equals_padded_masked_computation(real_jets, tmp_path: Path) -> None:
    _, packed = real_jets
    jets = packed.take(np.arange(300))
    np.savez(tmp_path / "jets.npz", features=jets.features, counts=jets.counts)
    out = subprocess.run(
        [sys.executable, "-c", JAX_MODEL, str(tmp_path / "jets.npz"), str(tmp_path / "out.npz")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    res = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(np.sort(res["used"]), np.arange(300))
    weights = tuple(
        [(res[f"{net}_{i}_w"], res[f"{net}_{i}_b"]) for i in range(n)] for net, n in (("phi", 3), ("f", 3))
    )
    np.testing.assert_allclose(res["probs"], _padded_reference(None, to_padded(jets), weights)[res["used"]], atol=2e-5)


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("cap", [None, 700])
def test_packed_batches_hold_each_jet_in_order(n_groups: int, cap: int | None) -> None:
    from models.batches import pack_batch, pack_batches

    rng = np.random.default_rng(1)
    counts = rng.integers(1, 30, 200)
    jets = PackedJets(rng.normal(size=(int(counts.sum()), 4)).astype(np.float32), counts)
    offsets = jets.offsets
    batches = [rng.permutation(200)[:size] for size in (61, 60, 7)]
    packed = pack_batches(jets, offsets, batches, n_groups, [cap] * 3, multiple=1)
    for b, batch in enumerate(batches):
        x = packed.batch(b, n_groups)
        np.testing.assert_equal(x, pack_batch(jets, offsets, batch, n_groups, cap, multiple=1))
        size = len(batch) // n_groups
        totals = [int(counts[batch[g * size : (g + 1) * size]].sum()) for g in range(n_groups)]
        assert x["particles"].shape[1] == (cap if cap and max(totals) <= cap else max(totals))
        for g in range(n_groups):
            group = batch[g * size : (g + 1) * size]
            real = np.concatenate([jets.features[offsets[j] : offsets[j + 1]] for j in group])
            np.testing.assert_array_equal(x["particles"][g, : totals[g]], real)
            np.testing.assert_array_equal(x["segments"][g, : totals[g]], np.repeat(np.arange(size), counts[group]))
            assert not x["particles"][g, totals[g] :].any() and (x["segments"][g, totals[g] :] == size).all()


def test_jet_batches_dataset_serves_the_same_items(real_jets) -> None:
    from models.training import JetBatches, one_hot

    _, packed = real_jets
    jets = packed.take(np.arange(250))
    labels = one_hot(jets.counts % 2)
    for fixed in (True, False):
        batches = JetBatches(jets, labels, 60, seed=4, n_groups=2, epochs=3, fixed_shapes=fixed)
        items = list(batches.dataset().as_numpy_iterator())
        assert len(items) == len(batches) == 3 * 5
        for i, (x, y) in enumerate(items):
            ref_x, ref_y = batches[i]
            np.testing.assert_equal(x, ref_x)
            np.testing.assert_array_equal(y, ref_y)
        first = list(batches.packed().as_numpy_iterator())
        assert len(first) == 5 and all(np.array_equal(a[1], batches[i][1]) for i, a in enumerate(first))


def test_training_is_seeded_and_learns(real_jets) -> None:
    from models.training import TrainSettings, clear_model_cache, train_and_score

    _, packed = real_jets
    # a learnable task on real jets: many versus few constituents
    label = (packed.counts > np.median(packed.counts)).astype(int)
    tr, va, te = np.arange(0, 400), np.arange(400, 450), np.arange(450, 600)
    s = TrainSettings(**SMALL)
    args = (packed.take(tr), label[tr], packed.take(va), label[va], packed.take(te), label[te], s)
    clear_model_cache()
    a = train_and_score(*args, 11)  # a fresh model, kept for reuse
    b, c, d = train_and_score(*args, 11), train_and_score(*args, 12), train_and_score(*args, 11)  # reused, reset
    assert a == b == d  # bit-identical with the same seed, fresh or reused after another training
    assert a != c
    assert a > 0.6


def test_bfloat16_phi_agrees_with_float32_and_learns(real_jets) -> None:
    from models.pfn import build_pfn
    from models.training import TrainSettings, predict_pfn, train_and_score

    _, packed = real_jets
    jets = packed.take(np.arange(300))
    model = build_pfn(4, (32, 32, 16), (32, 16), seed=3, phi_dtype="mixed_bfloat16")
    assert model.phi_layers[0].compute_dtype == "float32"  # the particle features stay exact
    assert model.phi_layers[1].compute_dtype == "bfloat16" and model.phi_layers[1].kernel.dtype == "float32"
    assert model.f_layers[0].compute_dtype == "float32"
    probs, used = predict_pfn(model, jets, batch_size=128)
    # the same weights in float64: bfloat16 keeps ~3 significant digits through Phi
    np.testing.assert_allclose(probs, _padded_reference(model, to_padded(jets))[used], atol=2e-2)
    label = (packed.counts > np.median(packed.counts)).astype(int)
    tr, va, te = np.arange(0, 400), np.arange(400, 450), np.arange(450, 600)
    s = TrainSettings(**SMALL, phi_dtype="mixed_bfloat16")
    args = (packed.take(tr), label[tr], packed.take(va), label[va], packed.take(te), label[te], s)
    a, b = train_and_score(*args, 11), train_and_score(*args, 11)
    assert a == b and a > 0.6


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 avx512f avx512_bf16 fma", True),
                                               ("fpu amx_bf16 amx_tile", True), ("fpu avx2 avx512f fma", False)])  # fmt: skip
def test_auto_precision_follows_the_cpu(tmp_path: Path, flags: str, native: bool) -> None:
    from models.pfn import cpu_has_native_bf16, resolve_phi_dtype

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(cpuinfo) is native
    assert not cpu_has_native_bf16(tmp_path / "absent")
    assert resolve_phi_dtype("float32") == "float32" and resolve_phi_dtype("mixed_bfloat16") == "mixed_bfloat16"
    # on this CPU-only machine "auto" follows the flags of the (given) cpuinfo
    assert resolve_phi_dtype("auto", cpuinfo) == ("mixed_bfloat16" if native else "float32")
    assert resolve_phi_dtype("auto", tmp_path / "absent") == "float32"


def test_grouped_steps_train_as_single_steps(real_jets, monkeypatch) -> None:
    import models.training as training

    _, packed = real_jets
    label = (packed.counts > np.median(packed.counts)).astype(int)
    tr, va, te = np.arange(0, 400), np.arange(400, 450), np.arange(450, 600)
    s = training.TrainSettings(**{**SMALL, "epochs": 3})
    args = (packed.take(tr), label[tr], packed.take(va), label[va], packed.take(te), label[te], s, 5)
    assert training.steps_per_execution(400 // 50) == 8 and training.steps_per_execution(9) == 3
    assert training.steps_per_execution(31) == 1  # never reads into the next epoch's batches
    grouped = training.train_and_score(*args)
    monkeypatch.setattr(training, "steps_per_execution", lambda n: 1)
    assert training.train_and_score(*args) == grouped


def test_energyflow_option_trains(real_jets) -> None:
    from models.training import TrainSettings, train_and_score

    _, packed = real_jets
    label = (packed.counts > np.median(packed.counts)).astype(int)
    tr, va, te = np.arange(0, 400), np.arange(400, 450), np.arange(450, 600)
    s = TrainSettings(**{**SMALL, "backend": "energyflow"})
    score = train_and_score(packed.take(tr), label[tr], packed.take(va), label[va], packed.take(te), label[te], s, 5)
    assert 0.6 < score <= 1.0


MULTI_DEVICE = r"""
import json, sys
import numpy as np
from models.devices import split_cpu, training_devices, run_on_devices, data_parallel
split_cpu(2)
from models.batches import PackedJets
from models.training import TrainSettings, train_and_score
d = np.load(sys.argv[1])
jets = PackedJets(d["features"], d["counts"])
label = (jets.counts > np.median(jets.counts)).astype(int)
tr, va, te = np.arange(0, 400), np.arange(400, 450), np.arange(450, 600)
s = TrainSettings(phi_sizes=(16, 16), f_sizes=(16,), epochs=8, batch_size=50, learning_rate=0.01)
args = (jets.take(tr), label[tr], jets.take(va), label[va], jets.take(te), label[te], s)
devices = training_devices()
threads = {}
for seed, value, device in run_on_devices([1, 2], lambda seed: train_and_score(*args, seed), devices):
    threads[seed] = (value, device)
sequential = {seed: train_and_score(*args, seed) for seed in [1, 2]}  # one training per device above
strategy, replicas = data_parallel(devices)
parallel = train_and_score(*args, 7, strategy, replicas)
import keras
print(json.dumps({"devices": devices, "threads": threads, "sequential": sequential,
                  "replicas": replicas, "parallel": parallel, "backend": keras.backend.backend()}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_multi_device_paths_on_two_logical_cpus(real_jets, tmp_path: Path, backend: str) -> None:
    _, packed = real_jets
    np.savez(tmp_path / "jets.npz", features=packed.features, counts=packed.counts)
    out = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE, str(tmp_path / "jets.npz")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": backend},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(res["devices"]) == 2
    assert {d for _, d in res["threads"].values()} == set(res["devices"])  # both devices worked
    # a training's AUC does not depend on the device or thread it ran on
    assert {int(k): v for k, (v, _) in res["threads"].items()} == {int(k): v for k, v in res["sequential"].items()}
    assert res["replicas"] == 2
    assert 0.55 < res["parallel"] <= 1.0
    assert res["backend"] == backend
