"""qbt: a research workbench for quantitative trading workloads that must run fast.

Shared layers: :mod:`qbt_lib.paths`, :mod:`qbt_lib.params` (parameter checks),
:mod:`qbt_lib.data` (OHLCV contract, synthetic market, price store),
:mod:`qbt_lib.parallel` (one ordered map over sequential/threads/loky/dask),
:mod:`qbt_lib.device` (CPU/GPU dispatch), :mod:`qbt_lib.bench` (benchmark harness),
:mod:`qbt_lib.metrics` (metrics.json, the Result), :mod:`qbt_lib.profiling` (sweeps, tables,
plots), :mod:`qbt_lib.report` (running notebooks, the HTML report), :mod:`qbt_lib.fmt`
(numbers for people).  One subpackage per workload.
"""
import logging
import sys

from .interrupts import ipython_interrupt_handler

__version__ = "0.1.0"


class ConsoleHandler(logging.StreamHandler):
    """qbt's log lines: notes (INFO and below, e.g. ``device='auto' falls back to CPU``) go to
    stdout, warnings and errors to stderr. Jupyter shows stderr in red, and a note is not an
    error. The stream is looked up per record, so a kernel's captured streams are used."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        super().emit(record)


logger = logging.getLogger("qbt")
if not logger.handlers:
    _h = ConsoleHandler()
    _h.setFormatter(logging.Formatter("qbt %(levelname)s: %(message)s"))
    logger.addHandler(_h)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _one_line_interrupts_in_ipython() -> None:
    """In IPython / a Jupyter kernel, an interrupt that stops qbt code is shown as one line
    (what was stopped; no partial output kept) instead of a traceback through the library:
    see :func:`qbt_lib.interrupts.as_interrupted`. Interrupts of the user's own code, and a
    shell that already has custom exception handlers, are left alone."""
    ipython = sys.modules.get("IPython")            # not imported: not in IPython
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "custom_exceptions", ()):
        return

    def handler(self, etype, value, tb, tb_offset=None):
        return ipython_interrupt_handler(self, etype, value, tb, tb_offset)

    shell.set_custom_exc((KeyboardInterrupt,), handler)


_one_line_interrupts_in_ipython()
