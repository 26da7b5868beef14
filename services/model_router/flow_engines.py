"""TAPE, SWEEP and LEADER: the three seed 002 engines that read trades, not only quotes.

Seed 002 names six alpha engines (TREND, RANGE, BREAKOUT, TAPE, LEADER, SWEEP) and
routes TAPE/SWEEP signals to the scalp book; it gives no formulas. The formulas below
are this module's own, in the units of their names. They read the print features of
feature_bus (docs/feature_bus.md "Prints"): ``flow_imbalance``, ``trade_rate_per_s``,
``sweep_bps``, None while a symbol's source gives no prints (then they wait).

- TAPE (order-flow momentum): ``edge_bps = clip(20 * flow_imbalance, +-15)``;
  ``confidence = |flow_imbalance| * min(1, trade_rate_per_s / 5)``: a lopsided tape
  counts fully only when it trades at least 5 times a second. Waits without prints
  and while no trade has been seen (rate 0).
- SWEEP (follow a sweep): ``strength = |sweep_bps| / 1e4``, the last sweep's size in
  multiples of the depth it took, decayed by feature_bus over ``sweep_window_s``;
  ``edge_bps = sign(sweep_bps) * min(20, 8 * strength)``,
  ``confidence = min(1, strength / 2)``. Waits without prints and once the sweep has
  decayed below a quarter of the depth (strength < 0.25).
- LEADER (lead-lag): every symbol's features are observed; the leader's (``BTC-USD``
  by default) return is summed into buckets of ``bucket_s`` seconds of event time.
  When a follower's bucket closes, its return ``y`` (bps over the bucket) is regressed
  on the leader's return ``x`` over the bucket before (the lagged return) by an EWMA
  regression through the origin, ``Sxy <- l Sxy + x y``, ``Sxx <- l Sxx + x^2``,
  ``beta = Sxy / Sxx``, ``l = 1 - 1 / span`` per sample (span ``beta_span``). The
  prediction for a follower is ``edge_bps = clip(beta * x_last, +-25)`` with ``x_last``
  the leader's return over its last closed bucket; ``confidence = min(1, |beta|) *
  min(1, n / (2 min_samples))``. Waits for the leader itself, and until ``min_samples``
  (lagged) samples have been regressed and the leader has closed a bucket.

All three are pure: no I/O, event time only (``ts_ns``), memory bounded by the number
of symbols.
"""

from __future__ import annotations

from services.model_router.models import ModelBase, Prediction
from shared.messages import Features

NS_PER_S = 1_000_000_000


def _clip(x: float, bound: float) -> float:
    return max(-bound, min(bound, x))


class TapeEngine(ModelBase):
    id = "tape"
    description = "order-flow momentum of the prints (seed 002 TAPE engine; our formula)"
    regimes = frozenset({"TREND", "RANGE"})
    EDGE_PER_IMBALANCE_BPS = 20.0
    MAX_EDGE_BPS = 15.0
    FULL_RATE_PER_S = 5.0

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        flow, rate = f.flow_imbalance, f.trade_rate_per_s
        if flow is None or not rate:
            return None  # no prints from this source, or no trade yet
        edge = _clip(self.EDGE_PER_IMBALANCE_BPS * flow, self.MAX_EDGE_BPS)
        return edge, min(1.0, abs(flow)) * min(1.0, rate / self.FULL_RATE_PER_S)


class SweepEngine(ModelBase):
    id = "sweep"
    description = (
        "follows the last sweep of the book, decaying (seed 002 SWEEP engine; our formula)"
    )
    regimes = frozenset({"TREND", "RANGE"})
    EDGE_PER_DEPTH_BPS = 8.0
    MAX_EDGE_BPS = 20.0
    MIN_STRENGTH = 0.25

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        sweep = f.sweep_bps
        if sweep is None:
            return None
        strength = abs(sweep) / 1e4
        if strength < self.MIN_STRENGTH:
            return None  # no sweep, or one that has faded
        edge = min(self.MAX_EDGE_BPS, self.EDGE_PER_DEPTH_BPS * strength)
        return (edge if sweep > 0 else -edge), min(1.0, strength / 2.0)


