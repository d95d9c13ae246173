"""Six autoencoders for p-value maps (Keras 3, ``keras.layers``/``keras.ops`` only).

Following the reference architectures in spirit:

* ``dense``: flatten, Dense 512-128-64-code, mirrored 64-128-512, a sigmoid output map;
* ``sparse_l1`` / ``sparse_kl``: the same with an L1 activity penalty on the code, or a
  KL-divergence sparsity penalty (sigmoid code units whose mean activation is pushed to ``rho``);
* ``conv``: Conv2D ``filters`` (3x3, ReLU; 32-64-128 by default here, the training default is
  16-32-64, see :class:`models.ae_training.AESettings`), each followed by 2x2 max-pooling, a 1x1
  code convolution, then the mirrored Conv2D stack with 2x2 up-sampling and a sigmoid 1-channel
  output; maps whose sides are not multiples of 2^(layers) are zero-padded on input and cropped on output;
* ``conv_l1`` / ``conv_kl``: the conv model with the L1 / KL penalty on its code.

Inputs are maps (scales x mass blocks) scaled to [0, 1]. The sigmoid output's bias starts at the
logit of ``output_mean`` (the training maps' mean), so training does not begin with a large
jump of every output from 0.5. The KL penalty is a registered, serializable Keras regulariser,
so saved models reload with ``safe_mode=True``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

MODEL_NAMES = ("dense", "sparse_l1", "sparse_kl", "conv", "conv_l1", "conv_kl")


@keras.saving.register_keras_serializable(package="dijetscan")
class KLSparsity(keras.regularizers.Regularizer):
    """``beta * sum_j KL(rho || rho_hat_j)``, rho_hat_j the mean activation of unit j over the batch
    (and positions): a sparse code uses each unit rarely. Activations must lie in (0, 1)."""

    def __init__(self, rho: float = 0.05, beta: float = 1.0) -> None:
        self.rho = float(rho)
        self.beta = float(beta)

    def __call__(self, x):
        rho_hat = ops.mean(ops.reshape(x, (-1, ops.shape(x)[-1])), axis=0)
        rho_hat = ops.clip(rho_hat, 1e-6, 1.0 - 1e-6)
        rho = self.rho
        kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
        return self.beta * ops.sum(kl)

    def get_config(self) -> dict[str, float]:
        return {"rho": self.rho, "beta": self.beta}


def canonical_name(name: str) -> str:
    """``conv_kl`` or ``conv_kl_ae`` -> ``conv_kl`` (ValueError for unknown names)."""
    base = name.removesuffix("_ae")
    if base not in MODEL_NAMES:
        raise ValueError(f"unknown autoencoder {name!r} (known: {', '.join(MODEL_NAMES)})")
    return base


def _code_options(kind: str, l1: float, rho: float, beta: float) -> dict:
    """Activation and activity regulariser of the code layer for a sparsity kind."""
    if kind == "l1":
        return {"activation": "relu", "activity_regularizer": keras.regularizers.L1(l1)}
    if kind == "kl":
        return {"activation": "sigmoid", "activity_regularizer": KLSparsity(rho, beta)}
    return {"activation": "relu"}


def _output(bias: float) -> dict:
    """Sigmoid output whose bias starts at ``bias`` (logit of the data mean: no initial jump)."""
    return {"activation": "sigmoid", "bias_initializer": keras.initializers.Constant(bias)}


def kernel_initializers(seed: int | None) -> Callable[[], Any]:
    """Kernel initializers (Glorot uniform, Keras' default), one per layer in build order, seeded
    from a private stream of ``seed``: the seeds Keras draws from Python's global ``random`` just
    after ``keras.utils.set_random_seed(seed)``, without reading that shared state, which another
    thread (a Dask worker's, for one) may draw from during the build."""
    if seed is None:
        return lambda: "glorot_uniform"
    stream = random.Random(int(seed))
    return lambda: keras.initializers.GlorotUniform(seed=stream.randint(1, int(1e9)))


def _dense(inputs, shape: tuple[int, int], code_size: int, code: dict, bias: float, kernel: Callable[[], Any]):
    x = layers.Flatten()(inputs)
    for units in (512, 128, 64):
        x = layers.Dense(units, activation="relu", kernel_initializer=kernel())(x)
    x = layers.Dense(code_size, name="code", kernel_initializer=kernel(), **code)(x)
    for units in (64, 128, 512):
        x = layers.Dense(units, activation="relu", kernel_initializer=kernel())(x)
    x = layers.Dense(shape[0] * shape[1], kernel_initializer=kernel(), **_output(bias))(x)
    return layers.Reshape(shape)(x)


def _conv(inputs, shape: tuple[int, int], code_size: int, code: dict, bias: float, filters: tuple[int, ...],
          kernel: Callable[[], Any]):  # fmt: skip
    pad = [(-side) % 2 ** len(filters) for side in shape]  # one halving per pooling
    x = layers.Reshape((*shape, 1))(inputs)
    if any(pad):
        x = layers.ZeroPadding2D(((0, pad[0]), (0, pad[1])))(x)
    for n in filters:
        x = layers.Conv2D(n, 3, padding="same", activation="relu", kernel_initializer=kernel())(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(max(code_size // 2, 1), 1, name="code", kernel_initializer=kernel(), **code)(x)
    for n in filters[::-1]:
        x = layers.Conv2D(n, 3, padding="same", activation="relu", kernel_initializer=kernel())(x)
        x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(1, 3, padding="same", kernel_initializer=kernel(), **_output(bias))(x)
    if any(pad):
        x = layers.Cropping2D(((0, pad[0]), (0, pad[1])))(x)
    return layers.Reshape(shape)(x)


def build_autoencoder(
    name: str,
    shape: tuple[int, int] = (48, 64),
    *,
    code_size: int = 32,
    l1: float = 1e-5,
    rho: float = 0.05,
    beta: float = 1e-3,
    filters: tuple[int, ...] = (32, 64, 128),
    output_mean: float = 0.5,
    seed: int | None = None,
) -> keras.Model:
    """An uncompiled autoencoder ``name`` (one of MODEL_NAMES, optionally with ``_ae``) for maps of ``shape``;
    ``filters``: the conv encoder's filters (ignored by the dense models); ``seed``: the weights'
    initial values (:func:`kernel_initializers`; None: from Python's global random state)."""
    base = canonical_name(name)
    shape = (int(shape[0]), int(shape[1]))
    kind = base.split("_")[1] if "_" in base else ""
    code = _code_options(kind, l1, rho, beta)
    inputs = keras.Input(shape=shape, name="map")
    mean = min(max(float(output_mean), 1e-3), 1.0 - 1e-3)
    bias = math.log(mean / (1.0 - mean))
    if base.startswith("conv"):
        outputs = _conv(inputs, shape, code_size, code, bias, tuple(int(n) for n in filters), kernel_initializers(seed))
    else:
        outputs = _dense(inputs, shape, code_size, code, bias, kernel_initializers(seed))
    return keras.Model(inputs, outputs, name=f"{base}_ae")
