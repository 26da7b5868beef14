"""Integrity checks of a recorded quote history (services/validation/integrity.py)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from services.validation import integrity as ig

S = 10**9
NAN = math.nan


def _checks(findings: list[ig.Finding]) -> list[tuple[int, str]]:
    return [(f.line_no, f.check) for f in findings]


def test_a_clean_history_is_ok() -> None:
    rows = [(2, 1 * S, "A", 10.0, 10.1), (3, 2 * S, "A", 10.0, 10.0), (4, 2 * S, "B", 5.0, 5.1)]
    report = ig.integrity_report(rows, max_gap_ns=60 * S)
    assert report["ok"] is True
    assert report["n_rows"] == 3
    assert report["counts"] == {c: 0 for c in ig.CHECKS}
    assert report["findings"] == []


def test_each_check_names_its_line() -> None:
    rows = [
        (2, 10 * S, "A", 10.0, 10.1),
        (3, 11 * S, "A", NAN, 10.1),  # nan
        (4, 12 * S, "A", 0.0, 10.1),  # non_positive
        (5, 13 * S, "A", 10.2, 10.1),  # crossed
        (6, 13 * S, "A", 10.2, 10.1),  # duplicate of 5 (and crossed again)
        (7, 9 * S, "A", 10.0, 10.1),  # out_of_order
        (8, 100 * S, "A", 10.0, 10.1),  # gap: 87 s after 13 s
        (9, 5 * S, "B", 5.0, 5.1),  # another symbol has its own clock
    ]
    findings = ig.check_quotes(rows, max_gap_ns=60 * S)
    assert _checks(findings) == [
        (3, "nan"),
        (4, "non_positive"),
        (5, "crossed"),
        (6, "crossed"),
        (6, "duplicate"),
        (7, "out_of_order"),
        (8, "gap"),
    ]
    assert findings[4].detail == "same as line 5"
    assert findings[6].detail == "87 s > 60 s"
    report = ig.summary(findings, len(rows))
    assert report["ok"] is False
    assert report["counts"]["crossed"] == 2
    assert report["n_bad_lines"] == 6
    json.dumps(report, allow_nan=False)


def test_one_late_row_is_one_finding_and_does_not_move_the_clock() -> None:
    rows = [(1, 10 * S, "A", 1.0, 1.1), (2, 5 * S, "A", 1.0, 1.1), (3, 11 * S, "A", 1.0, 1.1)]
    assert _checks(ig.check_quotes(rows, max_gap_ns=2 * S)) == [(2, "out_of_order")]


def test_gap_limits_per_symbol() -> None:
    rows = [
        (1, 0, "A", 1.0, 1.1),
        (2, 0, "B", 1.0, 1.1),
        (3, 10 * S, "A", 1.0, 1.1),
        (4, 10 * S, "B", 1.0, 1.1),
    ]
    limits = {"A": 5 * S}  # B not checked
    assert _checks(ig.check_quotes(rows, max_gap_ns=limits)) == [(3, "gap")]
    assert ig.check_quotes(rows) == []  # no limit, no gap check
    assert ig.check_quotes(rows, max_gap_ns=10 * S) == []  # exactly the limit is allowed


def test_rows_may_carry_more_fields() -> None:
    rows = [(1, S, "A", 1.0, 1.1, 3.0, 4.0), (2, S, "A", 1.0, 1.1, 3.0, 4.0)]
    assert _checks(ig.check_quotes(rows)) == [(2, "duplicate")]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 50),
            st.sampled_from(["A", "B"]),
            st.one_of(st.floats(-1.0, 10.0), st.just(NAN)),
            st.one_of(st.floats(-1.0, 10.0), st.just(NAN)),
        ),
        max_size=30,
    )
)
def test_counts_match_findings_and_ok_means_none(raw: list[tuple[int, str, float, float]]) -> None:
    rows = [(i + 1, ts * S, sym, bid, ask) for i, (ts, sym, bid, ask) in enumerate(raw)]
    report = ig.integrity_report(rows, max_gap_ns=10 * S)
    assert sum(report["counts"].values()) == len(report["findings"])
    assert report["ok"] == (not report["findings"])
    assert all(1 <= f["line_no"] <= len(rows) for f in report["findings"])