class _Bucket:
    """A symbol's return summed over buckets of ``bucket_ns`` of event time."""

    __slots__ = ("index", "sum_bps", "last_closed_bps", "closed")

    def __init__(self, index: int) -> None:
        self.index = index  # the open bucket: floor(ts_ns / bucket_ns)
        self.sum_bps = 0.0  # return so far in the open bucket
        self.last_closed_bps = 0.0  # return over bucket index - 1 (0: no tick in it)
        self.closed = 0

    def push(self, index: int, return_bps: float) -> float | None:
        """Add a tick's return; the return of the bucket it closed, if it closed one."""
        if index <= self.index:
            self.sum_bps += return_bps
            return None
        closed_bps = self.sum_bps
        # Buckets without a tick in between are closed with a 0 return.
        self.last_closed_bps = closed_bps if index == self.index + 1 else 0.0
        self.closed += 1
        self.index = index
        self.sum_bps = return_bps
        return closed_bps


class LeaderEngine(ModelBase):
    id = "leader"
    description = "lead-lag: followers move beta times the leader's last return (seed 002 LEADER engine; our formula)"
    regimes = frozenset({"TREND"})
    MAX_EDGE_BPS = 25.0

    def __init__(
        self,
        leader: str = "BTC-USD",
        bucket_s: float = 1.0,
        beta_span: float = 200.0,
        min_samples: int = 30,
    ) -> None:
        self.leader = leader
        self.bucket_ns = int(bucket_s * NS_PER_S)
        self.keep = 1.0 - 1.0 / beta_span
        self.min_samples = min_samples
        self._leader: _Bucket | None = None
        # The leader's return over the bucket before the one just closed, per bucket
        # index: what a follower's bucket k is regressed on (the leader's bucket k - 1).
        self._leader_closed: dict[int, float] = {}
        self._followers: dict[str, _Bucket] = {}
        self._sxy: dict[str, float] = {}
        self._sxx: dict[str, float] = {}
        self._n: dict[str, int] = {}

    def observe(self, f: Features) -> None:
        index = f.ts_ns // self.bucket_ns
        if f.symbol == self.leader:
            if self._leader is None:
                self._leader = _Bucket(index)
                return
            closed_index = self._leader.index
            closed_bps = self._leader.push(index, f.return_bps)
            if closed_bps is not None:
                self._leader_closed[closed_index] = closed_bps
                # Bounded: followers only ask for the last few buckets.
                for old in [k for k in self._leader_closed if k < closed_index - 4]:
                    del self._leader_closed[old]
            return
        bucket = self._followers.get(f.symbol)
        if bucket is None:
            self._followers[f.symbol] = _Bucket(index)
            return
        closed_index = bucket.index
        y = bucket.push(index, f.return_bps)
        if y is None:
            return
        x = self._leader_closed.get(closed_index - 1)
        if x is None:
            return  # the leader had no closed bucket just before: no sample
        keep = self.keep
        self._sxy[f.symbol] = keep * self._sxy.get(f.symbol, 0.0) + x * y
        self._sxx[f.symbol] = keep * self._sxx.get(f.symbol, 0.0) + x * x
        self._n[f.symbol] = self._n.get(f.symbol, 0) + 1

    def beta(self, symbol: str) -> float | None:
        """The follower's beta on the leader's lagged return, None until min_samples."""
        n = self._n.get(symbol, 0)
        sxx = self._sxx.get(symbol, 0.0)
        if n < self.min_samples or sxx <= 0.0:
            return None
        return self._sxy[symbol] / sxx

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        if f.symbol == self.leader or self._leader is None or not self._leader.closed:
            return None
        beta = self.beta(f.symbol)
        if beta is None:
            return None
        edge = _clip(beta * self._leader.last_closed_bps, self.MAX_EDGE_BPS)
        ramp = min(1.0, self._n[f.symbol] / (2.0 * self.min_samples))
        return edge, min(1.0, abs(beta)) * ramp
