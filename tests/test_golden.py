"""Every golden notebook (tests/golden/*.ipynb, what nbval executes) still holds the cells of
its notebooks/ twin: same cell types and sources, in the same order, apart from the cell
papermill injects with the parameters."""
from __future__ import annotations

import pytest

from qbt_lib import paths

GOLDEN = sorted(paths.GOLDEN_DIR.glob("*.ipynb"))


def _cells(path):
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    return [(c.cell_type, c.source) for c in nb.cells
            if "injected-parameters" not in c.metadata.get("tags", [])]


def test_every_notebook_has_a_golden_twin():
    names = {p.stem for p in paths.NOTEBOOKS.glob("*.ipynb")}
    assert names == {p.stem for p in GOLDEN}, "run make golden"


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_golden_cells_match_the_notebook(golden):
    src = paths.NOTEBOOKS / golden.name
    assert src.exists(), f"{golden.name} has no notebooks/ twin"
    want, got = _cells(src), _cells(golden)
    for i, (w, g) in enumerate(zip(want, got)):
        assert w == g, (f"{golden.name}: cell {i} differs from notebooks/{golden.name} "
                        f"(run make golden):\n--- notebook\n{w[1][:400]}\n--- golden\n{g[1][:400]}")
    assert len(want) == len(got), f"{golden.name}: {len(got)} cells, notebook has {len(want)}"
