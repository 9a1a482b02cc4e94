"""The seeded synthetic market: GARCH(1,1)-t daily OHLCV per symbol (``source="synthetic"``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..params import as_int


def symbol_names(symbols: int | Sequence[str], prefix: str = "SYM") -> list[str]:
    """``symbols`` as names: a count gives ``SYM000, SYM001, ...``; a list is checked."""
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if isinstance(symbols, (list, tuple)):
        names = [str(s) for s in symbols]
        if not names:
            raise ValueError("symbols must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"symbols has duplicates: {names}")
        return names
    n = as_int("symbols", symbols, min=1, max=100_000)
    width = max(3, len(str(n - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def synthetic_market(symbols: int | Sequence[str] = 10, n_bars: int = 2520, seed: int = 0,
                     start: str = "2000-01-03", with_vol: bool = False,
                     ) -> dict[str, pd.DataFrame]:
    """Deterministic multi-symbol daily OHLCV on a business-day calendar.

    Each symbol follows a GARCH(1,1) with Student-t(5) shocks (volatility clustering and fat
    tails); its parameters and shocks come from ``SeedSequence(seed)`` spawned per symbol
    position, so symbol i's path does not depend on how many symbols are asked for.
    ``with_vol=True`` adds ``vol``: the annualised conditional volatility (decimal).
    """
    names = symbol_names(symbols)
    n_bars = as_int("n_bars", n_bars, min=2, max=10_000_000)
    seed = as_int("seed", seed, min=0)
    dates = pd.bdate_range(start=start, periods=n_bars, name="date").astype("datetime64[ns]")
    children = np.random.SeedSequence(seed).spawn(len(names))
    draws = [_garch_draws(np.random.default_rng(ss), n_bars) for ss in children]
    params = {k: np.array([d[0][k] for d in draws]) for k in draws[0][0]}
    shocks = np.stack([d[1] for d in draws], axis=2)  # (5, n_bars, n_symbols)
    z, gap_z, hi_z, lo_z, vol_z = shocks
    mu, omega, alpha, beta = params["mu"], params["omega"], params["alpha"], params["beta"]
    var = np.empty((n_bars, len(names)))
    ret = np.empty((n_bars, len(names)))
    v = params["var_lr"].copy()
    for t in range(n_bars):  # the GARCH recursion is sequential in time, vectorized over symbols
        var[t] = v
        ret[t] = mu - 0.5 * v + np.sqrt(v) * z[t]
        v = omega + alpha * (ret[t] - mu) ** 2 + beta * v
    sig = np.sqrt(var)
    p0 = params["p0"]
    close = p0 * np.exp(np.cumsum(ret, axis=0))
    prev = np.vstack([p0[None, :], close[:-1]])
    open_ = prev * np.exp(0.25 * sig * gap_z)
    high = np.maximum(open_, close) * np.exp(0.5 * sig * np.abs(hi_z))
    low = np.minimum(open_, close) * np.exp(-0.5 * sig * np.abs(lo_z))
    volume = np.exp(np.log(1e6) + 0.3 * vol_z + 0.5 * np.abs(z)).round()
    out: dict[str, pd.DataFrame] = {}
    for j, name in enumerate(names):
        df = pd.DataFrame({"open": open_[:, j], "high": high[:, j], "low": low[:, j],
                           "close": close[:, j], "volume": volume[:, j]}, index=dates)
        if with_vol:
            df["vol"] = sig[:, j] * np.sqrt(252.0)
        out[name] = df
    return out


def _garch_draws(rng: np.random.Generator, n: int) -> tuple[dict, np.ndarray]:
    """One symbol's GARCH parameters and shocks, all from its own generator."""
    ann_vol = rng.uniform(0.12, 0.45)
    alpha = rng.uniform(0.06, 0.12)
    beta = 0.98 - alpha - rng.uniform(0.0, 0.015)  # persistence 0.965-0.98, as in equities
    nu = 5.0
    var_lr = (ann_vol / np.sqrt(252.0)) ** 2
    params = dict(var_lr=var_lr, omega=var_lr * (1.0 - alpha - beta), alpha=alpha, beta=beta,
                  mu=rng.uniform(-0.02, 0.12) / 252.0, p0=100.0 * np.exp(rng.uniform(-1.0, 1.0)))
    z = rng.standard_t(nu, size=n) * np.sqrt((nu - 2.0) / nu)
    return params, np.vstack([z[None, :], rng.standard_normal((4, n))])
