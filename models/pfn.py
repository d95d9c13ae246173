"""Particle Flow Network (Komiske, Metodiev, Thaler) in Keras 3, computed on packed jets.

The per-particle network Phi runs on the flat list of all constituents of a batch (no padding
to the longest jet), the latent sum per jet is a ``keras.ops.segment_sum`` over jet indices,
and F maps the summed latent vector to two softmax classes. Only ``keras.layers`` and
``keras.ops`` are used, so the model runs on the TensorFlow backend (optionally XLA-compiled)
and on JAX.

A batch is ``{"particles": (G, P, n_features), "segments": (G, P) int32, "jets": (G, B)}``:
G groups (one per data-parallel replica; 1 otherwise) of B jets whose P constituent slots
carry, in ``segments``, the index of their jet inside the group, or B for padding slots
(dropped by the sum). Segments never decrease along a group (jets in order, padding last;
:func:`models.batches.pack_batch` packs them so), which lets the sum use the sorted segment
kernel. The output is (G * B, 2), in group order.

:class:`EventPFN` classifies events instead of jets: the units of a batch are events, each
constituent carries its jet's slot in the event (0: leading jet) as a last feature column,
one shared Phi runs on every constituent, and the latent sums of the event's jets, leading jet
first, are concatenated before F (:func:`pack_events` builds its inputs).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from models.batches import PackedJets
from models.settings import DEFAULT_F, DEFAULT_PHI


def _initializer(seed: int, index: int) -> keras.initializers.Initializer:
    """He-uniform (EnergyFlow's default) with an explicit seed: no global random state used."""
    return keras.initializers.HeUniform(seed=int((seed * 1000003 + index) % 2**31))


def resolve_jit(jit_compile: bool | str) -> bool:
    """XLA or not. ``"auto"``: XLA on JAX (which always compiles), not on TensorFlow. That is
    what Keras itself picks under TensorFlow op determinism (which our trainings enable), and
    on a CPU it is also the faster choice: XLA compiles every batch shape anew (1-2 s each
    here, for the two training shapes, validation and prediction) and its steps are no faster
    than the oneDNN kernels'. ``True`` forces XLA (deterministic on a CPU)."""
    if jit_compile != "auto":
        return bool(jit_compile)
    return keras.backend.backend() == "jax"


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16, as Linux reports)."""
    try:
        return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo.read_text()) is not None
    except OSError:
        return False


def resolve_phi_dtype(phi_dtype: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Phi's precision. ``"auto"``: ``mixed_bfloat16`` (Phi's hidden layers computed in
    bfloat16 on float32 weights; its input layer, the latent sum, F, the loss and the optimiser
    stay float32) when Keras runs on a CPU that computes bfloat16 natively, where training is
    7-20 % faster (benchmarks/bench_pfn.py); ``float32`` elsewhere (on older CPUs bfloat16 is
    emulated and slower; on GPUs it is not measured yet). bfloat16 separates weak signals
    measurably less well (README, Scan), hence float32 by default."""
    if phi_dtype != "auto":
        return phi_dtype
    if keras.backend.backend() == "jax":
        import jax

        on_cpu = all(d.platform == "cpu" for d in jax.devices())
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        on_cpu = not tf.config.list_physical_devices("GPU")
    else:
        on_cpu = False
    return "mixed_bfloat16" if on_cpu and cpu_has_native_bf16(cpuinfo) else "float32"


def softmax(logits: object) -> object:
    """Softmax over the last axis from elementary ops (oneDNN's softmax kernel costs about a
    millisecond per call at this size); like Keras' own softmax activation, it hands the
    logits to the cross-entropy loss, which then works on them directly."""
    e = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
    out = e / ops.sum(e, axis=-1, keepdims=True)
    with contextlib.suppress(AttributeError):  # not on C-type tensors
        out._keras_logits = logits
    return out


