"""Seed 002's profiles, mode selector and hybrid gate router."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.risk_harmoniser.modes import (
    Decision,
    HybridGateRouter,
    Route,
    RoutingStats,
    select_mode,
)
from services.risk_harmoniser.profiles import (
    RUNNER,
    SCALP,
    AssetProfile,
    BookCaps,
    DualModeConfig,
    GateProfile,
)

CFG = DualModeConfig(enabled=True)


# ---- profiles: seed 002's numbers ----------------------------------------------------------


def test_seed_002_numbers_are_the_defaults() -> None:
    cfg = DualModeConfig()
    assert cfg.enabled is False  # off until the risk engine is wired
    s, r = cfg.scalp, cfg.runner
    assert (s.cost_buffer_bps, s.meta_label_min, s.adverse_selection, s.conformal) == (
        3.0,
        0.45,
        False,
        False,
    )
    assert (s.stop_loss_pct, s.min_hold_s, s.max_hold_s) == (0.5, 5.0, 15.0)
    assert (r.cost_buffer_bps, r.meta_label_min, r.adverse_selection, r.conformal) == (
        8.0,
        0.65,
        True,
        True,
    )
    assert (r.stop_loss_pct, r.min_hold_s, r.max_hold_s) == (2.0, 300.0, 3_600.0)
    assert (s, r) == (SCALP, RUNNER)
    caps = cfg.caps
    assert (caps.scalp_heat_pct, caps.runner_heat_pct, caps.reserve_pct) == (40.0, 50.0, 10.0)
    assert cfg.books_for("crypto") == ("scalp", "runner")
    assert cfg.books_for("stocks") == ("runner",)
    assert cfg.books_for("fx") == ()
    assert (cfg.modes.runner_min_confidence, cfg.modes.both_min_confidence) == (0.70, 0.55)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"caps": {"scalp_heat_pct": 50, "runner_heat_pct": 50}}, "caps"),
        ({"caps": {"reserve_pct": -1}}, "caps.reserve_pct"),
        ({"scalp": {**SCALP.model_dump(), "min_hold_s": 20.0}}, "scalp"),
        ({"runner": {**SCALP.model_dump()}}, "runner.name must be 'runner'"),
        ({"runner": {**RUNNER.model_dump(), "meta_label_min": 1.5}}, "runner.meta_label_min"),
        ({"assets": {"crypto": {"books": ["scalp", "scalp"]}}}, "assets.crypto.books"),
        ({"assets": {"crypto": {"books": []}}}, "assets.crypto.books"),
        ({"assets": {"crypto": {"books": ["swing"]}}}, "assets.crypto.books"),
        ({"modes": {"both_min_confidence": 0.8}}, "modes"),
        ({"modes": {"panic": "runner"}}, "modes.panic"),
        ({"cap": {}}, "cap"),
    ],
)
def test_config_errors_name_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as err:
        DualModeConfig.model_validate(doc)
    assert key in str(err.value)


def test_caps_may_fill_exactly_100_percent() -> None:
    BookCaps(scalp_heat_pct=45, runner_heat_pct=50, reserve_pct=5)
    with pytest.raises(ValidationError, match="must be <= 100"):
        BookCaps(scalp_heat_pct=45, runner_heat_pct=50, reserve_pct=5.1)


# ---- mode table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "regime", "p", "kind", "reason"),
    [
        ("tape", "TREND", 0.99, "scalp", "scalp_family"),
        ("SWEEP", "TREND", 0.2, "scalp", "scalp_family"),
        ("range", "RANGE", 0.6, "scalp", "scalp_family"),
        ("book_pressure", "TREND", 0.9, "scalp", "scalp_family"),
        ("trend", "TREND", 0.70, "runner", "runner_family:high"),
        ("breakout", "TREND", 1.0, "runner", "runner_family:high"),
        ("trend", "TREND", 0.6999, "both", "runner_family:medium"),
        ("ma_momentum", "TREND", 0.55, "both", "runner_family:medium"),
        ("trend", "TREND", 0.5499, "scalp", "runner_family:low"),
        ("trend", "RANGE", 0.9, "both", "runner_family:high:regime_RANGE"),
        # no family of its own: the regime's
        ("consensus", "RANGE", 0.9, "scalp", "scalp_family"),
        (None, "TREND", 0.75, "runner", "runner_family:high"),
        (None, "TREND", 0.60, "both", "runner_family:medium"),
        ("consensus", "QUIET", 0.9, "none", "no_family"),
        # stress regimes first, whatever the model
        ("tape", "PANIC", 0.9, "none", "regime:PANIC"),
        ("trend", "ILLIQUID", 0.9, "none", "regime:ILLIQUID"),
    ],
)
def test_mode_table(model: str | None, regime: str, p: float, kind: str, reason: str) -> None:
    assert select_mode(model, regime, p, CFG) == Route(kind, reason)  # type: ignore[arg-type]


def test_stress_regimes_may_scalp_and_bands_move() -> None:
    cfg = DualModeConfig.model_validate(
        {"modes": {"panic": "scalp", "illiquid": "scalp", "runner_min_confidence": 0.8}}
    )
    assert select_mode("trend", "PANIC", 0.9, cfg).kind == "scalp"
    assert select_mode("trend", "ILLIQUID", 0.9, cfg).kind == "scalp"
    assert select_mode("trend", "TREND", 0.79, cfg).kind == "both"
    assert select_mode("trend", "TREND", 0.80, cfg).kind == "runner"


def test_confidence_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="calibrated_confidence"):
        select_mode("trend", "TREND", float("nan"), CFG)
    with pytest.raises(ValueError, match="calibrated_confidence"):
        select_mode("trend", "TREND", 1.01, CFG)


# ---- hybrid gate router ----------------------------------------------------------------------

BOTH = Route("both", "runner_family:medium")


def test_runner_first() -> None:
    r = HybridGateRouter(CFG)
    # edge 20 - cost 5 = 15 > 8; meta 0.7 >= 0.65; pessimistic 14 > 5 + 8
    assert r.route(20.0, 5.0, 14.0, 0.70, BOTH, "crypto") == Decision("runner", "runner")


@pytest.mark.parametrize(
    ("edge", "pess", "meta", "adverse", "reason"),
    [
        (13.0, None, 0.9, False, "scalp:fallback(runner:cost_buffer)"),  # 8 net: not > 8
        (20.0, 14.0, 0.64, False, "scalp:fallback(runner:meta_label)"),
        (20.0, 13.0, 0.9, False, "scalp:fallback(runner:conformal)"),  # 13 not > 13
        (20.0, 14.0, 0.9, True, "scalp:fallback(runner:adverse_selection)"),
    ],
)
def test_hybrid_falls_back_to_scalp(
    edge: float, pess: float | None, meta: float, adverse: bool, reason: str
) -> None:
    r = HybridGateRouter(CFG)
    assert r.route(edge, 5.0, pess, meta, BOTH, "crypto", adverse=adverse) == Decision(
        "scalp", reason
    )


def test_scalp_gates_at_their_boundaries() -> None:
    r = HybridGateRouter(CFG)
    scalp = Route("scalp", "scalp_family")
    # cost 5 + buffer 3: the edge must be > 8 (either sign); meta >= 0.45
    assert r.route(8.01, 5.0, None, 0.45, scalp, "crypto").book == "scalp"
    assert r.route(-8.01, 5.0, None, 0.45, scalp, "crypto").book == "scalp"
    assert r.route(8.0, 5.0, None, 0.9, scalp, "crypto") == Decision(None, "scalp:cost_buffer")
    assert r.route(9.0, 5.0, None, 0.4499, scalp, "crypto") == Decision(None, "scalp:meta_label")
    # the scalp has neither conformal nor adverse-selection gate
    assert r.route(9.0, 5.0, -50.0, 0.5, scalp, "crypto", adverse=True).book == "scalp"


def test_no_fallback_on_a_runner_route_and_none_passes_its_reason() -> None:
    r = HybridGateRouter(CFG)
    runner = Route("runner", "runner_family:high")
    assert r.route(20.0, 5.0, 14.0, 0.5, runner, "crypto") == Decision(None, "runner:meta_label")
    panic = Route("none", "regime:PANIC")
    assert r.route(99.0, 1.0, 90.0, 0.99, panic, "crypto") == Decision(None, "regime:PANIC")


def test_asset_profile_is_respected() -> None:
    r = HybridGateRouter(CFG)
    # stocks trade the runner only: no scalp fallback
    assert r.route(20.0, 5.0, 14.0, 0.5, BOTH, "stocks") == Decision(
        None, "runner:meta_label;scalp:asset_profile"
    )
    assert r.route(20.0, 5.0, 14.0, 0.9, BOTH, "stocks") == Decision("runner", "runner")
    scalp_only = DualModeConfig(assets={"crypto": AssetProfile(books=("scalp",))})
    assert HybridGateRouter(scalp_only).route(20.0, 5.0, 14.0, 0.9, BOTH, "crypto") == Decision(
        "scalp", "scalp:fallback(runner:asset_profile)"
    )
    assert r.route(20.0, 5.0, 14.0, 0.9, BOTH, "fx") == Decision(
        None, "runner:asset_profile;scalp:asset_profile"
    )


def test_conformal_off_or_no_interval_skips_that_gate() -> None:
    runner_no_conf = GateProfile(**{**RUNNER.model_dump(), "conformal": False})
    r = HybridGateRouter(DualModeConfig(runner=runner_no_conf))
    assert r.route(20.0, 5.0, -10.0, 0.9, BOTH, "crypto").book == "runner"
    assert HybridGateRouter(CFG).route(20.0, 5.0, None, 0.9, BOTH, "crypto").book == "runner"


def test_routing_stats() -> None:
    stats = RoutingStats()
    r = HybridGateRouter(CFG, stats)
    r.route(20.0, 5.0, 14.0, 0.9, BOTH, "crypto")
    r.route(20.0, 5.0, 14.0, 0.5, BOTH, "crypto")
    r.route(20.0, 5.0, 14.0, 0.5, Route("none", "regime:PANIC"), "crypto")
    assert r.stats is stats
    assert stats.as_dict() == {
        "total": 3,
        "routes": {"both": 2, "none": 1},
        "books": {"none": 1, "runner": 1, "scalp": 1},
        "reasons": {"regime:PANIC": 1, "runner": 1, "scalp:fallback(runner:meta_label)": 1},
    }


def test_non_finite_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="edge_bps"):
        HybridGateRouter(CFG).route(float("nan"), 5.0, None, 0.5, BOTH, "crypto")
