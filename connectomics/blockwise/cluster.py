"""Where blocks run, and running them: in this process, on a local Dask cluster, or on any scheduler.

``scheduler`` values (``SYSTEM.SCHEDULER`` / ``--scheduler``):

* ``"inprocess"``: blocks run one after another in this process (tests, debugging);
* ``"local"``: a ``distributed.LocalCluster`` of worker processes on this machine
  (one per core unless told otherwise), started and stopped with the run;
* ``"tcp://host:port"`` (or ``tls://``, ``ucx://``, ``host:port``): an existing Dask
  scheduler, e.g. one started by dask-jobqueue on SLURM or by dask-kubernetes.

:func:`run_blocks` runs one stage: every block without a done marker is computed
(retried on exceptions), its small result is stored as the marker, and failed
blocks are reported together at the end, after the others have finished.
"""
import contextlib
import logging
import os
import sys

from tqdm import tqdm

from connectomics.config.validate import INPROCESS, LOCAL, check_scheduler
from connectomics.errors import BlocksFailedError, SchedulerError

logger = logging.getLogger(__name__)

GIVE_UP_AFTER = 3  # blocks failing in a row with none done: a systematic error, stop the stage


def worker_setup(threads):
    """Limit the threads of a worker process: OpenMP / BLAS pools, and torch if it is loaded.

    Post-processing workers never import torch (it would cost each of them
    hundreds of MB); inference workers set torch's threads when they build the model.
    """
    os.environ["CONNECTOMICS_WORKER_THREADS"] = str(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


DROPPED_WORKER_ENV = ("MALLOC_TRIM_THRESHOLD_",)


@contextlib.contextmanager
def worker_environment():
    """The Dask config under which a local cluster's worker processes are spawned: distributed's
    own, without ``MALLOC_TRIM_THRESHOLD_``.

    distributed sets it (64 KiB) to hand freed memory back to the OS; but any explicit value turns
    off glibc's dynamic mmap threshold, so every large array of a block is then a fresh mmap whose
    pages fault in zeroed: measured here, 1.7x the CPU per block for a plain zarr export and 2.2x
    for an OME-Zarr one (``benchmarks/bench_formats.py``). Freed memory goes back to the OS after
    each task instead (:class:`TrimAfterTasks`), so a worker's peak stays that of one block.
    """
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    kept = {k: v for k, v in environ.items() if k not in DROPPED_WORKER_ENV}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": kept}):
        yield


class TrimAfterTasks:
    """A worker plugin: glibc ``malloc_trim(0)`` after every task, so that the memory a block freed
    goes back to the OS between blocks (the peak stays that of one block) while, within a block,
    the dynamic mmap threshold keeps reusing heap pages (see :func:`worker_environment`)."""

    name = "connectomics-malloc-trim"

    def setup(self, worker):
        import ctypes

        try:
            self.trim = ctypes.CDLL("libc.so.6").malloc_trim
        except OSError:  # not glibc: nothing to do
            self.trim = None

    def transition(self, key, start, finish, **kwargs):
        if finish in ("memory", "error") and self.trim is not None:
            self.trim(0)


def trim_after_tasks(client):
    """Register :class:`TrimAfterTasks` on every worker of ``client`` (and the ones that join)."""
    from distributed import WorkerPlugin

    plugin = type("TrimAfterTasksPlugin", (TrimAfterTasks, WorkerPlugin), {})()
    client.register_plugin(plugin)


def local_cluster(workers, threads_per_worker=1, **kwargs):
    """A ``distributed.LocalCluster`` of worker processes spawned in :func:`worker_environment`."""
    from distributed import LocalCluster

    with worker_environment():
        return LocalCluster(n_workers=int(workers), threads_per_worker=int(threads_per_worker), processes=True,
                            **kwargs)


@contextlib.contextmanager
def connect(scheduler, workers=0, threads_per_worker=1, timeout=30):
    """Yield a ``distributed.Client`` for ``scheduler``, or None for in-process runs.

    ``workers``: local cluster size (0: one per core). A local cluster is shut
    down on exit; a remote scheduler is only disconnected from.
    """
    check_scheduler(scheduler)
    if scheduler in ("", INPROCESS):
        yield None
        return
    from distributed import Client

    if scheduler == LOCAL:
        n = int(workers) or os.cpu_count() or 1
        logger.info("starting a local Dask cluster: %d workers x %d threads", n, threads_per_worker)
        with local_cluster(n, threads_per_worker, dashboard_address=":0") as cluster, \
                Client(cluster) as client:  # any free port
            client.run(worker_setup, int(threads_per_worker))
            trim_after_tasks(client)
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler} ({err}); start one with "
                             "`dask scheduler` and workers with `dask worker ADDRESS`, or set "
                             f"SYSTEM.SCHEDULER to '{LOCAL}'") from err
    with client:
        n_workers = len(client.scheduler_info().get("workers", {}))
        logger.info("connected to the Dask scheduler at %s (%d workers)", scheduler, n_workers)
        client.run(worker_setup, int(threads_per_worker))
        yield client


