"""What synth returns: :class:`SampleSet` (samples in memory, from :func:`.api.generate`)
and :class:`RunResult` (the notebook's run, a :class:`qbt_lib.metrics.Result`).

``RunResult.headline()`` is a dict, not one line: the report's summary table reads its keys
(``throughput``, ``speedup_vs_reference``, ``parallel_efficiency``, ``gpu``) from
``metrics.json``; the speed-up and parallel-efficiency figures come from the before/after
table (:func:`qbt_lib.synth.before_after`, which stores it on the result).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..device import gpu_name
from ..metrics import Result
from .dataset import WriteResult
from .labels import key_classes
from .params import label_of
from .space import ACTIONS, DrawConfig, SampleSpace
from .store import SynthDataset
from .xp import SAMPLE_COLUMNS


# --------------------------------------------------------------------------- in memory
@dataclasses.dataclass
class SampleSet:
    """Samples in memory: columns (NumPy arrays; ``symbol`` codes into ``symbols``, ``date``
    int64 ns) and either the materialized ``ohlcv`` (5, n, L) or the normalized form:
    ``windows`` (W, 5, L), one row per distinct ``window_keys``, and each sample's
    ``window_row``."""
    columns: dict
    symbols: list[str]
    lookback: int
    ohlcv: np.ndarray | None = None
    windows: np.ndarray | None = None
    window_keys: np.ndarray | None = None
    window_row: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.columns["idx"])

    def samples(self) -> pd.DataFrame:
        """The samples table as a DataFrame (symbol categorical, date datetime64[ns])."""
        return samples_frame(self.columns, self.symbols)

    def materialized(self) -> np.ndarray:
        """The (5, n, L) float32 windows of every sample (gathered when normalized)."""
        if self.ohlcv is not None:
            return self.ohlcv
        return np.ascontiguousarray(
            np.take(self.windows, self.window_row, axis=0).transpose(1, 0, 2))


def samples_frame(cols: dict, symbols: list[str]) -> pd.DataFrame:
    """Samples columns (NumPy) as a DataFrame: symbol categorical, date datetime64[ns]."""
    return pd.DataFrame({
        "symbol": pd.Categorical.from_codes(np.asarray(cols["symbol"]), categories=symbols),
        "idx": cols["idx"], "date": np.asarray(cols["date"]).view("datetime64[ns]"),
        **{c: cols[c] for c in SAMPLE_COLUMNS[3:] if c in cols}})


# --------------------------------------------------------------------------- the notebook's run
@dataclasses.dataclass
class RunResult(Result):
    """The notebook's run: the dataset written (``write``), the sample space and draws it
    came from, and the one-off costs timed apart (market, warm-up). ``frame()`` is the
    summary table, ``metrics()`` what ``metrics.json`` holds, ``headline()`` the report's
    figures; ``before_after`` is set by :func:`qbt_lib.synth.before_after`."""
    workload = "synth"

    params: dict
    impl: str
    device: str
    space: SampleSpace
    cfg: DrawConfig
    write: WriteResult
    market_seconds: float
    warm_up_seconds: float = 0.0
    before_after: pd.DataFrame | None = dataclasses.field(default=None, repr=False)
    #: with ``splits``: each split's own result (in date order) and what each holds per symbol
    splits: dict | None = dataclasses.field(default=None, repr=False)
    split_table: pd.DataFrame | None = dataclasses.field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return self.write.seconds

    @property
    def samples_per_s(self) -> float:
        return self.write.n / self.write.seconds

    @property
    def path(self) -> Path:
        return self.write.path

    def dataset(self) -> SynthDataset:
        return SynthDataset(self.write.path)

    def summary(self) -> pd.DataFrame:
        """Deterministic summary statistics (exact counts; means rounded)."""
        w, sp = self.write, self.space
        counts = w.key_counts
        labels = np.asarray(sp.key_label)
        lab_mean = float(counts @ labels) / w.n
        lab_std = float(np.sqrt(max(0.0, float(counts @ (labels - lab_mean) ** 2) / w.n)))
        per_sym = np.bincount(np.asarray(sp.key_symbol), weights=counts,
                              minlength=len(sp.symbols))
        rows = [
            ("samples", f"{w.n:,}"),
            ("symbols", f"{len(sp.symbols)}"),
            ("bars (all symbols)", f"{sp.n_bars_total:,}"),
            ("valid (symbol, idx) pairs", f"{sp.n_keys:,}"),
            ("distinct windows drawn", f"{w.n_windows:,}"),
            ("samples per window", f"{w.n / max(1, w.n_windows):,.1f}"),
            ("samples per symbol (min .. max)",
             f"{int(per_sym.min()):,} .. {int(per_sym.max()):,}"),
            *[(f"action {a}", f"{int(c):,} ({c / w.n:.2%})")
              for a, c in zip(ACTIONS, w.action_counts)],
            ("equity mean", f"{w.equity_mean:,.0f}"),
            ("position mean", f"{w.position_mean:+.3f}"),
            ("forward_return mean", f"{lab_mean:+.2e}"),
            ("forward_return std", f"{lab_std:.3e}"),
        ]
        label = label_of(self.params)
        if label.has_column:  # the class balance, exact (per-key counts x per-key classes)
            cls = key_classes(sp, label, self.impl)
            per = np.bincount(cls.astype(np.int64) + 1, weights=counts, minlength=3)
            rows += [(f"label {v:+d} ({label.kind})", f"{int(c):,} ({c / w.n:.2%})")
                     for v, c in zip((-1, 0, 1), per)]
        return pd.DataFrame(rows, columns=["statistic", "value"]).set_index("statistic")

    def frame(self) -> pd.DataFrame:
        """The main table: :meth:`summary`."""
        return self.summary()

    def split_frame(self) -> pd.DataFrame | None:
        """With ``splits``: one row per split (date range asked, first and last bar used
        over its symbols, symbols, bars, bars embargoed, keys, samples, folder); else None."""
        if self.splits is None:
            return None
        t = self.split_table
        rows = []
        for s, r in self.splits.items():
            u = t[(t["split"] == s) & t["used"]]
            a, b = self.params["splits"][s]
            rows.append({"split": s, "start": a, "end": b,
                         "first_bar": u["first_bar"].min().date(),
                         "last_bar": u["last_bar"].max().date(), "symbols": len(u),
                         "bars": int(u["bars"].sum()),
                         "embargoed": int(t.loc[t["split"] == s, "embargoed"].sum()),
                         "keys": r.space.n_keys, "samples": r.write.n,
                         "path": r.write.path.name})
        return pd.DataFrame(rows).set_index("split")

    def label_histogram(self, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of forward_return over all samples, exact (per-key counts x labels)."""
        c = self.write.key_counts
        lab = np.asarray(self.space.key_label)
        used = c > 0
        return np.histogram(lab[used], bins=bins, weights=c[used])

    def headline(self) -> dict:
        """The report's summary strings (+ numeric ``wall_seconds``): throughput, the
        speed-ups over the reference and the parallel efficiency from the before/after table
        (``"n/a"`` until :func:`qbt_lib.synth.before_after` has run), the GPU used."""
        ba, w = self.before_after, self.write
        eff, speedup = "n/a", "n/a (no before/after table)"
        if ba is not None:
            mem = ba[ba.index.str.contains("in memory, n_jobs")]
            if len(mem) == 2 and mem["n_jobs"].iloc[1] > 1:
                jobs = int(mem["n_jobs"].iloc[1])
                gain = mem["samples_per_s"].iloc[1] / mem["samples_per_s"].iloc[0]
                eff = f"{gain / jobs:.0%} ({jobs} cores, in memory)"
            one = ba[ba.index.str.contains("in memory, n_jobs=1")]
            in_memory = one["speedup"].iloc[0] if len(one) else math.nan
            speedup = (f"{ba['speedup'].iloc[-1]:.0f}x end to end ({w.kind} on both sides), "
                       f"{in_memory:.0f}x in memory (materialized, one core both sides)")
        return {"throughput": f"{self.samples_per_s / 1e6:.2f}M samples/s ({w.kind}, "
                              f"{w.fmt}, n={w.n:,})",
                "speedup_vs_reference": speedup,
                "parallel_efficiency": eff,
                "gpu": (f"{self.impl} on {gpu_name()}" if self.device == "gpu"
                        else "none (CPU run)"),
                "wall_seconds": self.seconds}

    def metrics(self) -> dict:
        """``metrics.json``'s figures: the run's, its headline and (once timed) the
        before/after table."""
        w = self.write
        out = {"wall_seconds": w.seconds, "samples_per_s": self.samples_per_s,
               "impl": self.impl, "n_jobs": w.n_jobs, "backend": w.backend,
               "device": self.device, "kind": w.kind, "format": w.fmt,
               "n_windows": w.n_windows, "arrow_bytes": w.nbytes, "file_bytes": w.file_bytes,
               "market_seconds": self.market_seconds,
               "warm_up_seconds": self.warm_up_seconds,
               "client_peak_rss_mb": w.client_peak_rss_mb,
               **({"worker_peak_rss_mb": w.worker_peak_rss_mb} if w.backend == "dask" else {}),
               "headline": self.headline()}
        if self.splits is not None:
            out["splits"] = {s: {"n": r.write.n, "keys": r.space.n_keys,
                                 "wall_seconds": r.write.seconds, "path": str(r.write.path)}
                             for s, r in self.splits.items()}
            out["embargo"] = self.params["embargo"]
        if self.before_after is not None:
            out["before_after"] = self.before_after.reset_index().to_dict(orient="records")
        return out
