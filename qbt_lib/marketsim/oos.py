"""Out-of-sample selection and tomorrow's signal.

The seed picks a symbol's strategy by its mean return over the last ``simulations`` windows
and scores maxdiff with offsets tuned on the very window it is scored on: an in-sample
figure. The walk here trades the pick the way a daily process would:

* **The walk.** For each of the last ``oos_days`` bars ``d`` of the data, the strategy used
  on ``d`` is the seed's pick from the ``simulations`` windows that end before ``d`` (their
  last traded day is ``d - 1`` or earlier), and maxdiff trades ``d`` with the offsets fitted
  on the window ending at ``d - 1``; the position is that strategy's rule applied to the
  forecast of ``d`` (made from the bars before ``d``). Every strategy is also traded through
  the same days on its own ("fixed"), and buy-and-hold is the benchmark. Fees are charged
  on every change of position along the walk (it starts flat), and the days are scored with
  the windows' metric code plus the max drawdown. An equal-weight portfolio (the symbols'
  daily net returns averaged per date: rebalanced daily, no rebalancing cost) of each curve
  is the portfolio result.
* **Tomorrow.** The same rule applied to the bar after the last one: the pick from the
  ``simulations`` windows ending at the last bar, the forecast of the next bar from the last
  ``context`` returns, maxdiff's offsets from the window ending at the last bar. The position
  (and, for the limit-order strategies, the entry and take-profit prices) is the order to
  place for the next session.

Both come from one *extended* run of the same engine: the data with one placeholder (NaN)
bar appended after the last bar and ``simulations + oos_days`` simulations counted back from
the placeholder, so simulation ``i`` is "the run on the morning of the bar ``i`` bars before
the placeholder": its forecast of its last window day is the next-day forecast of that bar,
its window ends the day before. The placeholder is never read (a forecast uses only the
bars before its day; the untraded last day of a window is not scored), which the tests check
by changing it. The seed's analysis itself is unchanged: its in-sample ranking stays as it
was (same numbers) and is labelled in-sample. The extended run's draws are keyed by
simulation counted from the placeholder, so a day's forecast there is a different bootstrap
draw than in the seed's run.

Cost: the extended run is the seed's analysis with ``simulations + oos_days`` simulations
(linear in them), plus the walk (milliseconds per symbol).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import oos_nb
from .enums import METRICS, SHARPE_MIN_STD, STRATEGY_ID
from .reference import _sign
from .user import UserStrategy, positions

PICK = "pick"
WALK_METRICS = METRICS + ("max_drawdown",)


def extension_bars(context: int, simulations: int, eval_days: int, oos_days: int) -> int:
    """Bars of data the extended run reads: ``context + simulations + oos_days +
    eval_days - 1`` (plus the placeholder it appends)."""
    return context + simulations + oos_days + eval_days - 1


def with_placeholder(prices: np.ndarray) -> np.ndarray:
    """``(3, n)`` close/high/low -> ``(3, n + 1)`` with a NaN bar after the last one."""
    out = np.empty((prices.shape[0], prices.shape[1] + 1))
    out[:, :-1] = prices
    out[:, -1] = np.nan
    return out


def placeholder_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a NaN row after its last bar (the reference's view of the extension)."""
    idx = df.index.append(pd.DatetimeIndex([df.index[-1] + pd.Timedelta(days=1)]))
    return df.reindex(idx)


def extended_frames(frames: Mapping[str, pd.DataFrame], context: int, simulations: int,
                    eval_days: int, oos_days: int) -> dict[str, pd.DataFrame]:
    """Each symbol's last :func:`extension_bars` bars with the placeholder appended; a
    ``ValueError`` names a symbol whose history is too short."""
    need = extension_bars(context, simulations, eval_days, oos_days)
    out = {}
    for sym, df in frames.items():
        if len(df) < need:
            raise ValueError(f"{sym}: history too short for oos_days={oos_days}: {len(df)} "
                             f"bars, needs context + simulations + oos_days + eval_days - 1 "
                             f"= {need}")
        out[sym] = placeholder_frame(df.iloc[-need:])
    return out


# --------------------------------------------------------------------------- one symbol
def _previous_call(point, actual, i: int, long_only: bool) -> tuple[int, float]:
    """Direction call and close return of the next-day of simulation ``i`` (``0, 0.0``
    when there is no such simulation)."""
    if i >= point.shape[0]:
        return 0, 0.0
    E = point.shape[1]
    call = _sign(float(point[i, E - 1, 0]))
    return (0 if long_only and call < 0 else call), float(actual[i, E - 1, 0])


