"""Running the notebooks: each at its default parameters into ``outputs/<name>/`` (what the
report shows), or at ``tiny`` into ``tests/golden/`` (what nbval compares), via papermill."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterable

from .. import paths
from ..bench import WORKLOADS
from ..fmt import rel

NOTEBOOKS = (*WORKLOADS, "profiling")
KERNEL = "qbt"


def available_notebooks(names: Iterable[str] = NOTEBOOKS) -> list[str]:
    return [n for n in names if (paths.NOTEBOOKS / f"{n}.ipynb").exists()]


def default_size(name: str) -> str:
    """``quick`` for the profiling notebook (when it has one), else ``small``."""
    if name == "profiling" and (paths.PARAMS / name / "quick.yaml").exists():
        return "quick"
    return "small"


def execute(name: str, size: str = "small", out: Path | None = None,
            extra: dict | None = None) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with ``params/<name>/<size>.yaml`` via papermill."""
    import papermill as pm
    import yaml

    src = paths.NOTEBOOKS / f"{name}.ipynb"
    pfile = paths.PARAMS / name / f"{size}.yaml"
    params = yaml.safe_load(pfile.read_text()) if pfile.exists() else {}
    params = {**(params or {}), **(extra or {})}
    out = out or paths.OUTPUTS / name / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    print(f"[{name}] executing at {size} ({params}) -> {rel(out)}", flush=True)
    # headless: no progress bars in the saved notebook (the kernel inherits the environment)
    os.environ["QBT_PROGRESS"] = "0"
    pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=KERNEL,
                        cwd=str(paths.NOTEBOOKS), progress_bar=False)
    print(f"[{name}] done in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def run_notebooks(names: Iterable[str], size: str | None = None) -> dict[str, str]:
    """Execute each notebook; a failing one is reported and the others still run (its
    partly executed copy, with the error, is what the report then shows)."""
    status = {}
    for n in names:
        try:
            execute(n, size or default_size(n))
            status[n] = "ok"
        except Exception as e:  # papermill raises PapermillExecutionError with the cell
            msg = str(e).strip().splitlines()
            print(f"[{n}] FAILED: {msg[-1] if msg else type(e).__name__}", file=sys.stderr,
                  flush=True)
            status[n] = "failed"
    return status



def golden(names: Iterable[str]) -> list[Path]:
    """Execute each notebook at ``params/<name>/tiny.yaml`` into ``tests/golden/<name>.ipynb``
    (the notebooks nbval compares)."""
    paths.GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    return [execute(n, "tiny", out=paths.GOLDEN_DIR / f"{n}.ipynb") for n in names]
