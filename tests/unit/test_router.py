"""Routing rules (schema, precedence, regime approval, cache), the router core (one
consensus signal per matched rule and horizon, shadow signals, gate, switch log,
outcome scoring) and the leader tracker."""

from __future__ import annotations

from typing import Any

import pytest

from services.model_router.config import RouterRules
from services.model_router.leader import LeaderTracker
from services.model_router.router import CONSENSUS_ID, Router
from services.model_router.routing import RoutingTable
from shared.config import ConfigError, load_file, validate
from shared.messages import Features, RouterSwitch, Signal

T0 = 1_700_000_000_000_000_000
SEC = 10**9


def rules(doc: dict[str, Any]) -> RouterRules:
    """The doc's rules; its live models vote unvalidated unless it says otherwise (the
    validation gate has its own tests)."""
    doc = {"validation": {"required": False}, **doc}
    cfg = validate("model_router", doc)
    assert isinstance(cfg, RouterRules)
    return cfg


def feat(symbol: str = "BTC-USD", ts_ns: int = T0, **kw: Any) -> Features:
    base: dict[str, Any] = dict(
        symbol=symbol,
        ts_ns=ts_ns,
        mid=100.0,
        spread_bps=1.0,
        regime="TREND",
        features_hash="h",
        bid_size=3.0,
        ask_size=1.0,
        ema_short=100.0,
        ema_long=100.0,
    )
    base.update(kw)
    return Features(**base)


ONE_RULE = {"rules": [{"pattern": "*", "horizon": "1m", "models": [{"id": "book_pressure"}]}]}