def walk_symbol(arr: dict, *, strategies: Sequence[str], user: Sequence[UserStrategy],
                lookback: int, days: int, fee: float, ann: float, long_only: bool) -> dict:
    """The walk of one symbol over the arrays of its extended run (fast path).

    ``arr``: ``point/lo/hi/actual (G, E, 3)``, ``metrics (G, K, 5)``, ``mult (G, 2)`` with
    ``G = lookback + days`` simulations counted back from the placeholder; ``strategies``:
    the ``K`` names in selection order (built-ins, then ``user``'s). Walk position ``w``
    (``0 .. days``; ``days`` is the placeholder, i.e. tomorrow) uses simulation
    ``days - w``. Returns ``pick (days+1,)``, ``score (days+1, K)``, the curves'
    ``pos``/``net (C, days)`` and ``metrics (C, 6)`` (curves: the pick, each strategy, and
    buy_hold when it is not among them), and tomorrow's inputs.
    """
    point, actual, mult = arr["point"], arr["actual"], arr["mult"]
    G, E = point.shape[:2]
    N, D = int(lookback), int(days)
    if G != N + D:
        raise ValueError(f"the extended run has {G} simulations, expected {N + D}")
    K = len(strategies)
    if arr["metrics"].shape[1] != K:
        raise ValueError(f"the extended run scored {arr['metrics'].shape[1]} strategies, "
                         f"expected {K}")
    sims = D - np.arange(D + 1)
    fc = np.ascontiguousarray(point[sims, E - 1])
    act = np.ascontiguousarray(actual[sims, E - 1])
    band = np.ascontiguousarray(arr["hi"][sims, E - 1] - arr["lo"][sims, E - 1])
    mw = np.ascontiguousarray(mult[sims])
    by_sim = np.empty((D + 1, K))
    oos_nb.rolling_mean_nb(np.ascontiguousarray(arr["metrics"][:, :, 0]), N, by_sim)
    score = by_sim[::-1].copy()  # row w: simulations D - w .. D - w + N - 1
    pick = np.argmax(score, axis=1)  # first max: ties go to the earlier strategy
    names = list(strategies) + ([] if "buy_hold" in strategies else ["buy_hold"])
    C = len(names)
    pos = np.empty((C, D), dtype=np.int8)
    gross = np.empty((C, D))
    call, r_prev = _previous_call(point, actual, D + 1, long_only)
    users = {s.name: s for s in user}
    rows = [a for a, n in enumerate(names) if n not in users]
    if rows:
        sids = np.array([STRATEGY_ID[names[a]] for a in rows], dtype=np.int64)
        pb = np.empty((len(rows), D), dtype=np.int8)
        gb = np.empty((len(rows), D))
        oos_nb.walk_builtin_nb(sids, fc[:D], act[:D], mw[:D], call, r_prev, bool(long_only),
                               pb, gb)
        pos[rows], gross[rows] = pb, gb
    next_user = {}
    for a, n in enumerate(names):
        if n in users:
            p = positions(users[n], fc, band, act, long_only, "in the out-of-sample walk")
            pos[a], gross[a] = p[:D], p[:D] * act[:D, 0]
            next_user[n] = int(p[D])
    cols = np.arange(D)
    curves_pos = np.concatenate([pos[pick[:D], cols][None], pos])
    curves_gross = np.concatenate([gross[pick[:D], cols][None], gross])
    net = np.empty((C + 1, D))
    oos_nb.curves_net_nb(curves_pos, curves_gross, float(fee), net)
    metrics = np.full((C + 1, len(WALK_METRICS)), np.nan)
    if D:
        oos_nb.curves_metrics_nb(curves_pos, net, float(ann), SHARPE_MIN_STD, metrics)
    # the call on the last bar (walk day D - 1 when there is a walk): simulation 1's
    yesterday = _previous_call(point, actual, 1, long_only)
    return {"pick": pick, "score": score, "pos": curves_pos, "net": net, "metrics": metrics,
            "curves": [PICK] + names, "fc": fc, "band": band, "act": act, "mult": mw,
            "prev_wrong_next": yesterday[0] * yesterday[1] < 0.0, "next_user": next_user}


