"""The 02:00 UTC review (seed 003's daily schedule): validation, champion against
challenger, promotion. Pure: the evidence in, a report and the next router config out.

Evidence is what model_router keeps (and persists): each model's paper book (daily PnL
after costs, trades, hits, turnover, costs; ``services/model_router/track.py``) and its
scored calls (``ts, direction, realised return``), as ``Router.dump()`` and
``Router.calls`` give them in a backtest and as ``edgebus:model_router:state:*`` and
``edgebus:model_router:calls:*`` hold them in the stack. The champion is the consensus'
book (``consensus``): what the desk trades today.

For every routed model, in this order:

1. **validation** (the gate before live, seed 000's best practices): the permutation
   test of its calls (positions = the call's direction, asset returns = the realised
   move over the horizon; ``services/validation/permutation.py``, 1,000 shuffles) and a
   walk-forward of its daily PnL (``walk_forward.py``, the configured preset);
   ``passed`` = p_value_sharpe <= ``validation.alpha`` and ``is_robust``. The result
   goes into ``validation.results`` of the router's config;
2. **champion against challenger** for each shadow and canary model
   (``promotion.py``): its last ``promotion.window_days`` days against the champion's;
3. **stage changes** (``promotion.next_stage``): a shadow whose comparison is promotable
   and whose validation passed becomes a **canary** (``canary: true``, it votes with
   ``canary_fraction`` of its weight, ``canary_since_ns`` stamped); a canary after
   ``canary_days`` either goes **live** or back to **shadow**.

The new config is returned only when something changed, with a source naming every
change (``daily:promote:canary:meta_logistic``...), so each promotion is one version in
parameter_server's history, auditable and reversible with a rollback.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.model_router.config import ModelWeight, RouterRules, ValidationResult
from services.validation.permutation import permutation_test
from services.validation.promotion import (
    Comparison,
    PromotionParams,
    Stage,
    compare,
    next_stage,
)
from services.validation.walk_forward import WalkForwardPreset, walk_forward_report

CHAMPION = "consensus"
DAY_NS = 86_400 * 10**9
MIN_CALLS = 30  # fewer scored calls than this: not validated (too little to test)

Call = tuple[int, float, float]  # ts_ns, direction, realised return (fraction)


@dataclass
class Review:
    at_ns: int
    results: dict[str, ValidationResult] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    changes: list[tuple[str, str, str, str]] = field(default_factory=list)  # id, from, to, why
    report: dict[str, Any] = field(default_factory=dict)
    rules: RouterRules | None = None  # the next config, when something changed

    @property
    def source(self) -> str:
        """parameter_server's ``source`` of the version this review stores."""
        if not self.changes:
            return "daily:validation"
        return "daily:" + ",".join(f"{to}:{m}" for m, _, to, _ in self.changes)


def stage_of(mw: ModelWeight) -> Stage:
    if mw.shadow:
        return Stage.SHADOW
    return Stage.CANARY if mw.canary else Stage.LIVE


def daily_walk_forward(
    daily_bps: Sequence[float], day_ends_ns: Sequence[int], rules: RouterRules
) -> dict[str, Any]:
    """The walk-forward (``validation.walk_forward`` windows) of a daily PnL series in
    bps, the most recent days aligned with their day ends; 252 periods a year."""
    w = rules.validation.walk_forward
    n = min(len(daily_bps), len(day_ends_ns))
    return walk_forward_report(
        np.asarray(day_ends_ns[len(day_ends_ns) - n :], dtype=np.int64),
        np.asarray(daily_bps[len(daily_bps) - n :], dtype=float) / 1e4,
        WalkForwardPreset(w.train_days, w.test_days, w.step_days, w.purge_days),
        periods_per_year=252.0,
    )