def run_blocks(client, fn, blocks, markers, stage, retries=2, on_done=None, wrap=None):
    """Run ``fn(index)`` for every block ``index`` of ``blocks`` that has no done marker yet.

    ``fn``: picklable callable (module-level function or ``functools.partial``)
    that writes the block's output and returns a small result (a dict of
    scalars / arrays), stored as the block's marker by ``markers.write(stage,
    index, result)``. ``client``: a ``distributed.Client`` or None (in this
    process). ``on_done(index, n_done, n_total)`` runs after each marker is
    written. Returns ``{index: result}`` for all blocks (finished earlier or now).
    Raises :class:`BlocksFailedError` listing the blocks that still failed after
    ``retries`` retries (the others are done and kept), or
    :class:`SchedulerError` when the scheduler goes away.
    """
    blocks = list(blocks)
    fn = wrap(stage, fn) if wrap is not None else fn
    done = markers.done(stage)
    todo = [b for b in blocks if b not in done]
    if len(todo) < len(blocks):
        logger.info("%s: %d of %d blocks already done", stage, len(blocks) - len(todo), len(blocks))
    failures = []
    n_done = [len(blocks) - len(todo)]  # tqdm does not count when it is disabled (no terminal)
    with tqdm(total=len(blocks), initial=n_done[0], unit="block", desc=stage, disable=None) as bar:
        def finish(index, result):
            markers.write(stage, index, result)
            bar.update(1)
            n_done[0] += 1
            if on_done is not None:
                on_done(index, n_done[0], len(blocks))

        if client is None:
            _run_here(fn, todo, retries, finish, failures)
        else:
            _run_dask(client, fn, todo, retries, finish, failures, stage)
    if failures:
        lines = "; ".join(f"block {index}: {type(err).__name__}: {err}" for index, err in failures[:5])
        raise BlocksFailedError(
            f"{stage}: {len(failures)} of {len(blocks)} blocks failed after {retries} retries "
            f"({len(blocks) - len(markers.done(stage))} not done; {lines}"
            f"{'; ...' if len(failures) > 5 else ''}). The other blocks are done and kept: fix the cause and "
            "run the same command again to finish")
    return {index: markers.read(stage, index) for index in blocks}


def _systematic(failures, n_finished):
    return n_finished == 0 and len(failures) >= GIVE_UP_AFTER


def _run_here(fn, todo, retries, finish, failures):
    n_finished = 0
    for index in todo:
        if _systematic(failures, n_finished):
            logger.error("the first %d blocks all failed: stopping this stage", len(failures))
            break
        for attempt in range(retries + 1):
            try:
                result = fn(index)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # noqa: BLE001 - any block error is retried, then reported
                logger.warning("block %s failed (attempt %d of %d): %s: %s", index, attempt + 1, retries + 1,
                               type(err).__name__, err)
                if attempt == retries:
                    failures.append((index, err))
            else:
                finish(index, result)
                n_finished += 1
                break


def _run_dask(client, fn, todo, retries, finish, failures, stage):
    from distributed import as_completed

    futures = {client.submit(fn, index, retries=retries, pure=False, key=f"{stage}-{index}"): index
               for index in todo}
    n_finished = 0
    try:
        for future in as_completed(futures):
            index = futures[future]
            if future.status == "finished":
                finish(index, future.result())
                n_finished += 1
                continue
            if future.status == "cancelled" or client.status != "running":
                raise SchedulerError(
                    f"{stage}: lost the Dask scheduler (client status {client.status!r}) at block {index}. "
                    "Finished blocks are kept: run the same command again to resume")
            err = future.exception()
            logger.warning("block %s failed after %d retries: %s: %s", index, retries, type(err).__name__, err)
            failures.append((index, err))
            if _systematic(failures, n_finished):
                logger.error("the first %d blocks all failed: stopping this stage", len(failures))
                client.cancel(list(futures))
                break
    except (OSError, TimeoutError) as err:
        raise SchedulerError(f"{stage}: lost the Dask scheduler ({type(err).__name__}: {err}). "
                             "Finished blocks are kept: run the same command again to resume") from err
    finally:
        for future in futures:
            future.release()