# --------------------------------------------------------------------------- tomorrow
def next_order(strategy: str, c: float, h: float, l: float, long_only: bool,
               prev_wrong: bool = False, m_h: float = 0.0, m_l: float = 0.0
               ) -> tuple[int, str, float, float]:
    """The order a built-in strategy places for the next session from its forecast:
    ``(position, entry, entry_level, take_profit_level)``, levels as returns vs the last
    close. ``entry="close"``: hold the position from the last close to the session's close
    (``entry_level`` 0); ``"limit"``: enter only if the session trades through
    ``entry_level`` (highlow, maxdiff). ``take_profit_level``: exit there if reached, else at
    the close (NaN: at the close). Mirrors ``nb.strategy_day_nb`` (tested)."""
    nan = math.nan
    s = _sign(c)
    if strategy in ("simple", "unprofit_shutdown"):
        p = 0 if (long_only and s < 0) or (strategy == "unprofit_shutdown" and prev_wrong) else s
        return p, "close", 0.0, nan
    if strategy == "all_signals":
        p = 1 if (c > 0 and h > 0 and l > 0) else (-1 if (c < 0 and h < 0 and l < 0) else 0)
        return (0 if long_only and p < 0 else p), "close", 0.0, nan
    if strategy == "buy_hold":
        return 1, "close", 0.0, nan
    if strategy == "entry_takeprofit":
        if c > 0:
            return 1, "close", 0.0, h
        if c < 0 and not long_only:
            return -1, "close", 0.0, l
        return 0, "close", 0.0, nan
    if strategy == "highlow":
        if c > 0 and 1.0 + l > 0.0:
            return 1, "limit", l, nan
        if c < 0 and not long_only and 1.0 + h > 0.0:
            return -1, "limit", h, nan
        return 0, "close", 0.0, nan
    if strategy == "maxdiff":
        if abs(h) > abs(l):
            e = l + m_l
            return (1, "limit", e, h + m_h) if 1.0 + e > 0.0 else (0, "close", 0.0, nan)
        if long_only:
            return 0, "close", 0.0, nan
        e = h + m_h
        return (-1, "limit", e, l + m_l) if 1.0 + e > 0.0 else (0, "close", 0.0, nan)
    raise ValueError(f"unknown strategy {strategy!r}")


def next_session_table(symbols: Sequence[str], walks: Sequence[dict], strategies: Sequence[str],
                       last_bars: Sequence[Any], last_close: Sequence[float],
                       long_only: Sequence[bool]) -> pd.DataFrame:
    """Per symbol: tomorrow's pick and the order its strategy places for the next session."""
    rows = []
    for sym, wk, last, px, lo_only in zip(symbols, walks, last_bars, last_close, long_only):
        a = int(wk["pick"][-1])
        name = strategies[a]
        c, h, l = (float(v) for v in wk["fc"][-1])
        m_h, m_l = (float(v) for v in wk["mult"][-1])
        if name in wk["next_user"]:
            p, entry, lev, tp = wk["next_user"][name], "close", 0.0, math.nan
        else:
            p, entry, lev, tp = next_order(name, c, h, l, bool(lo_only),
                                           bool(wk["prev_wrong_next"]), m_h, m_l)
        rows.append({"symbol": sym, "after": last, "strategy": name,
                     "score": float(wk["score"][-1, a]), "position": p, "entry": entry,
                     "entry_price": px * (1.0 + lev) if p else math.nan,
                     "take_profit_price": px * (1.0 + tp) if p and not math.isnan(tp)
                     else math.nan,
                     "last_close": px, "forecast_close": c, "forecast_high": h,
                     "forecast_low": l, "band_close": float(wk["band"][-1, 0]),
                     "m_high": m_h if name == "maxdiff" else math.nan,
                     "m_low": m_l if name == "maxdiff" else math.nan})
    return pd.DataFrame(rows).set_index("symbol")


