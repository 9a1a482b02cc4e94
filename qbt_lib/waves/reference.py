"""The "before": a direct, readable transcription of the original impulse scanner.

It does what the original ElliottWaveAnalyzer-based scanner did (see
``docs/waves.md``): for one start bar it tries **every** skip tuple of
``WaveOptionsGenerator5(up_to)`` in turn, builds the five monowaves of the tuple bar by bar,
applies the chain's two extra checks and then the rule set, and collects the distinct pivot
tuples. Nothing is cached and nothing is pruned, so its cost is the original's cost
(579,195 tuples per start bar for ``up_to=15``). It is the oracle of the tests (run at small
``up_to``) and the baseline of the benchmark.

Conventions: ``lows``/``highs`` are sequences of floats, bar positions are 0-based; the data
ends at ``len(lows)`` (pass a window slice to scan a window). A monowave is a tuple
``(start, end, low, high)``; ``None`` means it "has no end in the data".
"""
from __future__ import annotations

import time
from typing import Iterator, Sequence

# The tuples a start bar tries: sum over p = 0..5 of (up_to - 1) ** p.
N_WAVES = 5


def n_tuples(up_to: int) -> int:
    """How many skip tuples the original tries per start bar (579,195 for ``up_to=15``)."""
    return sum((up_to - 1) ** p for p in range(N_WAVES + 1))


