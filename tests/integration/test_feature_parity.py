"""Parity: the Spark feature job against the independent DuckDB SQL implementation
(include/sql/features_reference.sql), and both against golden rows worked out by hand from
Qlib's formula strings.

Every catalogue feature and every label: relative difference at most 1e-9 (absolute 1e-12 near
zero), missing values (warm-up) in the same places.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake import reference_features as rf
from tickerlake.calendar import sessions_between
from tickerlake.catalog import FEATURE_NAMES, FEATURES, LABEL_COLUMNS, LOOKBACK_SESSIONS

pytestmark = pytest.mark.integration

START, END = dt.date(2023, 1, 3), dt.date(2024, 3, 28)  # 312 sessions: MOM12_1 needs 253
N_TICKERS = 20
# No alternative-data source is landed here (test_alternative_features_match covers them).
BAR_DERIVED = [f.name for f in FEATURES if f.family not in ("sentiment", "macro")]
RTOL, ATOL = 1e-9, 1e-12


def mismatches(got: pd.DataFrame, ref: pd.DataFrame, columns) -> dict[str, str]:
    """column -> what differs, for rows matched on (ticker, date); {} when they agree.

    Agree: both missing (NULL/NaN), or |a - b| <= max(RTOL * max(|a|, |b|), ATOL).
    """
    merged = got.merge(ref, on=["ticker", "date"], how="outer", suffixes=("", "_ref"), indicator=True)
    out = {}
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        out["(keys)"] = f"{len(unmatched)} rows only on one side, e.g. {unmatched[['ticker', 'date', '_merge']].head(3).to_dict('records')}"
    for name in columns:
        a = merged[name].to_numpy(dtype=float)
        b = merged[f"{name}_ref"].to_numpy(dtype=float)
        na, nb = np.isnan(a), np.isnan(b)
        if (na != nb).any():
            rows = merged.loc[na != nb, ["ticker", "date"]].head(3).to_dict("records")
            out[name] = f"missing in {(na & ~nb).sum()} rows only in Spark, {(nb & ~na).sum()} only in DuckDB, e.g. {rows}"
            continue
        both = ~na
        diff = np.abs(a[both] - b[both])
        tol = np.maximum(RTOL * np.maximum(np.abs(a[both]), np.abs(b[both])), ATOL)
        if (diff > tol).any():
            k = int(np.argmax(diff / tol))
            row = merged.loc[both].iloc[k]
            out[name] = (f"{int((diff > tol).sum())} values differ; worst {row['ticker']} {row['date']}: "
                         f"spark {a[both][k]!r} duckdb {b[both][k]!r}")
    return out


@pytest.fixture(scope="module")
def lake_built(make_settings, tmp_path_factory):
    """The real chain on a synthetic universe: land, validate, Spark features.run."""
    from tickerlake.features import run
    from tickerlake.ingest import land_bars, validate_interval
    from tickerlake.spark import get_spark

    settings = make_settings(tmp_path_factory.mktemp("parity") / "home", universe_size=N_TICKERS,
                             history_start=START.isoformat())
    land_bars(settings, "synthetic", START, END, "parity", dt.datetime.combine(END, dt.time(22), tzinfo=dt.UTC))
    validate_interval(settings, START, END, "parity", data_docs=False)
    spark = get_spark(settings, "test-feature-parity")
    run(spark, settings, START, END)
    silver = lake.read_table(settings, "silver.bars_daily")
    return settings, silver


def test_every_feature_matches_the_duckdb_reference(lake_built):
    settings, silver = lake_built
    assert silver.groupby("ticker").size().eq(len(sessions_between(START, END))).all()
    assert silver["ticker"].nunique() == N_TICKERS
    got = lake.read_table(settings, "gold.features_daily")
    ref = rf.features(adjusted(silver))
    assert set(FEATURE_NAMES) <= set(got.columns)
    assert len(got) == len(ref) == len(silver)
    assert mismatches(got, ref, FEATURE_NAMES) == {}
    # warm-up is missing, never a partial value; and something is present after it
    sessions = sessions_between(START, END)
    assert got[got["date"] < sessions[20]]["ROC20"].isna().all()
    assert got[got["date"] < sessions[LOOKBACK_SESSIONS - 1]]["MOM12_1"].isna().all()
    assert got[got["date"] >= sessions[LOOKBACK_SESSIONS - 1]][BAR_DERIVED].notna().all().all()


def adjusted(silver: pd.DataFrame) -> pd.DataFrame:
    """silver's split-adjusted bars under the plain names, as both engines compute from them."""
    cols = ["open", "high", "low", "close", "volume"]
    return silver[["ticker", "date"]].assign(**{c: silver[f"adj_{c}"] for c in cols})


