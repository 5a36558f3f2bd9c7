"""The signal report as a phone shows it: headless Chromium (Debian's package; .ci/run installs it)
renders the HTML part to PNG, and the page is not blank and carries the signal table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tickerlake.report import render

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
LONGS = ["AAPL", "MSFT", "NVDA", "AMZN", "META"]
SHORTS = ["XOM", "CVX", "PFE", "T", "VZ"]


def _row(ticker: str, rank: int, pred: float, signal: str) -> dict:
    return {"ticker": ticker, "rank": rank, "pred_return": pred, "pred_lo": pred - 0.01, "pred_hi": pred + 0.01,
            "percentile": 0.95 if signal == "long" else 0.05, "signal": signal}


def _context(with_signals: bool) -> dict:
    return {
        "asof_date": "2025-12-31", "target_session": "2026-01-02", "model_name": "tickerlake_daily_lgbm",
        "model_version": "3", "champion_version": "3", "features_version": 12, "run_id": "scheduled__2025-12-31",
        "skipped_reason": None,
        "longs": [_row(t, i + 1, 0.02 - i * 0.001, "long") for i, t in enumerate(LONGS)] if with_signals else [],
        "shorts": [_row(t, 50 - i, -0.02 + i * 0.001, "short") for i, t in enumerate(SHORTS)] if with_signals else [],
        "coverage_pct": 80, "backtest_ic": 0.031,
        "live": {"sessions": 5, "rank_ic": 0.02, "coverage": 0.78, "hit_rate": 0.55, "first": "2025-12-19",
                 "last": "2025-12-29"},
        "live_window": 20, "live_versions": {},
        "decision": {"decided_on": "2025-12-31", "candidate_version": "3", "decision": "promoted",
                     "gates": "beats_best_baseline: yes", "candidate_rank_ic": 0.03},
        "quality": {"rows_received": 50, "rows_rejected": 0}, "quarantine_by_rule": [],
        "n_predicted": 50, "n_skipped": 0, "skipped": [], "universe": 50, "universe_coverage": 1.0,
        "previous_report": None, "changes": None, "charts": [],
        "airflow_url": "http://127.0.0.1:8080/dags/tickerlake_daily/runs/scheduled__2025-12-31",
        "mlflow_url": "http://127.0.0.1:5000/#/models/tickerlake_daily_lgbm/versions/3",
    }


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", *args], capture_output=True, text=True, timeout=120)


def _screenshot(html: str, folder: Path, name: str) -> np.ndarray:
    from PIL import Image

    page = folder / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    png = folder / f"{name}.png"
    done = _chromium(f"--screenshot={png}", "--window-size=390,1400", page.as_uri())
    assert png.is_file(), done.stderr[-2000:]
    return np.asarray(Image.open(png).convert("L"), dtype=np.float64)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's package)")
def test_the_report_renders_on_a_phone_with_its_signal_table(tmp_path: Path) -> None:
    html, _ = render(_context(with_signals=True))
    shot = _screenshot(html, tmp_path, "report")
    assert shot.shape[1] == 390
    ink = (shot < 128).mean()  # share of dark pixels: text, rules, the table
    assert shot.std() > 10 and ink > 0.01, f"blank page? std {shot.std():.1f}, ink {ink:.4f}"

    empty_html, _ = render(_context(with_signals=False))
    empty = _screenshot(empty_html, tmp_path, "empty")
    assert ink > (empty < 128).mean() * 1.1, "the signal table adds no ink"

    dom = _chromium("--dump-dom", (tmp_path / "report.html").as_uri()).stdout
    cells = dom.split("<td")
    for ticker in LONGS + SHORTS:  # every signal is a table cell of the rendered page
        assert any(f">{ticker}<" in cell.replace(" ", "") for cell in cells), ticker
