"""Scale-out on a real Dask cluster of separate processes (tests/conftest.py: ``dask_cluster``):
workers that share nothing with the client but the scheduler and the output location, a
worker SIGKILLed mid-run, and a cluster that goes away entirely."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from qbt_lib import parallel, paths, synth  # noqa: E402
from qbt_lib import straddles as st  # noqa: E402
from qbt_lib.cluster import ProcessCluster  # noqa: E402


def _file_hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _pid_of_listener(port: int) -> tuple[int, str] | None:
    import psutil
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
            return c.pid, c.laddr.ip
    return None


# ------------------------------------------------------------------ the cluster itself
def test_cluster_is_separate_processes_on_localhost(dask_cluster, dask_address):
    import psutil
    from distributed import Client
    with Client(dask_address) as c:
        info = c.scheduler_info()
        pids = c.run(os.getpid)
        sched_pid = c.run_on_scheduler(os.getpid)
        dirs = c.run(os.getcwd)
        local = c.run(lambda dask_worker: dask_worker.local_directory)
        caches = c.run(lambda: os.environ.get("QBT_CACHE_DIR"))
    assert len(info["workers"]) == 2
    assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
    assert os.getpid() not in pids.values() and sched_pid not in pids.values()
    assert len(set(pids.values())) == 2 and sched_pid != os.getpid()
    assert len(set(dirs.values())) == 2 and len(set(local.values())) == 2
    assert len(set(caches.values())) == 2 and str(paths.cache_dir()) not in caches.values()
    for pid in pids.values():  # not children of this process: started by the dask CLI
        assert psutil.Process(pid).ppid() != os.getpid()
    assert dask_address.startswith("tcp://127.0.0.1:")
    lis = _pid_of_listener(dask_cluster.dashboard_port)
    if lis is not None:  # net_connections may need privileges
        assert lis[1] == "127.0.0.1"


def test_workers_cannot_see_the_client_cache(dask_cluster, dask_address):
    if not dask_cluster.hidden:
        pytest.skip("needs root and unshare -m to hide the client's cache from the workers")
    from distributed import Client
    cache = str(paths.cache_dir())
    synth.sample_space("synthetic", 2, seed=3, lookback=8, horizon=1, n_bars=120)
    assert os.listdir(cache)  # the client has a cache ...
    with Client(dask_address) as c:  # ... the workers see an empty directory there
        assert set(map(tuple, c.run(lambda: os.listdir(cache)).values())) == {()}


def _malloc_state(_task):
    import os

    from qbt_lib import parallel as par
    return par._MALLOC_TUNED, "MALLOC_TRIM_THRESHOLD_" in os.environ


def test_workers_get_their_mmap_threshold_back(dask_address):
    """Dask sets MALLOC_TRIM_THRESHOLD_ in its workers (turning off glibc's dynamic mmap
    threshold, ~1.3x slower Parquet writes); the first qbt task on a worker restores it."""
    got = parallel.pmap(_malloc_state, range(4), backend="dask", n_jobs=2,
                        scheduler=dask_address, progress=False)
    assert all(trim for _, trim in got)          # the environment Dask gave the workers
    assert all(tuned for tuned, _ in got)        # ... and what the task fixed first
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:  # a plain process: nothing to undo
        assert parallel.tune_worker_malloc() is False and parallel._MALLOC_TUNED is False


def test_scheduler_forms(dask_cluster, dask_address, capsys):
    tasks = list(range(7))
    want = [t * t for t in tasks]
    assert parallel.pmap(np.square, tasks, backend="dask", scheduler=dask_address) == want
    assert parallel.pmap(np.square, tasks, backend="dask",
                         scheduler=dask_cluster.scheduler_file) == want
    with pytest.raises(ValueError, match="scheduler"):
        parallel.check_scheduler("/nowhere/scheduler.json")
    with pytest.raises(ValueError, match="scheduler"):
        parallel.check_scheduler(3)


def test_dashboard_link_is_printed(dask_address, capsys):
    parallel._ANNOUNCED.clear()
    parallel.pmap(np.square, [1, 2, 3], backend="dask", scheduler=dask_address)
    out = capsys.readouterr().out
    assert f"Dask cluster {dask_address}" in out and "dashboard http://127.0.0.1:" in out


def test_progress_advances_as_tasks_finish(dask_address, monkeypatch):
    """The bar counts tasks as they finish on the workers, not when the run ends."""
    import tqdm.auto
    seen = []
    real = tqdm.auto.tqdm

    class Spy(real):
        def update(self, n=1):
            seen.append(time.perf_counter())
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Spy)
    out = parallel.pmap(time.sleep, [0.3] * 6, backend="dask", scheduler=dask_address,
                        progress=True)
    assert out == [None] * 6 and len(seen) == 6
    assert seen[-1] - seen[0] > 0.2  # spread over the run (2 workers: ~3 waves)


# ------------------------------------------------------------------ inputs travel via Dask
def test_price_store_in_memory_pickles_by_value(tmp_path):
    import pickle
    store, _ = st.load_market("synthetic", assets=2, start_year=2001, end_year=2002,
                              tenor=21, seed=1)
    mem = store.in_memory()
    assert mem.path is None
    back = pickle.loads(pickle.dumps(mem))
    for f in store.fields:
        np.testing.assert_array_equal(np.asarray(back[f]), np.asarray(store[f]))
        assert not back[f].flags.writeable
    assert back.dates.equals(store.dates) and back.symbols == store.symbols
    space = synth.sample_space("synthetic", 2, seed=3, lookback=8, horizon=1, n_bars=120)
    sm = pickle.loads(pickle.dumps(space.in_memory()))
    assert sm.path is None and sm.key == space.key
    for k, v in space.tables().items():
        np.testing.assert_array_equal(sm.tables()[k], v)


# ------------------------------------------------------------------ faults
def _slow_on_worker(module: str, name: str, seconds: float) -> None:
    """Runs on a worker: make ``module.name`` sleep first (so a run lasts long enough to
    kill a worker in the middle of it); ``seconds=0`` restores it."""
    import functools
    import importlib
    m = importlib.import_module(module)
    real = getattr(m, name)
    real = getattr(real, "_qbt_real", real)
    if not seconds:
        setattr(m, name, real)
        return

    @functools.wraps(real)
    def slow(*a, **k):
        time.sleep(seconds)
        return real(*a, **k)

    slow._qbt_real = real
    setattr(m, name, slow)


class _Slowed:
    def __init__(self, address, module, name, seconds=0.05):
        from distributed import Client
        self.client = Client(address)
        self.args = (module, name)
        self.client.run(_slow_on_worker, module, name, seconds)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.client.run(_slow_on_worker, *self.args, 0)
        except Exception:  # noqa: BLE001 - the cluster may be gone (that test's point)
            pass
        self.client.close()


def _kill_when(cluster: ProcessCluster, cond, timeout: float = 60.0) -> int | None:
    """SIGKILL worker 0 as soon as ``cond()`` holds; the pid killed (None: never held)."""
    pids = sorted(cluster.worker_pids().items())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            os.kill(pids[0][1], 9)
            return pids[0][1]
        time.sleep(0.005)
    return None


def _parts(tmp_root: Path, table: str) -> int:
    return sum(1 for _ in tmp_root.glob(f".*/{table}/part-*.parquet"))


def _in_thread(fn):
    box = {}

    def go():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            box["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


N_FAULT, CHUNK_FAULT = 600_000, 20_000


@pytest.fixture(scope="module")
def fault_space():
    return synth.sample_space("synthetic", 4, seed=0, lookback=32, horizon=1, n_bars=1500)


def test_synth_survives_a_killed_worker(dask_cluster, dask_address, fault_space, tmp_path):
    cfg = synth.draw_config(5)
    kw = dict(impl="numba", chunk_size=CHUNK_FAULT, progress=False)
    clean = synth.write_dataset(tmp_path / "clean" / "dataset", N_FAULT, fault_space, cfg,
                                backend="sequential", **kw)
    out = tmp_path / "dask"
    with _Slowed(dask_address, "qbt_lib.synth.dataset", "write_part"):
        t, box = _in_thread(lambda: synth.write_dataset(
            out / "dataset", N_FAULT, fault_space, cfg, backend="dask",
            scheduler=dask_address, **kw))
        killed = _kill_when(dask_cluster, lambda: _parts(out, "samples") >= 3)
        t.join(300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert "error" not in box, box.get("error")
    assert not (out / "dataset").exists() or "result" in box
    assert _file_hashes(clean.path) == _file_hashes(box["result"].path)  # bitwise
    assert sorted(p.name for p in out.iterdir()) == ["dataset"]  # no temp dirs or files
    dask_cluster.wait_for_workers(2)  # the nanny started a fresh worker
    assert killed not in dask_cluster.worker_pids().values()


def test_straddles_survive_a_killed_worker(dask_cluster, dask_address, tmp_path):
    store, assets = st.load_market("synthetic", assets=6, start_year=2001, end_year=2012,
                                   tenor=63, seed=2)
    sched = st.build_schedule(store, assets, 2001, 2012, per_month=8, tenor=63)
    kw = dict(impl="numba", chunk_size=96, output="parquet", progress=False)
    clean = st.backtest(store, sched, backend="sequential", path=tmp_path / "clean", **kw)
    out = tmp_path / "dask"
    with _Slowed(dask_address, "qbt_lib.straddles.chunks", "asset_days"):
        t, box = _in_thread(lambda: st.backtest(store, sched, backend="dask", n_jobs=2,
                                                scheduler=dask_address, path=out / "bt", **kw))
        killed = _kill_when(dask_cluster, lambda: sum(
            1 for _ in out.glob(".*/rows/part-*.parquet")) >= 2)
        t.join(300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert "error" not in box, box.get("error")
    a, b = _file_hashes(clean.path), _file_hashes(box["result"].path)
    assert {k: v for k, v in a.items() if k != "meta.json"} == \
        {k: v for k, v in b.items() if k != "meta.json"}  # meta.json names the backend
    assert sorted(p.name for p in out.iterdir()) == ["bt"]
    dask_cluster.wait_for_workers(2)


def test_cluster_gone_is_a_clear_error_and_leaves_nothing(fault_space, tmp_path):
    import dask
    cfg = synth.draw_config(5)
    out = tmp_path / "out"
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    with ProcessCluster(n_workers=1, root=tmp_path / "cluster",
                        env={"PYTHONPATH": tests_dir}) as cl, \
            dask.config.set({"distributed.comm.timeouts.connect": "3s"}), \
            _Slowed(cl.address, "qbt_lib.synth.dataset", "write_part"):
        t, box = _in_thread(lambda: synth.write_dataset(
            out / "dataset", N_FAULT, fault_space, cfg, impl="numba", chunk_size=CHUNK_FAULT,
            progress=False, backend="dask", scheduler=cl.address))
        deadline = time.monotonic() + 60
        while _parts(out, "samples") < 2 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.005)
        assert t.is_alive(), "the run ended before the cluster could be killed"
        cl.kill_all()
        t.join(120)
    assert not t.is_alive(), "the run hangs after its cluster went away"
    assert isinstance(box.get("error"), parallel.ClusterLost), box
    assert "went away" in str(box["error"]) and "nothing was kept" in str(box["error"])
    assert not out.exists() or list(out.iterdir()) == []  # no dataset, no temp dir


def test_unreachable_scheduler_is_a_clear_error():
    import dask
    port = __import__("qbt_lib.cluster", fromlist=["free_port"]).free_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(parallel.ClusterLost, match="cannot reach the Dask scheduler"):
            parallel.pmap(abs, [1, 2], backend="dask", scheduler=f"tcp://127.0.0.1:{port}")


# ------------------------------------------------------------------ notebooks
NOTEBOOKS = ("synth", "straddles", "walkforward", "waves", "marketsim", "profiling")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_has_a_scheduler_parameter_passed_on(name):
    import nbformat
    nb = nbformat.read(paths.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert any(line.startswith('scheduler = "local"') for line in params[0].source.splitlines())
    used = [c for c in nb.cells if c is not params[0] and "scheduler=scheduler" in c.source]
    assert used, f"{name}: the scheduler parameter is not passed to the library"


def test_synth_notebook_runs_on_the_cluster(dask_address, tmp_path):
    """papermill's interface reaches the cluster: -p backend dask -p scheduler tcp://..."""
    import papermill as pm
    import yaml
    params = yaml.safe_load((paths.PARAMS / "synth" / "tiny.yaml").read_text())
    # one dataset with today's label (the tiny file's splits and labels have their own tests)
    params.update(backend="dask", scheduler=dask_address, output_dir=str(tmp_path / "synth"),
                  n=20000, chunk_size=4096, splits=None, label="forward_return")
    out = tmp_path / "synth.ipynb"
    pm.execute_notebook(str(paths.NOTEBOOKS / "synth.ipynb"), str(out), parameters=params,
                        kernel_name="qbt", progress_bar=False, cwd=str(paths.NOTEBOOKS))
    text = out.read_text()
    assert f"Dask cluster {dask_address}" in text and "dashboard http://127.0.0.1:" in text
    assert "unknown parameter" not in text.lower()
    ref = synth.write_dataset(tmp_path / "ref", 20000, synth.sample_space(
        "synthetic", 3, seed=0, lookback=32, horizon=1), synth.draw_config(0), impl="numba",
        chunk_size=4096, backend="sequential", progress=False)
    got = tmp_path / "synth" / "dataset"
    assert synth.dataset_digest(got) == synth.dataset_digest(ref.path)
    import json

    import duckdb
    import pyarrow.dataset as pads
    m = json.loads((tmp_path / "synth" / "metrics.json").read_text())
    assert m["backend"] == "dask" and len(m["worker_peak_rss_mb"]) == 2
    assert m["client_peak_rss_mb"] > 0
    assert pads.dataset(got / "samples", format="parquet").count_rows() == 20000
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{got}/samples/*.parquet')"
                      ).fetchall()[0][0] == 20000


def test_output_dir_as_a_file_uri(dask_address, tmp_path):
    kw = dict(n=30000, lookback=16, symbols=2, chunk_size=8192, n_jobs=2, impl="numba",
              progress=False)
    a = synth.run(output_dir=(tmp_path / "a").as_uri(), backend="dask",
                  scheduler=dask_address, **kw)
    b = synth.run(output_dir=str(tmp_path / "b"), backend="sequential", **kw)
    assert a.path == tmp_path / "a" / "dataset"
    assert synth.dataset_digest(a.path) == synth.dataset_digest(b.path)
    with pytest.raises(ValueError, match="output_dir"):
        paths.resolve_output_dir("s3://no-such-bucket-qbt/x")