def test_every_label_matches_the_duckdb_reference(lake_built):
    settings, silver = lake_built
    got = lake.read_table(settings, "gold.labels_daily")
    ref = rf.labels(adjusted(silver))
    columns = [*LABEL_COLUMNS, *(f"{c}_rank" for c in LABEL_COLUMNS)]
    assert len(got) == len(ref)
    assert mismatches(got, ref, columns) == {}
    sessions = sessions_between(START, END)
    assert got["date"].max() == sessions[-3]  # ret_1d needs open(D+2)
    assert got[got["date"] > sessions[-7]]["ret_5d"].isna().all()  # ret_5d needs open(D+6)
    assert got[got["date"] <= sessions[-7]]["ret_5d"].notna().all()


# --- golden rows --------------------------------------------------------------------------------
#
# One ticker, sessions t = 1..25 (the first 25 sessions of 2024), with
#   open_t   = 100 + t
#   close_t  = 100 + t + 2*(-1)^t        (t even: 102 + t, t odd: 98 + t)
#   high_t   = max(open_t, close_t) + 1 + (t mod 2)   (t even: 103 + t, t odd: 102 + t)
#   low_t    = min(open_t, close_t) - 1                (t even: 99 + t,  t odd: 97 + t)
#   volume_t = 100 * t^2
# The alternating term makes every window position give a different STD20 (a plain trend would
# not catch an off-by-one window).


def golden_bars() -> pd.DataFrame:
    days = sessions_between(dt.date(2024, 1, 2), dt.date(2024, 3, 1))[:25]
    rows = []
    for t, day in enumerate(days, start=1):
        o, c = 100.0 + t, 100.0 + t + 2 * (-1) ** t
        rows.append(("GOLD", day, o, max(o, c) + 1 + t % 2, min(o, c) - 1, c, 100.0 * t * t))
    return pd.DataFrame(rows, columns=["ticker", "date", "open", "high", "low", "close", "volume"])


# t = 25 (odd): open 125, close 123, high 127, low 122, volume 62500
GOLDEN_T25 = {
    "KMID": -2 / 125,  # (close-open)/open = (123-125)/125 = -0.016
    "KLEN": 5 / 125,  # (high-low)/open = (127-122)/125 = 0.04
    "KUP": 2 / 125,  # (high-Greater(open, close))/open = (127-125)/125 = 0.016
    "KLOW": 1 / 125,  # (Less(open, close)-low)/open = (123-122)/125 = 0.008
    "KSFT": -3 / 125,  # (2*close-high-low)/open = (246-127-122)/125 = -0.024
    # ROC5 = Ref($close, 5)/$close = close_20/close_25 = (102+20)/123 = 122/123
    "ROC5": 0.991869918699187,
    # ROC20 = close_5/close_25 = (98+5)/123 = 103/123
    "ROC20": 0.8373983739837398,
    # MA5 = Mean($close, 5)/$close: close_21..25 = 119, 124, 121, 126, 123; sum 613, mean 122.6;
    # 122.6/123
    "MA5": 0.9967479674796748,
    # MA20: close_6..25 = sum(100 + t) + 2*sum((-1)^t) = (2000 + 310) + 0 = 2310, mean 115.5; 115.5/123
    "MA20": 0.9390243902439024,
    # STD20 = Std($close, 20)/$close, ddof=1, t = 6..25, mean 115.5:
    #   close_t - 115.5 = (t - 15.5) + 2*(-1)^t
    #   sum of squares = sum (t-15.5)^2 + sum 4 + 4*sum (t-15.5)*(-1)^t
    #                  = 665 (20 consecutive integers: 20*(20^2-1)/12) + 80 + 4*(-10)   [(6-7)+(8-9)+...+(24-25) = -10]
    #                  = 705;  variance 705/19 = 37.10526315789474, std 6.091408963277276;  /123
    "STD20": 0.049523650107945336,
    # VMA5 = Mean($volume, 5)/($volume+1e-12) = 100*(441+484+529+576+625)/5 / 62500 = 53100/62500
    "VMA5": 0.8496,
    # VMA20: 100*sum(t^2, t=6..25)/20 = 100*(5525-55)/20 = 27350; 27350/62500
    "VMA20": 0.4376,
    # RSV10 = ($close-Min($low, 10))/(Max($high, 10)-Min($low, 10)+1e-12), t = 16..25:
    #   lows: even t 99+t (115..123), odd t 97+t (114..122) -> min 114 (t=17)
    #   highs: even t 103+t (119..127), odd t 102+t (119..127) -> max 127 (t=24 and t=25)
    #   (123-114)/(127-114) = 9/13
    "RSV10": 0.6923076923076923,
    # REV1 = -($close/Ref($close, 1)-1) = -(close_25/close_24 - 1) = -(123/126 - 1) = 3/126
    "REV1": 0.023809523809523808,
    # REV5 = -(close_25/close_20 - 1) = -(123/122 - 1) = -1/122
    "REV5": -0.00819672131147541,
}

