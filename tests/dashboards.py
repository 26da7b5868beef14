"""Reading the dashboards and rules for the monitoring tests: every PromQL expression,
with Grafana's variables substituted as Grafana would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "alerts.yml"
NAMES = ("edge-risk", "model-router", "pnl-attribution")
EVENT_ONLY = "Event-only:"
# `... > 20` at the end of a rule: the series the rule compares.
COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[-0-9.e]+\s*$")


@dataclass(frozen=True)
class Expr:
    where: str  # "edge-risk / VaR / A" or "rule PortfolioVaRWarning"
    promql: str
    event_only: bool


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return doc


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def dashboard_exprs() -> list[Expr]:
    out = []
    for name in NAMES:
        for p in panels(load(name)):
            for t in p.get("targets", []):
                event_only = p.get("description", "").startswith(EVENT_ONLY)
                out.append(Expr(f"{name} / {p['title']} / {t['refId']}", t["expr"], event_only))
    return out


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def rule_base(expr: str) -> str:
    """The series an alert compares (its expr without the final threshold)."""
    return COMPARISON.sub("", expr)


def prom_regex_escape(value: str) -> str:
    """Escape regex metacharacters inside a PromQL string literal (backslash doubled)."""
    return "".join("\\\\" + c if c in "\\^$.|?*+()[]{}" else c for c in value)


def substitute(promql: str, symbols: list[str], rate_interval: str = "5s") -> str:
    """Grafana's substitution: a multi-value $symbol becomes (a|b|c)."""
    sym = "(" + "|".join(prom_regex_escape(s) for s in symbols) + ")" if symbols else ".*"
    return (
        promql.replace("$__rate_interval", rate_interval)
        .replace("$__interval", rate_interval)
        .replace("${symbol}", sym)
        .replace("$symbol", sym)
    )
