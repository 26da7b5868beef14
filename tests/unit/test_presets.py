"""The presets carry seed 003's numbers ("Risk Engine Presets", §5 sizing), the leverage
limit can bind, and consensus gates at seed 003 §1's k (docs/risk_harmoniser.md
"Presets")."""

from __future__ import annotations

import math

import pytest

from services.model_router.config import ConsensusParams
from services.risk_harmoniser.config import PRESETS, RiskParams
from services.risk_harmoniser.engine import RiskEngine
from services.risk_harmoniser.limits import Book, Caps, constrain, limit_intervals
from shared.config import ConfigError, validate

# seed 003 "Risk Engine Presets": per-trade risk %, daily loss stop %, max leverage (x)
SEED_003 = {
    "conservative": (0.25, 1.5, 1.5),
    "balanced": (0.5, 2.5, 2.0),
    "aggressive": (1.0, 3.5, 3.0),
}


def test_every_preset_is_named_by_the_seed() -> None:
    assert set(PRESETS) == set(SEED_003)


@pytest.mark.parametrize("preset", sorted(SEED_003))
def test_preset_carries_the_seed_numbers(preset: str) -> None:
    risk_pct, loss_stop_pct, leverage = SEED_003[preset]
    p = validate("risk_harmoniser", {"preset": preset})
    assert isinstance(p, RiskParams)
    # per-trade risk: the sizing target (seed §5 target_risk_pct) and the single-trade cap
    assert p.sizing.target_vol_pct == risk_pct
    assert p.limits.single_trade_risk_pct == risk_pct
    # daily loss stop: the open-risk budget and the breaker that stops the day, one number
    assert p.limits.daily_loss_stop_pct == loss_stop_pct
    assert p.breakers.daily_drawdown_pct == loss_stop_pct
    # max leverage (the seed's presets are for coins)
    assert p.limits.leverage.crypto == leverage
    # "All presets enforce": single coin 25 %, sector 50 %
    assert p.limits.name_cap_pct.crypto == 25.0
    assert p.limits.sector_cap_pct == 50.0
    # seed §5: final size = base_size * Kelly / 4, in every preset
    assert p.sizing.kelly_fraction == 0.25


def test_balanced_is_the_schema_default() -> None:
    assert RiskParams().limits == RiskParams(preset="balanced").limits
    assert RiskParams().sizing == RiskParams(preset="balanced").sizing


def test_consensus_gate_k_is_the_seed_number() -> None:
    assert ConsensusParams().k == 0.75
    assert ConsensusParams().window == 100


@pytest.mark.parametrize("preset", sorted(SEED_003))
def test_every_class_leverage_is_within_the_gross_cap(preset: str) -> None:
    lim = RiskParams.model_validate({"preset": preset}).limits
    assert lim.leverage.crypto * 100 <= lim.gross_cap_pct
    assert lim.leverage.stocks * 100 <= lim.gross_cap_pct


def test_a_leverage_the_gross_cap_hides_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"limits.*leverage\.crypto must be <= gross_cap_pct"):
        validate("risk_harmoniser", {"limits": {"leverage": {"crypto": 3.0}}})
    ok = validate(
        "risk_harmoniser", {"limits": {"leverage": {"crypto": 3.0}, "gross_cap_pct": 300}}
    )
    assert isinstance(ok, RiskParams) and ok.limits.leverage.crypto == 3.0


def _spread_book(
    class_gross_usd: float, equity_usd: float, stocks_usd: float = 0.0
) -> tuple[Book, int]:
    """Crypto names of 25 % each, two to a sector (50 %), holding ``class_gross_usd``
    together, then name i (flat, a sector of its own), then one stock. Vols of 0.1 % a
    day: VaR, open risk and single-trade risk stay far from binding."""
    n = math.ceil(class_gross_usd / (0.25 * equity_usd))
    w = [class_gross_usd / n] * n + [0.0, stocks_usd]
    sectors = [f"s{k // 2}" for k in range(n)] + ["alone", "tech"]
    classes = ["crypto"] * (n + 1) + ["stocks"]
    cov = tuple(tuple(1e-6 if a == b else 0.0 for b in range(n + 2)) for a in range(n + 2))
    return Book(tuple(w), tuple(classes), tuple(sectors), cov, equity_usd, 1e9), n


@pytest.mark.parametrize("preset", sorted(SEED_003))
def test_leverage_binds_when_a_class_spreads_over_sectors(preset: str) -> None:
    eng = RiskEngine(RiskParams.model_validate({"preset": preset}))
    caps: Caps = eng.caps("crypto")
    eq = 1_000_000.0
    room = 50_000.0
    book, i = _spread_book(caps.leverage * eq - room, eq)
    target, reason = constrain(i, 90_000.0, book, caps, False)
    assert (target, reason) == (pytest.approx(room), "leverage")
    # the gross cap leaves more: leverage is the tighter one, not a tie
    gross = dict((r, hi) for r, _, hi in limit_intervals(i, book, caps, False))["gross_cap"]
    assert gross > room + 1.0


def test_gross_cap_binds_across_classes() -> None:
    eng = RiskEngine(RiskParams())  # balanced: crypto 2x, stocks 2.5x, gross 250 %
    caps = eng.caps("crypto")
    eq = 1_000_000.0
    # 1.5M crypto (0.5M of crypto leverage left) and 0.95M of stocks: 50k of gross left
    book, i = _spread_book(1_500_000.0, eq, stocks_usd=950_000.0)
    assert constrain(i, 90_000.0, book, caps, False) == (pytest.approx(50_000.0), "gross_cap")
