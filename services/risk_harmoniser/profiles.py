"""Dual-mode desk configuration (seed 002, issue 19 items 4-5): two books, their gates.

Seed 002 runs a SHORT_HOLD book ("scalp") and a LONG_HOLD book ("runner") side by side,
each with its own heat cap and gate profile (docs/dual_mode.md has the tables):

    book     heat cap  cost buffer  meta-label  adverse sel.  conformal  stop   hold
    scalp    40 %      3 bps        0.45        off           off        0.5 %  5-15 s
    runner   50 %      8 bps        0.65        on            on         2 %    5-60 min
    reserve  10 %      (never allocated)

Every number above is the seed's. Ours: which asset class may trade which book
(``default_assets``: crypto both, stocks runner only) and the mode selector's confidence
bands (``ModeParams``: runner at p >= 0.70, both at 0.55 <= p < 0.70, seed 001 §5's
HIGH and MEDIUM bounds). The whole section is off (``enabled: false``) until the risk
engine is wired to it (docs/dual_mode.md "Wiring"). Errors name the key, e.g.
``caps: Value error, scalp_heat_pct + runner_heat_pct + reserve_pct must be <= 100``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shared.config import Frozen

BookName = Literal["scalp", "runner"]
BOOKS: tuple[BookName, BookName] = ("scalp", "runner")
ModeFamily = Literal["scalp", "runner"]
StressRoute = Literal["none", "scalp"]


class GateProfile(Frozen):
    """One book's gates and exits (seed 002 "Gate Profiles", "Position-Level Risk")."""

    name: BookName
    cost_buffer_bps: float = Field(ge=0, le=1_000, description="edge must beat cost + this")
    meta_label_min: float = Field(ge=0, le=1, description="least meta-label P(win)")
    adverse_selection: bool = Field(description="refuse when the flow is flagged toxic")
    conformal: bool = Field(description="pessimistic interval end must beat cost + buffer")
    stop_loss_pct: float = Field(gt=0, le=100, description="exit at this loss of entry value")
    min_hold_s: float = Field(ge=0, description="no discretionary exit before (stops excepted)")
    max_hold_s: float = Field(gt=0, description="time exit")

    @model_validator(mode="after")
    def _hold_ordered(self) -> GateProfile:
        if self.min_hold_s > self.max_hold_s:
            raise ValueError(
                f"min_hold_s ({self.min_hold_s}) must be <= max_hold_s ({self.max_hold_s})"
            )
        return self


# seed 002: "Scalp Gates (LOOSE)" and "SL -0.5 %", "Hold: 5-15 seconds"
SCALP = GateProfile(
    name="scalp",
    cost_buffer_bps=3.0,
    meta_label_min=0.45,
    adverse_selection=False,
    conformal=False,
    stop_loss_pct=0.5,
    min_hold_s=5.0,
    max_hold_s=15.0,
)
# seed 002: "Runner Gates (STRICT)" and "SL -2.0 %", "Hold: 5-60 minutes"
RUNNER = GateProfile(
    name="runner",
    cost_buffer_bps=8.0,
    meta_label_min=0.65,
    adverse_selection=True,
    conformal=True,
    stop_loss_pct=2.0,
    min_hold_s=300.0,
    max_hold_s=3_600.0,
)


class BookCaps(Frozen):
    """Seed 002 "Book-Level Risk": gross exposure of each book as a percent of equity,
    and a reserve never allocated; the three together must fit in 100 %."""

    scalp_heat_pct: float = Field(default=40.0, ge=0, le=100, description="seed 002: 40 %")
    runner_heat_pct: float = Field(default=50.0, ge=0, le=100, description="seed 002: 50 %")
    reserve_pct: float = Field(default=10.0, ge=0, le=100, description="seed 002: 10 %")

    @model_validator(mode="after")
    def _fits(self) -> BookCaps:
        total = self.scalp_heat_pct + self.runner_heat_pct + self.reserve_pct
        if total > 100.0 + 1e-9:
            raise ValueError(
                f"scalp_heat_pct + runner_heat_pct + reserve_pct must be <= 100, not {total:g}"
            )
        return self

    def cap_pct(self, book: BookName) -> float:
        """The book's heat cap, percent of equity."""
        return self.scalp_heat_pct if book == "scalp" else self.runner_heat_pct

    @property
    def deployable_pct(self) -> float:
        """What both books together may hold: 100 - reserve_pct."""
        return 100.0 - self.reserve_pct


