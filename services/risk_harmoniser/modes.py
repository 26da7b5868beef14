"""Which book a signal goes to (seed 002 "Mode Selector", "HybridGateRouter").

``select_mode`` (first matching row wins; p = calibrated confidence, bands from
``ModeParams``, defaults 0.70 and 0.55; docs/dual_mode.md "Mode table"):

    regime PANIC                        -> modes.panic     (default none)
    regime ILLIQUID                     -> modes.illiquid  (default none)
    family scalp                        -> scalp           (TAPE, SWEEP, RANGE)
    family runner, p >= 0.70            -> runner          (both if the regime is RANGE)
    family runner, 0.55 <= p < 0.70     -> both            (runner first, scalp fallback)
    family runner, p < 0.55             -> scalp           (a weak trend is a scalp at most)
    no family                           -> none

The family is the model's (``modes.model_families``, lower-case id); a model without one
(the consensus, None) takes the regime's: RANGE -> scalp, TREND -> runner.

``HybridGateRouter.route`` tries the route's books in order (both: runner, then scalp),
skipping books the asset class may not trade. A book's gates (its ``GateProfile``):

    |edge_bps| - cost_bps > cost_buffer_bps                       (net edge over the buffer)
    meta_p >= meta_label_min
    pessimistic_edge_bps > cost_bps + cost_buffer_bps             (if conformal and given)
    not adverse                                                   (if adverse_selection)

``pessimistic_edge_bps`` is calibration.conformal.pessimistic_edge_bps (in the trade's
direction); None (no interval yet) skips the conformal gate, as the seed's gate needs one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from services.risk_harmoniser.profiles import BookName, DualModeConfig, GateProfile, ModeFamily

RouteKind = Literal["runner", "scalp", "both", "none"]
_ROUTE_BOOKS: dict[RouteKind, tuple[BookName, ...]] = {
    "runner": ("runner",),
    "scalp": ("scalp",),
    "both": ("runner", "scalp"),  # seed 002: try runner, fall back to scalp
    "none": (),
}
_REGIME_FAMILY: dict[str, ModeFamily] = {"RANGE": "scalp", "TREND": "runner"}


@dataclass(frozen=True, slots=True)
class Route:
    """The mode selector's answer and why, e.g. ``Route("both", "runner_family:medium")``."""

    kind: RouteKind
    reason: str

    @property
    def books(self) -> tuple[BookName, ...]:
        """The books to try, in order."""
        return _ROUTE_BOOKS[self.kind]


@dataclass(frozen=True, slots=True)
class Decision:
    """The hybrid router's answer: the book that takes the trade (None: none) and why."""

    book: BookName | None
    reason: str


def family_of(source_model: str | None, regime: str, config: DualModeConfig) -> ModeFamily | None:
    """The model's family, else the regime's, else None."""
    if source_model is not None:
        family = config.modes.model_families.get(source_model.lower())
        if family is not None:
            return family
    return _REGIME_FAMILY.get(regime)


def select_mode(
    source_model: str | None, regime: str, calibrated_confidence: float, config: DualModeConfig
) -> Route:
    """Seed 002's mode selector: the table in the module docstring."""
    p = float(calibrated_confidence)
    if not 0.0 <= p <= 1.0:  # also NaN
        raise ValueError(f"calibrated_confidence must be in [0, 1], not {calibrated_confidence!r}")
    m = config.modes
    if regime == "PANIC":
        return Route(m.panic, "regime:PANIC")
    if regime == "ILLIQUID":
        return Route(m.illiquid, "regime:ILLIQUID")
    family = family_of(source_model, regime, config)
    if family is None:
        return Route("none", "no_family")
    if family == "scalp":
        return Route("scalp", "scalp_family")
    if p >= m.runner_min_confidence:
        if regime == "RANGE":  # a trend call against a ranging tape: keep the scalp fallback
            return Route("both", "runner_family:high:regime_RANGE")
        return Route("runner", "runner_family:high")
    if p >= m.both_min_confidence:
        return Route("both", "runner_family:medium")
    return Route("scalp", "runner_family:low")


