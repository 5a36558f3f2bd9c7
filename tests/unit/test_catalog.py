"""The feature catalogue: Alpha158's names, its windows, and the docs generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickerlake import catalog

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"
ROLLING = ("ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX", "IMIN",
           "IMXD", "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD", "VMA", "VSTD", "WVMA", "VSUMP",
           "VSUMN", "VSUMD")


def test_alpha158_has_qlibs_names_less_vwap0():
    names = {f.name for f in catalog.ALPHA158}
    expected = {"KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2", "OPEN0", "HIGH0", "LOW0"}
    expected |= {f"{p}{d}" for p in ROLLING for d in (5, 10, 20, 30, 60)}
    assert names == expected and len(names) == 157  # 158 less VWAP0 (no vendor gives a VWAP)


def test_names_are_unique_and_lookback_covers_every_window():
    assert len(set(catalog.FEATURE_NAMES)) == len(catalog.FEATURE_NAMES)
    assert catalog.LOOKBACK_SESSIONS == max(f.window for f in catalog.FEATURES) == 253
    assert not set(catalog.LABEL_COLUMNS) & set(catalog.FEATURE_NAMES), "labels never enter the features"


def test_required_features_leave_out_only_what_may_be_missing():
    optional = set(catalog.FEATURE_NAMES) - set(catalog.REQUIRED_FEATURES)
    assert {f.name for f in catalog.FEATURES if f.family in ("sentiment", "macro")} <= optional
    assert optional - {f.name for f in catalog.FEATURES if f.family in ("sentiment", "macro")} == {
        "MOM12_1", "CSR_MOM12_1", "CSZ_MOM12_1"}


def test_the_docs_are_generated_from_the_code():
    assert DOCS.read_text() == catalog.catalogue_document(), "run: tickerlake catalog > docs/features.md"
