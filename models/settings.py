"""What a PFN training is (architecture and optimisation) and the switches every backend shares:
imported by ``models.training`` (our packed PFN) and ``models.energyflow_pfn`` (EnergyFlow's),
and by the stages that configure trainings (no deep-learning framework is imported here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_PHI = (100, 100, 128)  # EnergyFlow's PFN defaults (the reference workflow's)
DEFAULT_F = (100, 100, 100)

_DETERMINISM = False


def enable_determinism() -> None:
    """Deterministic TensorFlow kernels (once per process; harmless on other backends)."""
    global _DETERMINISM
    if _DETERMINISM:
        return
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.get_logger().setLevel("ERROR")  # every new model retraces: not a problem here
    _DETERMINISM = True


@dataclass(frozen=True)
class TrainSettings:
    """Architecture and optimisation of one training (EnergyFlow's PFN defaults)."""

    phi_sizes: Sequence[int] = DEFAULT_PHI
    f_sizes: Sequence[int] = DEFAULT_F
    epochs: int = 10
    batch_size: int = 500
    learning_rate: float = 1e-3
    backend: str = "ours"  # "ours" (packed Keras 3 PFN) or "energyflow" (energyflow.archs.PFN)
    validate: bool = True  # evaluate the validation split after every epoch, as the reference
    phi_dtype: str = "float32"  # "mixed_bfloat16", or "auto" (models.pfn.resolve_phi_dtype)
    jit_compile: bool | str = "auto"  # XLA: True, False or "auto" (models.pfn.resolve_jit)
    event_jets: int = 0  # 0: jet classifier; k: event classifier, k jets (models.pfn.EventPFN, pack_events)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (sizes as lists), as checkpoint keys and results store it."""
        return {**asdict(self), "phi_sizes": list(self.phi_sizes), "f_sizes": list(self.f_sizes)}


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(2, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
