"""Every path qbt uses comes from here, so notebooks work from the repo root or ``notebooks/``."""
from __future__ import annotations

import os
from pathlib import Path

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
