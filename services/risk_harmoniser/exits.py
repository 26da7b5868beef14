"""Per-position exits: stop-loss, take-profit and a time stop, pure (docs/risk_harmoniser.md,
"Exits"). The engine asks on every tick of a name it holds; an exit is an order for
the whole exposure (filled and working) through the normal order path, reduce-only,
with reason ``exit:stop_loss``, ``exit:take_profit`` or ``exit:time``.

A position's clock starts at the fill that opens it from flat (``opened``) and its
horizon is that of the signal whose order opened it; adding to it keeps both.

For a position of sign d (+1 long, -1 short), average price A, mark m:

    move_bps  = d * (m - A) / A * 1e4
    stop_bps  = max(stop_loss_bps, stop_loss_vol_mult * sigma_daily * 1e4)
    take_bps  = max(take_profit_bps, take_profit_vol_mult * sigma_daily * 1e4)
    exit:stop_loss    if move_bps <= -stop_bps
    exit:take_profit  if take_bps > 0 and move_bps >= take_bps
    exit:time         if now - opened >= max_hold_s  (max_hold_horizons * horizon, or
                                                      max_hold_s[horizon] when given)

Example: long at 100, stop 200 bps, mark 97.9: move -210 bps -> exit:stop_loss; at
102.1 with take-profit 400 bps nothing; opened at t0 on a 1h signal with 4 horizons:
exit:time at t0 + 4 h.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Opened:
    """When a position opened and the horizon it was opened for."""

    ts_ns: int
    horizon: str  # as the signal gave it ('1h'); "" when unknown
    horizon_s: float


def stop_bps(stop_loss_bps: float, vol_mult: float, daily_vol: float) -> float:
    """The stop distance in bps: the floor, widened by a multiple of the daily vol."""
    return max(stop_loss_bps, vol_mult * daily_vol * 1e4)


def max_hold_s(horizon: str, horizon_s: float, mult: float, per_horizon: dict[str, float]) -> float:
    """The time stop of a position opened on ``horizon``."""
    given = per_horizon.get(horizon)
    return given if given is not None else mult * horizon_s


def exit_reason(
    qty: float,
    avg_price: float,
    mark: float,
    now_ns: int,
    opened: Opened | None,
    stop: float,
    take: float,
    hold_s: float,
) -> str:
    """The exit due for a position now ("" for none)."""
    if qty == 0.0 or avg_price <= 0.0 or mark <= 0.0:
        return ""
    d = 1.0 if qty > 0 else -1.0
    move_bps = d * (mark - avg_price) / avg_price * 1e4
    if stop > 0.0 and move_bps <= -stop:
        return "exit:stop_loss"
    if take > 0.0 and move_bps >= take:
        return "exit:take_profit"
    if opened is not None and hold_s > 0.0 and now_ns - opened.ts_ns >= hold_s * NS_PER_S:
        return "exit:time"
    return ""