# --------------------------------------------------------------------------- tables
@dataclass
class OOSResult:
    """The walk of every symbol: daily returns, equity curves and metrics per curve
    (``"pick"``: trade the pick; each strategy fixed; ``buy_hold`` is the benchmark), per
    symbol and for the equal-weight portfolio, and tomorrow's orders (``next_session``)."""
    symbols: list
    strategies: list
    curves: list
    lookback: int
    days: int
    dates: list = field(repr=False)       # per symbol: the walk's dates
    walks: list = field(repr=False)       # per symbol: walk_symbol's arrays
    crypto: list = field(repr=False)
    next_session: pd.DataFrame | None = None

    @functools.cached_property
    def daily(self) -> pd.DataFrame:
        """Long table: symbol, date, curve, the strategy traded that day, position, net."""
        C, D = len(self.curves), self.days
        parts = []
        for s, (sym, wk, dates) in enumerate(zip(self.symbols, self.walks, self.dates)):
            traded = np.vstack([wk["pick"][:D][None], np.arange(C - 1)[:, None]
                                .repeat(D, axis=1)])  # index into self.curves[1:]
            parts.append(pd.DataFrame({
                "symbol": np.full(C * D, s), "date": np.tile(np.asarray(dates), C),
                "curve": np.repeat(np.arange(C), D), "strategy": traded.ravel(),
                "position": wk["pos"].ravel(), "net": wk["net"].ravel()}))
        df = pd.concat(parts, ignore_index=True)
        df["symbol"] = pd.Categorical.from_codes(df["symbol"], categories=self.symbols)
        df["curve"] = pd.Categorical.from_codes(df["curve"], categories=self.curves)
        df["strategy"] = pd.Categorical.from_codes(df["strategy"], categories=self.curves[1:])
        return df

    def returns(self, curve: str = PICK) -> pd.DataFrame:
        """date x symbol net daily returns of one curve."""
        d = self.daily[self.daily["curve"] == curve]
        return d.pivot(index="date", columns="symbol", values="net")[self.symbols]

    @functools.cached_property
    def portfolio(self) -> pd.DataFrame:
        """date x curve: the equal-weight portfolio's daily net return (the mean over the
        symbols with a bar that day)."""
        d = self.daily.pivot_table(index="date", columns="curve", values="net", aggfunc="mean",
                                   observed=True)
        return d[self.curves]

    def equity(self, symbol: str | None = None) -> pd.DataFrame:
        """date x curve growth of 1 (``symbol=None``: the portfolio)."""
        r = self.portfolio if symbol is None else self.daily[self.daily["symbol"] == symbol] \
            .pivot(index="date", columns="curve", values="net")[self.curves]
        return (1.0 + r).cumprod()

    @functools.cached_property
    def picks(self) -> pd.DataFrame:
        """date x symbol: the strategy traded by the pick on each walk day."""
        d = self.daily[self.daily["curve"] == PICK]
        return d.pivot(index="date", columns="symbol", values="strategy")[self.symbols]

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """Per (symbol | "portfolio", curve): total return, mean daily return, Sharpe, hit
        rate, position changes, max drawdown over the walk; ``role``: pick, fixed or
        benchmark (buy_hold)."""
        rows = []
        for sym, wk in zip(self.symbols, self.walks):
            for c, curve in enumerate(self.curves):
                rows.append({"symbol": sym, "curve": curve,
                             **dict(zip(WALK_METRICS, wk["metrics"][c]))})
        rows += self._portfolio_rows()
        df = pd.DataFrame(rows)
        df["role"] = np.where(df["curve"] == PICK, "pick",
                              np.where(df["curve"] == "buy_hold", "benchmark", "fixed"))
        return df.set_index(["symbol", "curve"])

    def _portfolio_rows(self) -> list[dict]:
        if not self.days:
            return []
        ann = math.sqrt(365.0 if all(self.crypto) else 252.0)
        port = self.portfolio
        held = (self.daily.assign(held=self.daily["position"] != 0)
                .pivot_table(index="date", columns="curve", values="held", aggfunc="max",
                             observed=True)[self.curves])
        pos = np.ascontiguousarray(held.to_numpy(dtype=np.int8).T)
        net = np.ascontiguousarray(port.to_numpy().T)
        out = np.empty((len(self.curves), len(WALK_METRICS)))
        oos_nb.curves_metrics_nb(pos, net, ann, SHARPE_MIN_STD, out)
        trades = np.sum([wk["metrics"][:, 4] for wk in self.walks], axis=0)
        rows = []
        for c, curve in enumerate(self.curves):
            m = dict(zip(WALK_METRICS, out[c]))
            m["trades"] = float(trades[c])  # every symbol's position changes
            rows.append({"symbol": "portfolio", "curve": curve, **m})
        return rows

    def summary(self) -> pd.DataFrame:
        """Per curve: the portfolio's figures over the walk and the symbols' mean."""
        m = self.metrics
        port = m.xs("portfolio", level="symbol")[list(WALK_METRICS) + ["role"]]
        sym = m.drop(index="portfolio", level="symbol")
        mean = sym.groupby(level="curve", sort=False)[list(WALK_METRICS)].mean()
        out = port.join(mean.add_prefix("symbol_mean_"))
        return out.loc[self.curves]

    def compare(self, in_sample: pd.DataFrame, picks: pd.DataFrame) -> pd.DataFrame:
        """Per strategy (and the pick): in-sample figures (the seed's table: windows scored
        on the days they were tuned on) beside the walk's, in the same units (mean daily net
        return, Sharpe), and how often each was picked in-sample and out of sample."""
        walk = self.metrics.drop(index="portfolio", level="symbol")
        oos = walk.groupby(level="curve", sort=False)[["mean_return", "sharpe",
                                                      "total_return"]].mean()
        ins = in_sample.groupby("strategy", observed=True)[["mean_return", "sharpe",
                                                            "total_return"]].mean()
        ins_pick = picks[["mean_return", "sharpe", "total_return"]].mean()
        rows = []
        chosen = self.picks.stack().value_counts() / max(self.picks.size, 1)
        for curve in self.curves:
            if curve == PICK:
                i = ins_pick
                n_pick, share = len(picks), 1.0
            elif curve in ins.index:
                i = ins.loc[curve]
                n_pick = int((picks["strategy"] == curve).sum())
                share = float(chosen.get(curve, 0.0))
            else:  # the benchmark, when buy_hold is not among the strategies
                i = pd.Series(np.nan, index=["mean_return", "sharpe", "total_return"])
                n_pick, share = 0, 0.0
            rows.append({"curve": curve,
                         "in_sample_mean_daily": i["mean_return"],
                         "oos_mean_daily": oos.loc[curve, "mean_return"],
                         "in_sample_sharpe": i["sharpe"], "oos_sharpe": oos.loc[curve, "sharpe"],
                         "in_sample_window_return": i["total_return"],
                         "oos_walk_return": oos.loc[curve, "total_return"],
                         "in_sample_picks": n_pick, "oos_pick_share": share})
        return pd.DataFrame(rows).set_index("curve")

    def headline(self) -> dict:
        """The pick's and the benchmark's portfolio figures over the walk."""
        if not self.days:
            return {}
        port = self.metrics.xs("portfolio", level="symbol")
        best = port.drop(index=[PICK]).sort_values("total_return", ascending=False).index[0]
        f = lambda c: (f"{port.loc[c, 'total_return']:+.2%} over {self.days} days, "  # noqa
                       f"Sharpe {port.loc[c, 'sharpe']:.2f}")
        return {"oos_pick": f(PICK), "oos_buy_hold": f("buy_hold"),
                "oos_best_fixed": f"{best}: {f(best)}"}


