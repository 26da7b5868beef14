"""The routing table: a validated ``RouterRules`` compiled for fast lookups. Pure.

``RoutingTable.routes(symbol)`` returns, per horizon, the winning rule compiled into a
``Route``: the models to run, and per regime the approved live voters (with weights)
and the approved shadow models (regime approval matrix, seed 003 §2). A live model
that has not passed validation runs as a shadow unless it says ``trade_unvalidated``
(the gate before live); a canary votes with ``promotion.canary_fraction`` of its weight. The answer is
cached per symbol; a reload builds a new table, so the cache can never outlive the
rules it was computed from.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from services.model_router.config import (
    CLASS_PREFIX,
    ModelWeight,
    RouterRules,
    RoutingRule,
    pattern_kind,
)
from services.model_router.models import ALL_REGIMES, horizon_ns
from services.model_router.registry import CATALOGUE

_SPECIFICITY = {"exact": 3, "class": 2, "glob": 1}
MAX_CACHED_SYMBOLS = 100_000  # bounded even if garbage symbols stream in


@dataclass(frozen=True, slots=True)
class Route:
    rule_index: int
    pattern: str
    horizon: str
    horizon_ns: int
    models: tuple[str, ...]  # every model this route runs, live and shadow, in rule order
    live: dict[str, tuple[tuple[str, float], ...]]  # regime -> approved (model_id, weight)
    shadow: dict[str, tuple[str, ...]]  # regime -> approved shadow model ids
    voters: frozenset[str]  # live models that can vote in some regime


class RoutingTable:
    def __init__(self, rules: RouterRules, epoch: int = 0) -> None:
        self.rules = rules
        self.epoch = epoch  # rules loaded before this table (0: the first)
        self._compiled: list[tuple[int, str, RoutingRule, Route]] = []
        for i, rule in enumerate(rules.rules):
            kind = pattern_kind(rule.pattern)
            self._compiled.append((_SPECIFICITY[kind], kind, rule, self._compile(i, rule)))
        self._cache: dict[str, tuple[Route, ...]] = {}

    def approved(self, model_id: str, regime: str) -> bool:
        listed = self.rules.regimes.get(regime)
        if listed is not None:
            return model_id in listed
        return regime in CATALOGUE[model_id].regimes

    def _compile(self, index: int, rule: RoutingRule) -> Route:
        live: dict[str, tuple[tuple[str, float], ...]] = {}
        shadow: dict[str, tuple[str, ...]] = {}
        gate = self.rules.validation
        canary = self.rules.promotion.canary_fraction

        def as_shadow(mw: ModelWeight) -> bool:
            """A shadow, or a live model held back by the validation gate."""
            if mw.shadow:
                return True
            if mw.weight <= 0 or not gate.required or mw.trade_unvalidated:
                return False
            return not gate.passed(mw.id)

        for regime in sorted(ALL_REGIMES):
            ok = [mw for mw in rule.models if self.approved(mw.id, regime)]
            live[regime] = tuple(
                (mw.id, mw.weight * canary if mw.canary else mw.weight)
                for mw in ok
                if not as_shadow(mw) and mw.weight > 0
            )
            shadow[regime] = tuple(mw.id for mw in ok if as_shadow(mw))
        # A live model with weight 0 is switched off: it is not even run.
        models = tuple(mw.id for mw in rule.models if mw.shadow or mw.weight > 0)
        voters = frozenset(m for regime_live in live.values() for m, _ in regime_live)
        return Route(
            index,
            rule.pattern,
            rule.horizon,
            horizon_ns(rule.horizon),
            models,
            live,
            shadow,
            voters,
        )

    def _matches(self, kind: str, pattern: str, symbol: str) -> bool:
        if kind == "exact":
            return symbol == pattern
        if kind == "glob":
            return fnmatch.fnmatchcase(symbol, pattern)
        return self.rules.asset_classes.get(symbol) == pattern[len(CLASS_PREFIX) :]

    def routes(self, symbol: str) -> tuple[Route, ...]:
        """Per horizon, the most specific matching rule (exact > class > glob, then file
        order), compiled; cached per symbol."""
        cached = self._cache.get(symbol)
        if cached is not None:
            return cached
        best: dict[str, tuple[int, int, Route]] = {}
        for rank, kind, rule, route in self._compiled:
            if not self._matches(kind, rule.pattern, symbol):
                continue
            held = best.get(rule.horizon)
            if held is None or rank > held[0]:
                best[rule.horizon] = (rank, route.rule_index, route)
        picked = tuple(r for _, _, r in sorted(best.values(), key=lambda t: t[1]))
        if len(self._cache) >= MAX_CACHED_SYMBOLS:
            self._cache.clear()
        self._cache[symbol] = picked
        return picked