def skip_tuples(up_to: int) -> Iterator[tuple[int, ...]]:
    """Every skip tuple (i, j, k, l, m) in 0..up_to-1 where a 0 is followed only by 0s."""
    def rec(prefix: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == N_WAVES:
            yield prefix
            return
        if prefix and prefix[-1] == 0:
            yield prefix + (0,) * (N_WAVES - len(prefix))
            return
        for x in range(up_to):
            yield from rec(prefix + (x,))
    yield from rec(())


# --------------------------------------------------------------------------- monowaves
def next_top(lows: Sequence[float], highs: Sequence[float], top_i: int, top: float):
    """One skip of an up monowave: the original ``next_hi`` state machine.

    Returns ``(cand, cand_i)`` or ``None`` when the data ends first. ``cand_i`` is ``None``
    when the step ended at once on a bar equal to the top (the top then stays)."""
    reached = False
    cand, cand_i = lows[top_i], None
    for t in range(top_i + 1, len(highs)):
        h = highs[t]
        if not reached and h < top:
            continue                      # below the top: skip
        if not reached and h > top:
            reached = True
            cand, cand_i = h, t
            continue
        if h > cand:                      # extend the run (an equal top is taken here too)
            cand, cand_i = h, t
            continue
        return cand, cand_i
    return None


def next_bottom(lows: Sequence[float], highs: Sequence[float], bot_i: int, bottom: float):
    """One skip of a down monowave: the mirror of :func:`next_top` on the lows."""
    reached = False
    cand, cand_i = highs[bot_i], None
    for t in range(bot_i + 1, len(lows)):
        low = lows[t]
        if not reached and low > bottom:
            continue
        if not reached and low < bottom:
            reached = True
            cand, cand_i = low, t
            continue
        if low < cand:
            cand, cand_i = low, t
            continue
        return cand, cand_i
    return None


def monowave_up(lows: Sequence[float], highs: Sequence[float], start: int, skip: int):
    """The up monowave from ``start`` with ``skip`` skips: ``(start, end, low, high)`` or None."""
    top, top_i = lows[start], start
    for t in range(start + 1, len(highs)):   # the first top: the run of higher highs
        if highs[t] > top:
            top, top_i = highs[t], t
        else:
            break
    for _ in range(skip):
        step = next_top(lows, highs, top_i, top)
        if step is None:
            return None
        cand, cand_i = step
        if cand > top:                         # else the top stays (an equal top stalls)
            top, top_i = cand, cand_i
    return start, top_i, lows[start], top


def monowave_down(lows: Sequence[float], highs: Sequence[float], start: int, skip: int):
    """The down monowave from ``start`` with ``skip`` skips: ``(start, end, low, high)`` or
    None. Unlike the up monowave, a skip that moves the bottom past a bar higher than the
    start's high invalidates it."""
    high0 = highs[start]
    bottom, bot_i = high0, start
    for t in range(start + 1, len(lows)):
        if lows[t] < bottom:
            bottom, bot_i = lows[t], t
        else:
            break
    for _ in range(skip):
        step = next_bottom(lows, highs, bot_i, bottom)
        if step is None:
            return None
        cand, cand_i = step
        if cand < bottom:
            bottom, bot_i = cand, cand_i
            if max(highs[start:bot_i]) > high0:
                return None
    return start, bot_i, bottom, high0


# --------------------------------------------------------------------------- the chain
def impulse_chain(lows: Sequence[float], highs: Sequence[float], start: int,
                  skips: Sequence[int]):
    """The original ``find_impulsive_wave``: five monowaves up/down/up/down/up, or None."""
    w1 = monowave_up(lows, highs, start, skips[0])
    if w1 is None:
        return None
    w2 = monowave_down(lows, highs, w1[1], skips[1])
    if w2 is None:
        return None
    w3 = monowave_up(lows, highs, w2[1], skips[2])
    if w3 is None:
        return None
    w4 = monowave_down(lows, highs, w3[1], skips[3])
    if w4 is None:
        return None
    between = lows[w2[1]:w4[1]]
    if len(between) == 0:
        return None   # the original takes np.min of an empty slice and crashes: a reject
    if w2[2] > min(between):
        return None
    w5 = monowave_up(lows, highs, w4[1], skips[4])
    if w5 is None:
        return None
    between = lows[w4[1]:w5[1]]
    if any(v != 0 for v in between) and w4[2] > min(between):
        return None
    return w1, w2, w3, w4, w5


def _len(w) -> float:
    return w[3] - w[2]


def _dur(w) -> int:
    return w[1] - w[0]


def impulse_rules(waves) -> dict[str, bool]:
    """The original Impulse rule set, with its exact expressions (``>=`` vs ``>``)."""
    w1, w2, w3, w4, w5 = waves
    p0, p1, p2, p3, p4, p5 = w1[2], w1[3], w2[2], w3[3], w4[2], w5[3]
    l1, l2, l3, l4, l5 = (_len(w) for w in waves)
    return {
        "w2_1": p2 > p0,
        "w2_2": l2 >= 0.2 * l1,
        "w2_3": 9 * _dur(w2) > _dur(w1),
        "w3_1": not (l3 < l5 and l3 < l1),
        "w3_2": p3 > p1,
        "w3_3": l3 >= l1 / 3.0,
        "w3_4": l3 > l2,
        "w3_5": 7 * _dur(w3) > _dur(w1),
        "w4_1": p4 > p1,
        "w4_2": l4 > l2 / 3.0,
        "w5_1": p5 > p3,
        "w5_2": l5 < 2.0 * l1,
    }


def diagonal_rules(waves) -> dict[str, bool]:
    """Leading diagonal: the impulse rules with wave 4 overlapping wave 1 (``P4 < P1``
    replaces ``w4_1``), wave 5 shorter than wave 3 but above 70% of wave 1, and a rising
    wedge whose lower line (2-4) is steeper than its upper line (1-3)."""
    r = impulse_rules(waves)
    w1, w2, w3, w4, w5 = waves
    p1, p2, p3, p4 = w1[3], w2[2], w3[3], w4[2]
    l1, l3, l5 = _len(w1), _len(w3), _len(w5)
    del r["w4_1"]
    r["d4_1"] = p4 < p1
    r["d5_1"] = l5 > 0.70 * l1
    r["d5_2"] = l5 < l3
    # The chain makes end4 > end2; end3 == end1 only when waves 2 and 3 are both empty,
    # a pattern the impulse rules reject anyway (w2_3).
    if w3[1] == w1[1]:
        r["d_slope"] = False
    else:
        slope_lower = (p4 - p2) / (w4[1] - w2[1])
        slope_upper = (p3 - p1) / (w3[1] - w1[1])
        r["d_slope"] = slope_lower > slope_upper > 0
    return r


RULE_SETS = {"compat": impulse_rules, "diagonal": diagonal_rules}


def find_impulses(lows: Sequence[float], highs: Sequence[float], start: int, up_to: int,
                  rules: str = "compat", max_seconds: float | None = None):
    """Every distinct impulse from ``start`` over all skip tuples, sorted by pivot bars.

    Returns ``(patterns, tuples_tried)``; with ``max_seconds`` the search stops after that
    long (for timing the original's throughput) and the pattern list is partial.
    """
    lows = [float(v) for v in lows]
    highs = [float(v) for v in highs]
    check = RULE_SETS[rules]
    found = set()
    tried = 0
    t_end = None if max_seconds is None else time.perf_counter() + max_seconds
    for skips in skip_tuples(up_to):
        tried += 1
        waves = impulse_chain(lows, highs, start, skips)
        if waves is not None and all(check(waves).values()):
            found.add((start,) + tuple(w[1] for w in waves))
        if t_end is not None and (tried & 255) == 0 and time.perf_counter() > t_end:
            break
    return sorted(found), tried
