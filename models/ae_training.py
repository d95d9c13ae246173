"""Fit, save, load and apply the map autoencoders (arrays in, arrays out).

Training minimises the mean squared reconstruction error with Adam, logs every epoch to a CSV
file (keras CSVLogger), stops early on the validation loss (restoring the best weights), and is
seeded with ``keras.utils.set_random_seed`` plus deterministic TensorFlow kernels. The sigmoid
output starts at the training maps' mean value (its bias is the logit of the mean): started at
0.5 against maps of mean ~0.15, the first steps' large gradients killed every ReLU of the code in
the plain dense and conv models, which then output a constant map (seen at 48x36, 1000 maps).
Models are saved as ``.keras`` (atomically) and loaded with ``safe_mode=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import models.autoencoders  # noqa: F401  (registers KLSparsity for loading)
from models.autoencoders import build_autoencoder


@dataclass(frozen=True)
class AESettings:
    """Optimisation of one autoencoder training."""

    epochs: int = 20
    batch_size: int = 64
    patience: int = 3
    learning_rate: float = 1e-3
    code_size: int = 32
    conv_filters: tuple[int, ...] = (16, 32, 64)  # conv models' encoder (decoder mirrored)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend; deterministic TensorFlow kernels where available."""
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.get_logger().setLevel("ERROR")


def train_autoencoder(
    name: str,
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: AESettings,
    csv_log: str | Path,
    seed: int = 0,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and fit autoencoder ``name`` on maps in [0, 1]; returns the model and its history."""
    set_seed(seed)
    x_train = np.asarray(x_train, dtype=np.float32)
    x_val = np.asarray(x_val, dtype=np.float32)
    model = build_autoencoder(
        name, x_train.shape[1:], code_size=settings.code_size, filters=tuple(settings.conv_filters),
        output_mean=float(np.mean(x_train)), seed=seed,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="mse")
    Path(csv_log).parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.CSVLogger(str(csv_log)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience, restore_best_weights=True),
    ]
    history = model.fit(
        x_train, x_train, validation_data=(x_val, x_val), epochs=settings.epochs,
        batch_size=settings.batch_size, shuffle=True, callbacks=callbacks, verbose=verbose,
    )  # fmt: skip
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save as ``.keras`` under a temporary name beside ``path``, then rename into place."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: the model file must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_model(path: str | Path) -> keras.Model:
    """Load a saved autoencoder in safe mode (no arbitrary code is deserialised)."""
    return keras.models.load_model(str(path), safe_mode=True, compile=False)


def reconstruct(model: keras.Model, maps: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's reconstruction of ``maps``."""
    return np.asarray(model.predict(np.asarray(maps, dtype=np.float32), batch_size=batch_size, verbose=0))


def reconstruction_mse(model: keras.Model, maps: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Per-map mean squared reconstruction error."""
    return reconstruct_with_mse(model, maps, batch_size)[1]


def reconstruct_with_mse(model: keras.Model, maps: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The reconstructions and the per-map MSE in one pass (one ``predict`` call)."""
    maps = np.asarray(maps, dtype=np.float32)
    out = reconstruct(model, maps, batch_size)
    return out, np.mean((out.astype(np.float64) - maps) ** 2, axis=tuple(range(1, maps.ndim)))
