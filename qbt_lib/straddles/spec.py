"""What is traded and how it is closed: structure, wings, costs and exits (issue #16).

A :class:`Spec` holds the parsed options of a backtest beyond the seed's straddle:

- ``structure``: ``"straddle"`` (a call and a put struck at the entry price: the seed),
  ``"strangle"`` (an out-of-the-money call and put), ``"call"`` or ``"put"`` (one leg).
- ``wing``: where the out-of-the-money strikes sit, solved on the entry day from that day's
  price ``S0`` and implied vol ``sigma0`` (no look-ahead):

  * ``"delta:0.25"`` (or ``"delta:25"``): the call leg's Black-76 delta ``D N(d1)`` is
    +0.25 and the put leg's ``-D N(-d1)`` is -0.25 on the entry day, i.e.
    ``K_call = S0 exp(sq^2/2 - z sq)``, ``K_put = S0 exp(sq^2/2 + z sq)`` with
    ``sq = sigma0 sqrt(T/252)``, ``z = N^-1(0.25 / D)``, ``D = exp(-r T/252)``
    (the delta column of the entry row reads exactly the wing delta, up to rounding);
  * ``"moneyness:0.05"`` (or ``"moneyness:5%"``): ``K_call = S0 (1 + 0.05)``,
    ``K_put = S0 (1 - 0.05)``.

  A strangle needs wings (default ``"delta:0.25"``); a straddle is at the money (no wing); a
  single call or put is at the money unless a wing is given (then it is the strangle's leg).
- ``spread``: the option's bid-ask spread (full width), paid half at each crossing: at entry
  and, when the position is closed before expiry, at exit (an expiry settles at intrinsic
  value, no spread). ``"vol:1.5"`` (or a bare number) is a width in vol points, costing
  ``vega x 0.015 / 2`` per crossing (first order in the vol spread, vega per 1.00 of vol);
  ``"premium:0.04"`` is a width as a fraction of the structure's mid value, costing
  ``value x 0.04 / 2`` per crossing.
- ``hedge_cost_bps``: each delta-hedge trade costs ``bps / 1e4 x S x |units traded|``: the
  hedge is put on at the entry close, rebalanced every close, and unwound at the exit close
  (expiry or early).
- ``exit``: ``"expiry"`` (the seed), ``"days:N"`` (close after N trading days),
  ``"profit:X"``, ``"loss:Y"`` (close at the first close whose mark-to-market P&L, after the
  entry cost and the hedge so far, is >= X x premium or <= -Y x premium), or a
  comma-separated mix (``"days:20,profit:0.5,loss:1"``: whichever comes first). The decision
  at a close uses only that close's marks and the position is closed at that close
  (no look-ahead: the next day's prices never decide an exit).

Defaults are the seed's (:data:`SEED`): a spec with ``is_seed`` runs the seed's kernels and
gives the seed's rows unchanged.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from ..params import as_float, as_int, one_of

STRUCTURES = ("straddle", "strangle", "call", "put")
EXIT_REASONS = ("expiry", "days", "profit", "loss")
DEFAULT_STRANGLE_WING = "delta:0.25"


@dataclass(frozen=True)
class Spec:
    """Parsed structure/costs/exit options (see the module docstring)."""

    structure: str = "straddle"
    wing_kind: str = "atm"          # atm | delta | moneyness
    wing: float = 0.0               # the delta (0 < d <= 0.5) or the moneyness (0 <= m < 1)
    spread_kind: str = "none"       # none | vol | premium
    spread: float = 0.0             # full width: decimal vol (0.01 = 1 vol point) or fraction
    hedge_cost_bps: float = 0.0
    exit_days: int = 0              # 0: no time exit
    exit_profit: float = math.inf   # take profit at X x premium (inf: none)
    exit_loss: float = math.inf     # stop loss at Y x premium (inf: none)

    @property
    def is_seed(self) -> bool:
        """The seed's straddle: at the money, no costs, held to expiry."""
        return self == SEED

    @property
    def has_call(self) -> bool:
        return self.structure in ("straddle", "strangle", "call")

    @property
    def has_put(self) -> bool:
        return self.structure in ("straddle", "strangle", "put")

    @property
    def half_spread(self) -> float:
        """Cost of one crossing per unit of vega (``vol``) or of value (``premium``)."""
        return 0.5 * self.spread

    @property
    def hedge_cost(self) -> float:
        """Cost of hedge trades per unit of traded notional."""
        return self.hedge_cost_bps * 1e-4

    @property
    def has_costs(self) -> bool:
        return self.spread > 0 or self.hedge_cost_bps > 0

    @property
    def exits_early(self) -> bool:
        return (self.exit_days > 0 or math.isfinite(self.exit_profit)
                or math.isfinite(self.exit_loss))

    # the user-facing strings, as they would be typed
    @property
    def wing_text(self) -> str | None:
        if self.wing_kind == "atm":
            return None
        return f"{self.wing_kind}:{self.wing!r}"

    @property
    def spread_text(self) -> str | None:
        if self.spread_kind == "none":
            return None
        if self.spread_kind == "vol":
            return f"vol:{self.spread * 100.0!r}"
        return f"premium:{self.spread!r}"

    @property
    def exit_text(self) -> str:
        parts = []
        if self.exit_days:
            parts.append(f"days:{self.exit_days}")
        if math.isfinite(self.exit_profit):
            parts.append(f"profit:{self.exit_profit!r}")
        if math.isfinite(self.exit_loss):
            parts.append(f"loss:{self.exit_loss!r}")
        return ",".join(parts) or "expiry"

    def params(self) -> dict:
        """The options as parameters (what ``parse`` reads back to this spec)."""
        return {"structure": self.structure, "wing": self.wing_text,
                "spread": self.spread_text, "hedge_cost_bps": self.hedge_cost_bps,
                "exit": self.exit_text}

    def label(self) -> str:
        """A short description for tables and plot titles."""
        s = self.structure
        if self.wing_kind == "delta":
            s += f" {self.wing * 100:g}-delta"
        elif self.wing_kind == "moneyness":
            s += f" +-{self.wing * 100:g}%"
        if self.spread_kind != "none":
            s += (f", spread {self.spread * 100:g} vol pt" if self.spread_kind == "vol"
                  else f", spread {self.spread * 100:g}% of premium")
        if self.hedge_cost_bps:
            s += f", hedge {self.hedge_cost_bps:g} bp"
        if self.exits_early:
            s += f", exit {self.exit_text}"
        return s

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("exit_profit", "exit_loss"):  # JSON has no inf
            d[k] = None if math.isinf(d[k]) else d[k]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Spec":
        d = dict(d)
        for k in ("exit_profit", "exit_loss"):
            d[k] = math.inf if d.get(k) is None else float(d[k])
        return cls(**d)


