"""The executor / ``coffea.processor.Runner`` factory: iterative, futures or Dask.

``dask`` connects to ``scheduler`` (``tcp://host:port``; its workers must be able to import
this repository's ``processors`` package) or starts a ``dask.distributed`` LocalCluster with
``workers`` single-threaded workers, shut down when the ``with`` block ends. Results do not
depend on the executor: the processor's output is keyed per file and merged in fileset order.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zlib
from collections.abc import Iterator

from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from analysis.core.cluster import default_workers, open_cluster

EXECUTORS = ("iterative", "futures", "dask")
# what opening or reading a damaged file raises (uproot, its decompressors, awkward's forms)
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, KeyError, zlib.error)

# coffea's schema warns, once per file, about collections that real NanoAOD files reference but
# do not store and about photon branches it overrides; neither concerns the dijet selection.
warnings.filterwarnings("ignore", message="Missing cross-reference index")
warnings.filterwarnings("ignore", message="Branch .* already exists but its values will be replaced")


class DijetSchema(PFNanoAODSchema):
    """coffea's PFNano schema (NanoAOD plus ``Jet.constituents``), tolerant of files that lack
    the ``run``/``luminosityBlock`` event-id branches (slimmed NanoAOD): a warning, not an error."""

    error_missing_event_ids = False


@contextlib.contextmanager
def make_runner(
    executor: str = "futures",
    *,
    workers: int | None = None,
    chunksize: int = 100_000,
    scheduler: str | None = None,
    quiet: bool = False,
    local_processes: bool = True,
    skipbadfiles: bool = False,
) -> Iterator[processor.Runner]:
    """Yield a Runner with the chosen executor; Dask clients/clusters are closed afterwards.

    The schema is coffea's PFNano schema (:class:`DijetSchema`); it reads plain NanoAOD too.
    ``local_processes=False`` runs a LocalCluster's workers as threads. ``skipbadfiles``: coffea
    skips a file (or chunk) it cannot open or read (:data:`READ_ERRORS`) instead of failing.
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
            cluster = stack.enter_context(open_cluster("dask", workers, scheduler, processes=local_processes))
            ex = processor.DaskExecutor(client=cluster.client, status=status)
        yield processor.Runner(
            executor=ex, chunksize=chunksize, schema=DijetSchema, savemetrics=False,
            skipbadfiles=READ_ERRORS if skipbadfiles else False,
        )


def uproot_options(paths: list[str]) -> dict[str, object]:
    """Options for ``uproot.open``: memory-mapped reads when every file is local (faster than
    uproot's default fsspec source, which runs an event loop per request)."""
    import uproot

    if all("://" not in p or p.startswith("file://") for p in paths):
        return {"handler": uproot.source.file.MemmapSource}
    return {}
