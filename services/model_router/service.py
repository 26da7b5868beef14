"""model_router: ``features`` in; ``signals`` (one consensus signal per matched rule and
horizon, plus shadow models') and ``router.switches`` out. Wiring only: the logic is
``router.Router``.

Every features entry is observed as it comes and decided on unless its symbol was
decided on less than ``decide_interval_ms`` of event time before (``Router.handle``):
what the router writes never depends on how entries were batched.

Scorecards, paper books and trust survive a restart: they are written to
``edgebus:model_router:state:<consumer>`` in the transaction of every batch that
changed them (so they are exactly as of the last acknowledged entry), and read back at
start."""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import orjson

from services.calibration.calibrator import OnlineCalibrator
from services.model_router import metrics as mm
from services.model_router.config import RouterRules
from services.model_router.models import ALL_REGIMES
from services.model_router.router import CONSENSUS_ID, MAX_CALLS, Router
from services.model_router.routing import Route
from services.model_router.track import DAY_NS
from services.validation.daily_job import review
from services.validation.trust import trust_from_record
from shared.bus import Entry, Outbox
from shared.config import KEY_PREFIX
from shared.messages import FEATURES, ConfigProposal, Features, RouterSwitch, Signal
from shared.service import Service

STATE_PREFIX = f"{KEY_PREFIX}:model_router:state"


CALLS_PREFIX = f"{KEY_PREFIX}:model_router:calls"


def state_key(consumer: str) -> str:
    return f"{STATE_PREFIX}:{consumer}"


def calls_key(consumer: str, model_id: str) -> str:
    """A list of JSON ``[ts_ns, direction, realised return]``, the model's scored calls."""
    return f"{CALLS_PREFIX}:{consumer}:{model_id}"


