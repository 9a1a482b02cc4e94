"""One ordered ``map`` over tasks for every backend: sequential, threads, loky, dask.

Determinism rule: work is cut into fixed-size chunks that do not depend on the number of
workers, and chunk ``c`` draws its random numbers from ``chunk_rng(seed, c)`` (the c-th child
of ``SeedSequence(seed)``). Results are returned in task order, so outputs are bitwise
identical for any ``n_jobs`` and backend.

``backend="dask"`` runs on ``dask.distributed`` futures against a
scheduler: ``scheduler="local"`` starts a ``LocalCluster`` (``n_jobs`` single-threaded worker
processes) for the call, an address such as ``"tcp://10.0.0.5:8786"`` connects to an
existing scheduler (so does the path of a scheduler file written by ``dask scheduler
--scheduler-file``), and ``None`` uses the current default ``distributed.Client``. Workers
share nothing with the caller but the scheduler and the run's output location: what tasks
need travels through Dask (``shared=``: scattered once per run to every worker).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .interrupts import Interrupted
from .params import as_int, one_of

log = logging.getLogger("qbt")

BACKENDS = ("sequential", "threads", "loky", "dask")
# No work-size threshold: a caller that knows its job is too small for a pool passes
# n_jobs=1 (the "small jobs run sequentially" cost threshold was never set above 0 by any
# workload, so it was removed; one task, or n_jobs=1, still runs in this process).


class _Count:
    """The bar when none is shown: counts the finished tasks for the interrupt message."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int = 1) -> None:
        self.n += k

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "task", show: bool = True):
    """A tqdm bar for ``total`` tasks (``update(k)``, ``close()``, ``n``).

    In Jupyter it is an ipywidgets bar while the work runs; on ``close()`` the widget is
    replaced by one plain-text summary line (``desc: 20/20 chunks in 3.2 s``), so a saved and
    reopened notebook shows that line instead of "Error displaying widget: model not found"
    (a closed widget has no saved state). In a terminal it is tqdm's text bar on stderr,
    removed when done.
    """
    if not show:
        return _Count()
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm_notebook

    if not issubclass(tqdm, tqdm_notebook):
        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return _summary_bar(tqdm)(total=total, desc=desc, unit=unit, leave=True, display=False)


def _summary_bar(base):
    class SummaryBar(base):
        def __init__(self, *a, **k):
            from IPython.display import display
            super().__init__(*a, **k)
            self._handle = display(self.container, display_id=True)
            self.displayed = True

        def close(self):
            if self.disable or getattr(self, "_summarized", False):
                return
            self._summarized = True
            super().close()
            d = self.format_dict
            el = d["elapsed"]
            took = f"{el:.1f} s" if el < 60 else self.format_interval(el)
            what = f"{self.n}/{self.total} {d['unit']}s"
            line = (f"{d['prefix']}: {what} in {took}" if self.total and self.n >= self.total
                    else f"{d['prefix']}: stopped at {what} after {took}")
            try:
                self._handle.update({"text/plain": line}, raw=True)
                self.container.close()
            except Exception:  # pragma: no cover - the front end went away
                pass

    return SummaryBar


