"""Edge blending (seed 004 as quoted in issue 5): confidence-weighted, stale signals
decayed exponentially, shrunk toward a prior of zero edge.

Each signal i has an edge e_i (bps), a confidence c_i in [0, 1] and an age a_i (s).
Its weight is

    w_i = c_i * 2 ** (-a_i / half_life_s)

A signal is read as a noisy observation of the true edge with variance
noise_bps**2 / w_i (a confidence-1 fresh signal has sd noise_bps); the prior is
N(0, prior_sd_bps**2). The normal-normal posterior gives, with W = sum w_i and the
prior strength k = (noise_bps / prior_sd_bps)**2:

    edge_blended_bps = sum(w_i * e_i) / (W + k)
    uncertainty_bps  = noise_bps / sqrt(W + k)

so shrinkage toward zero falls as the number and quality (confidence, freshness) of
signals grow: one fresh confidence-1 signal keeps W / (W + k) of its edge.
Confidence 0 means "no opinion" (weight 0). Shadow signals are never blended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.risk_harmoniser.config import BlendParams
from shared.messages import Signal

CONSENSUS = "consensus"
_LN2 = math.log(2.0)

# (edge_bps, confidence, age_s): the plain-float view of one signal.
SignalView = tuple[float, float, float]


def blend(
    signals: Sequence[SignalView], half_life_s: float, noise_bps: float, prior_sd_bps: float
) -> tuple[float, float]:
    """(edge_blended_bps, uncertainty_bps); see the module docstring for the formula."""
    k = (noise_bps / prior_sd_bps) ** 2
    decay = -_LN2 / half_life_s
    num = 0.0
    total_w = 0.0
    for edge_bps, confidence, age_s in signals:
        if confidence <= 0.0:
            continue
        w = confidence * math.exp(decay * age_s) if age_s > 0.0 else confidence
        num += w * edge_bps
        total_w += w
    denom = total_w + k
    return num / denom, noise_bps / math.sqrt(denom)


class SignalBook:
    """The latest live signal per (model_id, horizon) of one symbol.

    The model router's ``consensus`` signals already combine its models; when a fresh
    one exists only consensus signals are blended, so members are never counted twice.
    Otherwise (a router that emits plain per-model signals) every fresh model counts.
    """

    __slots__ = ("latest",)

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], Signal] = {}

    def add(self, sig: Signal) -> bool:
        """Keep ``sig`` if live and not older than what we hold; False if ignored."""
        if sig.shadow:
            return False
        key = (sig.model_id, sig.horizon)
        held = self.latest.get(key)
        if held is not None and held.ts_ns > sig.ts_ns:
            return False
        self.latest[key] = sig
        return True

    def views(self, now_ns: int, max_age_s: float) -> list[SignalView]:
        """The fresh consensus signals if any, else every fresh signal (one pass)."""
        fresh: list[SignalView] = []
        consensus: list[SignalView] = []
        for s in self.latest.values():
            age_s = (now_ns - s.ts_ns) / 1e9
            if age_s <= max_age_s:
                view = (s.edge_bps, s.confidence, age_s if age_s > 0.0 else 0.0)
                fresh.append(view)
                if s.model_id == CONSENSUS:
                    consensus.append(view)
        return consensus or fresh


def blend_book(book: SignalBook, now_ns: int, p: BlendParams) -> tuple[float, float, int]:
    """(edge_blended_bps, uncertainty_bps, signals used) for one symbol at ``now_ns``."""
    views = book.views(now_ns, p.max_age_s)
    edge_bps, unc_bps = blend(views, p.half_life_s, p.noise_bps, p.prior_sd_bps)
    return edge_bps, unc_bps, len(views)
