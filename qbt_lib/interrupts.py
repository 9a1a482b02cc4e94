"""Ctrl-C / a Jupyter kernel interrupt in qbt code: :class:`Interrupted` (one line, no partial
output kept) and the IPython handler ``qbt_lib`` registers in a kernel. No dependencies, so
the package's ``__init__`` and :mod:`qbt_lib.paths` can use it without importing NumPy."""
from __future__ import annotations

from typing import Any


class Interrupted(KeyboardInterrupt):
    """A qbt run stopped by Ctrl-C or a Jupyter kernel interrupt.

    It is a ``KeyboardInterrupt`` (so ``except KeyboardInterrupt`` and scripts behave as
    before), raised ``from None`` with a message saying what was stopped; IPython/Jupyter
    render it as that one line (``_render_traceback_``) instead of a traceback through the
    pool's internals, and the kernel stays usable.
    """

    def __str__(self) -> str:
        msg = super().__str__() or "qbt run stopped"
        return f"{msg}; no partial output was kept"

    def _render_traceback_(self) -> list[str]:
        return [f"Interrupted: {self}"]


def as_interrupted(exc: BaseException, tb: Any = None) -> "Interrupted | None":
    """The one-line form of a ``KeyboardInterrupt`` that stopped qbt code: ``exc`` itself if
    it is already an :class:`Interrupted`, else ``Interrupted("<qbt function> stopped")``
    naming the outermost ``qbt_lib`` function in ``tb``; ``None`` when no qbt code was
    running (the interrupt is the user's own: IPython shows it as usual). qbt writes every
    output to a temp path renamed when complete, so nothing partial was kept."""
    if isinstance(exc, Interrupted):
        return exc
    if not isinstance(exc, KeyboardInterrupt):
        return None
    while tb is not None:
        f = tb.tb_frame
        mod = f.f_globals.get("__name__", "")
        if mod == "qbt_lib" or mod.startswith("qbt_lib."):
            return Interrupted(f"{mod}.{f.f_code.co_qualname} stopped")
        tb = tb.tb_next
    return None


def ipython_interrupt_handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler (registered by ``qbt_lib`` in a Jupyter kernel) for
    ``KeyboardInterrupt``: one line when qbt code was interrupted, else IPython's usual
    traceback."""
    short = as_interrupted(value, tb)
    if short is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    else:
        shell.showtraceback((type(short), short, None))
    return None
