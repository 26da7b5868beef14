"""Backtesting a VaR: Kupiec's proportion-of-failures test (Kupiec 1995, "Techniques for
verifying the accuracy of risk measurement models", J. Derivatives 3(2); as in the
Basel Committee's 1996 backtesting framework).

Over n days with x breaches (loss > VaR) of a VaR at tail probability p (0.05 for 95 %),
with the observed rate q = x / n:

    LR = -2 ln[(1 - p)^(n - x) p^x] + 2 ln[(1 - q)^(n - x) q^x]     (0 ln 0 = 0)

LR is chi-squared with one degree of freedom under "the breach rate is p": the test
rejects at level a when LR > chi2_1^-1(1 - a) (6.635 at 1 %), i.e. p_value < a, where
p_value = P(chi2_1 > LR) = erfc(sqrt(LR / 2)).
"""

from __future__ import annotations

import math


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0.0 else x * math.log(y)


def kupiec_lr(breaches: int, days: int, p: float) -> float:
    """Kupiec's likelihood ratio (module docstring); 0 when the rate is exactly p."""
    if days <= 0 or not 0 <= breaches <= days or not 0.0 < p < 1.0:
        raise ValueError(
            f"need 0 <= breaches <= days, days > 0, 0 < p < 1: {breaches}, {days}, {p}"
        )
    x, n = float(breaches), float(days)
    q = x / n
    null = _xlogy(n - x, 1.0 - p) + _xlogy(x, p)
    alt = _xlogy(n - x, 1.0 - q) + _xlogy(x, q)
    return max(0.0, -2.0 * (null - alt))


def kupiec_p_value(breaches: int, days: int, p: float) -> float:
    """P(chi2_1 > LR): below the test level, the breach rate is not p."""
    return math.erfc(math.sqrt(kupiec_lr(breaches, days, p) / 2.0))
