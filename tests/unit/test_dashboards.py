"""Dashboard JSON structure: uids, rows, the symbol variable, a 24-column grid that
stays readable at 1176 px, one datasource; and the alert rules file."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.dashboards import NAMES, RULES, dashboard_exprs, load, panels, rule_base, rules

pytestmark = pytest.mark.monitoring
DS_UID = "edgebus-prometheus"


@pytest.mark.parametrize("name", NAMES)
def test_structure_uid_variable_datasource(name: str) -> None:
    d = load(name)
    assert d["uid"] == name and d["title"].startswith("edgebus / ")
    assert d["refresh"] == "1s"
    var = {v["name"]: v for v in d["templating"]["list"]}["symbol"]
    assert var["type"] == "query" and var["multi"] and var["includeAll"]
    assert "label_values(" in var["query"]["query"] and 'symbol!="portfolio"' in var["definition"]
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == DS_UID, p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_grid_fits_24_columns_without_overlap(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for p in panels(load(name)):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (p["title"], g)
        # readable at 1176 px: 24 columns of 49 px, so no panel narrower than 4 columns
        assert p["type"] == "row" or g["w"] >= 4, (p["title"], g)
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_edge_risk_has_the_four_rows_in_order() -> None:
    rows = [p["title"] for p in load("edge-risk")["panels"] if p["type"] == "row"]
    assert rows == ["Quick Stats", "Time Series", "Switch Log", "Alert Summary"]
    # every row holds at least one panel
    ps = load("edge-risk")["panels"]
    starts = [i for i, p in enumerate(ps) if p["type"] == "row"] + [len(ps)]
    assert all(b - a > 1 for a, b in zip(starts, starts[1:], strict=False))


def test_contract_metrics_are_on_the_dashboards() -> None:
    text = " ".join(e.promql for e in dashboard_exprs())
    for metric in ("edge_blended_bps", "position_size_usd", "var_pct", "tick_to_fill_seconds"):
        assert metric in text


def test_rules_cover_the_issue_and_have_a_comparison() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert set(by_name) >= {
        "ModelSwitchingStorm",
        "PortfolioVaRWarning",
        "PortfolioVaRCritical",
        "TickToFillP99High",
        "DLQGrowing",
        "ServiceDown",
    }
    assert by_name["ModelSwitchingStorm"]["expr"].endswith("> 20")
    assert by_name["PortfolioVaRWarning"]["expr"].endswith("> 2")
    assert by_name["PortfolioVaRCritical"]["labels"]["severity"] == "critical"
    for r in rules():
        assert rule_base(r["expr"]) != r["expr"], r["alert"]
        assert r["annotations"]["summary"], r["alert"]


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_promtool_check_rules_passes() -> None:
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


def test_every_alert_has_a_runbook_entry() -> None:
    from pathlib import Path

    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    sections = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    for r in rules():
        rows = [line for line in runbook.splitlines() if f"`{r['alert']}`" in line and "|" in line]
        assert rows, f"{r['alert']}: not in the runbook's alert table"
        entry = rows[0].rsplit("|", 2)[-2].strip().strip("*")
        assert entry in sections, f"{r['alert']}: runbook entry {entry!r} has no section"
