"""Every path qbt uses comes from here, so notebooks work from the repo root or ``notebooks/``."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .interrupts import Interrupted

PROJ_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJ_ROOT / "notebooks"
PARAMS = PROJ_ROOT / "params"
OUTPUTS = PROJ_ROOT / "outputs"
BENCH_DIR = OUTPUTS / "bench"
#: committed GPU runs, one folder per device tag: benchmarks/gpu/<tag>/<workload>-<tag>.json
GPU_RESULTS = PROJ_ROOT / "benchmarks" / "gpu"
REPORT_DIR = OUTPUTS / "report"
GOLDEN_DIR = PROJ_ROOT / "tests" / "golden"


def cache_dir() -> Path:
    """Cache for price stores and feature caches (``QBT_CACHE_DIR`` overrides)."""
    d = Path(os.environ.get("QBT_CACHE_DIR", OUTPUTS / "cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def local_path(location: str | os.PathLike, name: str = "output_dir") -> Path:
    """A path or a URI, through ``pyarrow.fs``: a local path or ``file://`` URI gives its
    path. Other filesystems (``s3://``, ``gs://``, ``hdfs://``) are refused with a clear
    error: the writers publish a run by renaming a complete temp directory, which needs a
    filesystem (on a cluster: a mount every worker sees at the same path)."""
    s = os.fspath(location)
    if "://" not in str(s):
        return Path(s).expanduser()
    import pyarrow.fs as pafs
    scheme = str(s).split("://", 1)[0].lower()
    if scheme not in ("file", "local"):  # refused before any network access
        raise ValueError(f"{name}: {s!r} is on {scheme}://; qbt writes its outputs to a "
                         "filesystem (a local path, a file:// URI, or a shared mount that "
                         "every Dask worker sees at the same path)")
    try:
        fs, path = pafs.FileSystem.from_uri(str(s))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds
        raise ValueError(f"{name}: cannot open {s!r} ({e})") from None
    if not isinstance(fs, pafs.LocalFileSystem):  # pragma: no cover - file:// is local
        raise ValueError(f"{name}: {s!r} is not a local filesystem")
    return Path(path)


def resolve_output_dir(output_dir: str | os.PathLike) -> Path:
    """A relative ``output_dir`` is taken from the project root, whatever the cwd; a
    ``file://`` URI is accepted (see :func:`local_path`)."""
    p = local_path(output_dir)
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
def atomic_dir(final: str | os.PathLike, replace: bool = False) -> Iterator[Path | None]:
    """Build a directory at a temp path beside ``final`` and rename it into place when the
    block completes, so an interrupted or failed build leaves nothing behind.

    ``replace=False`` (content-keyed caches): yields ``None`` when ``final`` already exists,
    and if another process renames first, its copy is kept. ``replace=True`` (datasets): an
    existing ``final`` is swapped out only once the new one is complete, so a failed run
    keeps the previous dataset.
    """
    final = Path(final)
    if final.exists() and not replace:
        yield None
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
    except KeyboardInterrupt as e:
        _remove_tree(tmp)
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(f"building {final.name} stopped") from None
    except BaseException:
        _remove_tree(tmp)
        raise
    if not replace:
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same directory first
            shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}-old-", dir=final.parent))
        os.rename(final, old / final.name)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_tree(tmp: Path) -> None:
    """Remove ``tmp`` for good: a worker thread may still be finishing a file in it when the
    error reaches us, so retry until it is gone (no file can appear once it is unlinked)."""
    for attempt in range(50):
        if not tmp.exists():
            return
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(0.01 * attempt)
