"""``python -m qbt_lib.synth.scaleout``: synth at 1e9 samples on a Dask cluster of separate
processes, through the notebook's own interface (papermill), measured.

What it does (``make bench-scaleout``; defaults in brackets):

1. starts a cluster of ``--workers`` [2] ``dask worker`` processes with one thread each
   (:class:`qbt_lib.cluster.ProcessCluster`, on 127.0.0.1), unless ``--scheduler`` names one;
2. runs ``papermill notebooks/synth.ipynb ... -p n N -p backend dask -p scheduler tcp://...``
   with ``--n`` [1e9] samples (normalized, Parquet) while sampling, with psutil every 0.2 s,
   the RSS of the notebook's kernel (the client) and of every worker process; the run's own
   ``metrics.json`` records each worker's and the client's peak RSS (``VmHWM``) as well;
3. reads the dataset back with ``pyarrow.dataset`` and DuckDB (row counts);
4. runs the same notebook with ``backend="threads"`` (``n_jobs`` = the cluster's threads, on
   the same cores) and with ``backend="dask"`` at ``--ratio-n`` samples [= n] and reports the
   throughput ratio dask / threads (write phase, samples/s from each run's metrics.json);
5. compares the digest of the first ``--prefix`` [1e7] samples of the big run with the
   threads run's.

Writes ``<out>/scaleout.json`` [outputs/bench/synth-scaleout] and prints it. The datasets
are removed afterwards unless ``--keep`` (1e9 normalized samples are ~22 GB of Parquet).
Timings are only meaningful on a quiet machine: nothing else running on those cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import psutil
import pyarrow.dataset as pads

from .. import paths
from ..cluster import ProcessCluster
from .dataset import dataset_digest
from .params import DASK_CHUNK

TARGETS = {"worker_peak_rss_mb": 2048, "client_peak_rss_mb": 1024, "dask_vs_threads": 0.8}


class RssSampler:
    """Peak RSS (MiB) of some processes, sampled with psutil every ``every`` seconds."""

    def __init__(self, pids: dict[str, int] | None = None, kernel_of: int | None = None,
                 every: float = 0.2):
        self.pids = dict(pids or {})
        self.kernel_of = kernel_of
        self.every = every
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _find_kernel(self) -> None:
        try:
            for c in psutil.Process(self.kernel_of).children(recursive=True):
                if "ipykernel" in " ".join(c.cmdline()):
                    self.pids["client (kernel)"] = c.pid
        except psutil.Error:
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.kernel_of is not None and "client (kernel)" not in self.pids:
                self._find_kernel()
            for name, pid in list(self.pids.items()):
                try:
                    mb = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak.get(name, 0.0), mb)
            self._stop.wait(self.every)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def _run_notebook(out_dir: Path, n: int, backend: str, n_jobs: int, scheduler: str,
                  chunk_size: int, sampler_pids: dict[str, int] | None = None) -> dict:
    import papermill as pm
    params = dict(n=n, backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                  output_dir=str(out_dir), chunk_size=chunk_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with RssSampler(sampler_pids, kernel_of=os.getpid()) as rss:
        pm.execute_notebook(str(paths.NOTEBOOKS / "synth.ipynb"), str(out_dir / "synth.ipynb"),
                            parameters=params, kernel_name="qbt", progress_bar=False,
                            cwd=str(paths.NOTEBOOKS))
    m = json.loads((out_dir / "metrics.json").read_text())
    m["notebook_seconds"] = time.perf_counter() - t0
    m["psutil_peak_rss_mb"] = rss.peak
    return m


def _readers(path: Path, n: int) -> dict:
    out: dict[str, Any] = {}
    t = time.perf_counter()
    out["pyarrow_dataset_rows"] = pads.dataset(path / "samples", format="parquet").count_rows()
    out["pyarrow_seconds"] = time.perf_counter() - t
    try:
        import duckdb
        t = time.perf_counter()
        out["duckdb_rows"] = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{path / 'samples'}/*.parquet')").fetchall()[0][0]
        out["duckdb_seconds"] = time.perf_counter() - t
    except ImportError:
        out["duckdb_rows"] = None
    out["readable"] = out["pyarrow_dataset_rows"] == n and out.get("duckdb_rows") in (n, None)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.synth.scaleout", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=1e9)
    ap.add_argument("--ratio-n", type=float, default=None,
                    help="samples of the dask-vs-threads pair (default: --n)")
    ap.add_argument("--prefix", type=float, default=1e7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=DASK_CHUNK,
                    help="samples per chunk, the same for both runs (like with like; the "
                         "notebook's default on Dask)")
    ap.add_argument("--scheduler", default=None, help="an existing cluster (default: start one)")
    ap.add_argument("--out", default=str(paths.BENCH_DIR / "synth-scaleout"))
    ap.add_argument("--keep", action="store_true", help="keep the datasets")
    a = ap.parse_args(argv)
    n, prefix = int(a.n), int(a.prefix)
    ratio_n = int(a.ratio_n or a.n)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"n": n, "ratio_n": ratio_n, "prefix": prefix,
                              "workers": a.workers, "chunk_size": a.chunk_size,
                              "load_average_at_start": os.getloadavg(),
                              "cores": len(os.sched_getaffinity(0)), "targets": TARGETS}
    with ProcessCluster(a.workers, nthreads=1, root=out / "cluster") if a.scheduler is None \
            else _External(a.scheduler) as cl:
        sched = cl.address
        threads = a.workers
        pids = {f"worker {addr}": pid for addr, pid in cl.worker_pids().items()}
        big = _run_notebook(out / "dask", n, "dask", threads, sched, a.chunk_size, pids)
        result["dask"] = {k: big.get(k) for k in (
            "wall_seconds", "samples_per_s", "worker_peak_rss_mb", "client_peak_rss_mb",
            "psutil_peak_rss_mb", "notebook_seconds", "file_bytes", "n_windows")}
        result["readers"] = _readers(out / "dask" / "dataset", n)
        pair_dask = big
        if ratio_n != n:
            pair_dask = _run_notebook(out / "dask-ratio", ratio_n, "dask", threads, sched,
                                      a.chunk_size, pids)
        thr = _run_notebook(out / "threads", max(ratio_n, prefix), "threads", threads, "local",
                            a.chunk_size)
        result["threads"] = {k: thr.get(k) for k in ("wall_seconds", "samples_per_s",
                                                     "psutil_peak_rss_mb")}
        result["dask_ratio_run"] = {k: pair_dask.get(k) for k in ("wall_seconds",
                                                                  "samples_per_s")}
        result["dask_vs_threads"] = pair_dask["samples_per_s"] / thr["samples_per_s"]
    exact = ["symbol", "idx", "date", "equity", "position", "action", "forward_return"]
    d_big = dataset_digest(out / "dask" / "dataset", columns=exact, limit=prefix)
    d_thr = dataset_digest(out / "threads" / "dataset", columns=exact, limit=prefix)
    result["prefix_digest"] = {"dask": d_big, "threads": d_thr, "equal": d_big == d_thr}
    result["load_average_at_end"] = os.getloadavg()
    w = result["dask"]["worker_peak_rss_mb"] or {}
    result["ok"] = {
        "worker_rss": bool(w) and max(w.values()) < TARGETS["worker_peak_rss_mb"],
        "client_rss": (result["dask"]["client_peak_rss_mb"] or 1e9)
        < TARGETS["client_peak_rss_mb"],
        "ratio": result["dask_vs_threads"] >= TARGETS["dask_vs_threads"],
        "prefix_digest": result["prefix_digest"]["equal"],
        "readable": result["readers"]["readable"]}
    if not a.keep:
        for sub in ("dask", "dask-ratio", "threads"):
            shutil.rmtree(out / sub / "dataset", ignore_errors=True)
    (out / "scaleout.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    return 0 if all(result["ok"].values()) else 1


class _External:
    """An existing cluster, by address (its workers' pids are sampled only if local)."""

    def __init__(self, address: str):
        self.address = address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def worker_pids(self) -> dict[str, int]:
        from distributed import Client
        with Client(self.address) as c:
            return c.run(os.getpid)


if __name__ == "__main__":
    sys.exit(main())
