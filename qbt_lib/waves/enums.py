"""Names shared by the kernels and the API: rule sets, directions and the search's checks.

``CHECKS`` lists, in index order, every reason the search rejects a wave chain; the kernels
count rejections into an array of that length (the first failing check of each candidate, in
the order the chain meets them). ``no_wave<k>``: wave k's monowave has no end in the data
(the skip loop of that wave stops there).
"""
from __future__ import annotations

RULE_SETS = ("compat", "diagonal")
DIRECTIONS = ("up", "down")
COMPAT, DIAGONAL = 0, 1

CHECKS = (
    "no_wave1", "no_wave2", "no_wave3", "no_wave4", "no_wave5",
    "w2_1", "w2_2", "w2_3",
    "w3_2", "w3_3", "w3_4", "w3_5",
    "chain_w4", "w4_1", "w4_2", "d4_1",
    "chain_w5", "w3_1", "w5_2", "d5_2", "w5_1", "d5_1", "d_slope",
)
(NO_WAVE1, NO_WAVE2, NO_WAVE3, NO_WAVE4, NO_WAVE5,
 W2_1, W2_2, W2_3,
 W3_2, W3_3, W3_4, W3_5,
 CHAIN_W4, W4_1, W4_2, D4_1,
 CHAIN_W5, W3_1, W5_2, D5_2, W5_1, D5_1, D_SLOPE) = range(len(CHECKS))
N_CHECKS = len(CHECKS)

CHECK_DOC = {
    "no_wave1": "wave 1 has no end in the data", "no_wave2": "wave 2 has no end in the data",
    "no_wave3": "wave 3 has no end in the data", "no_wave4": "wave 4 has no end in the data",
    "no_wave5": "wave 5 has no end in the data",
    "w2_1": "P2 > P0", "w2_2": "len2 >= 0.2*len1", "w2_3": "9*dur2 > dur1",
    "w3_2": "P3 > P1", "w3_3": "len3 >= len1/3", "w3_4": "len3 > len2",
    "w3_5": "7*dur3 > dur1",
    "chain_w4": "low2 <= min(lows[end2:end4]) (empty slice rejects)",
    "w4_1": "P4 > P1", "w4_2": "len4 > len2/3", "d4_1": "diagonal: P4 < P1",
    "chain_w5": "low4 <= min(lows[end4:end5]) when non-empty",
    "w3_1": "not (len3 < len5 and len3 < len1)", "w5_2": "len5 < 2*len1",
    "d5_2": "diagonal: len5 < len3", "w5_1": "P5 > P3", "d5_1": "diagonal: len5 > 0.7*len1",
    "d_slope": "diagonal: slope(L2->L4) > slope(H1->H3) > 0",
}

# Fibonacci-proximity score: ratio -> targets, and the weight of each term (they sum to 1).
SCORE_TERMS = (
    ("wave2_retrace", "len2/len1", (0.5, 0.618), 0.25),
    ("wave3_extension", "len3/len1", (1.618,), 0.35),
    ("wave4_retrace", "len4/len3", (0.382,), 0.20),
    ("wave5_length", "len5/len1", (1.0, 0.618), 0.20),
)
