"""The ingest benchmark's figures: one small tier landed and validated for real."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tickerlake import bench
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration


def test_a_tier_reports_validation_against_landing(tmp_path: Path):
    settings = dataclasses.replace(load_settings(home=tmp_path / "home"), data_docs="off")
    spec = {"source": "synthetic", "tickers": 50, "start": "2024-01-02", "end": "2024-03-28"}
    figures = bench._run_tier(settings, "tiny", spec)
    assert figures["rows"] > 0 and figures["reconciled"]
    # the ratios come from the unrounded seconds; the figures are rounded to 0.01: each ratio must
    # lie within what rounding its two figures allows
    for ratio, num, den in (("validate_vs_land", "validate_s", "land_s"),
                            ("validate_vs_land_cpu", "validate_cpu_s", "land_cpu_s")):
        r, v, w = figures[ratio], figures[num], figures[den]
        assert v > 0 and w > 0, (num, v, den, w)
        low, high = (v - 0.005) / (w + 0.005) - 0.005, (v + 0.005) / max(w - 0.005, 1e-9) + 0.005
        assert low <= r <= high, (ratio, r, num, v, den, w)
    line = bench._line("tiny", figures)
    assert f"validate/land = {figures['validate_vs_land']}" in line
    assert not (tmp_path / "home" / "bench" / "tiny").exists()  # the tier's state folder is removed


def test_an_unknown_tier_is_a_clear_error_before_anything_runs(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home")
    with pytest.raises(ValueError, match=r"unknown ingest tiers \['synthetic_9x9y'\]"):
        bench.bench_ingest(settings, tmp_path / "out.json", tiers=["synthetic_500x5y", "synthetic_9x9y"])
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "home" / "bench").exists()