# ---- schema: bad rules are refused naming the key -----------------------------------


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (
            {"rules": [{"pattern": "*", "models": [{"id": "book_pressure"}, {"id": "astrology"}]}]},
            r"rules\.0\.models\.1\.id: Value error, unknown model 'astrology'",
        ),
        (
            {"rules": [{"pattern": "BTC[", "models": [{"id": "book_pressure"}]}]},
            r"rules\.0\.pattern: .*bad pattern 'BTC\[': unbalanced",
        ),
        (
            {"rules": [{"pattern": "BTC USD", "models": [{"id": "book_pressure"}]}]},
            r"rules\.0\.pattern: .*bad pattern",
        ),
        (
            {"rules": [{"pattern": "class:bonds", "models": [{"id": "book_pressure"}]}]},
            r"rules\.0\.pattern: .*unknown asset class 'bonds'",
        ),
        (
            {"rules": [{"pattern": "*", "models": [{"id": "book_pressure", "weight": -1}]}]},
            r"rules\.0\.models\.0\.weight: Input should be greater than or equal to 0",
        ),
        (
            {**ONE_RULE, "regimes": {"CHAOS": ["book_pressure"]}},
            r"regimes: Value error, regimes\.CHAOS: unknown regime",
        ),
        (
            {**ONE_RULE, "regimes": {"TREND": ["tea_leaves"]}},
            r"regimes: .*regimes\.TREND\.0: unknown model 'tea_leaves'",
        ),
        (
            {**ONE_RULE, "asset_classes": {"BTC-USD": "bonds"}},
            r"asset_classes: .*asset_classes\.BTC-USD: unknown asset class",
        ),
        (
            {"rules": [{"pattern": "*", "horizon": "1 week", "models": [{"id": "trend"}]}]},
            r"rules\.0\.horizon: String should match pattern",
        ),
        (
            {"rules": [{"pattern": "*", "models": [{"id": "trend"}, {"id": "trend"}]}]},
            r"rules\.0: .*models\.1\.id: model 'trend' listed twice",
        ),
        ({"rules": ONE_RULE["rules"] * 2}, r"rules: .*rules\.1: same pattern '\*'"),
        ({**ONE_RULE, "consensus": {"k": -1}}, r"consensus\.k: Input should be greater"),
        ({**ONE_RULE, "rulez": []}, r"rulez: unknown key"),
    ],
)
def test_bad_rules_are_rejected_naming_the_key(doc: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        validate("model_router", doc)


def test_shipped_rules_validate_and_cover_the_synthetic_symbols() -> None:
    cfg = load_file("model_router")
    assert isinstance(cfg, RouterRules)
    table = RoutingTable(cfg)
    for symbol in ("BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "UNLISTED"):
        assert table.routes(symbol), symbol


# ---- routing table ------------------------------------------------------------------


def test_most_specific_rule_wins_per_horizon_exact_then_class_then_glob() -> None:
    cfg = rules(
        {
            "asset_classes": {"BTC-USD": "crypto", "ETH-USD": "crypto", "AAPL": "stocks"},
            "rules": [
                {"pattern": "*", "horizon": "1m", "models": [{"id": "range"}]},
                {"pattern": "class:crypto", "horizon": "1m", "models": [{"id": "trend"}]},
                {"pattern": "BTC-USD", "horizon": "1m", "models": [{"id": "breakout"}]},
                {"pattern": "*-USD", "horizon": "5m", "models": [{"id": "ma_momentum"}]},
            ],
        }
    )
    table = RoutingTable(cfg)

    def models(symbol: str) -> list[tuple[str, tuple[str, ...]]]:
        return [(r.horizon, r.models) for r in table.routes(symbol)]

    assert models("BTC-USD") == [("1m", ("breakout",)), ("5m", ("ma_momentum",))]
    assert models("ETH-USD") == [("1m", ("trend",)), ("5m", ("ma_momentum",))]
    assert models("AAPL") == [("1m", ("range",))]
    assert table.routes("AAPL") is table.routes("AAPL")  # cached


def test_regime_matrix_shadow_flag_and_zero_weight() -> None:
    cfg = rules(
        {
            "regimes": {"TREND": ["trend", "book_pressure", "meta_logistic"], "ILLIQUID": []},
            "rules": [
                {
                    "pattern": "*",
                    "models": [
                        {"id": "book_pressure", "weight": 2.0},
                        {"id": "trend"},
                        {"id": "ma_momentum", "weight": 0},
                        {"id": "meta_logistic", "shadow": True},
                    ],
                }
            ],
        }
    )
    (route,) = RoutingTable(cfg).routes("X")
    assert route.models == ("book_pressure", "trend", "meta_logistic")  # weight 0: not run
    assert route.live["TREND"] == (("book_pressure", 2.0), ("trend", 1.0))
    assert route.shadow["TREND"] == ("meta_logistic",)
    assert route.live["ILLIQUID"] == () and route.shadow["ILLIQUID"] == ()
    # RANGE is not in the matrix: the models' own defaults apply (trend is TREND-only)
    assert route.live["RANGE"] == (("book_pressure", 2.0),)


def test_reload_replaces_the_cached_routes() -> None:
    router = Router(rules(ONE_RULE))
    assert router.table.routes("BTC-USD")[0].models == ("book_pressure",)
    router.reload(
        rules({"rules": [{"pattern": "*", "horizon": "5m", "models": [{"id": "trend"}]}]})
    )
    (route,) = router.table.routes("BTC-USD")
    assert (route.horizon, route.models) == ("5m", ("trend",))


# ---- the router core ----------------------------------------------------------------


def signals(msgs: list[Any]) -> list[Signal]:
    return [m for m in msgs if isinstance(m, Signal)]


def test_one_consensus_signal_per_rule_and_horizon_plus_shadow() -> None:
    router = Router(
        rules(
            {
                "regimes": {"TREND": ["book_pressure", "ma_momentum", "trend"]},
                "rules": [
                    {
                        "pattern": "*",
                        "horizon": "1m",
                        "models": [{"id": "book_pressure"}, {"id": "trend", "shadow": True}],
                    },
                    {"pattern": "*", "horizon": "5m", "models": [{"id": "ma_momentum"}]},
                ],
            }
        )
    )
    out = signals(router.handle(feat(ema_short=100.1)))
    live = [s for s in out if not s.shadow]
    assert [(s.model_id, s.horizon) for s in live] == [(CONSENSUS_ID, "1m"), (CONSENSUS_ID, "5m")]
    one = live[0]
    # book pressure alone: 25 * (3 - 1) / 4 = 12.5 bps, c = 0.5, S = 0.5
    assert one.edge_bps == pytest.approx(12.5) and one.consensus_score == pytest.approx(0.5)
    assert one.confidence == 0.0  # the gate needs history first
    assert one.votes is not None and set(one.votes) == {"book_pressure"}
    vote = one.votes["book_pressure"]
    assert vote["weight"] == 1.0 and vote["p"] == pytest.approx(0.75)
    assert vote["reliability"] == pytest.approx(0.75)  # (1 - 0.25 prior) * exp(0)
    assert one.leading_model in ("book_pressure", "ma_momentum")
    shadow = [s for s in out if s.shadow]
    assert [(s.model_id, s.horizon) for s in shadow] == [("trend", "1m")]
    # trend = 10 bps -> edge 5 bps, confidence 0.5
    assert shadow[0].edge_bps == pytest.approx(5.0) and shadow[0].confidence == pytest.approx(0.5)


def test_all_engines_waiting_still_emits_a_signal_with_no_confidence() -> None:
    router = Router(rules({"rules": [{"pattern": "*", "models": [{"id": "meta_logistic"}]}]}))
    (sig,) = signals(router.handle(feat()))
    assert (sig.edge_bps, sig.confidence, sig.consensus_score, sig.votes) == (0.0, 0.0, 0.0, {})


def test_unapproved_regime_does_not_vote() -> None:
    router = Router(rules({**ONE_RULE, "regimes": {"ILLIQUID": []}}))
    (sig,) = signals(router.handle(feat(regime="ILLIQUID")))
    assert sig.votes == {} and sig.confidence == 0.0


def test_gate_opens_only_when_the_score_stands_out() -> None:
    cfg = rules({**ONE_RULE, "consensus": {"k": 1.0, "min_samples": 5}})
    router = Router(cfg)
    confidences = []
    # a calm, balanced-ish book, then a strongly one-sided one
    for i, bid in enumerate([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 4.0]):
        (sig,) = signals(router.handle(feat(ts_ns=T0 + i * SEC, bid_size=bid, ask_size=1.0)))
        confidences.append(sig.confidence)
    assert confidences[:7] == [0.0] * 7  # warming up, then inside k * std
    # 25 * 3 / 5 = 15 bps, |S| = 0.6
    assert confidences[7] == pytest.approx(0.6)


def test_switch_log_when_the_leader_changes_with_the_regime() -> None:
    cfg = rules(
        {
            "regimes": {"TREND": ["ma_momentum"], "RANGE": ["range"]},
            "consensus": {"switch_half_life_s": 1.0},
            "rules": [{"pattern": "*", "models": [{"id": "ma_momentum"}, {"id": "range"}]}],
        }
    )
    router = Router(cfg)
    out = router.handle(feat(ema_short=100.1))
    first = [m for m in out if isinstance(m, RouterSwitch)]
    assert [(s.from_model, s.to_model) for s in first] == [("none", "ma_momentum")]
    switches = []
    for i in range(1, 20):
        f = feat(ts_ns=T0 + i * SEC, regime="RANGE", mid=100.1, volatility_pct=0.05)
        switches += [m for m in router.handle(f) if isinstance(m, RouterSwitch)]
    assert [(s.symbol, s.from_model, s.to_model) for s in switches] == [
        ("BTC-USD", "ma_momentum", "range")
    ]
    assert "ma_momentum not voting" in switches[0].reason
    assert router.switches == 2


def test_leader_hysteresis_needs_the_margin() -> None:
    tr = LeaderTracker(margin=1.5, half_life_s=1.0)
    assert tr.update("X", {"a": 0.4, "b": 0.3}, "TREND", 0, 0) is not None
    # b slightly ahead for a long time: smoothed 0.45 vs 0.4 < 1.5x -> a holds
    for i in range(1, 30):
        assert tr.update("X", {"a": 0.4, "b": 0.45}, "TREND", 0, i * SEC) is None
    assert tr.leader("X") == "a"
    sw = None
    for i in range(30, 60):
        sw = sw or tr.update("X", {"a": 0.2, "b": 0.5}, "TREND", 0, i * SEC)
    assert sw is not None and (sw.from_model, sw.to_model) == ("a", "b")
    assert tr.update("X", {}, "TREND", 0, 61 * SEC) is None  # nobody voting: no change


def test_outcomes_score_models_and_train_the_meta_learner() -> None:
    router = Router(
        rules(
            {
                "rules": [
                    {
                        "pattern": "*",
                        "horizon": "1s",
                        "models": [
                            {"id": "book_pressure"},
                            {"id": "meta_logistic", "shadow": True},
                        ],
                    }
                ]
            }
        )
    )
    # bid-heavy book, then the mid rises 10 bps one second later: a hit.
    router.handle(feat(ts_ns=T0, mid=100.0))
    router.handle(feat(ts_ns=T0 + SEC, mid=100.1))
    card = router.registry.scorecard("book_pressure", "1s")
    # p = (1 + 0.5) / 2 = 0.75; Brier = (0.75 - 1)^2
    assert (card.scored, card.hits) == (1, 1)
    assert card.brier == pytest.approx(0.0625)
    ml = router.registry.models["meta_logistic"]
    assert ml.updates == {"1s": 1}  # type: ignore[attr-defined]
    assert router.consensus_scores["1s"].hits == 1
    # the next vote uses the new reliability: (1 - 0.0625)
    (sig,) = signals(router.handle(feat(ts_ns=T0 + 2 * SEC, mid=100.1)))
    assert sig.votes is not None
    assert sig.votes["book_pressure"]["reliability"] == pytest.approx(0.9375)


# ---- conflation: observe every message, decide once per symbol per batch ------------

SIX = {
    "regimes": {"TREND": ["book_pressure", "ma_momentum", "trend", "breakout", "meta_logistic"]},
    "rules": [
        {
            "pattern": "*",
            "horizon": "1m",
            "models": [
                {"id": "book_pressure"},
                {"id": "ma_momentum"},
                {"id": "breakout", "weight": 0.5},
                {"id": "trend", "shadow": True},
            ],
        },
        {"pattern": "*", "horizon": "5m", "models": [{"id": "trend"}]},
    ],
}


def walk(n: int, symbol: str = "BTC-USD", start_ns: int = T0) -> list[Features]:
    """A wandering mid with a moving book, 10 ms apart, each with its own trace."""
    out = []
    for i in range(n):
        mid = 100.0 + ((i * 7) % 11 - 5) * 0.03 + i * 0.01
        out.append(
            feat(
                symbol=symbol,
                ts_ns=start_ns + i * 10_000_000,
                trace_ts_ns=start_ns + i * 10_000_000 - 1_000,
                mid=mid,
                bid_size=1.0 + i % 4,
                ema_short=mid,
                ema_long=100.0,
                features_hash=f"{symbol}-{i}",
            )
        )
    return out


def test_a_batch_of_one_symbol_makes_one_signal_per_horizon_on_the_latest_features() -> None:
    router = Router(rules(SIX))
    batch = walk(80)
    for f in batch:
        router.observe(f)
    out = signals(router.decide())
    last = batch[-1]
    assert [(s.model_id, s.horizon, s.shadow) for s in out] == [
        (CONSENSUS_ID, "1m", False),
        (CONSENSUS_ID, "5m", False),
        ("trend", "1m", True),
    ]
    assert {(s.ts_ns, s.trace_ts_ns, s.features_hash, s.mid) for s in out} == {
        (last.ts_ns, last.trace_ts_ns, last.features_hash, last.mid)
    }
    assert router.signals == 3
    assert router.decide() == []  # decided: nothing left until the next message
    # one prediction queued per (symbol, horizon) decided, not one per message
    assert router.outcomes.pending() == 2


def test_models_observe_every_message_of_a_batch_exactly_as_one_by_one() -> None:
    batch = walk(80)
    batch[-1] = batch[-1].model_copy(update={"mid": 102.0, "ema_short": 102.0})  # breaks out
    one_by_one, conflated = Router(rules(SIX)), Router(rules(SIX))
    last_sig = None
    for f in batch:
        last_sig = signals(one_by_one.handle(f))[0]
    for f in batch:
        conflated.observe(f)
    sig = signals(conflated.decide())[0]
    a, b = one_by_one.registry.models["breakout"], conflated.registry.models["breakout"]
    assert b._channel == a._channel and b._channel  # type: ignore[attr-defined]
    last = batch[-1]
    for model_id in ("book_pressure", "ma_momentum", "breakout", "trend"):
        assert conflated.registry.models[model_id].predict(last, "1m") == (
            one_by_one.registry.models[model_id].predict(last, "1m")
        ), model_id
    assert b.predict(last, "1m") is not None  # the window is full: breakout has a say
    # Same votes on the latest features; only the consensus weights may differ (the
    # one-by-one router has 80 rows of vote history for its correlation matrix).
    assert last_sig is not None and last_sig.votes is not None and sig.votes is not None
    assert set(sig.votes) == set(last_sig.votes) == {"book_pressure", "ma_momentum", "breakout"}
    for model_id, vote in sig.votes.items():
        theirs = last_sig.votes[model_id]
        assert (vote["edge_bps"], vote["confidence"]) == (theirs["edge_bps"], theirs["confidence"])


def test_two_symbols_in_one_batch_each_get_their_signal_in_the_order_of_their_latest() -> None:
    router = Router(rules(ONE_RULE))
    btc = walk(5, "BTC-USD")
    eth = walk(5, "ETH-USD", start_ns=T0 + 1)
    # interleaved, BTC last: ETH's latest comes first
    for b, e in zip(btc, eth, strict=True):
        router.observe(e)
        router.observe(b)
    out = signals(router.decide())
    assert [(s.symbol, s.ts_ns, s.features_hash) for s in out] == [
        ("ETH-USD", eth[-1].ts_ns, "ETH-USD-4"),
        ("BTC-USD", btc[-1].ts_ns, "BTC-USD-4"),
    ]


def test_outcomes_are_scored_per_message_inside_a_batch() -> None:
    """A prediction matures at the first message at or past its horizon, even when that
    message is not the latest of its batch (the outcome is its move, not the latest's)."""
    router = Router(
        rules({"rules": [{"pattern": "*", "horizon": "1s", "models": [{"id": "book_pressure"}]}]})
    )
    router.handle(feat(ts_ns=T0, mid=100.0))  # bid-heavy book: calls up
    for ts_ns, mid in ((T0 + SEC // 2, 100.05), (T0 + SEC, 100.1), (T0 + 2 * SEC, 99.0)):
        router.observe(feat(ts_ns=ts_ns, mid=mid))
    card = router.registry.scorecard("book_pressure", "1s")
    assert (card.scored, card.hits, card.last_outcome_ns) == (1, 1, T0 + SEC)  # 100 -> 100.1
    router.decide()
    assert router.outcomes.pending() == 1  # the decision on the latest, queued once


def test_an_unrouted_symbol_is_observed_for_outcomes_but_never_decided_on() -> None:
    router = Router(rules({"rules": [{"pattern": "BTC-*", "models": [{"id": "breakout"}]}]}))
    router.observe(feat(symbol="AAPL"))
    assert router.decide() == []
    assert router.registry.models["breakout"]._mids == {}  # type: ignore[attr-defined]


def test_discard_forgets_what_a_failed_batch_observed() -> None:
    router = Router(rules(ONE_RULE))
    router.observe(feat())
    router.discard()
    assert router.decide() == []


def test_the_service_conflates_in_event_time_whatever_the_batches() -> None:
    """Event time (was: one decision per symbol per batch, on its latest features): a
    symbol is decided on at most once per decide_interval_ms of event time, on the
    features that open the interval, so what the service writes does not depend on how
    the entries were batched."""
    from services.model_router.service import ModelRouter
    from shared.messages import FEATURES, SIGNALS
    from shared.testing import Harness
    from tests.support import feed_in_order

    btc, eth = walk(30), walk(20, "ETH-USD", start_ns=T0 + 5)  # 10 ms apart
    entries = sorted(btc + eth, key=lambda f: f.ts_ns)

    def live(h: Harness) -> list[tuple[str, str, int]]:
        return [(m.symbol, m.horizon, m.ts_ns) for m in h.out[SIGNALS] if not m.shadow]

    whole = Harness([ModelRouter(rules({**SIX, "decide_interval_ms": 100}))])
    whole.feed(FEATURES, entries)  # no watermark yet: the merge holds them
    whole.run()
    assert live(whole) == [] and whole.held() == {"model_router": 50}
    whole.watermark("feature_bus", entries[-1].ts_ns)  # then all in one batch
    whole.run()
    opened = [btc[0], eth[0], btc[10], eth[10], btc[20]]  # 0, 5, 100, 105, 200 ms
    assert live(whole) == [(f.symbol, h, f.ts_ns) for f in opened for h in ("1m", "5m")]
    one_by_one = feed_in_order(
        Harness([ModelRouter(rules({**SIX, "decide_interval_ms": 100}))]), entries
    )
    assert one_by_one.out[SIGNALS] == whole.out[SIGNALS]  # every field, shadows too


def test_a_batch_whose_write_failed_is_decided_on_again_when_redelivered() -> None:
    import asyncio

    from services.model_router.service import ModelRouter
    from shared.bus import Entry, Outbox
    from shared.messages import FEATURES, SIGNALS, Watermark
    from shared.testing import Harness

    svc = ModelRouter(rules({**ONE_RULE, "decide_interval_ms": 1000}))
    f = feat()
    # A batch handled whose commit failed (Redis down): nothing it produced was written
    # (so no ``committed``), and its entry stays pending and comes again.
    out, acks = Outbox(), []
    wm = Watermark(producer="feature_bus", wm_ns=f.ts_ns)
    svc.handle([Entry(FEATURES, "1-0", {}, f), Entry("wm.feature_bus", "1-1", {}, wm)], out, acks)
    assert [m for s, m in out.messages if s == SIGNALS]
    asyncio.run(svc.on_batch_failed())
    h = Harness([svc])
    h.feed(FEATURES, [f], producer="feature_bus")
    h.run()
    assert len(h.out[SIGNALS]) == 1
