"""The signal report's templates: values are escaped in both parts and never evaluated."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from tickerlake.report import render

pytestmark = pytest.mark.unit

SCRIPT = "<script>alert(1)</script>"
TEMPLATE = "{{7*7}}"
HOSTILE = [SCRIPT, TEMPLATE, "{% raw %}x", "EVIL\nSubject: injected", "A&B\"'"]


def _row(ticker: str, rank: int, pred: float, signal: str) -> dict:
    return {"ticker": ticker, "rank": rank, "pred_return": pred, "pred_lo": pred - 0.01, "pred_hi": pred + 0.01,
            "percentile": 0.9 if signal == "long" else 0.1, "signal": signal}


def _context(**changes) -> dict:
    context = {
        "asof_date": "2025-12-31", "target_session": "2026-01-02", "model_name": "tickerlake_daily_lgbm",
        "model_version": "3", "champion_version": "3", "features_version": 12, "run_id": "scheduled__2025-12-31",
        "skipped_reason": None,
        "longs": [_row(t, i + 1, 0.02 - i * 0.001, "long") for i, t in enumerate(HOSTILE)],
        "shorts": [_row(t, 50 - i, -0.02 + i * 0.001, "short") for i, t in enumerate(HOSTILE)],
        "coverage_pct": 80, "backtest_ic": 0.031, "live": {"sessions": 5, "rank_ic": 0.02, "coverage": 0.78,
                                                          "hit_rate": 0.55, "first": "2025-12-19", "last": "2025-12-29"},
        "live_window": 20, "live_versions": {SCRIPT: {"sessions": 3, "rank_ic": 0.01, "last": "2025-12-10"}},
        "decision": {"decided_on": "2025-12-31", "candidate_version": "3", "decision": "promoted",
                     "gates": "beats_best_baseline: yes", "candidate_rank_ic": 0.03},
        "quality": {"rows_received": 50, "rows_rejected": 1},
        "quarantine_by_rule": [{"rule": SCRIPT, "severity": "critical", "rows": 1, "tickers": 1}],
        "n_predicted": 49, "n_skipped": 2,
        "skipped": [{"ticker": TEMPLATE, "reason": "incomplete features", "missing_features": "ROC20,MA20"},
                    {"ticker": SCRIPT, "reason": "no feature row: bar quarantined (ohlc_consistent)",
                     "missing_features": "all"}],
        "universe": 51, "universe_coverage": 49 / 51, "previous_report": "2025-12-30",
        "changes": {"new_long": [SCRIPT], "left_long": [TEMPLATE], "new_short": [], "left_short": []},
        "charts": [{"cid": "live_ic", "alt": "Live rank IC history"}],
        "airflow_url": "http://127.0.0.1:8080/dags/tickerlake_daily/runs/scheduled__2025-12-31",
        "mlflow_url": "http://127.0.0.1:5000/#/models/tickerlake_daily_lgbm/versions/3",
    }
    context.update(changes)
    return context


@pytest.mark.parametrize("part", ["html", "text"])
def test_hostile_tickers_render_escaped_and_unevaluated(part):
    html, text = render(_context())
    out = html if part == "html" else text
    assert SCRIPT not in out and "<script" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert TEMPLATE in out  # shown as written: a value is never a template
    assert "{% raw %}x" in out
    assert "A&amp;B&#34;&#39;" in out
    # a value cannot add a line (or a header-looking line) to either part
    assert "\nSubject: injected" not in out and "EVIL Subject: injected" in out


def test_every_section_is_in_both_parts():
    html, text = render(_context())
    for needle in ("Changes since the last report", "Model health", "Data quality"):
        assert needle in html and needle.upper() in text
    assert 'id="signals-long"' in html and 'id="signals-short"' in html
    assert "0.0310" in html and "0.0310" in text  # backtest IC
    assert "0.0200" in html and "0.0200" in text  # live IC
    assert 'src="cid:live_ic"' in html
    assert "skipped for missing features" in text and "Tickers skipped (missing features)</td><td class=\"num\">2" in html
    assert "96.1%" in html and "96.1%" in text  # universe coverage 49 / 51


def test_no_predictions_renders_the_reason():
    html, text = render(_context(longs=[], shorts=[], skipped_reason="no champion yet", live=None, live_versions={},
                                 decision=None, backtest_ic=None, charts=[], skipped=[], n_skipped=0,
                                 previous_report=None, quarantine_by_rule=[]))
    assert "No predictions:</strong> no champion yet" in html and "No predictions: no champion yet" in text
    assert "n/a (no scored session yet)" in html and "none yet" in text and "no earlier report" in text


def test_retry_after_as_seconds_or_http_date():
    from tickerlake.http_retry import retry_after_seconds

    now = dt.datetime(2026, 1, 2, 15, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7", lambda: now) == 7.0
    later = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, lambda: now) == 30.0
    assert retry_after_seconds(None, lambda: now) is None
    assert retry_after_seconds("soon", lambda: now) is None


def test_message_digest_changes_with_any_part():
    from tickerlake.emailer import InlineImage, Message

    base = Message("s", "<p>h</p>", "t", "a@x.com", ("b@x.com",), (InlineImage("c", "c.png", b"png"),))
    assert base.digest() == Message("s", "<p>h</p>", "t", "a@x.com", ("b@x.com",),
                                    (InlineImage("c", "c.png", b"png"),)).digest()
    for other in (Message("s2", base.html, base.text, base.sender, base.recipients, base.images),
                  Message("s", base.html, "t2", base.sender, base.recipients, base.images),
                  Message("s", base.html, base.text, base.sender, ("c@x.com",), base.images),
                  Message("s", base.html, base.text, base.sender, base.recipients,
                          (InlineImage("c", "c.png", b"png2"),))):
        assert other.digest() != base.digest()


def test_quality_breach_only_above_the_limit_and_names_the_rules():
    from tickerlake.alerts import decision_lines, quality_breach

    assert quality_breach({"rows_received": 100, "rows_rejected": 5, "counts_by_rule": {}}, 0.05) is None
    lines = quality_breach({"rows_received": 100, "rows_rejected": 6,
                            "counts_by_rule": {"ohlc_consistent": 2, "price_jump": 4, "unused": 0}}, 0.05)
    assert lines[0] == "6 of 100 rows rejected (6.0%, limit 5.0%)"
    assert lines[1:] == ["  rule price_jump: 4", "  rule ohlc_consistent: 2"]
    assert quality_breach(None, 0.05) is None
    assert decision_lines({"candidate_version": "4", "decision": "rejected", "holdout_rank_ic": 0.012,
                           "gates": {"beats_best_baseline": False}}) == [
        "candidate v4: rejected", "holdout rank IC 0.0120", "  beats_best_baseline: fail"]
