"""Who leads a symbol, and when that changes (the switch log, stream ``router.switches``).

A vote's share of a symbol's consensus is ``|w_i (2 p_i - 1) s_i|`` (seed 003 §1 as
quoted in issue 4), the largest over the symbol's horizons. Shares are smoothed per
symbol and model with a time-based EWMA, ``share <- share + a (x - share)``,
``a = 1 - exp(-ln2 * dt / half_life_s)`` (a model not voting counts 0), so one noisy
tick does not hand over the lead. The leader is the model with the largest smoothed
share; a challenger takes over only when it carries at least ``margin`` times the
incumbent's smoothed share; a model a rules reload stopped routing loses its share at
once. Every change is a ``Switch`` with its reason. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NO_MODEL = "none"
LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class Switch:
    symbol: str
    from_model: str
    to_model: str
    reason: str


@dataclass(slots=True)
class _Lead:
    model_id: str
    regime: str
    rules_epoch: int
    ts_ns: int
    smoothed: dict[str, float] = field(default_factory=dict)


class LeaderTracker:
    def __init__(self, margin: float = 1.5, half_life_s: float = 30.0) -> None:
        self.margin = margin
        self.half_life_s = half_life_s
        self._leads: dict[str, _Lead] = {}

    def leader(self, symbol: str) -> str | None:
        lead = self._leads.get(symbol)
        return lead.model_id if lead else None

    def update(
        self,
        symbol: str,
        shares: dict[str, float],
        regime: str,
        rules_epoch: int,
        ts_ns: int,
        routed: frozenset[str] | None = None,
    ) -> Switch | None:
        """Record one message's shares (model_id -> share of |S|); a Switch if the
        leader changed. ``routed``: the live models the rules still route for the symbol;
        a model dropped by a reload loses its smoothed share at once."""
        lead = self._leads.get(symbol)
        if lead is None:
            if not shares:
                return None
            best = max(shares, key=lambda m: (shares[m], m))
            self._leads[symbol] = _Lead(best, regime, rules_epoch, ts_ns, dict(shares))
            return Switch(symbol, NO_MODEL, best, f"first vote (regime {regime})")
        dt_s = max(0.0, (ts_ns - lead.ts_ns) / 1e9)
        a = 1.0 - math.exp(-LN2 * dt_s / self.half_life_s)
        sm = lead.smoothed
        if routed is not None:
            for model_id in [m for m in sm if m not in routed]:
                del sm[model_id]
        for model_id in sm.keys() | shares.keys():
            sm[model_id] = sm.get(model_id, 0.0) + a * (
                shares.get(model_id, 0.0) - sm.get(model_id, 0.0)
            )
        if not sm:
            lead.regime, lead.rules_epoch, lead.ts_ns = regime, rules_epoch, ts_ns
            return None
        best = max(sm, key=lambda m: (sm[m], m))
        incumbent = lead.model_id
        switch = None
        held = sm.get(incumbent, 0.0)
        if best != incumbent and sm[best] > 0 and sm[best] >= self.margin * held:
            switch = Switch(
                symbol, incumbent, best, self._reason(lead, shares, best, regime, rules_epoch)
            )
            lead.model_id = best
        lead.regime, lead.rules_epoch, lead.ts_ns = regime, rules_epoch, ts_ns
        return switch

    def _reason(
        self, lead: _Lead, shares: dict[str, float], best: str, regime: str, epoch: int
    ) -> str:
        incumbent, sm = lead.model_id, lead.smoothed
        why = f"{best} share {sm[best]:.3g} >= {self.margin:g} x {incumbent} {sm.get(incumbent, 0.0):.3g}"
        context = []
        if incumbent not in sm:
            context.append(f"{incumbent} no longer routed by the rules")
        elif incumbent not in shares:
            context.append(f"{incumbent} not voting")
        if regime != lead.regime:
            context.append(f"regime {lead.regime}->{regime}")
        if epoch != lead.rules_epoch:
            context.append("rules reloaded")
        return why + (f" ({', '.join(context)})" if context else "")
