"""Portfolio results: the equal-weight portfolio of the assets' out-of-sample curves, buy-and-hold
of the same assets as the benchmark, the trade list and the curve metrics.

**Sleeves.** Each asset's stitched out-of-sample timeline (:mod:`.carry`: positions carried
across folds, a cost on every change) is a sleeve holding ``1/N`` of the capital at the
start; sleeves are not rebalanced, like buy-and-hold, so the portfolio's growth of 1 is the
mean of the sleeves' growths (a sleeve stays at its last value on dates it has no bar and at
1 before its first). The benchmark holds each asset long over the same bars, paying the
cost once to enter: the same sleeves with position +1.

**Curve metrics** of per-bar returns ``r`` (a sleeve's pnl; the portfolio's growth from bar
to bar), ``T`` bars, growth ``G = prod(1 + r)``: total return ``G - 1``; annual return
``G^(252/T) - 1``; annual vol ``std(r, ddof=1) * sqrt(252)``; Sharpe ``mean / std *
sqrt(252)`` (0 when the std is 0); Sortino ``mean / sqrt(mean(min(r, 0)^2)) * sqrt(252)``
(NaN without a losing bar); max drawdown ``min(G_t / peak_t - 1)`` with the start (1) a peak;
max drawdown duration ``max_drawdown_bars``: the longest run of bars under a previous peak
(recovering means reaching it again; a drawdown still open at the end counts to the end);
Calmar ``annual return / |max drawdown|`` (NaN without a drawdown). Besides: ``turnover``
(sum of ``|position change|``, the first entry and every exit included; the portfolio's is
the sleeves' mean), ``trades`` (rows of the trade list) and ``exposure`` (share of bars in
the market).

**Trades**: each maximal run of one non-zero position on an asset's timeline. ``entry_date``
is the bar at whose close it was entered (the bar before the first bar it earns),
``exit_date`` the bar at whose close it was left (an open trade: the last bar);
``gross_return = prod(1 + position * ret) - 1`` over its bars (``exit/entry - 1`` for a
long) and ``return`` nets the cost ``c = cost_bps / 1e4`` of its entry and, when closed, of
its exit: ``(1 + gross) (1 - c)^(1 + closed) - 1``.

Each computation has a pandas reference (``*_reference``, what ``impl="reference"`` uses)
and a fast one over NumPy/Numba (``*_fast``, the kernels in :mod:`.nb`), tested against each other.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .nb import N_CURVE, curve_stats_nb, run_growth_nb, runs_nb

BARS_PER_YEAR = 252
CURVE_METRICS = ("total_return", "annual_return", "annual_vol", "sharpe", "sortino", "calmar",
                 "max_drawdown", "max_drawdown_bars")
METRICS = (*CURVE_METRICS, "turnover", "trades", "exposure", "bars")
TRADE_COLUMNS = ("asset", "direction", "entry_date", "exit_date", "bars", "entry_price",
                 "exit_price", "gross_return", "return", "status")
assert len(CURVE_METRICS) == N_CURVE


# --------------------------------------------------------------------------- curve metrics
def curve_metrics_reference(r: pd.Series) -> dict:
    """The curve metrics of per-bar returns, with pandas."""
    r = pd.Series(r, dtype=float).reset_index(drop=True)
    T = len(r)
    equity = (1 + r).cumprod()
    growth = float(equity.iloc[-1])
    peak = equity.cummax().clip(lower=1.0)
    under = equity < peak
    runs = under.groupby((~under).cumsum()).sum()       # bars under water per stretch
    mdd = float(min((equity / peak - 1).min(), 0.0))
    sd = float(r.std())
    dsd = float(np.sqrt((r.clip(upper=0) ** 2).mean()))
    ann = growth ** (BARS_PER_YEAR / T) - 1 if growth > 0 else -1.0
    return {"total_return": growth - 1, "annual_return": ann,
            "annual_vol": sd * np.sqrt(BARS_PER_YEAR),
            "sharpe": float(r.mean()) / sd * np.sqrt(BARS_PER_YEAR) if sd > 0 else 0.0,
            "sortino": float(r.mean()) / dsd * np.sqrt(BARS_PER_YEAR) if dsd > 0 else np.nan,
            "calmar": ann / -mdd if mdd < 0 else np.nan, "max_drawdown": mdd,
            "max_drawdown_bars": float(runs.max()) if len(runs) else 0.0}


def curve_metrics_fast(r: np.ndarray) -> dict:
    """The curve metrics of per-bar returns, one pass of :func:`curve_stats_nb`."""
    out = curve_stats_nb(np.ascontiguousarray(r, dtype=np.float64), np.empty(N_CURVE))
    return dict(zip(CURVE_METRICS, out.tolist()))


# --------------------------------------------------------------------------- trades
def _trade_rows(asset, pos, close_before, close, dates_before, dates, starts, ends, growth,
                cost) -> dict[str, np.ndarray]:
    """The trade list of one asset from its runs (``starts``/``ends``: inclusive bar indices
    into the sleeve; ``growth``: gross growth of each run)."""
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    g = np.asarray(growth, dtype=np.float64)
    p = np.asarray(pos, dtype=np.float64)[s]
    closed = e < len(pos) - 1
    c = cost * np.abs(p)
    return {"asset": np.full(len(s), asset, dtype=object),
            "direction": np.where(p > 0, "long", "short").astype(object),
            "entry_date": np.asarray(dates_before[s]), "exit_date": np.asarray(dates[e]),
            "bars": e - s + 1, "entry_price": close_before[s], "exit_price": close[e],
            "gross_return": g - 1, "return": g * (1 - c) ** (1 + closed) - 1,
            "status": np.where(closed, "closed", "open").astype(object)}


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(columns, columns=list(TRADE_COLUMNS))


def _before(frame: pd.DataFrame, sleeve: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
    """The date and close of the bar before each bar of the sleeve (the decision bar)."""
    i = frame.index.get_indexer(sleeve.index) - 1
    return frame.index[i], frame["close"].to_numpy(np.float64)[i]


def trades_reference(asset: str, sleeve: pd.DataFrame, frame: pd.DataFrame,
                     cost: float, as_frame: bool = True):
    """An asset's trades with pandas: runs found by grouping equal consecutive positions
    (``as_frame=False``: the columns as arrays)."""
    pos = sleeve["position"]
    run_id = (pos != pos.shift()).cumsum()
    dates_before, close_before = _before(frame, sleeve)
    close = frame["close"].reindex(sleeve.index).to_numpy(np.float64)
    starts, ends, growth = [], [], []
    for _, idx in pos.groupby(run_id).groups.items():
        i = sleeve.index.get_indexer(idx)
        if pos.iloc[i[0]] == 0:
            continue
        starts.append(int(i[0]))
        ends.append(int(i[-1]))
        growth.append(float((1 + pos.iloc[i] * sleeve["ret"].iloc[i]).prod()))
    cols = _trade_rows(asset, pos.to_numpy(), close_before, close, dates_before, sleeve.index,
                       starts, ends, growth, cost)
    return _frame(cols) if as_frame else cols


def trades_fast(asset: str, sleeve: pd.DataFrame, frame: pd.DataFrame,
                cost: float, as_frame: bool = True):
    """An asset's trades from the Numba run finder (``as_frame=False``: the columns as
    arrays)."""
    pos = np.ascontiguousarray(sleeve["position"].to_numpy(np.float64))
    ret = np.ascontiguousarray(sleeve["ret"].to_numpy(np.float64))
    starts = np.empty(len(pos), np.int64)
    ends = np.empty(len(pos), np.int64)
    n = runs_nb(pos, starts, ends)
    growth = run_growth_nb(pos, ret, starts, ends, n, np.empty(n))
    dates_before, close_before = _before(frame, sleeve)
    close = frame["close"].to_numpy(np.float64)[frame.index.get_indexer(sleeve.index)]
    cols = _trade_rows(asset, pos, close_before, close, dates_before, sleeve.index,
                       starts[:n], ends[:n], growth, cost)
    return _frame(cols) if as_frame else cols


# --------------------------------------------------------------------------- sleeves
def _growth_reference(pnl: dict[str, pd.Series]) -> pd.DataFrame:
    curves = {a: (1 + s).cumprod() for a, s in pnl.items()}
    return pd.DataFrame(curves).sort_index().ffill().fillna(1.0)


def _growth_fast(pnl: dict[str, pd.Series]) -> pd.DataFrame:
    dates = pnl[next(iter(pnl))].index
    for s in list(pnl.values())[1:]:
        if not s.index.equals(dates):
            dates = dates.union(s.index)
    G = np.empty((len(dates), len(pnl)))
    for j, s in enumerate(pnl.values()):
        g = np.cumprod(1.0 + s.to_numpy(np.float64))
        at = dates.get_indexer(s.index)
        col = np.full(len(dates), np.nan)
        col[at] = g
        # forward fill: the index of the last bar at or before each date
        last = np.maximum.accumulate(np.where(np.isnan(col), -1, np.arange(len(dates))))
        G[:, j] = np.where(last >= 0, col[np.maximum(last, 0)], 1.0)
    return pd.DataFrame(G, index=dates, columns=list(pnl))


def _portfolio_returns(growth: pd.DataFrame) -> pd.DataFrame:
    return growth / growth.shift(1, fill_value=1.0) - 1


def _benchmark_pnl(sleeve: pd.DataFrame, cost: float) -> pd.Series:
    bh = sleeve["ret"].copy()
    bh.iloc[0] -= cost
    return bh


# --------------------------------------------------------------------------- the result
@dataclasses.dataclass
class Portfolio:
    """``equity``: growth of 1 of the equal-weight portfolio (``strategy``) and of buy-and-hold
    of the same assets (``buy_and_hold``); ``returns``: their per-bar returns; ``metrics``: one
    row each (:data:`METRICS`); ``assets``: the same metrics per asset's sleeve; ``trades``:
    the trade list; ``sleeves``: each asset's stitched timeline (date, asset, position, ret,
    pnl, equity)."""
    equity: pd.DataFrame
    returns: pd.DataFrame
    metrics: pd.DataFrame
    assets: pd.DataFrame
    trades: pd.DataFrame
    sleeves: pd.DataFrame

    def drawdown(self) -> pd.DataFrame:
        """Each curve's drawdown from its running peak (the start, 1, a peak)."""
        return self.equity / self.equity.cummax().clip(lower=1.0) - 1

    def plot(self, title: str = "equal-weight portfolio, out of sample", ax=None):
        """Equity of the strategy against buy-and-hold, and the drawdowns below it."""
        import matplotlib.pyplot as plt
        if ax is None:
            fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
        else:
            ax2 = None
        self.equity.plot(ax=ax, lw=1.2, title=title)
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_ylabel("growth of 1")
        if ax2 is not None:
            dd = self.drawdown()
            for c in dd.columns:
                ax2.fill_between(dd.index, dd[c].to_numpy(), 0.0, alpha=0.35, label=c, step="pre")
            ax2.set_ylabel("drawdown")
            ax2.legend(loc="lower left", fontsize=8)
        return ax


