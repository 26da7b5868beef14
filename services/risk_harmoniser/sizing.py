"""Position sizing after seed 003 §5 ("Position Sizing - Volatility Targeting").

    base_usd   = E * target_vol_pct / (100 * sigma_daily)          seed: base_size
    f_kelly    = clip(p - (1 - p) / b, 0, 1)                        seed: (p b - q) / b
    kelly_usd  = E * kelly_fraction * f_kelly                       seed: Kelly / 4
    conviction = min(1, net_edge_bps / full_size_edge_bps)          ours, not the seed's
    desired    = sign(edge) * min(base_usd, kelly_usd) * conviction * size_mult

Not the seed's ``base_size * (Kelly / 4)``: Kelly / 4 is a cap here (the seed's own
comment calls it "Conservative cap"), not a factor; the product sizes a trade at
f/4 = 2.5 % of the per-trade-risk position at the prior (p 0.55, b 1), so a preset's
per-trade risk could never be reached, and the synthetic backtest made 2 orders, not 27
(docs/risk_harmoniser.md "Sizing"). The seed's ``target_risk_pct`` is
``target_vol_pct`` (the preset's per-trade risk), its ``volatility_risk`` the daily sigma;
its base size is in units, ours in USD. p and b are the priors until
``kelly_prior_trades`` outcomes were seen, then the tracked win rate and average win /
average loss. ``size_mult`` carries the breakers (half size after a loss streak, defence
mode). The desired position is then clipped into every limit (limits.constrain), which
includes the portfolio VaR limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.risk_harmoniser.limits import Book, Caps, constrain


def vol_target_usd(equity_usd: float, target_vol_pct: float, daily_vol: float) -> float:
    """The position whose 1-day 1-sigma move is target_vol_pct of equity."""
    if daily_vol <= 0.0:
        return 0.0
    return equity_usd * target_vol_pct / 100.0 / daily_vol


def kelly_f(win_rate: float, win_loss_ratio: float) -> float:
    """f* = p - (1 - p) / b, clipped to [0, 1] (never bet on a negative edge)."""
    if win_loss_ratio <= 0.0:
        return 0.0
    return min(1.0, max(0.0, win_rate - (1.0 - win_rate) / win_loss_ratio))


def full_size_usd(
    equity_usd: float,
    target_vol_pct: float,
    daily_vol: float,
    kelly_fraction: float,
    f_kelly: float,
) -> float:
    """min(base_usd, kelly_usd) of the module docstring: the size of a full-conviction
    trade before the breakers and the limits."""
    return min(
        vol_target_usd(equity_usd, target_vol_pct, daily_vol), equity_usd * kelly_fraction * f_kelly
    )


def desired_position_usd(
    direction: float,
    net_edge_bps: float,
    equity_usd: float,
    daily_vol: float,
    target_vol_pct: float,
    kelly_fraction: float,
    f_kelly: float,
    full_size_edge_bps: float,
    size_mult: float,
) -> float:
    """``desired`` of the module docstring (0 when net_edge_bps <= 0)."""
    if net_edge_bps <= 0.0:
        return 0.0
    full = full_size_usd(equity_usd, target_vol_pct, daily_vol, kelly_fraction, f_kelly)
    conviction = min(1.0, net_edge_bps / full_size_edge_bps)
    return math.copysign(full * conviction * size_mult, direction)


@dataclass(slots=True)  # not frozen: built per signal, and frozen costs 3x to construct
class SizeInputs:
    """What ``size`` needs beyond the book: plain floats, resolved per call."""

    direction: float  # +1 buy side, -1 sell side
    net_edge_bps: float
    target_vol_pct: float
    kelly_fraction: float
    f_kelly: float
    full_size_edge_bps: float
    size_mult: float


def size(i: int, inputs: SizeInputs, book: Book, caps: Caps, reducing: bool) -> tuple[float, str]:
    """(target position of name i in USD, binding limit or ""): desired size, then every
    limit. This is the entry point ``make bench`` times."""
    cov_ii = book.cov_daily[i][i]
    desired = desired_position_usd(
        inputs.direction,
        inputs.net_edge_bps,
        book.equity_usd,
        math.sqrt(cov_ii) if cov_ii > 0.0 else 0.0,
        inputs.target_vol_pct,
        inputs.kelly_fraction,
        inputs.f_kelly,
        inputs.full_size_edge_bps,
        inputs.size_mult,
    )
    return constrain(i, desired, book, caps, reducing)


class KellyTracker:
    """Win rate and average win / loss of closed trades (USD, after fees)."""

    __slots__ = ("wins", "losses", "win_usd", "loss_usd")

    def __init__(self) -> None:
        self.wins = 0
        self.losses = 0
        self.win_usd = 0.0
        self.loss_usd = 0.0

    def record(self, pnl_usd: float) -> None:
        if pnl_usd > 0:
            self.wins += 1
            self.win_usd += pnl_usd
        else:
            self.losses += 1
            self.loss_usd += -pnl_usd

    def f(self, prior_win_rate: float, prior_win_loss: float, prior_trades: int) -> float:
        """Kelly f* from the priors until ``prior_trades`` outcomes, then from the record."""
        n = self.wins + self.losses
        if n < prior_trades or self.wins == 0 or self.losses == 0 or self.loss_usd <= 0:
            if n >= prior_trades and self.wins == 0:
                return 0.0  # enough trades and not one win: no edge
            return kelly_f(prior_win_rate, prior_win_loss)
        b = (self.win_usd / self.wins) / (self.loss_usd / self.losses)
        return kelly_f(self.wins / n, b)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}

    def load(self, d: dict[str, float]) -> None:
        self.wins = int(d.get("wins", 0))
        self.losses = int(d.get("losses", 0))
        self.win_usd = float(d.get("win_usd", 0.0))
        self.loss_usd = float(d.get("loss_usd", 0.0))


def bench_inputs() -> tuple[int, SizeInputs, Book, Caps, bool]:
    """A representative call for ``make bench``: ``size(*bench_inputs())`` sizes BTC in a
    4-name book (3 crypto, 1 stock) under the balanced limits."""
    vols = (0.05, 0.06, 0.08, 0.02)
    cov = tuple(
        tuple(v * w * (1.0 if i == j else 0.3) for j, w in enumerate(vols))
        for i, v in enumerate(vols)
    )
    book = Book(
        (20_000.0, -15_000.0, 5_000.0, 30_000.0),
        ("crypto", "crypto", "crypto", "stocks"),
        ("crypto", "crypto", "crypto", "tech"),
        cov,
        1_000_000.0,
        30_000.0,
    )
    caps = Caps(25.0, 2.0, 50.0, 250.0, 0.5, 2.0, 1.645, 100_000.0)
    return 0, SizeInputs(1.0, 6.0, 0.5, 0.25, 0.1, 10.0, 1.0), book, caps, False