# t = 20 (even): open 120, close 122. STD20 over t = 1..20, mean 10.5 + 100:
#   sum of squares = 665 + 80 + 4*sum (t-10.5)*(-1)^t = 665 + 80 + 4*(+10)   [(-1+2)+...+(-19+20) = 10]
#   = 785; variance 785/19 = 41.31578947368421, std 6.427735952392896; /122
GOLDEN_T20 = {
    "STD20": 0.05268636026551554,
    # MA20 = mean(close_1..20)/close_20 = (2000 + 210)/20 / 122 = 110.5/122
    "MA20": 0.9057377049180327,
    # ROC20 needs close_0: not yet
    "ROC20": None,
    # ROC5 = close_15/close_20 = 113/122
    "ROC5": 0.9262295081967213,
    # KMID = (122-120)/120
    "KMID": 2 / 120,
}

# Warm-up: the first session t at which each feature exists (NULL before it, never partial).
FIRST_VALID_T = {"KMID": 1, "KLEN": 1, "KUP": 1, "KLOW": 1, "KSFT": 1, "ROC5": 6, "ROC20": 21, "MA5": 5,
                 "MA20": 20, "STD20": 20, "VMA5": 5, "VMA20": 20, "RSV10": 10, "REV1": 2, "REV5": 6}

# Labels from the opens: ret_1d(t) = open_{t+2}/open_{t+1} - 1, ret_5d(t) = open_{t+6}/open_{t+1} - 1
GOLDEN_LABELS = {
    20: {"ret_1d": 1 / 121, "ret_5d": None},  # 122/121 - 1; open_26 does not exist
    19: {"ret_1d": 1 / 120, "ret_5d": 1 / 24},  # 121/120 - 1; 125/120 - 1
    23: {"ret_1d": 1 / 124, "ret_5d": None},  # 125/124 - 1
}


def test_golden_values_are_exact_arithmetic():
    """The literals above are the arithmetic in their comments (guards against a typo)."""
    assert GOLDEN_T25["ROC5"] == pytest.approx(122 / 123, rel=1e-15)
    assert GOLDEN_T25["ROC20"] == pytest.approx(103 / 123, rel=1e-15)
    assert GOLDEN_T25["MA5"] == pytest.approx(122.6 / 123, rel=1e-15)
    assert GOLDEN_T25["MA20"] == pytest.approx(115.5 / 123, rel=1e-15)
    assert GOLDEN_T25["STD20"] == pytest.approx(math.sqrt(705 / 19) / 123, rel=1e-15)
    assert GOLDEN_T25["RSV10"] == pytest.approx(9 / 13, rel=1e-15)
    assert GOLDEN_T25["REV1"] == pytest.approx(3 / 126, rel=1e-15)
    assert GOLDEN_T25["REV5"] == pytest.approx(-1 / 122, rel=1e-15)
    assert GOLDEN_T20["STD20"] == pytest.approx(math.sqrt(785 / 19) / 122, rel=1e-15)
    assert GOLDEN_T20["MA20"] == pytest.approx(110.5 / 122, rel=1e-15)
    assert GOLDEN_T20["ROC5"] == pytest.approx(113 / 122, rel=1e-15)


def _check_golden(frame: pd.DataFrame, engine: str) -> None:
    frame = frame.sort_values("date").reset_index(drop=True)
    assert len(frame) == 25
    for t, expected in ((25, GOLDEN_T25), (20, GOLDEN_T20)):
        row = frame.iloc[t - 1]
        for name, value in expected.items():
            if value is None:
                assert pd.isna(row[name]), f"{engine} {name} at t={t}: {row[name]!r}, expected missing"
            else:
                assert row[name] == pytest.approx(value, rel=RTOL, abs=ATOL), f"{engine} {name} at t={t}"
    for name, first in FIRST_VALID_T.items():
        missing = frame[name].isna().to_numpy()
        assert missing[: first - 1].all(), f"{engine} {name}: a value before t={first} (partial window)"
        assert not missing[first - 1:].any(), f"{engine} {name}: missing at or after t={first}"


def _check_golden_labels(frame: pd.DataFrame, engine: str) -> None:
    frame = frame.sort_values("date").reset_index(drop=True)
    assert len(frame) == 23, f"{engine}: labels only where ret_1d is complete (t = 1..23)"
    for t, expected in GOLDEN_LABELS.items():
        row = frame.iloc[t - 1]
        for name, value in expected.items():
            if value is None:
                assert pd.isna(row[name]), f"{engine} {name} at t={t}"
            else:
                assert row[name] == pytest.approx(value, rel=RTOL, abs=ATOL), f"{engine} {name} at t={t}"
    assert frame["ret_5d"].notna().sum() == 19  # t = 1..19


