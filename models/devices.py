"""Devices for PFN trainings: spread independent trainings over accelerators, or split one.

- :func:`training_devices` lists the accelerators (GPUs) Keras' backend sees, else the CPU
  devices (one, or several logical ones made by :func:`split_cpu`).
- :func:`run_on_devices` runs independent tasks with one thread per device, each task inside
  that device's scope, so at most one training runs per device at a time.
- :func:`data_parallel` is a data-parallel scope for a single large training
  (``tf.distribute.MirroredStrategy`` on TensorFlow, ``keras.distribution.DataParallel`` on JAX).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import keras

T = TypeVar("T")


def split_cpu(n: int) -> None:
    """Expose the CPU as ``n`` logical devices, before any computation (TensorFlow's logical
    devices; on JAX, XLA's host platform split into ``n`` devices)."""
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_num_cpu_devices", n)
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def training_devices() -> list[str]:
    """Device names for trainings: the GPUs if any, else the (logical) CPU devices."""
    if keras.backend.backend() == "jax":
        import jax

        return [str(d.id) for d in jax.devices()]
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


@contextlib.contextmanager
def on_device(name: str) -> Iterator[None]:
    """Place the computations of the block on device ``name``."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.default_device(next(d for d in jax.devices() if str(d.id) == name)):
            yield
        return
    import tensorflow as tf

    with tf.device(name):
        yield


def run_on_devices(
    tasks: Iterable[T], work: Callable[[T], Any], devices: list[str]
) -> Iterator[tuple[T, Any, str]]:
    """Run ``work(task)`` for every task, one worker thread per device; yield (task, result,
    device) as they finish. The first exception stops the workers and is re-raised."""
    todo: queue.Queue = queue.Queue()
    for task in tasks:
        todo.put(task)
    done: queue.Queue = queue.Queue()
    stop = threading.Event()

    def worker(device: str) -> None:
        while not stop.is_set():
            try:
                task = todo.get_nowait()
            except queue.Empty:
                break
            try:
                with on_device(device):
                    result = work(task)
            except BaseException as exc:  # handed to the caller's thread
                stop.set()
                done.put(("error", task, exc, device))
                break
            done.put(("ok", task, result, device))
        done.put(("exit", None, None, device))

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            kind, task, value, device = done.get()
            if kind == "exit":
                running -= 1
            elif kind == "error":
                raise value
            else:
                yield task, value, device
    finally:
        stop.set()
        for t in threads:
            t.join()


def data_parallel(devices: list[str] | None = None) -> tuple[Any, int]:
    """(strategy or None, number of replicas) for one data-parallel training.

    On TensorFlow a MirroredStrategy over ``devices`` (its scope builds the model); on JAX the
    global ``keras.distribution`` is set to DataParallel and None is returned as strategy.
    """
    devices = devices or training_devices()
    if keras.backend.backend() == "jax":
        import jax

        chosen = [d for d in jax.devices() if str(d.id) in devices]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
        return None, len(chosen)
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return strategy, strategy.num_replicas_in_sync
