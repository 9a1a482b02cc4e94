"""Shared fixtures: a Dask cluster of separate processes (started once), GPU skip marker."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/bench_fixtures.py
os.environ.setdefault("QBT_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                    "outputs", "test-cache"))


@pytest.fixture(scope="session")
def bench_fixtures(tmp_path_factory):
    """A folder of made-up bench JSONs (every workload and the GPU one), written by the
    bench's own writer (``tests/bench_fixtures.py``): test data, not measurements."""
    from bench_fixtures import write_fixtures
    d = tmp_path_factory.mktemp("bench-fixtures")
    write_fixtures(d)
    return d


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real cluster for the session: ``dask scheduler`` and two ``dask worker`` processes
    (separate OS processes on 127.0.0.1, each worker in its own directory with its own
    ``QBT_CACHE_DIR``). Where the machine allows it (root + ``unshare``), each worker runs
    in its own mount namespace with an empty tmpfs over this process's cache, so every test
    that uses it also proves the workers need nothing from the client's disk but the output
    location. Stopped (process groups killed) at the end, whatever the tests did."""
    pytest.importorskip("distributed")
    from qbt_lib import paths
    from qbt_lib.cluster import ProcessCluster, can_hide_paths
    hide = [paths.cache_dir(), paths.OUTPUTS / "cache"] if can_hide_paths() else []
    # the code is the one thing shared: tests' helper functions are pickled by reference
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    with ProcessCluster(n_workers=2, nthreads=1, root=tmp_path_factory.mktemp("dask-cluster"),
                        hide=hide, env={"PYTHONPATH": tests_dir}) as cluster:
        cluster.hidden = hide
        yield cluster


@pytest.fixture
def dask_address(dask_cluster):
    """``tcp://127.0.0.1:PORT`` of the session's cluster, with both workers up (a test that
    killed one gets it back from its nanny before the next test starts)."""
    dask_cluster.wait_for_workers(dask_cluster.n_workers)
    return dask_cluster.address


def _gpu_ok() -> bool:
    from qbt_lib.device import gpu_available
    return gpu_available()


def pytest_collection_modifyitems(config, items):
    if any(item.get_closest_marker("gpu") for item in items) and not _gpu_ok():
        from qbt_lib.device import gpu_status
        skip = pytest.mark.skip(reason=f"no usable GPU: {gpu_status()[1]}")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)