def test_duckdb_reference_gives_the_golden_rows():
    bars = golden_bars()
    _check_golden(rf.features(bars), "duckdb")
    _check_golden_labels(rf.labels(bars), "duckdb")


def test_spark_gives_the_golden_rows(lake_built):
    from pyspark.sql import SparkSession

    from tickerlake.features import compute_features, compute_labels

    spark = SparkSession.getActiveSession()
    schema = "ticker string, date date, open double, high double, low double, close double, volume double"
    bars = spark.createDataFrame(golden_bars(), schema)
    _check_golden(compute_features(bars).toPandas(), "spark")
    labels = compute_labels(bars).toPandas()
    _check_golden_labels(labels[labels["ret_1d"].notna()], "spark")


# --- a missing session (a rejected row) ---------------------------------------------------------
#
# The golden ticker without session t = 15. A value that would reach over it is missing, never
# the jump across it: Ref($close, d) needs all of t-d..t, a rolling window all of its n sessions,
# a label all sessions from D+1 to its exit.
GAP_T = 15
GAP_FIRST_VALID = {  # name -> sessions t (of the 24 left) at which the feature exists
    "KMID": set(range(1, 26)) - {15},
    "REV1": set(range(2, 26)) - {15, 16},
    "ROC5": set(range(6, 15)) | set(range(21, 26)),  # t-5 <= 15 <= t for t = 15..20
    "REV5": set(range(6, 15)) | set(range(21, 26)),
    "MA5": set(range(5, 15)) | set(range(20, 26)),
    "VMA5": set(range(5, 15)) | set(range(20, 26)),
    "RSV10": set(range(10, 15)) | {25},
    "MA20": set(),  # every full 20-session window up to t = 25 holds t = 15
    "STD20": set(),
    "VMA20": set(),
    "ROC20": set(),
}
GAP_VALUES = {
    21: {"ROC5": 118 / 119},  # close_16/close_21 = (102+16)/(98+21)
    17: {"REV1": 3 / 118},  # -(close_17/close_16 - 1) = -(115/118 - 1)
}
GAP_LABEL_T = set(range(1, 13)) | set(range(16, 24))  # ret_1d needs open_{t+1}, open_{t+2}: not 13, 14
GAP_RET5_T = set(range(1, 9)) | set(range(16, 20))  # ret_5d needs open_{t+1..t+6}: not 9..14


def gap_bars() -> pd.DataFrame:
    """GOLD without t = 15, beside a ticker that has every session (sessions are the dates that
    some ticker has a bar on)."""
    bars = golden_bars()
    return pd.concat([bars.drop(index=GAP_T - 1), bars.assign(ticker="FULL")], ignore_index=True)


def _check_gap(features: pd.DataFrame, labels: pd.DataFrame, engine: str) -> None:
    features, labels = features[features["ticker"] == "GOLD"], labels[labels["ticker"] == "GOLD"]
    days = list(golden_bars()["date"])
    t_of = {d: t for t, d in enumerate(days, start=1)}
    features = features.assign(t=features["date"].map(t_of)).set_index("t").sort_index()
    assert list(features.index) == [t for t in range(1, 26) if t != GAP_T]
    for name, valid in GAP_FIRST_VALID.items():
        present = set(features.index[features[name].notna()])
        assert present == valid, f"{engine} {name}: present at {sorted(present ^ valid)} differs"
    for t, values in GAP_VALUES.items():
        for name, value in values.items():
            assert features.loc[t, name] == pytest.approx(value, rel=RTOL, abs=ATOL), f"{engine} {name} t={t}"
    labels = labels.assign(t=labels["date"].map(t_of))
    assert set(labels["t"]) == GAP_LABEL_T, f"{engine}: label rows at {sorted(set(labels['t']) ^ GAP_LABEL_T)}"
    assert set(labels.loc[labels["ret_5d"].notna(), "t"]) == GAP_RET5_T, f"{engine}: ret_5d"


def test_duckdb_reference_never_reaches_over_a_missing_session():
    bars = gap_bars()
    _check_gap(rf.features(bars), rf.labels(bars), "duckdb")


def test_spark_never_reaches_over_a_missing_session(lake_built):
    from pyspark.sql import SparkSession

    from tickerlake.features import compute_features, compute_labels

    spark = SparkSession.getActiveSession()
    schema = "ticker string, date date, open double, high double, low double, close double, volume double"
    bars = spark.createDataFrame(gap_bars(), schema)
    labels = compute_labels(bars).toPandas()
    _check_gap(compute_features(bars).toPandas(), labels[labels["ret_1d"].notna()], "spark")
