"""Names and constants shared by every engine of the marketsim workload (no heavy imports)."""
from __future__ import annotations

# Strategies in selection order: on a tie in mean total return the earlier one wins.
STRATEGIES = ("simple", "all_signals", "buy_hold", "unprofit_shutdown", "entry_takeprofit",
              "highlow", "maxdiff")
STRATEGY_ID = {s: i for i, s in enumerate(STRATEGIES)}
MAXDIFF = STRATEGY_ID["maxdiff"]

# The forecast series, in the order kernels store them: percent change of the close, the high
# and the low relative to the previous close.
SERIES = ("close", "high", "low")

# Metrics per (strategy, simulation), in the order kernels store them.
METRICS = ("total_return", "mean_return", "sharpe", "hit_rate", "trades")

# Fees per symbol class, as in the original (equities 0.0000278, crypto 0.008 per trade).
DEFAULT_FEES = {"equity": 0.0000278, "crypto": 0.008}
TRADING_DAYS = {"equity": 252.0, "crypto": 365.0}

# maxdiff coarse-to-fine grid: offsets over +-0.03, 33 -> 17 -> 9 points, shrink 0.6.
MAXDIFF_HALF_WIDTH = 0.03
MAXDIFF_POINTS = (33, 17, 9)
MAXDIFF_SHRINK = 0.6

# A Sharpe ratio of a window whose daily returns have (numerically) no spread is reported as 0.
SHARPE_MIN_STD = 1e-12

# Forecast summary: 10%-trimmed mean of the draws; band = 60th - 40th percentile.
TRIM = 0.1
BAND_QUANTILES = (0.4, 0.6)

SYNTHETIC_YEARS = 4
BARS_PER_YEAR = 252

# Tolerance of the engines against each other (forecasts and metrics): the AR fit is solved by
# ``lstsq`` in the reference and by normal equations in the kernels, and the trimmed mean is
# summed in a different order. Positions, actual returns and maxdiff offsets agree exactly.
RTOL = 1e-7
ATOL = 1e-9
ARRAYS_EXACT = ("actual", "pos", "mult")
