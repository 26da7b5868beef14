"""Units and the one guarded ratio the report's maths share."""

from __future__ import annotations

import math

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
NAN = float("nan")


def safe_ratio(num: float, den: float) -> float:
    """num / den; +-inf for a non-zero numerator over 0, NaN for 0/0 or non-finite."""
    if den == 0 or not math.isfinite(den):
        return NAN if num == 0 or not math.isfinite(num) else math.copysign(math.inf, num)
    return num / den