SEED = Spec()

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _kv(name: str, value: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    m = re.fullmatch(r"\s*([a-z_]+)\s*[:=]\s*(\S+?)\s*", value.lower())
    if not m or m.group(1) not in kinds:
        raise ValueError(name)
    return m.group(1), m.group(2)


def _kv_number(value: str, kinds: tuple[str, ...], usage: str, given: Any
               ) -> tuple[str, float, bool]:
    """``(kind, number, ended in %)`` of ``'kind:number'`` or ``'kind:number%'`` (the
    number as written); anything else is ``usage`` with the value ``given``."""
    try:
        kind, text = _kv("", value, kinds)
    except ValueError:
        raise ValueError(f"{usage}, got {given!r}") from None
    pct = text.endswith("%")
    if not re.fullmatch(_NUM, text.rstrip("%")):
        raise ValueError(f"{usage}, got {given!r}")
    return kind, float(text.rstrip("%")), pct


def parse_wing(structure: str, wing: Any) -> tuple[str, float]:
    """``(kind, value)`` of a ``wing`` for ``structure`` (see the module docstring)."""
    usage = ("wing must be None (at the money), 'delta:D' (0 < D <= 0.5, or 1..50 for "
             "'delta:25') or 'moneyness:M' (0 <= M < 1, or 'moneyness:5%')")
    none = wing is None or (isinstance(wing, str) and wing.strip().lower() in ("", "atm",
                                                                                "none"))
    if none:
        if structure == "strangle":
            return parse_wing(structure, DEFAULT_STRANGLE_WING)
        return "atm", 0.0
    if structure == "straddle":
        raise ValueError(f"wing={wing!r}: a straddle is struck at the money; for "
                         "out-of-the-money wings use structure='strangle'")
    if not isinstance(wing, str):
        raise ValueError(f"{usage}, got {wing!r}")
    kind, num, pct = _kv_number(wing, ("delta", "moneyness"), usage, wing)
    x = num / (100.0 if pct else 1.0)
    if kind == "delta":
        if pct or 1.0 <= x <= 50.0:   # "delta:25" or "delta:25%": the 25-delta wing
            x = num / 100.0
        if not 0.0 < x <= 0.5:
            raise ValueError(f"wing={wing!r}: the wing delta must be in (0, 0.5] "
                             "(0.25 or 25 for the 25-delta wing)")
        return "delta", x
    if not 0.0 <= x < 1.0:
        raise ValueError(f"wing={wing!r}: the moneyness must be in [0, 1) "
                         "(0.05 or 5% for strikes 5% either side of the entry price)")
    return "moneyness", x


def parse_spread(spread: Any) -> tuple[str, float]:
    """``(kind, full width)``: vol points become decimal vol (1.5 -> 0.015)."""
    usage = ("spread must be 0/None (no cost), 'vol:P' (a bid-ask width of P vol points; a "
             "bare number means vol points too) or 'premium:F' (a width of F x the mid "
             "value, or 'premium:4%')")
    if spread is None or (isinstance(spread, str) and spread.strip().lower() in ("", "none")):
        return "none", 0.0
    if isinstance(spread, bool):
        raise ValueError(f"{usage}, got {spread!r}")
    if not isinstance(spread, str):
        pts = as_float("spread", spread, min=0.0, max=100.0)
        return ("none", 0.0) if pts == 0 else ("vol", pts / 100.0)
    s = spread.strip().lower()
    if re.fullmatch(_NUM, s):
        return parse_spread(float(s))
    kind, x, pct = _kv_number(s, ("vol", "premium"), usage, spread)
    if kind == "vol":
        if pct or not 0.0 <= x <= 100.0:
            raise ValueError(f"spread={spread!r}: the width in vol points must be in "
                             "[0, 100] ('vol:1' is one vol point)")
        return ("none", 0.0) if x == 0 else ("vol", x / 100.0)
    x = x / 100.0 if pct else x
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"spread={spread!r}: the width as a fraction of the premium must "
                         "be in [0, 1] ('premium:0.04' or 'premium:4%')")
    return ("none", 0.0) if x == 0 else ("premium", x)


