"""Every workload notebook runs headless on the real S&P 500 (``source="sp500"``) and on a
user's CSV file, through papermill, as a researcher would point it at their own data.

In ``make test`` the notebooks run at their tiny parameter files (seconds each) with the
source swapped; with ``QBT_NOTEBOOK_DEFAULTS=1`` they run at their defaults otherwise
(minutes: what the issue asks of a release check; not in CI).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qbt_lib import data, paths

WORKLOADS = ["synth", "waves", "marketsim", "straddles", "walkforward"]
DEFAULTS = os.environ.get("QBT_NOTEBOOK_DEFAULTS") == "1"
# tiny-file parameters tied to the synthetic market's calendar: a real source's own range
# is taken from the data instead
DATE_PARAMS = {"walkforward": ("start", "end"), "straddles": ("start_year", "end_year"),
               "synth": ("splits",)}


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory) -> Path:
    """A vendor-style long CSV: Date/Ticker/Open/.../Adj Close/Volume plus an implied vol
    column, newest first (as many vendors export), three symbols over 2014-2020."""
    m = data.synthetic_market(["ACME", "GLOBEX", "INITECH"], n_bars=1650, seed=5,
                              start="2014-01-02", with_vol=True)
    long = pd.concat([f.assign(Ticker=s, **{"Adj Close": f["close"]}) for s, f in m.items()])
    long = long.reset_index().rename(columns={"date": "Date", "open": "Open", "high": "High",
                                              "low": "Low", "close": "Close",
                                              "volume": "Volume", "vol": "vol"})
    long = long.sort_values(["Date", "Ticker"], ascending=[False, True])
    p = tmp_path_factory.mktemp("user") / "prices.csv"
    long.to_csv(p, index=False, float_format="%.8g")
    return p


def _params(name: str, source: str, out: Path) -> dict:
    p = {} if DEFAULTS else yaml.safe_load((paths.PARAMS / name / "tiny.yaml").read_text())
    p = {k: v for k, v in (p or {}).items() if k not in DATE_PARAMS.get(name, ())}
    for k in ("symbols", "assets"):
        if k in p and not DEFAULTS:
            p[k] = 2 if source != "sp500" else None
    p.update(source=source, output_dir=str(out))
    return p


@pytest.mark.parametrize("source", ["sp500", "csv"])
@pytest.mark.parametrize("name", WORKLOADS)
def test_notebook_on_real_and_user_data(name, source, user_csv, tmp_path):
    pytest.importorskip("arch")
    import papermill as pm

    src = str(user_csv) if source == "csv" else "sp500"
    out = tmp_path / "out"
    os.environ["QBT_PROGRESS"] = "0"
    pm.execute_notebook(str(paths.NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / "run.ipynb"),
                        parameters=_params(name, src, out), kernel_name="qbt",
                        cwd=str(paths.NOTEBOOKS), progress_bar=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["workload"] == name
    nb = json.loads((tmp_path / "run.ipynb").read_text())
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