class PackedPFN(keras.Model):
    """PFN on packed constituents: Phi on real particles only, segment sum, F, softmax."""

    def __init__(
        self,
        phi_sizes: Sequence[int] = DEFAULT_PHI,
        f_sizes: Sequence[int] = DEFAULT_F,
        n_classes: int = 2,
        seed: int = 0,
        phi_dtype: str = "float32",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.phi_dtype = phi_dtype
        self.phi_sizes = tuple(int(s) for s in phi_sizes)
        self.f_sizes = tuple(int(s) for s in f_sizes)
        self.n_classes = int(n_classes)
        self.seed = int(seed)
        # the first layer sees the particle features in float32 (bfloat16 would round the pT
        # fractions and angles to ~3 digits); the later, wider ones run in phi_dtype
        self.phi_layers = [
            layers.Dense(s, activation="relu", kernel_initializer=_initializer(seed, i), name=f"phi_{i}",
                         dtype=phi_dtype if i else "float32")
            for i, s in enumerate(self.phi_sizes)
        ]
        n = len(self.phi_sizes)
        self.f_layers = [
            layers.Dense(s, activation="relu", kernel_initializer=_initializer(seed, n + i), name=f"f_{i}")
            for i, s in enumerate(self.f_sizes)
        ]
        self.out_layer = layers.Dense(
            self.n_classes, name="output",
            kernel_initializer=keras.initializers.GlorotUniform(seed=int((seed * 7919 + 17) % 2**31)),
        )  # fmt: skip

    # Keras switches XLA off whenever TensorFlow op determinism is on, since some ops have no
    # deterministic XLA kernel; this model's (dense layers, a segment sum) all have one.
    @property
    def jit_compile(self) -> bool:
        return bool(self._jit_compile)

    @jit_compile.setter
    def jit_compile(self, value: bool) -> None:
        self._jit_compile = bool(value)

    def _segment_sum(self, x: object, ids: object, num_segments: object) -> object:
        if keras.backend.backend() == "tensorflow" and not self.jit_compile:
            # the sorted kernel (its gradient is a plain gather); the ids end at num_segments - 1
            return ops.segment_sum(x, ids, sorted=True)
        return ops.segment_sum(x, ids, num_segments=num_segments, sorted=keras.backend.backend() != "tensorflow")

    def latent(self, inputs: dict) -> object:
        """The summed Phi outputs of every jet, shape (G * B, latent)."""
        particles, segments, jets = inputs["particles"], inputs["segments"], inputs["jets"]
        n_groups = ops.shape(particles)[0]
        n_jets = ops.shape(jets)[1]
        n_features = ops.shape(particles)[2]
        n_segments = n_groups * (n_jets + 1)  # one spare segment per group takes its padding slots
        # jet index across groups, plus one padding slot in the last spare segment, so that the
        # ids always end at n_segments - 1 (Phi of that slot costs one row)
        offsets = ops.arange(n_groups, dtype="int32")[:, None] * (n_jets + 1)
        ids = ops.concatenate(
            [ops.reshape(ops.cast(segments, "int32") + offsets, (-1,)), ops.reshape(n_segments - 1, (1,))], axis=0
        )  # fmt: skip
        x = ops.concatenate([ops.reshape(particles, (-1, n_features)), ops.zeros((1, n_features), particles.dtype)], 0)
        for layer in self.phi_layers:
            x = layer(x)
        summed = self._segment_sum(ops.cast(x, "float32"), ids, n_segments)
        width = self.phi_sizes[-1]
        summed = ops.slice(ops.reshape(summed, (n_groups, n_jets + 1, width)), (0, 0, 0), (n_groups, n_jets, width))
        return ops.reshape(summed, (n_groups * n_jets, width))

    def call(self, inputs: dict) -> object:
        x = self.latent(inputs)
        for layer in self.f_layers:
            x = layer(x)
        return softmax(self.out_layer(x))

    @property
    def n_inputs(self) -> int:
        """Feature columns of the ``particles`` input (after the weights are built)."""
        return int(self.phi_layers[0].kernel.shape[0])

    def architecture(self) -> dict:
        """The constructor's arguments except the seed (a fresh model of the same shape)."""
        return {"phi_sizes": self.phi_sizes, "f_sizes": self.f_sizes, "n_classes": self.n_classes,
                "phi_dtype": self.phi_dtype}  # fmt: skip

    def get_config(self) -> dict:
        return {
            **super().get_config(), "phi_sizes": list(self.phi_sizes), "f_sizes": list(self.f_sizes),
            "n_classes": self.n_classes, "seed": self.seed, "phi_dtype": self.phi_dtype,
        }  # fmt: skip


class EventPFN(PackedPFN):
    """Event-level PFN: one shared Phi on the constituents of all ``event_jets`` jets of an
    event, one latent sum per jet, the sums concatenated (leading jet first) before F.

    Inputs as :class:`PackedPFN`'s, with events as the units: ``jets`` (G, B) counts B events
    per group, ``segments`` gives each constituent's event, and the last feature column of
    ``particles`` is the constituent's jet slot in its event (0 .. event_jets - 1; constituents
    ordered by event, then slot; padding slots 0). That column only routes the latent sum;
    Phi sees the other columns. The output is (G * B, n_classes), one row per event.
    """

    def __init__(self, *args, event_jets: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if event_jets < 1:
            raise ValueError(f"event_jets must be at least 1 (got {event_jets})")
        self.event_jets = int(event_jets)

    def latent(self, inputs: dict) -> object:
        """The concatenated latent sums of every event's jets, shape (G * B, event_jets * latent)."""
        particles, segments, events = inputs["particles"], inputs["segments"], inputs["jets"]
        k = self.event_jets
        n_groups = ops.shape(particles)[0]
        n_events = ops.shape(events)[1]
        n_columns = ops.shape(particles)[2]
        flat = ops.reshape(particles, (-1, n_columns))
        slot = ops.cast(flat[:, -1], "int32")
        per_group = n_events * k + 1  # every event's jets, plus a spare segment for the padding slots
        n_segments = n_groups * per_group
        group = ops.arange(n_groups, dtype="int32")[:, None] * per_group + ops.zeros_like(segments, "int32")
        # padding slots: segment B, slot 0 (the spare segment); one more slot ends the ids at n_segments - 1
        ids = ops.cast(ops.reshape(segments, (-1,)), "int32") * k + slot + ops.reshape(group, (-1,))
        ids = ops.concatenate([ids, ops.reshape(n_segments - 1, (1,))], axis=0)
        x = ops.concatenate([flat[:, :-1], ops.zeros((1, n_columns - 1), flat.dtype)], 0)
        for layer in self.phi_layers:
            x = layer(x)
        summed = self._segment_sum(ops.cast(x, "float32"), ids, n_segments)
        width = self.phi_sizes[-1]
        summed = ops.reshape(summed, (n_groups, per_group, width))
        summed = ops.slice(summed, (0, 0, 0), (n_groups, n_events * k, width))
        return ops.reshape(summed, (n_groups * n_events, k * width))

    @property
    def n_inputs(self) -> int:
        return super().n_inputs + 1  # the jet slot column

    def architecture(self) -> dict:
        return {**super().architecture(), "event_jets": self.event_jets}

    def get_config(self) -> dict:
        return {**super().get_config(), "event_jets": self.event_jets}


def pack_events(jets: PackedJets, event_jets: int) -> PackedJets:
    """:class:`EventPFN` inputs from the jets of whole events (``event_jets`` consecutive jets per
    event, leading jet first): one unit per event, its jets' constituents in jet order, with the
    jet slot appended as the last feature column."""
    if len(jets) % event_jets:
        raise ValueError(f"pack_events: {len(jets)} jets are not whole events of {event_jets} jets")
    slot = np.tile(np.arange(event_jets, dtype=np.float32), len(jets) // event_jets)
    features = np.concatenate([jets.features, np.repeat(slot, jets.counts)[:, None]], axis=1)
    features = features.astype(np.float32)
    return PackedJets(features, jets.counts.reshape(-1, event_jets).sum(axis=1))


def build_pfn(
    n_features: int,
    phi_sizes: Sequence[int] = DEFAULT_PHI,
    f_sizes: Sequence[int] = DEFAULT_F,
    seed: int = 0,
    learning_rate: float = 1e-3,
    jit_compile: bool | str = "auto",
    phi_dtype: str = "float32",
    steps_per_execution: int = 1,
    event_jets: int = 0,
) -> PackedPFN:
    """A compiled packed PFN (Adam, categorical cross-entropy, as EnergyFlow's PFN);
    ``jit_compile``: XLA or not (``"auto"``: see :func:`resolve_jit`); ``steps_per_execution``
    training steps per call of the compiled step function (fewer round trips to Python);
    ``event_jets`` > 0: an :class:`EventPFN` over that many jets per event (``n_features`` then
    counts its jet slot column)."""
    jit = resolve_jit(jit_compile)
    if event_jets:
        model: PackedPFN = EventPFN(phi_sizes, f_sizes, seed=seed, phi_dtype=phi_dtype, event_jets=event_jets)
    else:
        model = PackedPFN(phi_sizes, f_sizes, seed=seed, phi_dtype=phi_dtype)
    model.jit_compile = jit  # before the first call, which picks the segment-sum kernel
    x = example_batch(n_features)
    y_pred = model(x)  # create the weights
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
        steps_per_execution=steps_per_execution,
    )  # fmt: skip
    # Create the optimiser's, loss's and metrics' variables now: made while Keras traces the
    # first training step (its default without a distribution strategy), they would make
    # TensorFlow trace that step a second time (~0.6 s per training).
    model.optimizer.build(model.trainable_variables)
    y = np.full((1, model.n_classes), 1.0 / model.n_classes, dtype="float32")
    model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.reset_metrics()
    return model


def example_batch(n_features: int) -> dict[str, np.ndarray]:
    """A one-jet, one-particle batch (builds the weights)."""
    return {
        "particles": np.ones((1, 1, n_features), dtype="float32"),
        "segments": np.zeros((1, 1), dtype="int32"),
        "jets": np.ones((1, 1), dtype="float32"),
    }


def dense_weights(model: PackedPFN) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """(kernel, bias) of the Phi layers and of the F layers plus the output layer, as numpy."""
    phi = [(np.asarray(layer.kernel), np.asarray(layer.bias)) for layer in model.phi_layers]
    f = [(np.asarray(layer.kernel), np.asarray(layer.bias)) for layer in [*model.f_layers, model.out_layer]]
    return phi, f
