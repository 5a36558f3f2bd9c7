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
    spec = {"source": "synthetic", "tickers": 20, "start": "2024-01-02", "end": "2024-03-28"}
    figures = bench._run_tier(settings, "tiny", spec)
    assert figures["rows"] > 0 and figures["reconciled"]
    # the ratios come from the unrounded seconds: compared with the rounded ones, within rounding
    assert figures["validate_vs_land"] == pytest.approx(figures["validate_s"] / figures["land_s"], rel=0.1, abs=0.05)
    assert figures["land_cpu_s"] > 0 and figures["validate_cpu_s"] > 0
    assert figures["validate_vs_land_cpu"] == pytest.approx(
        figures["validate_cpu_s"] / figures["land_cpu_s"], rel=0.1, abs=0.05)
    line = bench._line("tiny", figures)
    assert f"validate/land = {figures['validate_vs_land']}" in line
    assert not (tmp_path / "home" / "bench" / "tiny").exists()  # the tier's state folder is removed
