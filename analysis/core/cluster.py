"""One Dask cluster for the heavy stages: generation files, coffea processing, trainings.

:func:`open_cluster` gives ``None`` unless the Dask executor or a scheduler is asked for (then
every stage runs locally, as without this module); otherwise a :class:`Cluster` over either a
``dask.distributed`` LocalCluster of ``workers`` single-threaded worker processes, each under
a nanny that restarts it when it is killed, or the running scheduler at ``scheduler``.

:meth:`Cluster.map` runs a function over items on the workers and yields each result as it
finishes. The tasks are pure functions of their item (the seeds come from the item), so a task
that Dask reruns after its worker died gives the same result as the first try; results are
small records, and what a task writes to disk it writes atomically (complete or absent). A
lost scheduler ends the run with an InputError naming its address (exit 1); ``--resume``
finishes the run from what was written.

GPUs are worker resources: on a cluster whose workers advertise ``GPU`` (``dask worker
--resources GPU=1``), a training asks for one GPU, so each GPU runs one training at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from analysis.core.errors import ConfigError, InputError

T = TypeVar("T")
MAX_WORKERS = 1024


@dataclass
class Cluster:
    """A connected Dask client and where it points."""

    client: Any  # distributed.Client
    scheduler: str  # the scheduler's address
    local: bool  # a LocalCluster this run started

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def gpus(self) -> int:
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))

    def describe(self) -> dict[str, Any]:
        """Where a stage ran, for run.json."""
        return {"executor": "dask", "workers": self.workers, "scheduler": self.scheduler,
                "local_cluster": self.local, "gpus": self.gpus}  # fmt: skip

    def training_resources(self) -> dict[str, int] | None:
        """``{"GPU": 1}`` on a cluster that advertises GPUs, else no constraint."""
        return {"GPU": 1} if self.gpus else None

    def map(
        self, fn: Callable[..., Any], items: Iterable[T], *, shared: Any = None, resources: dict[str, int] | None = None,
    ) -> Iterator[tuple[T, Any]]:  # fmt: skip
        """Yield ``(item, fn(item))`` (or ``fn(shared, item)``) as the tasks finish.

        ``shared`` is sent to every worker once (scattered, replicated), not once per task. A
        task that fails raises here; the remaining tasks are cancelled when the caller stops."""
        from distributed import as_completed

        items = list(items)
        if not items:
            return
        with self._connection():
            args = [] if shared is None else [self.client.scatter(shared, broadcast=True, hash=False)]
            futures = {self.client.submit(fn, *args, item, pure=False, resources=resources): item for item in items}
        try:
            with self._connection():
                for future in as_completed(futures):
                    result = future.result()
                    yield futures[future], result
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[None]:
        """A lost scheduler is one error line naming it (exit 1), whatever Dask raised (on a lost
        connection the client cancels every future)."""
        from concurrent.futures import CancelledError

        from distributed.comm.core import CommClosedError

        try:
            yield
        except (CommClosedError, CancelledError, OSError, TimeoutError) as exc:
            if self.client.status == "running" and not isinstance(exc, (CommClosedError, CancelledError)):
                raise
            raise InputError(
                f"Dask scheduler {self.scheduler}: connection lost ({type(exc).__name__}); "
                "rerun with --resume to finish the run"
            ) from None


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def open_cluster(
    executor: str | None, workers: int | None, scheduler: str | None, *, processes: bool = True
) -> Iterator[Cluster | None]:
    """The run's cluster: None unless ``executor == "dask"`` or a ``scheduler`` is given.
    ``processes=False`` runs a LocalCluster's workers as threads of this process."""
    if executor != "dask" and not scheduler:
        yield None
        return
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: must be between 1 and {MAX_WORKERS}")
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=20)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            yield Cluster(client, scheduler, local=False)
        return
    n = workers or default_workers()
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield Cluster(client, cluster.scheduler_address, local=True)


def call(work: Callable[[T, Any], Any], task: T) -> Any:
    """``work(task, None)`` on a worker: a training task of ``models``' run loop (no device split)."""
    return work(task, None)