class ModelRouter(Service[RouterRules]):
    name: ClassVar[str] = "model_router"
    inputs: ClassVar[tuple[str, ...]] = (FEATURES,)
    upstreams: ClassVar[dict[str, str]] = {FEATURES: "feature_bus"}

    def __init__(self, config: RouterRules | None = None) -> None:
        super().__init__(config)
        self.router = Router(self.config)
        # model -> calls, waits, errors, scored outcomes: what Prometheus has seen
        self._exported: dict[str, tuple[int, int, int, int]] = {}
        self._consensus_signals = mm.Bound(mm.CONSENSUS_SIGNALS)
        self._consensus_score = mm.Bound(mm.CONSENSUS_SCORE)
        self._shadow_signals = mm.Bound(mm.SHADOW_SIGNALS)
        self._switches = mm.Bound(mm.SWITCHES)
        self._model_brier = mm.Bound(mm.MODEL_BRIER)
        self._model_metrics = {
            model_id: mm.ModelChildren.bind(model_id) for model_id in self.router.registry.stats
        }
        self._dirty = False
        self._trust_days = -1  # days_closed as of the last trust export
        # a review not yet committed: the config, time and news before it
        self._undo: tuple[RouterRules, int | None, bool] | None = None
        self._seen_since_review = True  # features handled since the last review
        self.last_review: dict[str, Any] | None = None

    async def on_start(self) -> None:
        raw = await self.r.get(state_key(self.bus.consumer))
        calls: dict[str, list[tuple[int, float, float]]] = {}
        for model_id in (*self.router.registry.stats, CONSENSUS_ID):
            rows = await self.r.lrange(calls_key(self.bus.consumer, model_id), 0, -1)  # type: ignore[misc]
            if rows:
                calls[model_id] = [tuple(orjson.loads(x)) for x in rows]
        self.router.load_calls(calls)
        if raw:
            self.router.load(orjson.loads(raw))
            self.log.info(
                "state loaded: %d paper books, %d trust indices, %d days",
                len(self.router.tracks.books),
                len(self.router.trust),
                self.router.days_closed,
            )
        self._export_trust()

    def on_config(self, config: RouterRules) -> None:
        # Called between batches; the config was validated, so compiling cannot fail on it.
        if config == self.config:
            return  # (a review's own proposal, announced back: applied already)
        self.router.reload(config)
        p = config.promotion
        if not p.enabled:
            self.router.next_review_ns = None
        elif self.router.next_review_ns is not None:
            self.router.next_review_ns = self._next_review(self.router.next_review_ns - 1, config)
        self._trust_days = -1  # stages may have changed: export again

    def routes(self, symbol: str) -> tuple[Route, ...]:
        """The cached routing decision for ``symbol`` (what ``make bench`` times as route_us)."""
        return self.router.table.routes(symbol)

    # ---- the daily review (services/validation/daily_job.py) -------------------------

    @staticmethod
    def _next_review(after_ns: int, config: RouterRules) -> int:
        """The first ``promotion.review_at_utc`` of event time after ``after_ns``."""
        at = config.promotion.seconds_of(config.promotion.review_at_utc) * 10**9
        t = (after_ns // DAY_NS) * DAY_NS + at
        return t if t > after_ns else t + DAY_NS

    def next_timer_ns(self) -> int | None:
        return self.router.next_review_ns

    def on_timer(self, ts_ns: int, out: Outbox) -> None:
        """02:00 UTC of event time: validation, champion against challenger, promotion.
        A changed config is applied here, at this event time (so a backtest and the
        stack change at the same entry), and proposed to parameter_server, which stores
        it as a version (``param.proposals``)."""
        before = self.config
        if self._undo is None:  # the first review of the batch: what a failure restores
            self._undo = (before, ts_ns, self._seen_since_review)
        self.router.next_review_ns = self._next_review(ts_ns, before)
        if not self._seen_since_review:
            return  # nothing new since the last review (a feed gap): nothing to review
        self._seen_since_review = False
        rev = review(before, self.router.dump(), dict(self.router.calls), ts_ns)
        self.last_review = rev.report
        self.router.exploration = [0.0, 0]  # a day's worth per review
        self._dirty = True
        mm.REVIEWS.inc()
        _export_daily(rev.report.get("daily_metrics", {}))
        if rev.rules is None:
            return
        self.on_config(rev.rules)
        self.config = rev.rules
        for model_id, _, to, reason in rev.changes:
            self.log.warning("review: %s -> %s (%s)", model_id, to, reason)
            mm.STAGE_CHANGES.labels(model_id, to).inc()
        out.emit(
            ConfigProposal(
                trace_ts_ns=time.time_ns(),
                component=self.comp,
                ts_ns=ts_ns,
                source=rev.source,
                config=rev.rules.model_dump(mode="json"),
                report=rev.report,
            )
        )

    def on_message(self, entry: Entry, out: Outbox) -> None:
        f = entry.message
        assert isinstance(f, Features)
        self._dirty = True
        self._seen_since_review = True
        if self.router.next_review_ns is None and self.config.promotion.enabled:
            self.router.next_review_ns = self._next_review(f.ts_ns, self.config)
        for msg in self.router.handle(f):
            out.emit(msg)
            if isinstance(msg, Signal):
                if msg.model_id == CONSENSUS_ID:
                    gate = "open" if msg.confidence > 0 else "shut"
                    self._consensus_signals(msg.horizon, gate).inc()
                    if msg.consensus_score is not None:
                        self._consensus_score(msg.symbol, msg.horizon).set(msg.consensus_score)
                elif msg.shadow:
                    self._shadow_signals(msg.model_id).inc()
            elif isinstance(msg, RouterSwitch):
                self._switches(msg.symbol).inc()

    def on_batch_end(self, out: Outbox) -> None:
        self._export_model_stats()
        if self._dirty and self.bus is not None:  # (the in-memory harness has no Redis)
            blob = orjson.dumps(self.router.dump())
            key = state_key(self.bus.consumer)
            out.call(lambda pipe: pipe.set(key, blob))
            for model_id, rows in self.router.take_unsaved_calls().items():
                self._save_calls(out, calls_key(self.bus.consumer, model_id), rows)
            self._dirty = False
        if self.router.days_closed != self._trust_days:
            self._export_trust()
        else:
            for model_id, book in self.router.tracks.books.items():
                mm.TRACK_PNL_BPS.labels(model_id).set(book.pnl_bps)
                mm.TRACK_TRADES.labels(model_id).set(book.trades)

    @staticmethod
    def _save_calls(out: Outbox, key: str, rows: list[tuple[int, float, float]]) -> None:
        blobs = [orjson.dumps(r) for r in rows]
        out.call(lambda pipe: pipe.rpush(key, *blobs))
        out.call(lambda pipe: pipe.ltrim(key, -MAX_CALLS, -1))

    def _export_trust(self) -> None:
        """Trust, allocation and paper-book figures per model (they move once a day)."""
        self._trust_days = self.router.days_closed
        mm.EXPLORATION.labels("cap").set(self.config.promotion.canary_fraction)
        if self.last_review is None:  # NaN until a first review measures them
            for stat in ("mean", "std"):
                mm.DAILY_OOS_SHARPE.labels(stat).set(math.nan)
            for regime in sorted(ALL_REGIMES):
                mm.DAILY_BRIER.labels(regime).set(math.nan)
        stages = self.stages()
        for model_id in (*stages, CONSENSUS_ID):
            t = self.router.trust.get(model_id) or PRIOR_TRUST  # before a first day: the prior
            mm.TRUST.labels(model_id).set(t.trust_index)
            mm.ALLOCATION.labels(model_id).set(t.capital_allocation)
        for model_id, book in self.router.tracks.books.items():
            mm.TRACK_PNL_BPS.labels(model_id).set(book.pnl_bps)
            mm.TRACK_TRADES.labels(model_id).set(book.trades)
        self._export_calibration(stages)
        for model_id, stage in stages.items():
            for name in STAGES:
                mm.STAGE.labels(model_id, name).set(1.0 if name == stage else 0.0)

    def _export_calibration(self, stages: dict[str, str]) -> None:
        """ECE per model; the consensus' reliability diagram per regime (bucket mean
        confidence against hit rate): once a day, and at start (NaN before outcomes)."""
        for model_id in (*stages, CONSENSUS_ID):
            ece = self.router.ece(model_id)
            mm.MODEL_ECE.labels(model_id).set(math.nan if ece is None else ece)
        for regime in sorted(ALL_REGIMES):
            cal = self.router.calibrators.get(f"{CONSENSUS_ID}|{regime}")
            if cal is None:  # no outcome yet: the buckets, empty
                cal = OnlineCalibrator(self.config.calibration.n_buckets)
            counts = cal.counts()
            for b in range(len(counts.n)):
                n = float(counts.n[b])
                bucket = f"{counts.edges[b]:.1f}-{counts.edges[b + 1]:.1f}"
                conf = float(counts.sum_conf[b]) / n if n > 0 else math.nan
                hits = float(counts.hits[b]) / n if n > 0 else math.nan
                mm.RELIABILITY.labels(regime, bucket, "confidence").set(conf)
                mm.RELIABILITY.labels(regime, bucket, "hit_rate").set(hits)

    def stages(self) -> dict[str, str]:
        """Each routed model's stage: live, canary, shadow, or gated (a live model held
        in shadow by the validation gate)."""
        gate = self.config.validation
        out: dict[str, str] = {}
        for rule in self.config.rules:
            for mw in rule.models:
                if mw.shadow:
                    stage = "shadow"
                elif mw.weight <= 0:
                    stage = "off"
                elif gate.required and not mw.trade_unvalidated and not gate.passed(mw.id):
                    stage = "gated"
                else:
                    stage = "canary" if mw.canary else "live"
                # A model in several rules: its most trusted stage
                if STAGES.index(stage) > STAGES.index(out.get(mw.id, "off")):
                    out[mw.id] = stage
        return out

    def on_committed(self) -> None:
        self.router.commit()
        self._undo = None

    async def on_batch_failed(self) -> None:
        # The failed batch's entries stay pending and come again: decide nothing on them now.
        self.router.discard()
        if self._undo is not None:  # and its review runs again
            config, ts_ns, seen = self._undo
            self.on_config(config)
            self.config = config
            self.router.next_review_ns = ts_ns
            self._seen_since_review = seen
            self._undo = None

    def _export_model_stats(self) -> None:
        """Copy the registry's plain counters into Prometheus (once per batch, and only
        what changed: the scorecards move only when outcomes mature)."""
        exported = self._exported
        for model_id, st in self.router.registry.stats.items():
            calls, waits, errors, scored = exported.get(model_id, (0, 0, 0, 0))
            now_scored = st.scored
            if st.calls == calls and st.errors == errors and now_scored == scored:
                continue
            bound = self._model_metrics[model_id]
            if st.calls != calls:
                bound.calls.inc(st.calls - calls)
            if st.waits != waits:
                bound.waits.inc(st.waits - waits)
            if st.errors != errors:
                bound.errors.inc(st.errors - errors)
            if st.calls:
                bound.latency_us.set(st.latency_ns / st.calls / 1e3)
            if now_scored != scored:
                bound.hit_rate.set(st.hits / now_scored)
                for horizon, card in st.scores.items():
                    self._model_brier(model_id, horizon).set(card.brier)
            exported[model_id] = (st.calls, st.waits, st.errors, now_scored)
        mm.OUTCOMES_PENDING.set(self.router.outcomes.pending())

    def health_details(self) -> dict[str, Any]:
        models = self.router.registry.metadata()
        results = self.config.validation.results
        for model_id, stage in self.stages().items():
            r = results.get(model_id)
            t = self.router.trust.get(model_id)
            models[model_id]["stage"] = stage
            models[model_id]["validation"] = (
                r.model_dump()
                if r is not None
                else ("not required" if stage in ("live", "canary") else "not validated")
            )
            models[model_id]["trust"] = (
                None
                if t is None
                else {"index": round(t.trust_index, 4), "recommendation": t.recommendation}
            )
            models[model_id]["vote_multiplier"] = round(self.router.vote_mult.get(model_id, 1.0), 4)
            ece = self.router.ece(model_id)
            models[model_id]["ece"] = None if ece is None else round(ece, 4)
        return {
            "rules": len(self.config.rules),
            "rules_loads": self.router.table.epoch,
            "validation_required": self.config.validation.required,
            "next_review_ns": self.router.next_review_ns,
            "last_review": self.last_review,
            **self.router.stats(),
            "models": models,
        }


def _export_daily(d: dict[str, Any]) -> None:
    for stat in ("mean", "std"):
        value = d.get(f"oos_sharpe_{stat}")
        if value is not None:
            mm.DAILY_OOS_SHARPE.labels(stat).set(value)
    for regime, card in d.get("brier_by_regime", {}).items():
        mm.DAILY_BRIER.labels(regime).set(card["brier"])
    if "exploration_used_pct" in d:
        mm.EXPLORATION.labels("used").set(d["exploration_used_pct"] / 100.0)
        mm.EXPLORATION.labels("cap").set(d["exploration_cap_pct"] / 100.0)


STAGES = ("off", "shadow", "gated", "canary", "live")
PRIOR_TRUST = trust_from_record([], 0, 0)

SERVICE = ModelRouter
