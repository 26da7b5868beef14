"""PnL attribution by engine and by cost, for the 23:55 UTC snapshot (seed 003 "Daily
Schedule": "PnL attribution (by engine, by cost) snapshot to reports").

A trade is one round trip of a symbol, from the fill that opens a position to the fill
that brings it back to flat. Its PnL is split two ways; docs/daily.md has a worked example.

By cost (USD; a cost is positive when paid, a rebate negative):

    net = gross - fees - spread - impact - slippage - funding

- gross: the PnL at the decision prices, before any cost (-sum_k d_k q_k P_k, d = +1 buy,
  -1 sell, P the decision price: the mid the order was sized on);
- fees: the venue's fees of the fills (``Fill.fee``);
- spread, impact: the half-spread and the market impact the fill model charged,
  ``half_spread_bps`` and ``impact_bps`` of the decision notional q P;
- slippage: the rest of the fill's slippage against its decision price (the price moving
  between the decision and the fill), so that spread + impact + slippage is the fill's
  whole slippage d q (price - P);
- funding: what holding the position paid (``Fill.funding_usd``).

By engine: the trade's every part is split among the engines that voted for its
direction in the consensus signal that opened it, in proportion to their part of the
consensus score (services/model_router/consensus.py, step 5: S = sum_i w_i (2 p_i - 1) s_i):

    a_i = w_i (2 p_i - 1) s_i,   share_i = max(d a_i, 0) / sum_j max(d a_j, 0)

with d the trade's direction. An engine that voted against the trade gets no share (it
neither made nor lost the trade's money); a trade without such votes goes to
``unattributed``. Shares sum to 1, so the engines' parts sum to the trade's. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

UNATTRIBUTED = "unattributed"
COST_PARTS = ("fees_usd", "spread_usd", "impact_usd", "slippage_usd", "funding_usd")
PARTS = ("gross_pnl_usd", *COST_PARTS, "net_pnl_usd")
FLAT_RTOL = 1e-9  # a round trip's signed quantities sum to 0 within this share of its size


@dataclass(frozen=True)
class Trade:
    """One round trip; costs positive when paid. ``engine_shares``: engine -> share of
    the trade (>= 0; normalised to sum 1 when attributed; empty = unattributed)."""

    trade_id: str
    symbol: str
    open_ts_ns: int
    close_ts_ns: int
    gross_pnl_usd: float
    fees_usd: float = 0.0
    spread_usd: float = 0.0
    impact_usd: float = 0.0
    slippage_usd: float = 0.0
    funding_usd: float = 0.0
    engine_shares: Mapping[str, float] = field(default_factory=dict)

    @property
    def net_pnl_usd(self) -> float:
        return self.gross_pnl_usd - math.fsum(getattr(self, p) for p in COST_PARTS)

    def parts(self) -> dict[str, float]:
        """gross, the five costs and net, keyed as in ``PARTS``."""
        out = {p: float(getattr(self, p)) for p in ("gross_pnl_usd", *COST_PARTS)}
        out["net_pnl_usd"] = self.net_pnl_usd
        return out


def engine_shares(
    votes: Mapping[str, Mapping[str, Any]] | None, direction: float | None = None
) -> dict[str, float]:
    """share_i = max(d a_i, 0) / sum_j max(d a_j, 0), a_i = w_i (2 p_i - 1) s_i.

    votes: a Signal's ``votes`` (model_id -> {"edge_bps", "weight", "p" or "confidence"});
    2 p - 1 is the vote's confidence. d: the trade's direction (+1 long, -1 short), by
    default the sign of the score S = sum a_i. {UNATTRIBUTED: 1.0} when no vote backs d.
    """
    contrib: dict[str, float] = {}
    for model_id, v in (votes or {}).items():
        e = float(v.get("edge_bps", 0.0))
        s = 1.0 if e > 0 else (-1.0 if e < 0 else 0.0)
        conviction = 2.0 * float(v["p"]) - 1.0 if "p" in v else float(v.get("confidence", 0.0))
        contrib[model_id] = float(v.get("weight", 1.0)) * conviction * s
    score = math.fsum(contrib.values())
    d = direction if direction is not None else (1.0 if score > 0 else -1.0 if score < 0 else 0.0)
    backing = {m: d * a for m, a in contrib.items() if d * a > 0.0}
    total = math.fsum(backing.values())
    if total <= 0.0:
        return {UNATTRIBUTED: 1.0}
    return {m: a / total for m, a in sorted(backing.items())}


def normalised_shares(shares: Mapping[str, float]) -> dict[str, float]:
    """The shares over their sum (zeros dropped); {UNATTRIBUTED: 1.0} when none is > 0."""
    for m, s in shares.items():
        if not (math.isfinite(s) and s >= 0.0):
            raise ValueError(f"engine share {m!r}={s!r} must be finite and >= 0")
    total = math.fsum(shares.values())
    if total <= 0.0:
        return {UNATTRIBUTED: 1.0}
    return {m: s / total for m, s in sorted(shares.items()) if s > 0.0}


def _direction(side: str) -> float:
    if side == "buy":
        return 1.0
    if side == "sell":
        return -1.0
    raise ValueError(f"side {side!r} must be 'buy' or 'sell'")


def trade_from_fills(
    trade_id: str,
    fills: Sequence[Mapping[str, Any]],
    votes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Trade:
    """The Trade of one round trip from its Fill-like dicts (``Fill.model_dump()``).

    Per fill k (d_k, q_k, price_k; P_k = decision_price, or price_k / (1 + d_k s_k / 1e4)
    from slippage_bps s_k when absent): slippage_k = d_k q_k (price_k - P_k), spread_k and
    impact_k = half_spread_bps, impact_bps / 1e4 * q_k P_k (0 when absent), the rest of
    slippage_k stays slippage. gross = -sum d_k q_k P_k. The fills must be of one symbol
    and end flat. ``votes``: the opening signal's, split by ``engine_shares`` with the
    direction of the first fill.
    """
    if not fills:
        raise ValueError(f"trade {trade_id!r} has no fill")
    symbols = {str(f["symbol"]) for f in fills}
    if len(symbols) != 1:
        raise ValueError(f"trade {trade_id!r} spans symbols {sorted(symbols)}")
    ordered = sorted(fills, key=lambda f: int(f["ts_ns"]))
    net_qty = 0.0
    size = 0.0
    decision_value = []
    spread, impact, slip, fees, funding = [], [], [], [], []
    for f in ordered:
        d = _direction(str(f["side"]))
        q = float(f["qty"])
        price = float(f["price"])
        p_dec = f.get("decision_price")
        p_dec = (
            float(p_dec)
            if p_dec is not None
            else price / (1.0 + d * float(f["slippage_bps"]) / 1e4)
        )
        notional = q * p_dec
        s_k = d * q * (price - p_dec)
        sp_k = float(f.get("half_spread_bps") or 0.0) / 1e4 * notional
        im_k = float(f.get("impact_bps") or 0.0) / 1e4 * notional
        net_qty += d * q
        size += q
        decision_value.append(-d * notional)
        spread.append(sp_k)
        impact.append(im_k)
        slip.append(s_k - sp_k - im_k)
        fees.append(float(f.get("fee", 0.0)))
        funding.append(float(f.get("funding_usd", 0.0)))
    if abs(net_qty) > FLAT_RTOL * size:
        raise ValueError(f"trade {trade_id!r} does not end flat (net qty {net_qty:g})")
    return Trade(
        trade_id=trade_id,
        symbol=symbols.pop(),
        open_ts_ns=int(ordered[0]["ts_ns"]),
        close_ts_ns=int(ordered[-1]["ts_ns"]),
        gross_pnl_usd=math.fsum(decision_value),
        fees_usd=math.fsum(fees),
        spread_usd=math.fsum(spread),
        impact_usd=math.fsum(impact),
        slippage_usd=math.fsum(slip),
        funding_usd=math.fsum(funding),
        engine_shares=engine_shares(votes, _direction(str(ordered[0]["side"]))),
    )


def _sum_parts(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    acc: dict[str, list[float]] = {p: [] for p in PARTS}
    for row in rows:
        for p in PARTS:
            acc[p].append(row[p])
    return {p: math.fsum(v) for p, v in acc.items()}


def attribute(trades: Iterable[Trade]) -> dict[str, Any]:
    """The JSON-able attribution report of the trades.

    ``total``: gross, the five costs and net over all trades; ``by_cost``: the five costs
    and their sum ``cost_usd`` (so total gross - cost_usd = total net); ``by_engine``: engine -> the parts of its shares of
    the trades, and ``n_trades`` it had a share in; ``by_symbol``: symbol -> parts and
    n_trades. Every part of ``by_engine`` (and of ``by_symbol``) sums to the total's.
    """
    per_trade: list[tuple[Trade, dict[str, float], dict[str, float]]] = []
    for t in trades:
        per_trade.append((t, t.parts(), normalised_shares(t.engine_shares)))
    total = _sum_parts(parts for _, parts, _ in per_trade)

    engine_rows: dict[str, list[dict[str, float]]] = {}
    symbol_rows: dict[str, list[dict[str, float]]] = {}
    for t, parts, shares in per_trade:
        for engine, share in shares.items():
            engine_rows.setdefault(engine, []).append({p: share * v for p, v in parts.items()})
        symbol_rows.setdefault(t.symbol, []).append(parts)

    def table(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float | int]]:
        return {k: {**_sum_parts(v), "n_trades": len(v)} for k, v in sorted(rows.items())}

    return {
        "n_trades": len(per_trade),
        "total": total,
        "by_cost": {
            **{p: total[p] for p in COST_PARTS},
            "cost_usd": math.fsum(total[p] for p in COST_PARTS),
        },
        "by_engine": table(engine_rows),
        "by_symbol": table(symbol_rows),
    }
