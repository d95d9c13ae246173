"""Seeded training of one PFN classifier and its held-out AUC.

Every random choice of a training (weight initialisation, the per-epoch shuffle) comes from
the training's own seed, never from global random state, and TensorFlow runs with op
determinism: the same seed gives the same AUC bit for bit, in any process, thread or order.

Many small trainings (the sensitivity protocol runs about a hundred) would spend most of
their time building models and tracing Keras' train and predict functions anew. With
``reuse`` (:func:`train_and_score` without a distribution strategy) a thread keeps one compiled
model per architecture and step count and resets it for every training: the weights to the
seed's initial values, the optimiser's state to zero. The same seed gives the same bits as a
fresh model (tested); only the tracing is saved (~0.7 s of a ~2 s training on 2 cores).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from models.batches import PackedBatches, PackedJets, batch_order, pack_batches, round_up, to_padded
from models.pfn import (
    PackedPFN,
    build_pfn,
    example_batch,
    resolve_jit,
    resolve_phi_dtype,
)
from models.settings import TrainSettings, enable_determinism, one_hot


class JetBatches(keras.utils.PyDataset):
    """Packed batches of labelled jets for ``epochs`` epochs, reshuffled every epoch from
    ``seed`` (None: one epoch in fixed order).

    Item i is batch i % n of epoch i // n (n batches per epoch): a pure function of i, so
    Keras' prefetching cannot mix epochs (fit with ``steps_per_epoch=batches_per_epoch``).
    With ``fixed_shapes`` (for XLA, which compiles every new shape) the constituent slots of a
    batch are the largest group total over all epochs of batches of its length, so a training
    sees at most two shapes (full batches and the one partial batch); without, every batch
    has exactly the slots its jets need. The partial batch comes first, so that Keras' input
    signature leaves both dimensions open.

    :meth:`dataset` (all epochs) and :meth:`packed` (the first epoch, packed once) serve the
    same items as a ``tf.data.Dataset``, a whole epoch packed at a time: far less overhead per
    batch than Keras' adapter for a PyDataset.
    """

    def __init__(
        self, jets: PackedJets, labels: np.ndarray | None, batch_size: int,
        seed: int | None = None, n_groups: int = 1, epochs: int = 1, fixed_shapes: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(workers=1, use_multiprocessing=False)
        self.jets, self.labels, self.n_groups = jets, labels, n_groups
        self.offsets = jets.offsets
        self.epochs = [self._order(batch_size, seed, e) for e in range(epochs if seed is not None else 1)]
        self.batches_per_epoch = len(self.epochs[0])
        self.caps: dict[int, int] = {}
        for batches in self.epochs if fixed_shapes else []:
            for batch in batches:
                size = len(batch) // n_groups
                totals = jets.counts[batch[: size * n_groups]].reshape(n_groups, size).sum(axis=1)
                self.caps[len(batch)] = max(self.caps.get(len(batch), 0), round_up(int(totals.max())))

    def _order(self, batch_size: int, seed: int | None, epoch: int) -> list[np.ndarray]:
        rng = None if seed is None else np.random.default_rng([seed, epoch])
        batches = batch_order(len(self.jets), batch_size, self.n_groups, rng)
        if len(batches) > 1 and len(batches[-1]) != len(batches[0]):
            batches = [batches[-1], *batches[:-1]]  # the partial batch first
        return batches

    def __len__(self) -> int:
        return self.batches_per_epoch * len(self.epochs)

    def release(self) -> None:
        """Drop the jets, the labels and the epoch being served once a training is over:
        TensorFlow's registry of ``numpy_function`` callbacks outlives the training and would
        keep them through :meth:`dataset`'s closure (measured: memory grew by about the training
        data with every training, 23 GB after 120 CWoLa trainings at 10x the default sample)."""
        self.jets = self.labels = self.offsets = None
        served = getattr(self, "_served", None)
        if served is not None:
            served[0] = (None, [])

    def _pack(self, batches: list[np.ndarray]) -> PackedBatches:
        if self.caps:
            return pack_batches(self.jets, self.offsets, batches, self.n_groups, [self.caps[len(b)] for b in batches])
        return pack_batches(self.jets, self.offsets, batches, self.n_groups, multiple=1)

    def _labels(self, batches: list[np.ndarray]) -> np.ndarray:
        """Labels of the jets the packed ``batches`` hold, in order."""
        return self.labels[np.concatenate([b[: len(b) // self.n_groups * self.n_groups] for b in batches])]

    def __getitem__(self, index: int) -> tuple:
        batch = self.epochs[index // self.batches_per_epoch][index % self.batches_per_epoch]
        x = self._pack([batch]).batch(0, self.n_groups)
        return (x,) if self.labels is None else (x, self._labels([batch]))

    def used_jets(self) -> np.ndarray:
        """Indices of the jets of the first epoch's batches, matching ``predict`` output rows."""
        return np.concatenate([b[: len(b) // self.n_groups * self.n_groups] for b in self.epochs[0]])

    def _epoch_items(self, epoch: int) -> object:
        """The items of one epoch, packed in one go."""
        batches = self.epochs[epoch]
        packed = self._pack(batches)
        labels = self._labels(batches) if self.labels is not None else None
        for b in range(len(batches)):
            x = packed.batch(b, self.n_groups)
            yield (x,) if labels is None else (x, labels[packed.jets[b] : packed.jets[b + 1]])

    def _signature(self, tf: object) -> tuple:
        n_features = self.jets.features.shape[1]
        x = {
            "particles": tf.TensorSpec((self.n_groups, None, n_features), tf.float32),
            "segments": tf.TensorSpec((self.n_groups, None), tf.int32),
            "jets": tf.TensorSpec((self.n_groups, None), tf.float32),
        }
        return (x,) if self.labels is None else (x, tf.TensorSpec((None, self.labels.shape[1]), tf.float32))

    def dataset(self) -> object:
        """All items as a ``tf.data.Dataset``, each epoch packed in one go when it is reached
        (in tf.data's background thread); self without TensorFlow."""
        try:
            import tensorflow as tf
        except ImportError:
            return self
        signature = self._signature(tf)
        flat_signature = tf.nest.flatten(signature)
        current: list = [(None, [])]  # (epoch, its items): the epoch being served
        self._served = current

        def item(index: np.int64) -> list[np.ndarray]:
            epoch, b = divmod(int(index), self.batches_per_epoch)
            cached = current[0]
            if cached[0] != epoch:
                cached = current[0] = (epoch, list(self._epoch_items(epoch)))
            return tf.nest.flatten(cached[1][b])

        def to_item(index: object) -> tuple:
            flat = tf.numpy_function(item, [index], [s.dtype for s in flat_signature], stateful=True)
            flat = [tf.ensure_shape(t, s.shape) for t, s in zip(flat, flat_signature, strict=True)]
            return tf.nest.pack_sequence_as(signature, flat)

        return tf.data.Dataset.range(len(self)).map(to_item).prefetch(2)

    def packed(self) -> object:
        """The first epoch's items, packed once, as a ``tf.data.Dataset`` of constant tensors
        (for data iterated every epoch in the same order, such as the validation jets: Keras
        starts a new iterator every epoch, which costs ~1 ms here, and ~30 ms for a dataset
        built with a Python generator or ``flat_map``); self without TensorFlow."""
        try:
            import tensorflow as tf
        except ImportError:
            return self
        dataset = None
        for item in self._epoch_items(0):
            one = tf.data.Dataset.from_tensors(item)
            dataset = one if dataset is None else dataset.concatenate(one)
        return dataset


def steps_per_execution(batches_per_epoch: int, most: int = 8) -> int:
    """Training steps per call of Keras' compiled step (~7 % faster epochs at 8 than at 1 on
    a 2-core CPU): the largest divisor of the epoch's batches up to ``most``, since Keras runs
    whole executions and would otherwise read into the next epoch's batches."""
    return max(k for k in range(1, most + 1) if batches_per_epoch % k == 0)


_MODELS = threading.local()  # per thread: architecture and step count -> a compiled PackedPFN


def clear_model_cache() -> None:
    """Forget this thread's reusable models."""
    _MODELS.__dict__.clear()


def reset_pfn(model: PackedPFN, seed: int) -> None:
    """Give ``model`` the initial weights of seed ``seed`` (as :func:`build_pfn` would) and a
    fresh optimiser state (zero moments and step count; the learning rate kept)."""
    fresh = type(model)(**model.architecture(), seed=seed)
    fresh(example_batch(model.n_inputs))  # create the (seeded) weights
    model.set_weights(fresh.get_weights())
    for variable in model.optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))


def _model(n_features: int, settings: TrainSettings, seed: int, jit: bool, steps: int, reuse: bool) -> PackedPFN:
    """A compiled PFN with the seed's initial weights: this thread's cached one, reset, with ``reuse``."""
    phi_dtype = resolve_phi_dtype(settings.phi_dtype)
    key = (keras.backend.backend(), n_features, tuple(settings.phi_sizes), tuple(settings.f_sizes),
           float(settings.learning_rate), jit, phi_dtype, steps, int(settings.event_jets))  # fmt: skip
    cache = _MODELS.__dict__.setdefault("models", {})
    if reuse and key in cache:
        reset_pfn(cache[key], seed)
        return cache[key]
    model = build_pfn(
        n_features, settings.phi_sizes, settings.f_sizes, seed, settings.learning_rate, jit_compile=jit,
        phi_dtype=phi_dtype, steps_per_execution=steps, event_jets=settings.event_jets,
    )  # fmt: skip
    if reuse:
        cache[key] = model
    return model


def train_pfn(
    train: PackedJets, y_train: np.ndarray, settings: TrainSettings, seed: int,
    val: PackedJets | None = None, y_val: np.ndarray | None = None,
    strategy: object | None = None, n_groups: int = 1, callbacks: Sequence | None = None, reuse: bool = False,
) -> PackedPFN:  # fmt: skip
    """Train our packed PFN (labels 0/1; one per unit of ``train``: jets, or events with
    ``settings.event_jets``, :func:`models.pfn.pack_events`); ``strategy`` (tf.distribute) splits
    each batch into ``n_groups`` replica groups for data-parallel training; ``callbacks`` go to Keras' fit.
    ``reuse`` (not with a strategy): train this thread's cached model of the same architecture,
    reset to the seed's initial state (the result is only valid until the thread's next training)."""
    enable_determinism()
    jit = resolve_jit(settings.jit_compile)  # XLA compiles every shape: then fixed batch shapes
    data = JetBatches(
        train, one_hot(y_train), settings.batch_size, seed=seed, n_groups=n_groups, epochs=settings.epochs,
        fixed_shapes=jit,
    )  # fmt: skip
    if strategy is None:
        model = _model(train.features.shape[1], settings, seed, jit, steps_per_execution(data.batches_per_epoch), reuse)
    else:
        with strategy.scope():
            # one step per call: tf.distribute's iterators fail in Keras' multi-step loop
            model = build_pfn(
                train.features.shape[1], settings.phi_sizes, settings.f_sizes, seed, settings.learning_rate,
                jit_compile=jit, phi_dtype=resolve_phi_dtype(settings.phi_dtype), steps_per_execution=1,
                event_jets=settings.event_jets,
            )  # fmt: skip
    validation = None
    if settings.validate and val is not None and len(val) >= n_groups:
        validation = JetBatches(
            val, one_hot(y_val), max(settings.batch_size, 1000), n_groups=n_groups, fixed_shapes=jit
        ).packed()  # fmt: skip
    try:
        model.fit(
            data.dataset(), epochs=settings.epochs, steps_per_epoch=data.batches_per_epoch,
            validation_data=validation, shuffle=False, verbose=0, callbacks=list(callbacks or []),
        )  # fmt: skip
    finally:
        data.release()
    return model


def epoch_losses(model: object) -> dict[str, list[float]]:
    """The per-epoch ``loss`` (and ``val_loss`` when validated) of a model's last fit (Keras' History)."""
    history = getattr(getattr(model, "history", None), "history", None) or {}
    return {k: [float(v) for v in history[k]] for k in ("loss", "val_loss") if k in history}


def predict_pfn(model: PackedPFN, jets: PackedJets, batch_size: int = 1000, n_groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (n, 2) and the indices of the jets they belong to."""
    data = JetBatches(jets, None, batch_size, n_groups=n_groups, fixed_shapes=model.jit_compile)
    used = data.used_jets()
    try:
        return np.asarray(model.predict(data.dataset(), verbose=0)), used
    finally:
        data.release()


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn)."""
    return float(roc_auc_score(labels, scores))


def train_and_score(
    train: PackedJets, y_train: np.ndarray, val: PackedJets, y_val: np.ndarray,
    test: PackedJets, y_test: np.ndarray, settings: TrainSettings, seed: int,
    strategy: object | None = None, n_groups: int = 1, losses: dict[str, list[float]] | None = None,
) -> float:  # fmt: skip
    """Train one classifier (ours or EnergyFlow's) and return its AUC on the test jets; ``losses``,
    when given, receives the per-epoch training and validation losses (:func:`epoch_losses`)."""
    if settings.backend == "energyflow":
        from models.energyflow_pfn import predict_energyflow_pfn, train_energyflow_pfn

        max_len = int(max(train.counts.max(), val.counts.max() if len(val) else 1, test.counts.max()))
        model = train_energyflow_pfn(
            to_padded(train, max_len), y_train, settings, seed,
            to_padded(val, max_len) if len(val) else None, y_val,
        )  # fmt: skip
        if losses is not None:
            losses.update(epoch_losses(model.model))
        return auc(y_test, predict_energyflow_pfn(model, to_padded(test, max_len))[:, 1])
    if settings.backend != "ours":
        raise ValueError(f"unknown PFN backend {settings.backend!r} (ours|energyflow)")
    model = train_pfn(train, y_train, settings, seed, val, y_val, strategy, n_groups, reuse=strategy is None)
    if losses is not None:
        losses.update(epoch_losses(model))
    probs, used = predict_pfn(model, test, n_groups=n_groups)
    return auc(y_test[used], probs[:, 1])


@dataclass(frozen=True)
class Split:
    """Jet indices of the train / validation / test parts of one bin pair."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_sizes(n_jets: int, n_train: int, n_test: int, min_val_fraction: float = 0.1) -> tuple[int, int]:
    """Train and test sizes for a pair of ``n_jets`` jets: as requested, scaled down together
    (keeping their ratio) when they would leave less than ``min_val_fraction`` for validation."""
    room = int(np.floor((1.0 - min_val_fraction) * n_jets))
    if n_train + n_test > room:
        scale = room / (n_train + n_test)
        n_test = max(1, int(np.floor(n_test * scale)))
        n_train = room - n_test
    return n_train, n_test


def split_events(events: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator) -> Split:
    """A random train / validation / test split of jets that never separates an event's jets.

    ``events`` holds the event of every jet (copies of an event, as in a Poisson
    realisation, share its id, so they stay together too). The events, in random order, fill
    the training part until it holds ``n_train`` jets, then the test part until ``n_test``
    (an event that straddles a boundary goes whole to the part it starts in); validation takes
    the rest. Within a part the jets follow the events' random order.
    """
    events = np.asarray(events)
    _, group, sizes = np.unique(events, return_inverse=True, return_counts=True)
    order = rng.permutation(len(sizes))
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[order] = np.arange(len(sizes))
    start = np.cumsum(sizes[order]) - sizes[order]  # jets before each event, in the random order
    part = np.where(start < n_train, 0, np.where(start < n_train + n_test, 1, 2))[rank]  # per event
    jets = np.argsort(rank[group], kind="stable")  # jets in their events' random order
    jet_part = part[group[jets]]
    return Split(jets[jet_part == 0], jets[jet_part == 2], jets[jet_part == 1])
