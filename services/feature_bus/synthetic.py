"""A seeded, regime-switching synthetic market (the default source).

Deterministic for a given seed: the same config and ``start_ts_ns`` give the same
quotes, timestamps included. The market has its own event clock: quote k (counted over
all symbols, round-robin) has ``ts_ns = start_ts_ns + floor(k * 1e9 /
nominal_ticks_per_s)``, distinct and increasing across symbols, however fast the
service draws them (``ticks_per_s`` paces the wall clock only; at 0, full speed, the
market is fast-forwarded, not faster-moving). Moves are per tick; the nominal rate fixes
the time per tick (4 symbols at 50 per second: 80 ms per symbol tick). ``trace_ts_ns``
is the wall-clock ingest stamp the caller gives (latency only); ``recv_ts_ns`` is the
event time (a simulated quote is received when it happens: never stale). Each symbol walks through regimes, each lasting a geometric
number of ticks (mean ``regime_ticks``, panics shorter), in the order drawn from its own
generator, so every downstream path (seed 003 §2 regimes) gets exercised:

| regime   | mid (per tick)                                   | spread            | depth / volume |
|----------|--------------------------------------------------|-------------------|----------------|
| trend    | drift +-0.6 sigma, sigma = vol_bps_per_tick       | x1                | x1             |
| range    | mean-reverting (kappa 0.3) around its start, sigma 6 bps | x1       | x1             |
| panic    | drift -0.4 sigma, sigma 25 bps, 2 % chance of a 2.5-4 % jump down | x4 | x4 volume, x0.5 depth |
| illiquid | sigma = vol_bps_per_tick                          | max(x20, 60 bps)  | x0.1           |

Book imbalance is persistent (AR(1)) and drift follows it a little, so order-book
pressure carries information as in a real book.

Prints (``synthetic_prints: true``; off by default, which keeps md.ticks and features
byte-identical to the market without them): one aggregated print per quote, the
trades since the symbol's previous quote, all of one aggressor. They are drawn from a
generator of their own per symbol (``random.Random(f"prints:{seed ^ 0x5EED}:{symbol}")``),
never from the quote generator, so the quotes are the same with and without prints:

- trade count ~ Poisson(3 x the regime's volume multiplier): 12 in a panic, 0.3 illiquid;
- aggressor: buyer with ``p = clip(0.5 + 0.3 imbalance + 0.15 drift, 0.05, 0.95)``,
  ``drift`` the regime's drift in sigmas (trend +-0.6, panic -0.4, else 0), so the tape
  leans the way the book and the trend lean;
- size: each trade lognormal, ``0.01 * mean_size * depth_mult * exp(N(0, 0.8))``
  (``depth_mult`` the regime's depth multiplier: trades scale with the book), summed;
- sweep: with probability 2 % (6 % in a panic) the print also takes 1.2 to 3 times the
  displayed depth of the side it hits (the ask for a buyer, the bid for a seller);
- price: the touch it hits (ask for a buyer, bid for a seller); None without trades.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator

from services.feature_bus.config import FeatureBusConfig, SymbolSpec
from shared.messages import SCHEMA_VERSION, RawQuote

REGIMES = ("trend", "range", "panic", "illiquid")
# A weak pull of log(mid) back to the start price, per tick (half-life about 700 ticks
# of a symbol): panics drift down and jump down with no regime to undo them, so without
# it a long run at full speed (hundreds of thousands of ticks) walked prices towards 0.
PULL_PER_TICK = 1e-3


class SymbolWalk:
    __slots__ = (
        "spec",
        "mid",
        "imbalance",
        "rng",
        "regime",
        "left",
        "direction",
        "anchor",
        "mean_ticks",
        "prints",
    )

    def __init__(
        self,
        spec: SymbolSpec,
        rng: random.Random,
        mean_ticks: int,
        prints: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.prints = prints  # the print generator; None: this market gives no prints
        self.mid = spec.start_price
        self.imbalance = 0.0
        self.rng = rng
        self.mean_ticks = mean_ticks
        self.regime = "trend"
        self.direction = 1.0
        self.anchor = self.mid
        self.left = self._length()

    def _length(self) -> int:
        mean = self.mean_ticks // 2 if self.regime == "panic" else self.mean_ticks
        return 20 + int(self.rng.expovariate(1.0 / mean))

    def _switch(self) -> None:
        self.regime = self.rng.choice([r for r in REGIMES if r != self.regime])
        self.direction = self.rng.choice((-1.0, 1.0))
        self.anchor = self.mid
        self.left = self._length()

    def step(self, ts_ns: int, trace_ts_ns: int = 0, session: str = "") -> RawQuote:
        s, rng = self.spec, self.rng
        if self.left <= 0:
            self._switch()
        self.left -= 1
        regime = self.regime
        sigma = s.vol_bps_per_tick / 1e4
        spread_mult, depth_mult, volume_mult = 1.0, 1.0, 1.0
        log_step = 0.3 * sigma * self.imbalance - PULL_PER_TICK * math.log(self.mid / s.start_price)
        if regime == "trend":
            log_step += 0.6 * sigma * self.direction + sigma * rng.gauss(0.0, 1.0)
        elif regime == "range":
            log_step += -0.3 * math.log(self.mid / self.anchor) + 6e-4 * rng.gauss(0.0, 1.0)
        elif regime == "panic":
            sigma = 25e-4
            log_step += -0.4 * sigma + sigma * rng.gauss(0.0, 1.0)
            if rng.random() < 0.02:
                log_step += math.log(1.0 - rng.uniform(0.025, 0.04))
            spread_mult, depth_mult, volume_mult = 4.0, 0.5, 4.0
        else:  # illiquid
            log_step += sigma * rng.gauss(0.0, 1.0)
            spread_mult = max(20.0, 60.0 / s.spread_bps)
            depth_mult = volume_mult = 0.1
        self.mid *= math.exp(log_step)
        self.imbalance = 0.9 * self.imbalance + 0.3 * rng.uniform(-1.0, 1.0)
        self.imbalance = max(-0.95, min(0.95, self.imbalance))
        spread = self.mid * s.spread_bps * spread_mult / 1e4 * rng.lognormvariate(0.0, 0.25)
        depth = depth_mult * s.mean_size * (rng.expovariate(1.0) * 2 + 1e-3)
        bid = round(self.mid - spread / 2, 8)
        ask = round(self.mid + spread / 2, 8)
        bid_size = round(depth * (1 + self.imbalance) / 2, 6)
        ask_size = round(depth * (1 - self.imbalance) / 2, 6)
        trade_qty: float | None = None
        trade_side, trade_price, trade_count = 0, None, 0
        if self.prints is not None:
            drift = (
                0.6 * self.direction if regime == "trend" else -0.4 if regime == "panic" else 0.0
            )
            trade_qty, trade_side, trade_price, trade_count = self._print(
                volume_mult, depth_mult, drift, bid, ask, bid_size, ask_size, regime == "panic"
            )
        # Built, not validated: every value is computed here, finite and of its type.
        return RawQuote.trusted(
            {  # every field, in RawQuote's order (see Message.trusted)
                "v": SCHEMA_VERSION,
                "trace_ts_ns": trace_ts_ns,
                "symbol": s.symbol,
                "ts_ns": ts_ns,
                "bid": bid,
                "ask": ask,
                "bid_size": bid_size,
                "ask_size": ask_size,
                "last": None,
                "volume": round(volume_mult * rng.expovariate(1.0 / s.mean_size), 6),
                "open": None,
                "high": None,
                "low": None,
                "source": "synthetic",
                "session": session,
                "recv_ts_ns": ts_ns,
                "line": 0,
                "trade_qty": trade_qty,
                "trade_side": trade_side,
                "trade_price": trade_price,
                "trade_count": trade_count,
            }
        )

    def _print(
        self,
        volume_mult: float,
        depth_mult: float,
        drift: float,
        bid: float,
        ask: float,
        bid_size: float,
        ask_size: float,
        panic: bool,
    ) -> tuple[float, int, float | None, int]:
        """(qty, side, price, count) of the trades since the previous quote (module
        docstring), from the print generator only."""
        rng = self.prints
        assert rng is not None
        count = poisson(rng, 3.0 * volume_mult)
        if count == 0:
            return 0.0, 0, None, 0
        p_buy = max(0.05, min(0.95, 0.5 + 0.3 * self.imbalance + 0.15 * drift))
        side = 1 if rng.random() < p_buy else -1
        unit = 0.01 * self.spec.mean_size * depth_mult  # trades scale with the book
        qty = sum(unit * rng.lognormvariate(0.0, 0.8) for _ in range(count))
        if rng.random() < (0.06 if panic else 0.02):
            qty += (ask_size if side > 0 else bid_size) * rng.uniform(1.2, 3.0)
        return round(qty, 6), side, ask if side > 0 else bid, count


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) draw by Knuth's product of uniforms (lam is small here)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class SyntheticMarket:
    """Round-robin over the configured symbols, on its own event clock."""

    def __init__(self, cfg: FeatureBusConfig, start_ts_ns: int | None = None) -> None:
        rng = random.Random(cfg.seed)
        self.walks = [
            SymbolWalk(
                spec,
                random.Random(rng.getrandbits(64)),
                cfg.regime_ticks,
                # Its own generator: drawing prints never moves the quotes' draws.
                random.Random(f"prints:{cfg.seed ^ 0x5EED}:{spec.symbol}")
                if cfg.synthetic_prints
                else None,
            )
            for spec in cfg.symbols
        ]
        self._i = 0
        start = cfg.start_ts_ns if start_ts_ns is None else start_ts_ns
        # 0: the live stack's market starts now (its only wall-clock read, once).
        self.start_ts_ns = start or time.time_ns()
        self.step_ns = 1e9 / cfg.nominal_ticks_per_s
        # A market made anew (a reloaded seed or symbols, start 0: a new clock) is a
        # new session of the pipeline, so its first quotes do not trip "out of order".
        self.session = f"synthetic@{self.start_ts_ns}"

    @property
    def event_ns(self) -> int:
        """Event time of the next quote."""
        return self.start_ts_ns + int(self._i * self.step_ns)

    def quotes(self, n: int, trace_ts_ns: int = 0) -> Iterator[RawQuote]:
        """The next ``n`` quotes; ``trace_ts_ns`` is the caller's wall-clock ingest
        stamp (0 = let the pipeline stamp them)."""
        walks, m = self.walks, len(self.walks)
        start, step, session = self.start_ts_ns, self.step_ns, self.session
        for _ in range(n):
            i = self._i
            self._i = i + 1
            yield walks[i % m].step(start + int(i * step), trace_ts_ns, session)
