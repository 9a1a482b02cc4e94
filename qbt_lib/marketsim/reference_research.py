"""The reference ("before") of marketsim's research paths, in plain Python: own strategies on
the simulation windows and the out-of-sample walk, one day at a time, with the seed
reference's day rule and metrics (``reference.strategy_day``, ``reference.window_metrics``).
The fast paths (``user.evaluate_windows``, ``oos.walk_symbol``) are tested against it.
"""
from __future__ import annotations

import math

import numpy as np

from .enums import STRATEGY_ID
from .reference import _sign, strategy_day, window_metrics
from .user import positions


def user_windows(strategies, pred, band, act, fee: float, ann: float, long_only: bool) -> dict:
    """User strategies on every window of one symbol: ``metrics (N, KU, 5)``,
    ``pos``/``net (N, KU, D)`` (``pred/band/act``: ``(N, D, 3)``)."""
    N, D = pred.shape[:2]
    KU = len(strategies)
    metrics = np.empty((N, KU, 5))
    pos = np.empty((N, KU, D), dtype=np.int8)
    net = np.empty((N, KU, D))
    for a, s in enumerate(strategies):
        for k in range(N):
            p = [int(x) for x in positions(s, pred[k], band[k], act[k], long_only,
                                           f"in simulation {k}")]
            nets = []
            prev = 0
            for t in range(D):
                nets.append(p[t] * float(act[k, t, 0]) - fee * abs(p[t] - prev))
                prev = p[t]
            pos[k, a] = p
            net[k, a] = nets
            metrics[k, a] = window_metrics(p, nets, ann)
    return {"metrics": metrics, "pos": pos, "net": net}


def max_drawdown(nets) -> float:
    eq = peak = 1.0
    worst = 0.0
    for x in nets:
        eq *= 1.0 + x
        peak = max(peak, eq)
        worst = max(worst, 1.0 - eq / peak)
    return worst


def _net(pos, gross, fee):
    out, prev = [], 0
    for p, g in zip(pos, gross):
        out.append(g - fee * abs(p - prev))
        prev = p
    return out


def walk_symbol(arr: dict, *, strategies, user, lookback: int, days: int, fee: float,
                ann: float, long_only: bool) -> dict:
    """The out-of-sample walk of one symbol, day by day (see ``oos.walk_symbol``)."""
    point, lo, hi, actual = arr["point"], arr["lo"], arr["hi"], arr["actual"]
    G, E = point.shape[:2]
    N, D = lookback, days
    K = len(strategies)
    if G != N + D or arr["metrics"].shape[1] != K:
        raise ValueError(f"the extended run has {G} simulations x {arr['metrics'].shape[1]} "
                         f"strategies, expected {N + D} x {K}")
    sims = [D - w for w in range(D + 1)]  # walk position w uses simulation D - w
    fc = [[float(v) for v in point[i, E - 1]] for i in sims]
    act = [[float(v) for v in actual[i, E - 1]] for i in sims]
    band = np.array([hi[i, E - 1] - lo[i, E - 1] for i in sims])
    mult = [(float(arr["mult"][i, 0]), float(arr["mult"][i, 1])) for i in sims]
    score = np.empty((D + 1, K))
    pick = []
    for w, i in enumerate(sims):  # the mean total return of the N windows ending before
        best, best_a = -math.inf, 0
        for a in range(K):
            s = float(arr["metrics"][i, a, 0])
            for j in range(1, N):
                s += float(arr["metrics"][i + j, a, 0])
            score[w, a] = s / N
            if score[w, a] > best:
                best, best_a = score[w, a], a
        pick.append(best_a)
    if D + 1 < G:
        call = _sign(float(point[D + 1, E - 1, 0]))
        call = 0 if long_only and call < 0 else call
        prev_r = float(actual[D + 1, E - 1, 0])
    else:
        call, prev_r = 0, 0.0
    names = list(strategies) + ([] if "buy_hold" in strategies else ["buy_hold"])
    users = {s.name: s for s in user}
    pos_all, gross_all = [], []
    next_user = {}
    for name in names:
        if name in users:
            p = [int(x) for x in positions(users[name], np.array(fc), band, np.array(act),
                                           long_only, "in the out-of-sample walk")]
            next_user[name] = p[D]
            pos_all.append(p[:D])
            gross_all.append([p[w] * act[w][0] for w in range(D)])
            continue
        assert name in STRATEGY_ID
        c_prev, r_prev = call, prev_r
        ps, gs = [], []
        for w in range(D):
            p, g = strategy_day(name, *fc[w], *act[w], long_only, c_prev * r_prev < 0,
                                *mult[w])
            ps.append(p)
            gs.append(g)
            c_prev = _sign(fc[w][0])
            c_prev = 0 if long_only and c_prev < 0 else c_prev
            r_prev = act[w][0]
        pos_all.append(ps)
        gross_all.append(gs)
    pick_pos = [pos_all[pick[w]][w] for w in range(D)]
    pick_gross = [gross_all[pick[w]][w] for w in range(D)]
    curves_pos = [pick_pos] + pos_all
    curves_net = [_net(pick_pos, pick_gross, fee)] + [_net(p, g, fee)
                                                      for p, g in zip(pos_all, gross_all)]
    metrics = np.array([window_metrics(p, x, ann) + [max_drawdown(x)] if D else [math.nan] * 6
                        for p, x in zip(curves_pos, curves_net)])
    if D:  # tomorrow's unprofit_shutdown looks at the last walk day's call
        c_last = _sign(fc[D - 1][0])
        call, prev_r = (0 if long_only and c_last < 0 else c_last), act[D - 1][0]
    return {"pick": np.array(pick), "score": score, "curves": ["pick"] + names,
            "fc": np.array(fc), "band": band, "act": np.array(act), "mult": np.array(mult),
            "prev_wrong_next": call * prev_r < 0, "next_user": next_user,
            "pos": np.array(curves_pos, dtype=np.int8).reshape(len(names) + 1, D),
            "net": np.array(curves_net, dtype=np.float64).reshape(len(names) + 1, D),
            "metrics": metrics}
