"""Shared fixtures: a 2-process Dask local cluster (started once), GPU skip marker."""
from __future__ import annotations

import logging
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
def dask_address():
    """Address of a 2-worker-process ``dask.distributed`` LocalCluster for the session."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


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