def validate_model(
    calls: Sequence[Call],
    daily_bps: Sequence[float],
    day_ends_ns: Sequence[int],
    rules: RouterRules,
    at_ns: int,
) -> tuple[ValidationResult | None, dict[str, Any]]:
    """The permutation test of the calls and the walk-forward of the daily PnL."""
    gate = rules.validation
    if len(calls) < MIN_CALLS:
        return None, {"skipped": f"{len(calls)} scored calls < {MIN_CALLS}"}
    arr = np.asarray(calls, dtype=float)
    perm = permutation_test(
        arr[:, 1],
        arr[:, 2],
        n_permutations=gate.n_permutations,
        seed=gate.seed,
        alpha=gate.alpha,
    )
    wf = daily_walk_forward(daily_bps, day_ends_ns, rules)
    robust = bool(wf["is_robust"])
    result = ValidationResult(
        p_value_sharpe=perm.p_value_sharpe,
        walk_forward_robust=robust,
        passed=perm.p_value_sharpe <= gate.alpha and robust,
        n_periods=perm.n_periods,
        at_ns=at_ns,
    )
    detail = {
        "p_value_sharpe": perm.p_value_sharpe,
        "percentile_rank_sharpe": perm.percentile_rank_sharpe,
        "p_value_return": perm.p_value_return,
        "n_calls": perm.n_periods,
        "walk_forward": {"is_robust": robust, "stability": wf["stability"]},
        "passed": result.passed,
    }
    return result, detail


def router_daily_metrics(
    rules: RouterRules, state: dict[str, Any], champion: Any, day_ends: Sequence[int]
) -> dict[str, Any]:
    """Seed 000's daily metrics the router has the data for (docs/daily.md):

    - OOS Sharpe and its std across windows: the champion's (consensus') walk-forward
      segments of its daily paper PnL (``validation.walk_forward``);
    - Brier score per regime: the consensus' running Brier score of its calls, by the
      regime they were made in;
    - exploration budget used against its cap: the mean share of the consensus' |S| the
      canaries carried, against ``promotion.canary_fraction`` (what a canary may carry
      at most of its own weight; our reading: the product's only exploration is the
      canary stage).
    """
    out: dict[str, Any] = {}
    if champion is not None and len(champion["daily_bps"]) >= 2:
        wf = daily_walk_forward(list(champion["daily_bps"]), day_ends, rules)
        stab: dict[str, Any] = wf["stability"]  # type: ignore[assignment]
        out["oos_sharpe_mean"] = stab["mean_sharpe"]
        out["oos_sharpe_std"] = stab["std_sharpe"]
        out["oos_windows"] = stab["n_segments"]
    out["brier_by_regime"] = {
        g: {"brier": c[2], "n": c[0]} for g, c in state.get("regimes", {}).items()
    }
    used, n = state.get("exploration", [0.0, 0])
    out["exploration_used_pct"] = 100.0 * used / n if n else 0.0
    out["exploration_cap_pct"] = 100.0 * rules.promotion.canary_fraction
    return out


def promotion_params(rules: RouterRules) -> PromotionParams:
    """The pure module's parameters from the config section: every field the two share,
    by name (so a key added to one cannot silently drift from the other)."""
    p = rules.promotion
    shared = {f.name for f in dataclasses.fields(PromotionParams)} & set(type(p).model_fields)
    return PromotionParams(**{name: getattr(p, name) for name in shared})