def progress_default() -> bool:
    """Whether long jobs show a progress bar when the caller does not say: yes, unless
    ``QBT_PROGRESS=0`` (set for headless runs -- the report and the golden notebooks -- where a
    bar is only noise in the saved output)."""
    return os.environ.get("QBT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def available_cores() -> int:
    """Cores this process may run on (affinity-aware, so it is right inside containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: Any) -> int:
    """The seed's convention: -1 all cores, -2 all but one, 1 sequential, N exactly N."""
    n = as_int("n_jobs", n_jobs)
    cores = available_cores()
    if n == 0:
        raise ValueError("n_jobs must not be 0 (use 1 for sequential, -1 for all cores)")
    if n < 0:
        return max(1, cores + 1 + n)
    return n


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Fixed-size ``[start, stop)`` chunks covering ``range(n)`` (the last may be short)."""
    n = as_int("n", n, min=0)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def chunk_seed(seed: int, chunk: int) -> np.random.SeedSequence:
    """``SeedSequence(seed).spawn(k)[chunk]`` for any k > chunk, built in O(1)."""
    return np.random.SeedSequence(as_int("seed", seed, min=0), spawn_key=(int(chunk),))


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """The random generator of fixed-size chunk ``chunk`` (independent of the worker)."""
    return np.random.default_rng(chunk_seed(seed, chunk))


def _scheduler_kind(scheduler: str) -> str:
    """``"local"``, ``"file"`` (a scheduler file written by ``dask scheduler
    --scheduler-file``) or ``"address"``."""
    s = str(scheduler).strip()
    if s == "local":
        return "local"
    if s.endswith(".json") or (os.path.sep in s and "://" not in s and os.path.exists(s)):
        if not os.path.exists(s):
            raise ValueError(f"scheduler: no scheduler file at {s!r} (expected 'local', an "
                             "address such as 'tcp://10.0.0.5:8786', or a scheduler file)")
        return "file"
    return "address"


def check_scheduler(scheduler: Any) -> str | None:
    """Validate a ``scheduler`` parameter: ``"local"``, an address or a scheduler file
    (``None``: the current default ``distributed.Client``)."""
    if scheduler is None:
        return None
    if not isinstance(scheduler, (str, os.PathLike)) or not str(scheduler).strip():
        raise ValueError(f"scheduler must be 'local', an address such as "
                         f"'tcp://127.0.0.1:8786' or a scheduler file, got {scheduler!r}")
    s = str(scheduler).strip()
    _scheduler_kind(s)
    return s


_ANNOUNCED: set[str] = set()


def announce_dashboard(client: Any) -> None:
    """Print the cluster's dashboard link once per scheduler (users see where it runs)."""
    try:
        addr = client.scheduler.address
        link = client.dashboard_link
    except Exception:  # pragma: no cover - an odd client
        return
    if addr in _ANNOUNCED:
        return
    _ANNOUNCED.add(addr)
    n = len(client.scheduler_info().get("workers", {}))
    print(f"Dask cluster {addr}: {n} worker(s), dashboard {link}", flush=True)


class ClusterLost(RuntimeError):
    """The Dask cluster went away in the middle of a run."""


@contextlib.contextmanager
def dask_client(scheduler: str | None = "local", n_workers: int = 2):
    """A ``distributed.Client``: a fresh LocalCluster (``"local"``), an existing scheduler
    (an address such as ``"tcp://10.0.0.5:8786"``, or a scheduler file), or the default
    client (``None``). The dashboard link is printed once per scheduler."""
    try:
        from dask.distributed import Client, LocalCluster, default_client
    except ImportError:
        raise ImportError("backend='dask' needs dask and distributed: "
                          "pip install -e .[dask]") from None
    if scheduler is None:
        try:
            yield default_client()
            return
        except ValueError:
            raise ValueError("backend='dask' with scheduler=None needs a running "
                             "distributed.Client; pass scheduler='local' or an address") from None
    scheduler = check_scheduler(scheduler)
    kind = _scheduler_kind(scheduler)
    if kind == "local":
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            announce_dashboard(client)
            yield client
        return
    try:
        client = (Client(scheduler_file=scheduler) if kind == "file" else Client(scheduler))
    except (OSError, TimeoutError) as e:
        raise ClusterLost(f"scheduler={scheduler!r}: cannot reach the Dask scheduler "
                          f"({type(e).__name__}: {e})") from None
    with client:
        announce_dashboard(client)
        yield client


def _for_workers(obj: Any) -> Any:
    """What a shared object sends to Dask workers: its in-memory form (``in_memory()``,
    e.g. a price store's arrays instead of a path into this machine's cache)."""
    f = getattr(obj, "in_memory", None)
    return f() if callable(f) else obj


def pmap(func: Callable[[Any], Any], tasks: Iterable[Any], *, backend: str = "loky",
         n_jobs: int = 1, scheduler: str | None = "local", progress: bool | None = None,
         desc: str | None = None, unit: str = "task",
         shared: Sequence[Any] = ()) -> list[Any]:
    """Apply ``func`` to every task and return the results in task order.

    Runs sequentially when ``backend="sequential"``, ``n_jobs == 1`` or there is one task.
    ``progress`` shows a tqdm bar (default: on when there are more than 4 tasks, unless the
    environment says ``QBT_PROGRESS=0``).
    Ctrl-C stops the workers (joblib terminates its loky tasks, Dask futures are cancelled)
    and raises :class:`Interrupted` (a ``KeyboardInterrupt`` shown as one line in Jupyter).

    ``shared``: objects every task needs (a price store, a sample space), passed as
    ``func(task, *shared)``. On Dask they travel once per run, scattered to every worker in
    their in-memory form (``obj.in_memory()`` when it has one), never as a path into this
    machine's cache; the other backends hand them over as they are.
    """
    return list(imap(func, tasks, backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                     progress=progress, desc=desc, unit=unit, shared=shared))


def effective_backend(backend: str, n_jobs: int, n_tasks: int) -> tuple[str, int]:
    """The backend and worker count ``pmap`` will really use for this job."""
    backend = one_of("backend", backend, BACKENDS)
    n = resolve_n_jobs(n_jobs)
    if backend == "sequential" or n_tasks <= 1 or (n == 1 and backend != "dask"):
        return "sequential", 1
    return backend, min(n, n_tasks) if backend != "dask" else n


def imap(func: Callable[[Any], Any], tasks: Iterable[Any], *, backend: str = "loky",
         n_jobs: int = 1, scheduler: str | None = "local", progress: bool | None = None,
         desc: str | None = None, unit: str = "task",
         shared: Sequence[Any] = ()) -> Iterator[Any]:
    """Like :func:`pmap` but yields results in task order as they complete, so a caller can
    stream them (e.g. write chunk c while later chunks are still being computed)."""
    tasks = list(tasks) if not isinstance(tasks, Sequence) else tasks
    shared = tuple(shared)
    if shared:
        func = functools.partial(_call_shared, func, shared)
    backend, n = effective_backend(backend, n_jobs, len(tasks))
    show = (len(tasks) > 4 and progress_default()) if progress is None else bool(progress)
    bar = progress_bar(len(tasks), desc or "qbt", unit, show)
    try:
        if backend == "sequential":
            for t in tasks:
                yield func(t)
                bar.update(1)
            return
        if backend == "threads":
            # A plain thread pool: joblib's threading backend added ~15 ms of dispatch per
            # 30 short tasks (marketsim: 1.66x -> 1.75x on 2 cores). On an error or Ctrl-C the
            # queued tasks are cancelled; running ones finish (threads cannot be killed).
            from concurrent.futures import ThreadPoolExecutor
            ex = ThreadPoolExecutor(max_workers=n, thread_name_prefix="qbt")
            try:
                for r in ex.map(func, tasks):
                    yield r
                    bar.update(1)
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
            return
        from joblib import Parallel, delayed

        if backend == "dask":
            yield from _dask_imap(func, tasks, scheduler, n, bar)
            return
        for r in Parallel(n_jobs=n, backend="loky", return_as="generator")(
                delayed(func)(t) for t in tasks):
            yield r
            bar.update(1)
    except KeyboardInterrupt as e:
        # Ctrl-C / a Jupyter kernel interrupt: the workers are already stopped (joblib
        # terminates loky/dask tasks, the thread pool cancels queued ones) and any output in
        # progress lives in a temp path the caller's ``atomic_dir`` removes. Say so in one line
        # instead of a traceback through joblib / concurrent.futures internals.
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(f"{desc or 'qbt'} stopped after {bar.n} of {len(tasks)} "
                          f"{unit}s") from None
    finally:
        bar.close()


_MALLOC_TUNED = False
_M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter


def _on_worker(func: Callable, *args: Any) -> Any:
    """Run one task on a Dask worker, after :func:`tune_worker_malloc` (once per process)."""
    tune_worker_malloc()
    return func(*args)


def tune_worker_malloc() -> bool:
    """Undo a side effect of Dask's worker environment, once per process.

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_`` set. Setting it also
    switches off glibc's dynamic mmap threshold, so every large buffer (Arrow's Parquet
    encoding, a chunk's arrays) is mapped and unmapped afresh and its pages faulted in again:
    synth's part writes ran ~1.3x slower in a worker than in a plain process (measured: the
    same sequential write of 3e7 samples, 4.5 s in a worker vs 3.7 s). A fixed 32 MB mmap
    threshold (glibc's own upper bound for the dynamic one) restores the plain-process speed;
    the trim threshold stays as Dask set it. Returns whether it changed anything."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    _MALLOC_TUNED = True
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    except (OSError, AttributeError):  # not glibc: nothing to undo
        return False


def _call_shared(func: Callable, shared: tuple, task: Any) -> Any:
    return func(task, *shared)


def _dask_imap(func: Callable, tasks: Sequence[Any], scheduler: str | None, n: int,
               bar: Any) -> Iterator[Any]:
    """The Dask branch of :func:`imap`, on ``dask.distributed`` futures.

    Shared objects are scattered once to every worker (broadcast, so a worker lost mid-run
    leaves a copy on the others). At most a few tasks per worker thread are in flight (so the
    reorder buffer and the results held stay bounded whatever the number of tasks); the bar
    advances as each task finishes on a worker, and results are yielded in task order. A
    worker killed mid-run costs only the recomputation of its tasks (the scheduler reassigns
    them); a cluster that goes away entirely raises :class:`ClusterLost`.

    (joblib 1.6's Dask backend is not used here: when the cluster has one worker thread in
    all it quietly runs every task in the calling process instead -- so a "cluster" run
    used the client's disk and cores -- and a task the workers cannot deserialize made it
    wait forever where ``Future.result`` raises the error.)"""
    from distributed import as_completed

    shared: tuple = ()
    if isinstance(func, functools.partial) and func.func is _call_shared:
        func, shared = func.args[0], func.args[1]
    with dask_client(scheduler, n_workers=n) as client:
        futures: dict[Any, int] = {}
        try:
            # hash=False: a key of its own per run, never one an earlier run is releasing
            sent = (client.scatter([_for_workers(o) for o in shared], broadcast=True,
                                   hash=False) if shared else [])
            threads = sum(client.nthreads().values()) or n
            window = max(4, 3 * threads)
            it = iter(enumerate(tasks))

            def submit() -> Any:
                for i, t in it:
                    f = client.submit(_on_worker, func, t, *sent, pure=False)
                    futures[f] = i
                    return f
                return None

            ac = as_completed([f for f in (submit() for _ in range(window)) if f is not None])
            done: dict[int, Any] = {}
            nxt = 0
            for f in ac:
                i = futures.pop(f)
                r = f.result()
                bar.update(1)
                done[i] = r
                nf = submit()
                if nf is not None:
                    ac.add(nf)
                while nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
            if nxt != len(tasks):  # pragma: no cover - as_completed ended early
                raise ClusterLost(
                    f"the Dask cluster ({_address(client)}) went away in the middle of the "
                    f"run: {nxt} of {len(tasks)} tasks came back; nothing was kept")
        except ClusterLost:
            raise
        except Exception as e:
            if _cluster_gone(client, e):
                raise ClusterLost(
                    f"the Dask cluster ({_address(client)}) went away in the middle of the "
                    f"run ({type(e).__name__}: {e}); nothing was kept") from None
            raise
        finally:
            if futures:  # an error, Ctrl-C or a caller that stopped early: stop the rest
                with contextlib.suppress(Exception):
                    client.cancel(list(futures), asynchronous=False)


def _address(client: Any) -> str:
    try:
        return str(client.scheduler.address)
    except Exception:  # pragma: no cover
        return "?"


def _cluster_gone(client: Any, exc: BaseException) -> bool:
    """Whether ``exc`` means the cluster is gone (not a task's own error)."""
    import asyncio
    import concurrent.futures as cf
    if isinstance(exc, (cf.CancelledError, asyncio.CancelledError)):
        return True
    if type(exc).__name__ in ("CommClosedError", "FutureCancelledError", "CancelledError"):
        return True
    return getattr(client, "status", "running") not in ("running",)
