"""EnergyFlow's own PFN (``energyflow.archs.PFN``, tf_keras) for cross-checks and benchmarks.

It computes Phi on every padded slot, like the reference analysis. Seeding goes through
tf_keras' global random state, so EnergyFlow trainings run one at a time.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from models.settings import TrainSettings, enable_determinism, one_hot


def train_energyflow_pfn(
    x_train: np.ndarray, y_train: np.ndarray, settings: TrainSettings, seed: int,
    x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, callbacks: list | None = None,
) -> object:  # fmt: skip
    """Train ``energyflow.archs.PFN`` on padded jets (n, max_len, n_features), labels 0/1;
    ``callbacks``: tf_keras callbacks passed to the fit (e.g. a benchmark's epoch timer)."""
    import tf_keras
    from energyflow.archs import PFN

    enable_determinism()
    tf_keras.utils.set_random_seed(int(seed) % 2**31)
    with contextlib.redirect_stdout(io.StringIO()):  # EnergyFlow prints the model summary
        pfn = PFN(
            input_dim=x_train.shape[-1], Phi_sizes=tuple(settings.phi_sizes), F_sizes=tuple(settings.f_sizes),
            optimizer=tf_keras.optimizers.Adam(learning_rate=settings.learning_rate), summary=False,
        )  # fmt: skip
    validation = None
    if settings.validate and x_val is not None and len(x_val):
        validation = (x_val, one_hot(y_val))
    pfn.fit(
        x_train, one_hot(y_train), epochs=settings.epochs, batch_size=settings.batch_size,
        validation_data=validation, verbose=0, callbacks=callbacks or [],
    )  # fmt: skip
    return pfn


def predict_energyflow_pfn(pfn: object, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (n, 2)."""
    return np.asarray(pfn.predict(x, batch_size=batch_size, verbose=0))
