"""The router's core: features messages in, their signals and switches out. No I/O.

Every features message ``f`` of a symbol is *observed* (``observe``), in order:

1. outcomes of earlier predictions on that symbol that matured at ``f`` are scored
   (hit rate, Brier score per model and horizon) and fed to the learning models;
2. every model routed for the symbol observes ``f`` once (only models that keep state
   are called: a model without its own ``observe`` has nothing to do).

Decisions are *conflated* in event time (``handle``): a symbol is decided on at most
once per ``decide_interval_ms`` of event time, on the features entry that opens the
interval (its ``ts_ns`` and ``trace_ts_ns`` go on the outputs); entries within it are
observed only. Nothing depends on how entries were batched:

3. per matched (rule, horizon): each routed model predicts; the live models approved
   in ``f.regime`` vote (a waiting model's last vote stays, ageing, for at most
   ``HELD_VOTE_HALF_LIVES`` half-lives); consensus (see ``consensus.py``) gives S and the
   consensus edge; one live signal ``model_id="consensus"`` is emitted, its confidence
   ``min(1, |S|)`` if the gate ``|S| > k * rolling_std(S, window)`` is passed, else 0 (so
   risk ignores it); each approved shadow model with an opinion gets its own signal
   with ``shadow=True``; the prediction is queued for outcome scoring;
4. the symbol's leading model is updated; a change is a ``RouterSwitch``;
5. every model with an opinion, and the consensus, move their paper books to it
   (``track.py``); at each new UTC day of event time the books close the day and each
   model's trust index is recomputed from its outcomes and its daily PnL (seed 000 §2);
   where a model has a validation p-value its vote weight is multiplied by
   ``0.6 * trust + 0.4 * (1 - p)`` (``validation.trust_weighting``).

``handle(f)`` does both for one message (what a batch of one does).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.calibration.calibrator import OnlineCalibrator
from services.calibration.conformal import conformal_quantile
from services.model_router.config import ConformalConfig, RouterRules
from services.model_router.consensus import (
    Consensus,
    ScoreGate,
    Vote,
    VoteHistory,
    _sign,
    consensus,
)
from services.model_router.leader import LeaderTracker
from services.model_router.models import Prediction
from services.model_router.outcomes import OutcomeBook, Pending
from services.model_router.registry import ModelRegistry, Scorecard
from services.model_router.routing import MAX_CACHED_SYMBOLS, Route, RoutingTable
from services.model_router.track import TrackRecords
from services.validation.trust import Trust, trust_from_record, vote_weight
from shared.messages import Features, Message, RouterSwitch, Signal

CONSENSUS_ID = "consensus"
HELD_VOTE_HALF_LIVES = 3.0  # a held vote older than this many half-lives is dropped
QUANTILE_EVERY = 25  # new conformal scores between two quantile computations
MAX_CALLS = 5_000  # scored calls kept per model for its permutation test


@dataclass(slots=True)
class HorizonState:
    """Consensus state of one symbol and horizon under one set of routed models."""

    models: tuple[str, ...]
    gate: ScoreGate
    history: VoteHistory
    held: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # id -> ts, e, c


class Router:
    def __init__(self, rules: RouterRules, registry: ModelRegistry | None = None) -> None:
        self.registry = registry or ModelRegistry()
        self.outcomes = OutcomeBook()
        self.leaders = LeaderTracker(
            rules.consensus.switch_margin, rules.consensus.switch_half_life_s
        )
        self.consensus_scores: dict[str, Scorecard] = {}  # horizon -> the consensus' record
        # regime -> the consensus' record in it (seed 000's daily "Brier per regime")
        self.regime_scores: dict[str, Scorecard] = {}
        # exploration (our reading of seed 000's "exploration budget"): the canaries' share
        # of the consensus' |S| at each decision, summed, and the decisions counted
        self.exploration = [0.0, 0]
        self.canaries: frozenset[str] = _canaries(rules)
        # "model|regime" -> its online calibrator and the outcomes it has seen
        self.calibration = rules.calibration
        self.calibrators: dict[str, OnlineCalibrator] = {}
        self.cal_n: dict[str, int] = {}
        # "horizon|regime" -> the consensus edge's conformal scores |realised - predicted|
        # (bps, the last ``window``), and its quantile as last computed: (q, scores then)
        self.conformal_cfg: ConformalConfig = rules.conformal
        self.conformal: dict[str, deque[float]] = {}
        self._q: dict[str, tuple[float, int]] = {}
        self._scored: dict[str, int] = {}
        self._states: dict[tuple[str, str], HorizonState] = {}
        self.signals = self.gate_open = self.switches = 0
        self.table = RoutingTable(rules, epoch=0)
        self.params = rules.consensus
        # symbol -> (routes, routed models that keep state), for the current table
        self._routed: dict[str, tuple[tuple[Route, ...], tuple[str, ...]]] = {}
        self._latest: dict[str, Features] = {}  # symbol -> latest features, not decided on
        self._decided_ns: dict[str, int] = {}  # symbol -> event time of its last decision
        self._committed_ns: dict[str, int] = {}  # the same, as of the last written batch
        self.decide_interval_ns = int(rules.decide_interval_ms * 1e6)
        self.tracks = TrackRecords(rules.promotion.track_fee_bps)
        self.trust: dict[str, Trust] = {}  # model_id -> trust as of the last day closed
        self.vote_mult: dict[str, float] = {}  # model_id -> vote weight multiplier
        self.validation = rules.validation
        self.days_closed = 0  # day rolls since start (what the persisted state is saved on)
        self.next_review_ns: int | None = None  # the daily review's next event time
        # model_id -> its scored calls (ts_ns, direction, realised return as a fraction):
        # the ``ts, position, asset_return`` series its permutation test runs on
        self.calls: dict[str, deque[tuple[int, float, float]]] = {}
        self.unsaved_calls: dict[str, list[tuple[int, float, float]]] = {}

    def reload(self, rules: RouterRules) -> None:
        """New rules: a new routing table (so a fresh route cache). Consensus state is
        kept per symbol and horizon while its routed models and the consensus knobs are
        unchanged, else restarted. Called between batches, when nothing observed is
        waiting for a decision."""
        if rules.consensus != self.params:
            self._states.clear()
        self.table = RoutingTable(rules, epoch=self.table.epoch + 1)
        self._routed.clear()
        self.params = rules.consensus
        self.leaders.margin = rules.consensus.switch_margin
        self.leaders.half_life_s = rules.consensus.switch_half_life_s
        self.decide_interval_ns = int(rules.decide_interval_ms * 1e6)
        self.tracks.fee_bps = rules.promotion.track_fee_bps
        self.validation = rules.validation
        self.canaries = _canaries(rules)
        if rules.calibration != self.calibration:  # new buckets or decay: start again
            self.calibrators.clear()
            self.cal_n.clear()
        self.calibration = rules.calibration
        if rules.conformal != self.conformal_cfg:
            self.conformal.clear()
            self._q.clear()
            self._scored.clear()
        self.conformal_cfg = rules.conformal
        self._reweigh()

    # ---- trust ----------------------------------------------------------------------

    def _close_day(self) -> None:
        """A new day of event time: every model's trust from its outcomes and its paper
        book's daily PnL, then the vote multipliers."""
        self.days_closed += 1
        for model_id, book in self.tracks.books.items():
            if model_id == CONSENSUS_ID:
                card = self.consensus_scores.values()
                hits, scored = sum(c.hits for c in card), sum(c.scored for c in card)
            else:
                st = self.registry.stats[model_id]
                hits, scored = st.hits, st.scored
            self.trust[model_id] = trust_from_record(list(book.daily_bps), hits, scored)
        self._reweigh()

    def _reweigh(self) -> None:
        """Seed 000's vote weight, 0.6 trust + 0.4 (1 - p), for the models with a p-value
        and a trust index; every other model keeps its rule weight (x 1)."""
        mult: dict[str, float] = {}
        if self.validation.trust_weighting:
            for model_id, result in self.validation.results.items():
                trust = self.trust.get(model_id)
                if trust is not None:
                    mult[model_id] = vote_weight(trust.trust_index, result.p_value_sharpe)
        self.vote_mult = mult

    # ---- messages and decisions -------------------------------------------------------

    def handle(self, f: Features) -> list[Message]:
        """Observe ``f``; decide on it unless its symbol was decided on less than
        ``decide_interval_ms`` of event time ago."""
        self.observe(f)
        last = self._decided_ns.get(f.symbol)
        if last is not None and f.ts_ns - last < self.decide_interval_ns:
            self._latest.pop(f.symbol, None)
            return []
        if f.symbol not in self._latest:
            return []  # no rule for it
        self._decided_ns[f.symbol] = f.ts_ns
        return self.decide()

    def observe(self, f: Features) -> None:
        """Steps 1-2 for ``f``; ``f`` becomes its symbol's latest, what ``decide`` uses."""
        tracks = self.tracks
        if tracks.roll(f.ts_ns):
            self._close_day()
        if tracks.books:
            tracks.mark(f.symbol, f.mid)
        self._score_outcomes(f)
        routed = self._routed.get(f.symbol)
        if routed is None:
            routed = self._route_symbol(f.symbol)
        if not routed[0]:
            return  # no rule for this symbol: nothing to observe, nothing to decide
        observe = self.registry.observe
        for model_id in routed[1]:
            observe(model_id, f)
        latest = self._latest
        # Re-inserted, so decisions come out in the order of their latest features.
        latest.pop(f.symbol, None)
        latest[f.symbol] = f

    def decide(self) -> list[Message]:
        """Steps 3-4, once per symbol observed since the last call, on its latest features."""
        if not self._latest:
            return []
        latest, self._latest = self._latest, {}
        out: list[Message] = []
        for f in latest.values():
            out.extend(self._decide(f))
        return out

    def discard(self) -> None:
        """Forget the features observed but not decided on, and the decisions taken since
        the last ``commit`` (a batch that failed: its entries come again)."""
        self._latest.clear()
        self._decided_ns = dict(self._committed_ns)

    def commit(self) -> None:
        """The batch's outputs were written: its decisions stand."""
        if self._decided_ns != self._committed_ns:
            self._committed_ns = dict(self._decided_ns)

    def _route_symbol(self, symbol: str) -> tuple[tuple[Route, ...], tuple[str, ...]]:
        """The symbol's routes and its routed models that keep state, cached per symbol
        (the cache is dropped with the routing table at a reload)."""
        routes = self.table.routes(symbol)
        models = dict.fromkeys(m for route in routes for m in route.models)
        observers = tuple(m for m in models if self.registry.observes(m))
        if len(self._routed) >= MAX_CACHED_SYMBOLS:
            self._routed.clear()
        routed = self._routed[symbol] = (routes, observers)
        return routed

    def _decide(self, f: Features) -> list[Message]:
        routes = self.table.routes(f.symbol)
        out: list[Message] = []
        if not routes:
            return out
        shares: dict[str, float] = {}
        live_signals: list[Signal] = []
        for route in routes:
            sig, route_shares, shadow = self._route(f, route)
            live_signals.append(sig)
            out.extend(shadow)
            for model_id, share in route_shares.items():
                shares[model_id] = max(share, shares.get(model_id, 0.0))
        routed = (
            routes[0].voters if len(routes) == 1 else frozenset().union(*(r.voters for r in routes))
        )
        switch = self.leaders.update(f.symbol, shares, f.regime, self.table.epoch, f.ts_ns, routed)
        leader = self.leaders.leader(f.symbol)
        for sig in live_signals:
            sig.leading_model = leader
        out[:0] = live_signals
        if switch is not None:
            self.switches += 1
            out.append(
                RouterSwitch(
                    trace_ts_ns=f.trace_ts_ns,
                    symbol=switch.symbol,
                    ts_ns=f.ts_ns,
                    from_model=switch.from_model,
                    to_model=switch.to_model,
                    reason=switch.reason,
                )
            )
        self.signals += len(out) - (switch is not None)
        return out

    def _state(self, f: Features, route: Route) -> HorizonState:
        key = (f.symbol, route.horizon)
        st = self._states.get(key)
        if st is None or st.models != route.models:
            p = self.params
            st = self._states[key] = HorizonState(
                route.models,
                ScoreGate(p.k, p.window, p.min_samples),
                VoteHistory(route.models, p.corr_window, p.min_samples),
            )
        return st

    def _route(self, f: Features, route: Route) -> tuple[Signal, dict[str, float], list[Signal]]:
        st = self._state(f, route)
        preds: dict[str, Prediction | None] = {
            m: self.registry.predict(m, f, route.horizon) for m in route.models
        }
        votes = self._votes(f, route, st, preds)
        corr = st.history.corr([v.model_id for v in votes]) if len(votes) > 1 else None
        c = consensus(
            votes,
            corr,
            half_life_s=self.params.half_life_s,
            penalty_lambda=self.params.penalty_lambda,
        )
        st.history.add(
            {
                v.model_id: (2.0 * p - 1.0) * _sign(v.edge_bps)
                for v, p in zip(votes, c.probabilities, strict=True)
            }
        )
        passed = False
        if votes:  # S is recorded only when somebody voted
            passed, _ = st.gate.judge(c.score)
        self.gate_open += passed
        raw = min(1.0, abs(c.score)) if passed else 0.0
        low, high = self.edge_interval(route.horizon, f.regime, c.edge_bps)
        sig = Signal(
            trace_ts_ns=f.trace_ts_ns,
            symbol=f.symbol,
            ts_ns=f.ts_ns,
            model_id=CONSENSUS_ID,
            horizon=route.horizon,
            edge_bps=c.edge_bps,
            confidence=self.calibrated(CONSENSUS_ID, f.regime, raw) if raw > 0.0 else 0.0,
            raw_confidence=raw,
            edge_low_bps=low,
            edge_high_bps=high,
            shadow=False,
            regime=f.regime,
            mid=f.mid,
            features_hash=f.features_hash,
            consensus_score=c.score,
            votes=votes_json(votes, c),
        )
        shadow = [
            Signal(
                trace_ts_ns=f.trace_ts_ns,
                symbol=f.symbol,
                ts_ns=f.ts_ns,
                model_id=m,
                horizon=route.horizon,
                edge_bps=pred[0],
                confidence=pred[1],
                shadow=True,
                regime=f.regime,
                mid=f.mid,
                features_hash=f.features_hash,
            )
            for m in route.shadow[f.regime]
            if (pred := preds.get(m)) is not None
        ]
        opinion = self.tracks.opinion
        for m, pred in preds.items():
            if pred is not None:
                opinion(m, f.symbol, f.mid, f.spread_bps, pred[0], pred[1])
        opinion(CONSENSUS_ID, f.symbol, f.mid, f.spread_bps, c.edge_bps, sig.confidence)
        calls = tuple((m, p[0], (1.0 + p[1]) / 2.0) for m, p in preds.items() if p is not None)
        if c.score != 0.0:
            calls += ((CONSENSUS_ID, c.edge_bps, (1.0 + min(1.0, abs(c.score))) / 2.0),)
        self.outcomes.add(Pending(f, route.horizon, route.models, calls), route.horizon_ns)
        shares = {v.model_id: c.contribution(i, v) for i, v in enumerate(votes)}
        if self.canaries and shares:
            total = sum(shares.values())
            if total > 0:
                canary = sum(x for m, x in shares.items() if m in self.canaries)
                self.exploration[0] += canary / total
                self.exploration[1] += 1
        return sig, shares, shadow

    def _votes(
        self, f: Features, route: Route, st: HorizonState, preds: dict[str, Prediction | None]
    ) -> list[Vote]:
        max_age_ns = int(HELD_VOTE_HALF_LIVES * self.params.half_life_s * 1e9)
        mult = self.vote_mult
        votes: list[Vote] = []
        for model_id, weight in route.live[f.regime]:
            pred = preds.get(model_id)
            if pred is not None:
                st.held[model_id] = (f.ts_ns, pred[0], pred[1])
                ts_ns, edge_bps, conf = f.ts_ns, pred[0], pred[1]
            else:
                held = st.held.get(model_id)
                if held is None or f.ts_ns - held[0] > max_age_ns:
                    continue  # waiting, with nothing recent to say
                ts_ns, edge_bps, conf = held
            brier = self.registry.scorecard(model_id, route.horizon).brier
            votes.append(
                Vote(
                    model_id,
                    edge_bps,
                    min(1.0, max(0.0, conf)),
                    weight * mult[model_id] if model_id in mult else weight,
                    brier,
                    (f.ts_ns - ts_ns) / 1e9,
                )
            )
        return votes

    # ---- outcomes --------------------------------------------------------------------

    def _score_outcomes(self, f: Features) -> None:
        for o in self.outcomes.mature(f):
            p = o.pending
            if o.realised_bps != 0.0:
                for model_id, edge_bps, p_dir in p.calls:
                    if edge_bps == 0.0:
                        continue
                    hit = (edge_bps > 0) == (o.realised_bps > 0)
                    self._log_call(model_id, p.features.ts_ns, _sign(edge_bps), o.realised_bps)
                    self._calibrate(model_id, p.features.regime, p_dir, hit)
                    if model_id == CONSENSUS_ID:
                        regime = p.features.regime
                        self._conformal(p.horizon, regime, edge_bps, o.realised_bps)
                        self.regime_scores.setdefault(regime, Scorecard()).add(p_dir, hit, o.ts_ns)
                        card = self.consensus_scores.setdefault(p.horizon, Scorecard())
                    else:
                        card = self.registry.scorecard(model_id, p.horizon)
                    card.add(p_dir, hit, o.ts_ns)
            for model_id in p.model_ids:
                self.registry.learn(model_id, p.features, p.horizon, o.realised_bps)

    # ---- calibration (seed 001 §5) -----------------------------------------------------

    def _calibrate(self, model_id: str, regime: str, p_dir: float, hit: bool) -> None:
        """One resolved call into its model's and regime's calibrator: the probability it
        gave its own direction, and whether the market went that way."""
        key = f"{model_id}|{regime}"
        cal = self.calibrators.get(key)
        if cal is None:
            cfg = self.calibration
            cal = self.calibrators[key] = OnlineCalibrator(
                cfg.n_buckets, half_life=cfg.half_life, prior="confidence"
            )
        cal.update(min(1.0, max(0.0, p_dir)), hit)
        self.cal_n[key] = self.cal_n.get(key, 0) + 1

    def calibrated(self, model_id: str, regime: str, confidence: float) -> float:
        """The calibrated confidence of a call: ``2 p' - 1`` (at least 0) with ``p'`` the
        calibrated probability of ``p = (1 + confidence) / 2``, once the model's
        calibrator in ``regime`` has ``min_outcomes``; the raw confidence before."""
        cfg = self.calibration
        key = f"{model_id}|{regime}"
        if not cfg.enabled or self.cal_n.get(key, 0) < cfg.min_outcomes:
            return confidence
        p_cal = float(self.calibrators[key].transform((1.0 + confidence) / 2.0))
        return min(1.0, max(0.0, 2.0 * p_cal - 1.0))

    def ece(self, model_id: str) -> float | None:
        """The model's ECE over all its regimes' calibrators (None before an outcome)."""
        gap = n = 0.0
        for key, cal in self.calibrators.items():
            if key.split("|", 1)[0] == model_id:
                counts = cal.counts()
                gap += float(np.abs(counts.hits - counts.sum_conf).sum())
                n += float(counts.n.sum())
        return gap / n if n > 0 else None

    # ---- conformal intervals of the consensus edge (seed 002) ------------------------------

    def _conformal(self, horizon: str, regime: str, predicted: float, realised: float) -> None:
        key = f"{horizon}|{regime}"
        scores = self.conformal.get(key)
        if scores is None:
            scores = self.conformal[key] = deque(maxlen=self.conformal_cfg.window)
        scores.append(abs(realised - predicted))
        self._scored[key] = self._scored.get(key, 0) + 1

    def edge_interval(
        self, horizon: str, regime: str, edge_bps: float
    ) -> tuple[float | None, float | None]:
        """The split-conformal interval ``edge -+ q`` of a consensus edge, q the
        ceil((n + 1)(1 - alpha))-th smallest of the last scores (conformal.py); (None,
        None) while too few calls. q is recomputed every ``QUANTILE_EVERY`` new scores
        (a sort of 500 per decision would cost more than the router)."""
        if not self.conformal_cfg.enabled:
            return None, None
        key = f"{horizon}|{regime}"
        scores = self.conformal.get(key)
        if not scores:
            return None, None
        n = self._scored.get(key, 0)
        cached = self._q.get(key)
        if cached is None or not math.isfinite(cached[0]) or n - cached[1] >= QUANTILE_EVERY:
            q = conformal_quantile(
                np.fromiter(scores, float, len(scores)), self.conformal_cfg.alpha
            )
            cached = self._q[key] = (q, n)
        q = cached[0]
        if not math.isfinite(q):
            return None, None
        return edge_bps - q, edge_bps + q

    def _log_call(self, model_id: str, ts_ns: int, direction: float, realised_bps: float) -> None:
        call = (ts_ns, direction, realised_bps / 1e4)
        log = self.calls.get(model_id)
        if log is None:
            log = self.calls[model_id] = deque(maxlen=MAX_CALLS)
        log.append(call)
        self.unsaved_calls.setdefault(model_id, []).append(call)

    def take_unsaved_calls(self) -> dict[str, list[tuple[int, float, float]]]:
        calls, self.unsaved_calls = self.unsaved_calls, {}
        return calls

    # ---- durable state -----------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """What survives a restart: scorecards, paper books, trust (JSON-able)."""
        return {
            "scorecards": {
                m: {h: _card(c) for h, c in st.scores.items()}
                for m, st in self.registry.stats.items()
                if st.scores
            },
            "consensus": {h: _card(c) for h, c in self.consensus_scores.items()},
            "regimes": {g: _card(c) for g, c in self.regime_scores.items()},
            "calibrators": {k: c.to_dict() for k, c in self.calibrators.items()},
            "cal_n": dict(self.cal_n),
            "conformal": {k: list(c) for k, c in self.conformal.items()},
            "exploration": list(self.exploration),
            "tracks": self.tracks.to_dict(),
            "trust": {m: dataclasses.asdict(t) for m, t in self.trust.items()},
            "days_closed": self.days_closed,
            "next_review_ns": self.next_review_ns,
        }

    def load(self, doc: dict[str, Any]) -> None:
        for model_id, cards in doc.get("scorecards", {}).items():
            if model_id in self.registry.stats:
                self.registry.stats[model_id].scores = {h: Scorecard(*c) for h, c in cards.items()}
        self.consensus_scores = {h: Scorecard(*c) for h, c in doc.get("consensus", {}).items()}
        self.regime_scores = {g: Scorecard(*c) for g, c in doc.get("regimes", {}).items()}
        self.calibrators = {
            k: OnlineCalibrator.from_dict(c) for k, c in doc.get("calibrators", {}).items()
        }
        self.cal_n = {k: int(n) for k, n in doc.get("cal_n", {}).items()}
        window = self.conformal_cfg.window
        self.conformal = {k: deque(c, maxlen=window) for k, c in doc.get("conformal", {}).items()}
        self._scored = {k: len(c) for k, c in self.conformal.items()}
        self._q = {}
        used, n = doc.get("exploration", [0.0, 0])
        self.exploration = [float(used), int(n)]
        self.tracks.load(doc.get("tracks", {}))
        self.trust = {m: Trust(**t) for m, t in doc.get("trust", {}).items()}
        self.days_closed = int(doc.get("days_closed", 0))
        self.next_review_ns = doc.get("next_review_ns")
        self._reweigh()

    def load_calls(self, calls: dict[str, list[tuple[int, float, float]]]) -> None:
        self.calls = {m: deque(c, maxlen=MAX_CALLS) for m, c in calls.items()}

    def stats(self) -> dict[str, Any]:
        return {
            "signals": self.signals,
            "gate_open": self.gate_open,
            "switches": self.switches,
            "outcomes_pending": self.outcomes.pending(),
            "consensus_hit_rate": {
                h: round(c.hits / c.scored, 4) if c.scored else None
                for h, c in self.consensus_scores.items()
            },
        }


def _canaries(rules: RouterRules) -> frozenset[str]:
    return frozenset(mw.id for rule in rules.rules for mw in rule.models if mw.canary)


def _card(c: Scorecard) -> list[Any]:
    return [c.scored, c.hits, c.brier, c.last_outcome_ns]


def votes_json(votes: list[Vote], c: Consensus) -> dict[str, Any]:
    """model_id -> its vote, for telemetry's engine_votes."""
    return {
        v.model_id: {
            "edge_bps": v.edge_bps,
            "confidence": v.confidence,
            "weight": c.weights[i],
            "p": c.probabilities[i],
            "reliability": c.reliabilities[i],
            "rule_weight": v.rule_weight,
            "brier": v.brier,
            "age_s": v.age_s,
        }
        for i, v in enumerate(votes)
    }