def parse_exit(exit: Any) -> tuple[int, float, float]:
    """``(days, profit, loss)`` of an ``exit`` (0 / inf where not set)."""
    usage = ("exit must be 'expiry', 'days:N' (N >= 1 trading days), 'profit:X' / 'loss:Y' "
             "(X, Y > 0, multiples of the premium) or a comma-separated mix such as "
             "'profit:0.5,loss:1'")
    if exit is None or (isinstance(exit, str) and exit.strip().lower() in ("", "expiry")):
        return 0, math.inf, math.inf
    if not isinstance(exit, str):
        raise ValueError(f"{usage}, got {exit!r}")
    got: dict[str, str] = {}
    for item in exit.split(","):
        if item.strip().lower() == "expiry":
            continue
        try:
            k, v = _kv("exit", item, ("days", "profit", "loss"))
        except ValueError:
            raise ValueError(f"{usage}, got {exit!r}") from None
        if k in got:
            raise ValueError(f"exit={exit!r}: {k} is given twice")
        got[k] = v
    days = as_int("exit days", got["days"], min=1) if "days" in got else 0
    profit = loss = math.inf
    if "profit" in got:
        profit = as_float("exit profit", got["profit"], min=0.0, min_inclusive=False)
    if "loss" in got:
        loss = as_float("exit loss", got["loss"], min=0.0, min_inclusive=False)
    return days, profit, loss


def parse(structure: Any = "straddle", wing: Any = None, spread: Any = None,
          hedge_cost_bps: Any = 0.0, exit: Any = "expiry") -> Spec:
    """A :class:`Spec` from the user's options; a ``ValueError`` names the bad one."""
    structure = one_of("structure", structure, STRUCTURES)
    wing_kind, wing_v = parse_wing(structure, wing)
    spread_kind, spread_v = parse_spread(spread)
    bps = as_float("hedge_cost_bps", hedge_cost_bps, min=0.0, max=10_000.0)
    days, profit, loss = parse_exit(exit)
    return Spec(structure, wing_kind, wing_v, spread_kind, spread_v, bps, days, profit, loss)


# --------------------------------------------------------------------------- strikes
def wing_z(spec: Spec, disc0: float) -> float:
    """``N^-1(delta / D)`` of a delta wing (``D``: the entry day's discount factor)."""
    p = spec.wing / disc0
    if not 0.0 < p < 1.0:
        raise ValueError(f"wing delta {spec.wing} is out of reach at this rate and tenor "
                         f"(delta / discount = {p:.4g} must be < 1)")
    return NormalDist().inv_cdf(p)


def strikes_scalar(spec: Spec, S0: float, vol0: float, sqrt_tau0: float,
                   disc0: float) -> tuple[float, float]:
    """``(K_call, K_put)`` of one straddle (the reference's form; ``math.exp``). A structure
    with one leg shows that leg's strike in both."""
    if spec.wing_kind == "atm":
        kc = kp = S0
    elif spec.wing_kind == "moneyness":
        kc, kp = S0 * (1.0 + spec.wing), S0 * (1.0 - spec.wing)
    else:
        z = wing_z(spec, disc0)
        sq = vol0 * sqrt_tau0
        kc = S0 * math.exp(0.5 * sq * sq - z * sq)
        kp = S0 * math.exp(0.5 * sq * sq + z * sq)
    if not spec.has_put:
        kp = kc
    if not spec.has_call:
        kc = kp
    return kc, kp