class AssetProfile(Frozen):
    """The books an asset class may trade, in no particular order."""

    books: tuple[BookName, ...] = Field(min_length=1)

    @field_validator("books")
    @classmethod
    def _unique(cls, v: tuple[BookName, ...]) -> tuple[BookName, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"books must not repeat a book: {list(v)}")
        return v


def default_assets() -> dict[str, AssetProfile]:
    """Ours (the seed only says profiles exist): crypto trades both books; stocks only
    the runner, because a 5-15 s stock scalp pays the spread and fees of a venue that is
    open 6.5 h a day and rarely clears a 3 bps buffer (docs/dual_mode.md "Profiles")."""
    return {
        "crypto": AssetProfile(books=("scalp", "runner")),
        "stocks": AssetProfile(books=("runner",)),
    }


def default_model_families() -> dict[str, ModeFamily]:
    """Which book a model's signals prefer. Seed 002's engines: TAPE, SWEEP and RANGE
    scalp; TREND and BREAKOUT run. Ours: book_pressure (order-book imbalance, a tape
    reading) scalps, ma_momentum (an EMA trend) runs. Ids are matched lower-case."""
    return {
        "tape": "scalp",
        "sweep": "scalp",
        "range": "scalp",
        "trend": "runner",
        "breakout": "runner",
        "book_pressure": "scalp",
        "ma_momentum": "runner",
    }


class ModeParams(Frozen):
    """The mode selector's table (modes.select_mode). The seed says "high confidence ->
    runner, medium -> try both" without numbers; ours are seed 001 §5's HIGH (0.70) and
    MEDIUM (0.55) lower bounds, on the calibrated confidence."""

    runner_min_confidence: float = Field(default=0.70, ge=0, le=1, description="runner alone")
    both_min_confidence: float = Field(default=0.55, ge=0, le=1, description="runner, then scalp")
    model_families: dict[str, ModeFamily] = Field(default_factory=default_model_families)
    # Seed 002: "PANIC regime triggers liquidation", so nothing new opens; ILLIQUID:
    # slippage eats a scalp's few bps and a runner's exit, so nothing either (ours).
    panic: StressRoute = "none"
    illiquid: StressRoute = "none"

    @model_validator(mode="after")
    def _bands_ordered(self) -> ModeParams:
        if self.both_min_confidence > self.runner_min_confidence:
            raise ValueError("both_min_confidence must be <= runner_min_confidence")
        return self

    @field_validator("model_families")
    @classmethod
    def _lower_case(cls, v: dict[str, ModeFamily]) -> dict[str, ModeFamily]:
        return {k.lower(): f for k, f in v.items()}


class DualModeConfig(Frozen):
    """The dual-mode section (issue 19 items 4-5). ``enabled`` is the risk engine's
    switch; the pure functions of modes.py and books.py do not read it."""

    enabled: bool = False
    caps: BookCaps = BookCaps()
    scalp: GateProfile = SCALP
    runner: GateProfile = RUNNER
    assets: dict[str, AssetProfile] = Field(default_factory=default_assets)
    modes: ModeParams = ModeParams()
    # seed 002's win-rate governors (services/calibration/governor.py): each book's
    # meta-label threshold moved toward its target win rate (scalp 72 %, runner 95 %)
    governor: bool = True

    @model_validator(mode="after")
    def _profiles_named(self) -> DualModeConfig:
        for key in BOOKS:
            if getattr(self, key).name != key:
                raise ValueError(f"{key}.name must be {key!r}, not {getattr(self, key).name!r}")
        return self

    def profile(self, book: BookName) -> GateProfile:
        return self.scalp if book == "scalp" else self.runner

    def books_for(self, asset_class: str) -> tuple[BookName, ...]:
        """The books ``asset_class`` may trade; () for a class with no profile."""
        profile = self.assets.get(asset_class)
        return profile.books if profile is not None else ()