def build(stitched: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame], cost: float,
          impl: str = "fast") -> Portfolio:
    """The portfolio results from each asset's stitched timeline (``impl``: ``"reference"``
    uses the pandas implementations, anything else the fast ones)."""
    ref = impl == "reference"
    metrics_of = curve_metrics_reference if ref else curve_metrics_fast
    trades_of = trades_reference if ref else trades_fast
    growth_of = _growth_reference if ref else _growth_fast
    pnl = {a: s["pnl"] for a, s in stitched.items()}
    bench = {a: _benchmark_pnl(s, cost) for a, s in stitched.items()}
    rows, trades = {}, []
    for a, s in stitched.items():
        pos = s["position"].to_numpy(np.float64)
        t = trades_of(a, s, frames[a], cost, as_frame=False)
        trades.append(t)
        rows[a] = {**metrics_of(s["pnl"].to_numpy(np.float64) if not ref else s["pnl"]),
                   "turnover": float(np.abs(np.diff(pos, prepend=0.0)).sum()),
                   "trades": float(len(t["bars"])), "exposure": float(np.mean(pos != 0)),
                   "bars": float(len(s))}
    ints = {c: np.int64 for c in ("max_drawdown_bars", "trades", "bars")}
    assets = pd.DataFrame.from_dict(rows, orient="index", columns=list(METRICS)).astype(ints)
    g_strategy = growth_of(pnl).mean(axis=1)
    g_bench = growth_of(bench).mean(axis=1)
    equity = pd.DataFrame({"strategy": g_strategy, "buy_and_hold": g_bench})
    returns = _portfolio_returns(equity)
    n = len(stitched)
    table = {}
    for name, extra in (("strategy", {"turnover": float(assets["turnover"].mean()),
                                      "trades": float(assets["trades"].sum()),
                                      "exposure": float(assets["exposure"].mean())}),
                        ("buy_and_hold", {"turnover": 1.0, "trades": float(n),
                                          "exposure": 1.0})):
        r = returns[name]
        table[name] = {**metrics_of(r if ref else r.to_numpy(np.float64)), **extra,
                       "bars": float(len(r))}
    metrics = pd.DataFrame.from_dict(table, orient="index", columns=list(METRICS)).astype(ints)
    # the trade list of every asset, by entry date (assets in the run's order on a tie)
    cols = {c: np.concatenate([t[c] for t in trades]) for c in TRADE_COLUMNS}
    rank = np.concatenate([np.full(len(t["bars"]), i) for i, t in enumerate(trades)])
    order = np.lexsort((rank, cols["entry_date"].astype("datetime64[ns]").astype(np.int64)))
    trade_frame = _frame({c: v[order] for c, v in cols.items()})
    sleeves = pd.DataFrame({
        "date": np.concatenate([s.index.to_numpy() for s in stitched.values()]),
        **{c: np.concatenate([s[c].to_numpy(np.float64) for s in stitched.values()])
           for c in ("position", "ret", "pnl")},
        "asset": np.concatenate([np.full(len(s), a, dtype=object)
                                 for a, s in stitched.items()]),
        "equity": np.concatenate([np.cumprod(1 + s["pnl"].to_numpy(np.float64))
                                  for s in stitched.values()])})
    return Portfolio(equity=equity, returns=returns, metrics=metrics, assets=assets,
                     trades=trade_frame, sleeves=sleeves)
