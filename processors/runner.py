"""The executor / ``coffea.processor.Runner`` factory: iterative, futures or Dask.

``dask`` connects to ``scheduler`` (``tcp://host:port``; its workers must be able to import
this repository's ``processors`` package) or starts a ``dask.distributed`` LocalCluster with
``workers`` single-threaded workers, shut down when the ``with`` block ends. Results do not
depend on the executor: the processor's output is keyed per file and merged in fileset order.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator

from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from analysis.core.errors import InputError

EXECUTORS = ("iterative", "futures", "dask")

# coffea's schema warns, once per file, about collections that real NanoAOD files reference but
# do not store and about photon branches it overrides; neither concerns the dijet selection.
warnings.filterwarnings("ignore", message="Missing cross-reference index")
warnings.filterwarnings("ignore", message="Branch .* already exists but its values will be replaced")


class DijetSchema(PFNanoAODSchema):
    """coffea's PFNano schema (NanoAOD plus ``Jet.constituents``), tolerant of files that lack
    the ``run``/``luminosityBlock`` event-id branches (slimmed NanoAOD): a warning, not an error."""

    error_missing_event_ids = False


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def make_runner(
    executor: str = "futures",
    *,
    workers: int | None = None,
    chunksize: int = 100_000,
    scheduler: str | None = None,
    quiet: bool = False,
    local_processes: bool = True,
) -> Iterator[processor.Runner]:
    """Yield a Runner with the chosen executor; Dask clients/clusters are closed afterwards.

    The schema is coffea's PFNano schema (:class:`DijetSchema`); it reads plain NanoAOD too.
    ``local_processes=False`` runs a LocalCluster's workers as threads.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    workers = workers or default_workers()
    status = not quiet
    with contextlib.ExitStack() as stack:
        if quiet:  # coffea 2026.9 draws its rich progress bars even with status=False
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        if executor == "iterative":
            ex = processor.IterativeExecutor(status=status)
        elif executor == "futures":
            ex = processor.FuturesExecutor(workers=workers, status=status)
        else:
            client = stack.enter_context(dask_client(scheduler, workers, local_processes))
            ex = processor.DaskExecutor(client=client, status=status)
        yield processor.Runner(
            executor=ex, chunksize=chunksize, schema=DijetSchema, skipbadfiles=False, savemetrics=False
        )


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int, local_processes: bool) -> Iterator[object]:
    """A Dask client: connected to ``scheduler`` (InputError when unreachable) or to a LocalCluster of
    ``workers`` single-threaded workers (processes unless ``local_processes`` is False); closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=20)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=local_processes, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def uproot_options(paths: list[str]) -> dict[str, object]:
    """Options for ``uproot.open``: memory-mapped reads when every file is local (faster than
    uproot's default fsspec source, which runs an event loop per request)."""
    import uproot

    if all("://" not in p or p.startswith("file://") for p in paths):
        return {"handler": uproot.source.file.MemmapSource}
    return {}