def review(
    rules: RouterRules,
    state: dict[str, Any],
    calls: dict[str, Sequence[Call]],
    at_ns: int,
) -> Review:
    """The 02:00 review at event time ``at_ns`` (module docstring)."""
    rev = Review(at_ns=at_ns)
    books: dict[str, Any] = state.get("tracks", {}).get("books", {})
    days_closed = int(state.get("tracks", {}).get("days_closed", 0))
    last_day = state.get("tracks", {}).get("day")
    # the end of each closed day, for the walk-forward's day index
    day_ends = (
        [(last_day - days_closed + i + 1) * DAY_NS - 1 for i in range(days_closed)]
        if last_day is not None
        else []
    )
    params = promotion_params(rules)
    window = rules.promotion.window_days
    champion = books.get(CHAMPION)
    models: dict[str, ModelWeight] = {}
    for rule in rules.rules:
        for mw in rule.models:
            models.setdefault(mw.id, mw)

    results = dict(rules.validation.results)
    report_models: dict[str, Any] = {}
    for model_id in models:
        book = books.get(model_id)
        daily = list(book["daily_bps"]) if book else []
        result, detail = validate_model(
            calls.get(model_id, ()), daily, day_ends[-len(daily) :] if daily else [], rules, at_ns
        )
        if result is not None:
            results[model_id] = result
            rev.results[model_id] = result
        report_models[model_id] = {"validation": detail}

    changes: dict[str, tuple[Stage, str]] = {}
    if rules.promotion.enabled and champion is not None:
        champ_daily = list(champion["daily_bps"])
        for model_id, mw in models.items():
            stage = stage_of(mw)
            book = books.get(model_id)
            if stage == Stage.LIVE or book is None:
                continue
            days_in_stage = (
                int((at_ns - mw.canary_since_ns) // DAY_NS) if stage == Stage.CANARY else 0
            )
            span = min(days_in_stage, window) if stage == Stage.CANARY else window
            ch_daily = list(book["daily_bps"])
            n = min(span, len(ch_daily), len(champ_daily))
            comparison: Comparison | None = None
            if n >= 2:
                comparison = compare(
                    ch_daily[-n:],
                    champ_daily[-n:],
                    challenger_trades=int(book["trades"]),
                    challenger_hits=int(book["hits"]),
                    challenger_turnover=float(book["turnover"]),
                    challenger_cost_bps=float(book["cost_bps"]),
                    champion_trades=int(champion["trades"]),
                    champion_hits=int(champion["hits"]),
                    champion_turnover=float(champion["turnover"]),
                    champion_cost_bps=float(champion["cost_bps"]),
                    params=params,
                )
                rev.comparisons[model_id] = comparison
            change = next_stage(model_id, stage, comparison, days_in_stage, params)
            entry = report_models.setdefault(model_id, {})
            entry["stage"] = str(stage)
            if comparison is not None:
                entry["comparison"] = _comparison_doc(comparison)
            if change is None:
                continue
            to = change.to_stage
            if to == Stage.CANARY and not (results.get(model_id) and results[model_id].passed):
                entry["held"] = "promotable, but validation has not passed: stays in shadow"
                continue
            changes[model_id] = (to, change.reason)
            rev.changes.append((model_id, str(stage), str(to), change.reason))

    rev.report = plain(
        {
            "at_ns": at_ns,
            "daily_metrics": router_daily_metrics(rules, state, champion, day_ends),
            "days": days_closed,
            "champion": CHAMPION,
            "models": report_models,
            "changes": [
                {"model_id": m, "from": f, "to": t, "reason": why} for m, f, t, why in rev.changes
            ],
        }
    )
    if rev.results or changes:
        new = _next_rules(rules, results, changes, at_ns)
        if new != rules:
            rev.rules = new
    return rev


def _next_rules(
    rules: RouterRules,
    results: dict[str, ValidationResult],
    changes: dict[str, tuple[Stage, str]],
    at_ns: int,
) -> RouterRules:
    new_rules = []
    for rule in rules.rules:
        models = []
        for mw in rule.models:
            change = changes.get(mw.id)
            if change is not None:
                to = change[0]
                mw = mw.model_copy(
                    update={
                        "shadow": to == Stage.SHADOW,
                        "canary": to == Stage.CANARY,
                        "canary_since_ns": at_ns if to == Stage.CANARY else 0,
                    }
                )
            models.append(mw)
        new_rules.append(rule.model_copy(update={"models": tuple(models)}))
    validation = rules.validation.model_copy(update={"results": results})
    # Through validation again, as parameter_server will: a review never writes a
    # config the schema refuses.
    doc = rules.model_copy(update={"rules": tuple(new_rules), "validation": validation})
    return RouterRules.model_validate(doc.model_dump())


def _comparison_doc(c: Comparison) -> dict[str, Any]:
    return {
        "days": c.days,
        "days_better_streak": c.days_better_streak,
        "mean_excess_bps_per_day": round(c.mean_excess_bps_per_day, 4),
        "es_bps": round(c.es_bps, 4),
        "p_value": round(c.p_value, 6),
        "test": c.test,
        "worse": list(c.worse),
        "passed": dict(c.passed),
        "promotable": c.promotable,
        "challenger": _metrics_doc(c.challenger),
        "champion": _metrics_doc(c.champion),
    }


def _metrics_doc(m: Any) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars_of(m).items()}


def plain(obj: Any) -> Any:
    """JSON-safe: numpy scalars as Python numbers, NaN and infinities as None (what
    /health, the proposal's fields and the report files can carry)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
