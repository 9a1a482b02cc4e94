"""Bench JSONs read back: where they are looked for and which one a workload shows.

The report, the README block and the profiling notebook read bench JSONs (the schema of
:mod:`qbt_lib.bench`) from the folders of :func:`bench_dirs`, in order:

1. ``outputs/bench``: ``python -m qbt_lib.bench`` and GPU runs dropped in by hand;
2. ``benchmarks/gpu/<tag>/``: the committed GPU device runs (``python -m qbt_lib.bench.gpu
   --tag <tag>``, e.g. ``benchmarks/gpu/h200/``), so a clone shows them without a GPU;
3. ``outputs/profiling/bench``: the profiling notebook's runs.

A workload shows one CPU JSON (:func:`pick_primary`) and its GPU JSONs (:func:`has_gpu`,
one per file name: a run dropped into ``outputs/bench`` replaces the committed one of the
same name, :func:`unique_names`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .. import paths


def gpu_result_dirs(root: str | Path | None = None) -> list[Path]:
    """The committed GPU runs' folders, ``benchmarks/gpu/<tag>/``, by tag."""
    root = Path(root) if root is not None else paths.GPU_RESULTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json")))


def bench_dirs(outputs: Path | None = None) -> list[Path]:
    """Where bench JSONs are looked for, in order: ``outputs/bench``, the committed GPU runs
    (``benchmarks/gpu/<tag>/``), then ``outputs/profiling/bench``."""
    o = Path(outputs) if outputs is not None else paths.OUTPUTS
    return [o / "bench", *gpu_result_dirs(), o / "profiling" / "bench"]


def load_json(path: str | Path) -> dict | None:
    """A bench JSON with its ``_path``; None for a file that is not one."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (isinstance(d, dict) and "workload" in d and "cases" in d):
        return None
    d["_path"] = str(path)
    return d


def find_jsons(dirs: Iterable[str | Path | None]) -> list[dict]:
    """Every bench JSON in ``dirs`` (missing folders are skipped), deduplicated by path."""
    seen, out = set(), []
    for rank, d in enumerate(dirs):
        if d is None or not Path(d).is_dir():
            continue
        for p in sorted(Path(d).glob("*.json")):
            rp = str(p.resolve())
            if rp in seen:
                continue
            seen.add(rp)
            doc = load_json(p)
            if doc is not None:
                doc["_dir_rank"] = rank  # earlier folders are preferred (pick_primary)
                out.append(doc)
    return out


def load_results(bench_dir: str | Path | None = None) -> list[dict]:
    """Every bench JSON in ``bench_dir``, or in all of :func:`bench_dirs` (CPU runs, dropped-in
    and committed GPU runs, the profiling notebook's)."""
    return find_jsons([bench_dir] if bench_dir is not None else bench_dirs())


def has_gpu(doc: dict) -> bool:
    """A bench JSON made on a machine with a GPU (or holding GPU cases)."""
    return bool((doc.get("machine") or {}).get("gpu")) or any(
        c.get("device") == "gpu" for c in doc.get("cases", []))


def unique_names(docs: Iterable[dict]) -> list[dict]:
    """The first JSON of each file name (the earliest folder searched wins: a GPU run dropped
    into ``outputs/bench`` over the committed one of the same name)."""
    seen, out = set(), []
    for d in sorted(docs, key=lambda d: d.get("_dir_rank", 0)):
        name = Path(d.get("_path", "")).name
        if name and name in seen:
            continue
        seen.add(name)
        out.append(d)
    return out


def size_of(doc: dict) -> str:
    """The size a bench JSON was run at (``tiny``, ``quick``, ``full``): its ``size``; for a
    JSON from before sizes were recorded, its ``quick`` flag (true for every reduced size)."""
    return str(doc.get("size") or ("quick" if doc.get("quick") else "full"))


def pick_primary(docs: list[dict], workload: str) -> dict | None:
    """The CPU bench JSON to show for a workload: untagged before tagged, full before quick,
    from the first folder searched (``outputs/bench`` before the profiling notebook's), then
    newest; a GPU JSON only when there is nothing else."""
    mine = [d for d in docs if d.get("workload") == workload]
    if not mine:
        return None
    cpu = [d for d in mine if not has_gpu(d)] or mine
    return sorted(cpu, key=lambda d: (d.get("tag") is None, not d.get("quick", False),
                                      -d.get("_dir_rank", 0), str(d.get("created", ""))),
                  reverse=True)[0]


__all__ = ["gpu_result_dirs", "bench_dirs", "load_json", "find_jsons", "load_results",
           "has_gpu", "unique_names", "size_of", "pick_primary"]