def gate_failure(
    profile: GateProfile,
    edge_bps: float,
    cost_bps: float,
    pessimistic_edge_bps: float | None,
    meta_p: float,
    adverse: bool,
    meta_min: float | None = None,
) -> str | None:
    """The first gate of ``profile`` the trade fails (None: it passes all); ``meta_min``
    replaces the profile's meta-label threshold (a governor's)."""
    if not abs(edge_bps) - cost_bps > profile.cost_buffer_bps:
        return "cost_buffer"
    if not meta_p >= (profile.meta_label_min if meta_min is None else meta_min):
        return "meta_label"
    if (
        profile.conformal
        and pessimistic_edge_bps is not None
        and not pessimistic_edge_bps > cost_bps + profile.cost_buffer_bps
    ):
        return "conformal"
    if profile.adverse_selection and adverse:
        return "adverse_selection"
    return None


class RoutingStats:
    """Counts of routes, chosen books and decision reasons (seed 002 "Routing statistics")."""

    def __init__(self) -> None:
        self.routes: Counter[str] = Counter()
        self.books: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.total = 0

    def record(self, route: Route, decision: Decision) -> None:
        self.total += 1
        self.routes[route.kind] += 1
        self.books[decision.book or "none"] += 1
        self.reasons[decision.reason] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "routes": dict(sorted(self.routes.items())),
            "books": dict(sorted(self.books.items())),
            "reasons": dict(sorted(self.reasons.items())),
        }


class HybridGateRouter:
    """Seed 002's HybridGateRouter: the route's books in order, each through its gates;
    every call is counted in ``stats``."""

    def __init__(self, config: DualModeConfig, stats: RoutingStats | None = None) -> None:
        self.config = config
        self.stats = stats if stats is not None else RoutingStats()
        # book -> a meta-label threshold replacing its profile's (the win-rate governor's)
        self.meta_thresholds: dict[str, float] = {}

    def route(
        self,
        edge_bps: float,
        cost_bps: float,
        pessimistic_edge_bps: float | None,
        meta_p: float,
        route: Route,
        asset_class: str,
        *,
        adverse: bool = False,
    ) -> Decision:
        """The first of ``route.books`` the asset class may trade whose gates pass.

        ``adverse``: an adverse-selection detector flagged the flow (none is wired yet,
        so False: the runner's adverse-selection gate passes). Reasons: ``"<book>"`` when
        the first book tried takes it, ``"scalp:fallback(runner:<gate>)"`` when the
        scalp takes what the runner refused, ``"<book>:<gate>"`` (joined by ``;``)
        when none does, ``route.reason`` for a ``none`` route."""
        for name, value in (("edge_bps", edge_bps), ("cost_bps", cost_bps), ("meta_p", meta_p)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, not {value!r}")
        decision = self._decide(
            edge_bps, cost_bps, pessimistic_edge_bps, meta_p, route, asset_class, adverse
        )
        self.stats.record(route, decision)
        return decision

    def _decide(
        self,
        edge_bps: float,
        cost_bps: float,
        pessimistic_edge_bps: float | None,
        meta_p: float,
        route: Route,
        asset_class: str,
        adverse: bool,
    ) -> Decision:
        if route.kind == "none":
            return Decision(None, route.reason)
        allowed = self.config.books_for(asset_class)
        failures: list[str] = []
        for book in route.books:
            if book not in allowed:
                failures.append(f"{book}:asset_profile")
                continue
            why = gate_failure(
                self.config.profile(book),
                edge_bps,
                cost_bps,
                pessimistic_edge_bps,
                meta_p,
                adverse,
                self.meta_thresholds.get(book),
            )
            if why is None:
                if failures:
                    return Decision(book, f"{book}:fallback({failures[0]})")
                return Decision(book, book)
            failures.append(f"{book}:{why}")
        return Decision(None, ";".join(failures))
