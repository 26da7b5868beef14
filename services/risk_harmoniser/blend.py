"""Edge blending (seed 004, first form): the confidence-weighted mean of the latest
non-shadow signal of each model, ignoring signals older than ``max_age_ns``.

    edge_blended_bps = sum_i c_i * e_i / sum_i c_i      (0 when sum_i c_i == 0)
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.messages import Signal


def blend(signals: Iterable[Signal], now_ns: int, max_age_ns: int) -> tuple[float, float]:
    """(edge_blended_bps, total confidence) over the fresh, non-shadow signals."""
    num = den = 0.0
    for s in signals:
        if s.shadow or now_ns - s.ts_ns > max_age_ns:
            continue
        num += s.confidence * s.edge_bps
        den += s.confidence
    return (num / den if den > 0 else 0.0), den
