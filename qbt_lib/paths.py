"""Every path qbt uses comes from here, so notebooks work from the repo root or ``notebooks/``."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

PROJ_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJ_ROOT / "notebooks"
PARAMS = PROJ_ROOT / "params"
OUTPUTS = PROJ_ROOT / "outputs"
BENCH_DIR = OUTPUTS / "bench"
REPORT_DIR = OUTPUTS / "report"
GOLDEN_DIR = PROJ_ROOT / "tests" / "golden"


def cache_dir() -> Path:
    """Cache for price stores and feature caches (``QBT_CACHE_DIR`` overrides)."""
    d = Path(os.environ.get("QBT_CACHE_DIR", OUTPUTS / "cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolve_output_dir(output_dir: str | os.PathLike) -> Path:
    """A relative ``output_dir`` is taken from the project root, whatever the cwd."""
    p = Path(output_dir).expanduser()
    if not p.is_absolute():
        p = PROJ_ROOT / p
    p.mkdir(parents=True, exist_ok=True)
    return p


def resolve_input_path(path: str | os.PathLike) -> Path:
    """A relative input path is tried against the cwd, then the project root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return PROJ_ROOT / p


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path | None]:
    """Build a directory at a temp path beside ``final`` and rename it into place when the
    block completes, so an interrupted or failed build leaves nothing behind.

    Yields the temp directory, or ``None`` when ``final`` already exists (content-keyed
    caches: another run built it). If another process renames first, its copy is kept.
    """
    final = Path(final)
    if final.exists():
        yield None
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same directory first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