def assemble(frames: Mapping[str, pd.DataFrame], arrays: dict, tasks: Sequence[dict],
             strategies: Sequence[str], user: Sequence[UserStrategy], lookback: int,
             days: int, forecast_next: bool, walk: Callable = walk_symbol) -> OOSResult:
    """The walk of every symbol over the stacked arrays of the extended run (``walk``:
    :func:`walk_symbol`, or the reference's), as an :class:`OOSResult`."""
    keys = ("point", "lo", "hi", "actual", "metrics", "mult")
    walks = [walk({k: arrays[k][s] for k in keys}, strategies=list(strategies), user=user,
                  lookback=lookback, days=days, fee=t["fee"], ann=t["ann"],
                  long_only=t["long_only"]) for s, t in enumerate(tasks)]
    syms = list(frames)
    crypto = [bool(t["long_only"]) for t in tasks]
    nxt = None
    if forecast_next:
        nxt = next_session_table(syms, walks, list(strategies),
                                 [frames[s].index[-1] for s in syms],
                                 [float(frames[s]["close"].iloc[-1]) for s in syms], crypto)
    dates = [list(frames[s].index[len(frames[s]) - days:]) if days else [] for s in syms]
    return OOSResult(syms, list(strategies), walks[0]["curves"], lookback, days, dates, walks,
                     crypto, nxt)


# --------------------------------------------------------------------------- warm-up
def warmup() -> None:
    """Compile (or load from the cache) the research kernels on a tiny input with the dtypes
    of the real calls: the walk, its metrics and the user strategies' fee/metric kernel."""
    rng = np.random.default_rng(0)
    G, E, K = 4, 3, 2
    point = rng.normal(0, 0.01, (G, E, 3))
    arr = {"point": point, "lo": point - 0.01, "hi": point + 0.01, "actual": point[::-1].copy(),
           "metrics": rng.normal(0, 0.01, (G, K, 5)), "mult": np.zeros((G, 2))}
    pos = np.zeros((2, 1, E - 1), dtype=np.int8)
    oos_nb.close_to_close_windows_nb(pos, np.zeros((2, E - 1)), 0.001, 15.9, SHARPE_MIN_STD,
                                     np.empty((2, 1, 5)), np.empty((2, 1, E - 1)))
    wk = walk_symbol(arr, strategies=["simple", "maxdiff"], user=(), lookback=2, days=2,
                     fee=0.001, ann=15.9, long_only=False)
    OOSResult(["W"], ["simple", "maxdiff"], wk["curves"], 2, 2,
              [list(pd.bdate_range("2000-01-03", periods=2))], [wk], [False]).metrics
