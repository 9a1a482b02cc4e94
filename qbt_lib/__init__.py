"""qbt: a research workbench for quantitative trading workloads that must run fast.

Shared layers: :mod:`qbt_lib.paths`, :mod:`qbt_lib.params` (parameter checks),
:mod:`qbt_lib.data` (OHLCV contract, synthetic market, price store),
:mod:`qbt_lib.parallel` (one ordered map over sequential/threads/loky/dask),
:mod:`qbt_lib.device` (CPU/GPU dispatch), :mod:`qbt_lib.bench` (benchmark harness),
:mod:`qbt_lib.report` (metrics.json, HTML report).  One subpackage per workload.
"""
import logging

__version__ = "0.1.0"

logger = logging.getLogger("qbt")
if not logger.handlers:
    _h = logging.StreamHandler()
    _h.setFormatter(logging.Formatter("qbt %(levelname)s: %(message)s"))
    logger.addHandler(_h)
    logger.setLevel(logging.INFO)
    logger.propagate = False
