"""Alternative data through Delta: landing, quarantine, idempotency, sentiment and the macro panel.

Delta round trips run in a temporary home. The `realdata` tests read ../shared/data and skip
when it is absent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.altdata import MARKET_TICKER, macro, news, sentiment, social
from tickerlake.settings import Settings, load_settings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "altdata"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
D = dt.date


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


def table(settings: Settings, name: str, order: list[str]) -> pd.DataFrame:
    frame = lake.read_table(settings, name)
    return frame.sort_values(order, na_position="first").reset_index(drop=True)


def without_run(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("run_id",) if c in frame.columns])


def make_tgz(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source / "tweet", arcname="tweet")
    return target


# --- social --------------------------------------------------------------------------------


def test_land_social_from_drop_folder_and_archive(settings: Settings, tmp_path: Path):
    result = social.land_social(settings, FIXTURES / "stocknet", D(2025, 11, 25), D(2025, 11, 30), "run-1")
    assert result["landed"] == 8 and result["quarantined"] == 4 and result["quarantined_undated"] == 0
    assert result["received"] == result["landed"] + result["quarantined"] == 12
    assert result["quarantine_by_rule"] == {"bad_created_at": 1, "bad_text": 1, "invalid_json": 1,
                                            "missing_created_at": 1}
    bronze = table(settings, "bronze.social", ["created_at", "ticker", "line_number"])
    assert len(bronze) == 8 and set(bronze["ticker"]) == {"AAPL", "BRK.B"}
    assert set(bronze.loc[bronze["ticker"] == "BRK.B", "ticker_raw"]) == {"BRK-B"}
    assert str(bronze["created_at"].dt.tz) == "UTC"
    assert bronze["batch_id"].nunique() == 1 and set(bronze["source"]) == {"stocknet"}
    q = table(settings, "quarantine.social", ["line_number"])
    rejected = q[q["severity"] == "reject"]
    assert set(rejected["rule"]) == set(result["quarantine_by_rule"]) and len(rejected) == 4
    assert "this is not json" in set(q["values"]) and set(q["date"]) == {D(2025, 11, 25)}
    # the exact duplicate (lines 1 and 4 of AAPL/2025-11-25) lands, and GE flags both copies
    warned = q[q["severity"] == "warn"]
    assert warned[["rule", "line_number"]].values.tolist() == [["duplicate_message", 1], ["duplicate_message", 4]]
    assert result["warned"] == 2 and result["validation"]["counts_by_rule"]["duplicate_message"] == 2
    assert json.loads(warned["values"].iloc[0])["text"] == "$ aapl great gains into the close URL"

    # the same files as a gzip tar, read as a stream, land the same rows
    other = load_settings(home=tmp_path / "other")
    archive = make_tgz(FIXTURES / "stocknet", tmp_path / "tweets.tgz")
    again = social.land_social(other, archive, D(2025, 11, 25), D(2025, 11, 30), "run-1")
    assert {k: again[k] for k in ("received", "landed", "quarantined")} == {"received": 12, "landed": 8,
                                                                             "quarantined": 4}
    cols = ["message_id", "ticker", "created_at", "text", "user_id", "line_number"]
    pd.testing.assert_frame_equal(bronze[cols], table(other, "bronze.social", ["created_at", "ticker", "line_number"])[cols])


def test_land_social_is_idempotent_and_replaces_only_its_interval(settings: Settings, tmp_path: Path):
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURES / "stocknet", drop)
    social.land_social(settings, drop, D(2025, 11, 25), D(2025, 11, 27), "run-1")
    social.land_social(settings, drop, D(2025, 11, 28), D(2025, 11, 30), "run-1")
    first = table(settings, "bronze.social", ["created_at", "ticker", "line_number"])
    first_q = table(settings, "quarantine.social", ["line_number"])
    social.land_social(settings, drop, D(2025, 11, 25), D(2025, 11, 27), "run-1")
    pd.testing.assert_frame_equal(first, table(settings, "bronze.social", ["created_at", "ticker", "line_number"]))
    pd.testing.assert_frame_equal(first_q, table(settings, "quarantine.social", ["line_number"]))

    # a vendor correction: the 2025-12-01 file loses its Saturday message; rerunning the
    # interval removes it and leaves the other interval alone
    f = drop / "tweet" / "preprocessed" / "AAPL" / "2025-12-01"
    f.write_text("\n".join(f.read_text().splitlines()[:2]) + "\n")
    result = social.land_social(settings, drop, D(2025, 11, 28), D(2025, 11, 30), "run-2")
    assert result["landed"] == 2
    after = table(settings, "bronze.social", ["created_at", "ticker", "line_number"])
    assert len(after) == len(first) - 1
    assert set(after.loc[after["date"] <= D(2025, 11, 27), "run_id"]) == {"run-1"}


def test_land_social_with_a_ticker_filter_leaves_other_tickers(settings: Settings):
    social.land_social(settings, FIXTURES / "stocknet", D(2025, 11, 25), D(2025, 11, 30), "run-1")
    result = social.land_social(settings, FIXTURES / "stocknet", D(2025, 11, 25), D(2025, 11, 30), "run-2",
                                tickers=["brk-b"])
    assert result["landed"] == 1 and result["files_read"] == 1
    bronze = lake.read_table(settings, "bronze.social")
    assert len(bronze) == 8
    assert dict(bronze.groupby("ticker")["run_id"].first()) == {"AAPL": "run-1", "BRK.B": "run-2"}
    assert len(lake.read_table(settings, "quarantine.social")) == 4 + 2  # AAPL's stay (4 rejects, 2 warns)


def test_land_social_quarantines_undated_lines_once(settings: Settings, tmp_path: Path):
    drop = tmp_path / "drop"
    (drop / "AAPL").mkdir(parents=True)
    (drop / "AAPL" / "notes.txt").write_text("{broken\n")
    (drop / "AAPL" / "2025-11-25").write_text(
        '{"text": ["a"], "created_at": "Tue Nov 25 15:00:00 +0000 2025", "user_id_str": "1"}\n')
    for _ in range(2):
        result = social.land_social(settings, drop, D(2025, 11, 25), D(2025, 11, 25), "run-1")
        assert result["quarantined_undated"] == 1 and result["landed"] == 1
    q = lake.read_table(settings, "quarantine.social")
    assert len(q) == 1 and q["date"].isna().all() and q["key"].tolist() == ["AAPL"]


# --- news ----------------------------------------------------------------------------------


def test_land_news_counts_reconcile_and_rerun_is_identical(settings: Settings):
    result = news.land_news(settings, FIXTURES / "news", D(2025, 11, 20), D(2025, 11, 30), "run-1")
    assert result["by_publisher"]["cnbc"]["landed"] == 2
    assert result["by_publisher"]["guardian"] == {"received": 3, "landed": 2, "quarantined": 1,
                                                  "quarantined_undated": 1, "outside_interval": 0}
    assert result["by_publisher"]["reuters"]["landed"] == 2
    assert result["received"] == result["landed"] + result["quarantined"] == 7
    bronze = table(settings, "bronze.news", ["source", "line_number"])
    assert bronze["ticker"].isna().all()
    assert set(bronze["date"]) == {D(2025, 11, 26), D(2025, 11, 29)}
    assert "7:51  PM ET Wed, 26 November 2025" in set(bronze["date_raw"])
    assert "Stocks rally , strong gains before the holiday" in set(bronze["headline"])
    q = table(settings, "quarantine.news", ["source", "line_number"])
    assert sorted(q["rule"]) == ["bad_date", "empty_headline"]

    news.land_news(settings, FIXTURES / "news", D(2025, 11, 20), D(2025, 11, 30), "run-1")
    pd.testing.assert_frame_equal(bronze, table(settings, "bronze.news", ["source", "line_number"]))
    pd.testing.assert_frame_equal(q, table(settings, "quarantine.news", ["source", "line_number"]))


# --- sentiment -----------------------------------------------------------------------------


def test_build_sentiment_daily_point_in_time(settings: Settings):
    social.land_social(settings, FIXTURES / "stocknet", D(2025, 11, 20), D(2025, 12, 5), "run-1")
    news.land_news(settings, FIXTURES / "news", D(2025, 11, 20), D(2025, 12, 5), "run-1")
    result = sentiment.build_sentiment_daily(settings, D(2025, 11, 24), D(2025, 12, 2))
    assert result["social_messages"] == 7 and result["social_duplicates"] == 1
    assert result["news_items"] == 6 and result["sessions"] == 6
    assert result["input_versions"] == {"bronze.social": 0, "bronze.news": 0}  # lineage

    daily = table(settings, "silver.sentiment_daily", ["ticker", "date"]).set_index(["ticker", "date"])
    aapl = daily.loc["AAPL"]
    # 15:59 (great gains, sent twice: counted once) and 10:00 (not a good day) -> 11-25
    assert aapl.loc[D(2025, 11, 25), "message_count"] == 2
    assert aapl.loc[D(2025, 11, 25), "sentiment"] == pytest.approx(0.0)  # (+1 + -1) / 2
    # 16:01 (bad loss) -> 11-26
    assert aapl.loc[D(2025, 11, 26), "message_count"] == 1 and aapl.loc[D(2025, 11, 26), "sentiment"] == -1.0
    # early close 13:00: 12:59 (strong) -> 11-28; 13:01 (weak) and Saturday (good) -> 12-01
    assert aapl.loc[D(2025, 11, 28), "sentiment"] == 1.0
    assert aapl.loc[D(2025, 12, 1), "message_count"] == 2 and aapl.loc[D(2025, 12, 1), "sentiment"] == 0.0
    assert daily.loc[("BRK.B", D(2025, 11, 26)), "scored_count"] == 0
    # news dated 11-26 (day before Thanksgiving) counts for 11-28; the Saturday item for 12-01
    market = daily.loc[MARKET_TICKER]
    assert list(market.index) == [D(2025, 11, 28), D(2025, 12, 1)]
    assert market.loc[D(2025, 11, 28), "message_count"] == 5
    assert market.loc[D(2025, 12, 1), "message_count"] == 1
    assert set(daily["lexicon"]) == {result["lexicon"]}

    before = table(settings, "silver.sentiment_daily", ["ticker", "date"])
    sentiment.build_sentiment_daily(settings, D(2025, 11, 24), D(2025, 12, 2))
    pd.testing.assert_frame_equal(before, table(settings, "silver.sentiment_daily", ["ticker", "date"]))


def test_build_sentiment_daily_one_session_reads_only_its_window(settings: Settings):
    social.land_social(settings, FIXTURES / "stocknet", D(2025, 11, 20), D(2025, 12, 5), "run-1")
    news.land_news(settings, FIXTURES / "news", D(2025, 11, 20), D(2025, 12, 5), "run-1")
    sentiment.build_sentiment_daily(settings, D(2025, 11, 24), D(2025, 12, 2))
    full = table(settings, "silver.sentiment_daily", ["ticker", "date"])
    # rebuilding each session alone gives the same rows (no session depends on its neighbours)
    for day in sorted(set(full["date"])):
        sentiment.build_sentiment_daily(settings, day, day)
    pd.testing.assert_frame_equal(full, table(settings, "silver.sentiment_daily", ["ticker", "date"]))


# --- macro ---------------------------------------------------------------------------------


def test_land_macro_and_build_asof(settings: Settings):
    result = macro.land_macro(settings, FIXTURES / "fred", D(2025, 1, 1), D(2025, 12, 31), "run-1")
    assert result["series"] == 3 and "metadata.csv" in result["skipped_files"]
    assert result["landed"] == 5 + 5 + 4 and result["missing_values"] == 3
    assert result["quarantined"] == 1 and result["quarantined_undated"] == 1
    assert result["received"] == result["landed"] + result["quarantined"]
    bronze = table(settings, "bronze.macro", ["series_id", "date"])
    oct_cpi = bronze[(bronze["series_id"] == "CPIAUCSL") & (bronze["date"] == D(2025, 10, 1))]
    assert len(oct_cpi) == 1 and oct_cpi["value"].isna().all() and oct_cpi["value_raw"].tolist() == [""]
    q = table(settings, "quarantine.macro", ["key", "line_number"])
    assert q[["key", "rule"]].values.tolist() == [["DGS10", "bad_value"], ["PAYEMS", "bad_date"]]

    asof = macro.build_macro_asof(settings, D(2025, 11, 20), D(2025, 12, 31))
    assert asof["input_versions"] == {"bronze.macro": 0}
    panel = table(settings, "silver.macro_asof", ["series_id", "date"]).set_index(["series_id", "date"])
    assert asof["rows"] == len(panel)
    assert panel.loc[("DGS10", D(2025, 11, 26)), "observation_date"] == D(2025, 11, 25)
    assert panel.loc[("DGS10", D(2025, 11, 28)), "observation_date"] == D(2025, 11, 26)  # 11-27 is missing
    assert panel.loc[("CPIAUCSL", D(2025, 12, 12)), "observation_date"] == D(2025, 9, 1)
    assert panel.loc[("CPIAUCSL", D(2025, 12, 15)), "observation_date"] == D(2025, 11, 1)
    assert panel.loc[("PAYEMS", D(2025, 12, 9)), "observation_date"] == D(2025, 9, 1)
    assert panel.loc[("PAYEMS", D(2025, 12, 10)), "value"] == 159623

    before_bronze, before_panel = bronze, table(settings, "silver.macro_asof", ["series_id", "date"])
    macro.land_macro(settings, FIXTURES / "fred", D(2025, 1, 1), D(2025, 12, 31), "run-1")
    macro.build_macro_asof(settings, D(2025, 11, 20), D(2025, 12, 31))
    pd.testing.assert_frame_equal(before_bronze, table(settings, "bronze.macro", ["series_id", "date"]))
    pd.testing.assert_frame_equal(before_panel, table(settings, "silver.macro_asof", ["series_id", "date"]))


def test_macro_daily_is_one_row_per_session_from_the_asof_panel(settings: Settings):
    from tickerlake.calendar import session_close_utc, sessions_between
    from tickerlake.catalog import MACRO_FEATURE_NAMES

    assert macro.ensure_macro_daily(settings) == 0  # no features table: nothing to upgrade
    macro.land_macro(settings, FIXTURES / "fred", D(2025, 1, 1), D(2025, 12, 31), "run-1")
    macro.build_macro_asof(settings, D(2025, 11, 20), D(2025, 12, 31))
    start, end = D(2025, 11, 24), D(2025, 12, 5)
    assert macro.write_macro_daily(settings, start, end) == len(sessions_between(start, end))
    daily = table(settings, "gold.macro_daily", ["date"])
    assert daily["date"].tolist() == sessions_between(start, end)
    assert list(daily.columns) == macro.macro_daily_schema().names
    assert daily["event_ts"].tolist() == [pd.Timestamp(session_close_utc(d)) for d in daily["date"]]
    panel = table(settings, "silver.macro_asof", ["series_id", "date"])
    dgs10 = panel[panel["series_id"] == "DGS10"].set_index("date")["value"]
    # the panel's value at each session; before the series' first release (11-26) none: null
    expected = dgs10.reindex(daily["date"]).to_numpy()
    assert daily["MACRO_DGS10"].notna().sum() == 7 and daily["MACRO_DGS10"].isna().sum() == 2
    np.testing.assert_array_equal(daily["MACRO_DGS10"].to_numpy(), expected)
    # the fixture has no other catalogue series: null (absent), never zero
    assert daily[[c for c in MACRO_FEATURE_NAMES if c != "MACRO_DGS10"]].isna().all().all()
    macro.write_macro_daily(settings, start, end)  # a rerun replaces its sessions: the same table
    pd.testing.assert_frame_equal(daily, table(settings, "gold.macro_daily", ["date"]))

    # Upgrade: a lake whose gold.macro_daily lacks sessions gold.features_daily has (its daily run wrote
    # only its own session first) gets them from setup's step, and then nothing more to do.
    wider = sessions_between(D(2025, 11, 20), D(2025, 12, 10))
    lake.replace_interval(settings, "gold.features_daily", pd.DataFrame(
        {"ticker": "AAPL", "date": wider, "year": np.int32(2025)}), wider[0], wider[-1])
    assert macro.ensure_macro_daily(settings) == len(sessions_between(wider[0], wider[-1]))
    upgraded = table(settings, "gold.macro_daily", ["date"])
    assert upgraded["date"].tolist() == wider
    pd.testing.assert_frame_equal(upgraded[upgraded["date"].between(start, end)].reset_index(drop=True), daily)
    assert macro.ensure_macro_daily(settings) == 0


def test_build_macro_asof_refuses_a_series_without_lag(settings: Settings, tmp_path: Path):
    drop = tmp_path / "fred"
    drop.mkdir()
    (drop / "MYSTERY.csv").write_text("date,value\n2025-01-01,1\n")
    macro.land_macro(settings, drop, D(2025, 1, 1), D(2025, 12, 31), "run-1")
    with pytest.raises(ValueError, match="MYSTERY"):
        macro.build_macro_asof(settings, D(2025, 1, 2), D(2025, 1, 31))


# --- real data -----------------------------------------------------------------------------


def _needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data {path} is absent (../shared/data is not part of a fresh clone)")
    return path


@pytest.mark.realdata
def test_realdata_one_ticker_year_of_tweets(settings: Settings):
    archive = _needs(SHARED / "stocknet" / "tweets_preprocessed.tgz")
    # independent count: AAPL lines whose created_at falls in 2014 (UTC)
    expected = 0
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name.split("/")[-2] == "AAPL":
                for line in tar.extractfile(member):
                    created = json.loads(line)["created_at"]
                    expected += created.endswith("2014")
    result = social.land_social(settings, archive, D(2014, 1, 1), D(2014, 12, 31), "real-1", tickers=["AAPL"])
    assert result["received"] == result["landed"] + result["quarantined"] == expected
    assert result["quarantined"] == 0 and result["quarantined_undated"] == 0
    bronze = lake.read_table(settings, "bronze.social")
    assert len(bronze) == expected and set(bronze["ticker"]) == {"AAPL"}
    assert bronze["date"].min() >= D(2014, 1, 1) and bronze["date"].max() <= D(2014, 12, 31)

    built = sentiment.build_sentiment_daily(settings, D(2014, 1, 2), D(2014, 12, 31))
    daily = lake.read_table(settings, "silver.sentiment_daily")
    assert built["sessions"] == 252 and set(daily["ticker"]) == {"AAPL"}
    assert daily["sentiment"].between(-1, 1).all()
    # every message published from the 2013-12-31 close to the last 2014 close is counted once
    assert daily["message_count"].sum() == built["social_messages"] <= expected


def _csv_records(path: Path) -> int:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    return len(rows) - (1 if rows and rows[0][:2] == ["date", "headlines"] else 0)


@pytest.mark.realdata
def test_realdata_all_news_files(settings: Settings):
    folder = _needs(SHARED / "news_headlines")
    expected = {news.publisher_of(p): _csv_records(p) for p in sorted(folder.glob("*.csv"))}
    result = news.land_news(settings, folder, D(2017, 1, 1), D(2020, 12, 31), "real-1")
    assert {p: c["received"] + c["quarantined_undated"] for p, c in result["by_publisher"].items()} == expected
    assert result["received"] == result["landed"] + result["quarantined"]
    assert result["landed"] == sum(expected.values()) == 53_330 and result["quarantined"] == 0
    bronze = lake.read_table(settings, "bronze.news", columns=["source", "date"])
    assert bronze.groupby("source").size().to_dict() == expected
    assert bronze["date"].min() == D(2017, 12, 17) and bronze["date"].max() == D(2020, 7, 18)

    built = sentiment.build_sentiment_daily(settings, D(2018, 1, 2), D(2020, 7, 20))
    assert built["market_rows"] > 600 and built["tickers"] == 0


@pytest.mark.realdata
def test_realdata_fred_files(settings: Settings):
    folder = _needs(SHARED / "fred_macro")
    result = macro.land_macro(settings, folder, D(1900, 1, 1), D(2030, 12, 31), "real-1")
    lines = sum(len(p.read_text().splitlines()) - 1 for p in folder.glob("*.csv")
                if p.name not in ("metadata.csv", "series_coverage.csv", "market_coverage.csv"))
    assert result["series"] == 49 and result["received"] == result["landed"] == lines
    assert result["quarantined"] == result["quarantined_undated"] == 0
    assert set(result["skipped_files"]) == {"metadata.csv", "series_coverage.csv", "market_coverage.csv"}
    built = macro.build_macro_asof(settings, D(2025, 10, 1), D(2025, 12, 31))
    panel = lake.read_table(settings, "silver.macro_asof").set_index(["series_id", "date"])
    assert built["series"] == 49
    # October 2025 CPI was not published: mid-November still shows September's value
    assert panel.loc[("CPIAUCSL", D(2025, 11, 17)), "observation_date"] == D(2025, 9, 1)
    assert (panel["release_date"] <= panel.index.get_level_values("date")).all()


# --- Great Expectations at landing (suites.py) -------------------------------------------------


def test_land_social_ge_reject_keeps_the_message_out_of_bronze_and_sentiment(settings: Settings, tmp_path: Path):
    drop = tmp_path / "drop"
    (drop / "AAPL").mkdir(parents=True)
    (drop / "AAPL" / "1985-01-02").write_text(
        '{"text": ["$", "aapl", "good"], "created_at": "Wed Jan 02 15:00:00 +0000 1985", "user_id_str": "1"}\n'
        '{"text": ["$", "aapl", "strong"], "created_at": "Fri Jan 04 15:00:00 +0000 1991", "user_id_str": "2"}\n')
    result = social.land_social(settings, drop, D(1985, 1, 1), D(1991, 12, 31), "run-1")
    # 1985 is before the NYSE calendar: no session can take it, so GE rejects it
    assert result["received"] == result["landed"] + result["quarantined"] == 2
    assert result["landed"] == 1 and result["quarantine_by_rule"] == {"created_at_in_calendar": 1}
    assert result["validation"]["counts_by_rule"]["created_at_in_calendar"] == 1
    bronze = lake.read_table(settings, "bronze.social")
    assert bronze["date"].tolist() == [D(1991, 1, 4)]
    q = lake.read_table(settings, "quarantine.social")
    assert q[["key", "date", "rule", "severity", "line_number"]].values.tolist() == [
        ["AAPL", D(1985, 1, 2), "created_at_in_calendar", "reject", 1]]
    assert q["batch_id"].tolist() == [result["batch_id"]] and q["run_id"].tolist() == ["run-1"]
    # a rerun replaces the same rows (idempotent, GE rows included)
    social.land_social(settings, drop, D(1985, 1, 1), D(1991, 12, 31), "run-1")
    pd.testing.assert_frame_equal(q, lake.read_table(settings, "quarantine.social"))
    built = sentiment.build_sentiment_daily(settings, D(1991, 1, 4), D(1991, 1, 4))
    assert built["social_messages"] == 1


def test_land_news_ge_rules_reject_and_warn(settings: Settings, tmp_path: Path):
    drop = tmp_path / "news"
    drop.mkdir()
    long_headline = "Markets " * 70
    (drop / "wire_headlines.csv").write_text(
        f"2025-11-26,Stocks rally\n2025-11-26,\"12,345.6\"\n2025-11-26,{long_headline}\n")
    result = news.land_news(settings, drop, D(2025, 11, 20), D(2025, 11, 30), "run-1")
    assert result["by_publisher"]["wire"] == {"received": 3, "landed": 2, "quarantined": 1,
                                              "quarantined_undated": 0, "outside_interval": 0}
    assert result["received"] == result["landed"] + result["quarantined"] and result["warned"] == 1
    bronze = lake.read_table(settings, "bronze.news")
    assert sorted(bronze["headline"]) == sorted(["Stocks rally", long_headline.strip()])
    q = lake.read_table(settings, "quarantine.news").sort_values("line_number")
    assert q[["rule", "severity", "line_number", "source"]].values.tolist() == [
        ["headline_has_letters", "reject", 2, "wire"], ["headline_length", "warn", 3, "wire"]]
    assert json.loads(q["values"].iloc[0])["headline"] == "12,345.6"
    # the rejected headline never reaches sentiment: 2 items count for the next session
    built = sentiment.build_sentiment_daily(settings, D(2025, 11, 28), D(2025, 11, 28))
    assert built["news_items"] == 2


def test_land_macro_ge_rejects_a_date_given_twice(settings: Settings, tmp_path: Path):
    drop = tmp_path / "fred"
    drop.mkdir()
    (drop / "DGS10.csv").write_text("date,value\n2025-11-24,4.0\n2025-11-25,4.1\n2025-11-25,9.9\n2025-11-26,4.2\n")
    result = macro.land_macro(settings, drop, D(2025, 1, 1), D(2025, 12, 31), "run-1")
    assert result["received"] == 4 and result["landed"] == 2 and result["quarantined"] == 2
    assert result["validation"]["counts_by_rule"]["unique_series_date"] == 2
    assert sorted(lake.read_table(settings, "bronze.macro")["date"]) == [D(2025, 11, 24), D(2025, 11, 26)]
    q = lake.read_table(settings, "quarantine.macro").sort_values("line_number")
    assert q[["key", "date", "rule", "line_number"]].values.tolist() == [
        ["DGS10", D(2025, 11, 25), "unique_series_date", 3], ["DGS10", D(2025, 11, 25), "unique_series_date", 4]]
    # neither value of the doubled date reaches the panel: 11-26 shows the 11-24 observation
    asof = macro.build_macro_asof(settings, D(2025, 11, 26), D(2025, 11, 26))
    assert asof["validation"] == {k: 0 for k in asof["validation"]}
    panel = lake.read_table(settings, "silver.macro_asof")
    assert panel[["date", "observation_date", "value"]].values.tolist() == [[D(2025, 11, 26), D(2025, 11, 24), 4.0]]


# --- Great Expectations before predictions and after features (Delta, no Spark) ------------------


def _scored(asof: dt.date, preds: list[float]) -> pd.DataFrame:
    from tickerlake.predict import PREDICTION_COLUMNS

    pred = pd.Series(preds, dtype="float64")
    frame = pd.DataFrame({"ticker": [f"T{i}" for i in range(len(preds))], "asof_date": asof,
                          "target_session": D(2024, 1, 3), "event_ts": pd.Timestamp("2024-01-02 21:00", tz="UTC"),
                          "pred_return": pred, "pred_lo": pred - 0.05, "pred_hi": pred + 0.05,
                          "rank": pred.rank(ascending=False, method="first").fillna(0).astype("int32"),
                          "percentile": pred.rank(pct=True), "signal": "neutral", "model_name": "m",
                          "model_version": "4", "features_version": 3, "run_id": "run-1", "published": False,
                          "year": 2024})
    return frame[PREDICTION_COLUMNS].astype({"features_version": "int64", "year": "int32"})


def test_publish_predictions_critical_writes_nothing_and_warnings_are_quarantined(settings: Settings):
    from tickerlake.predict import publish_predictions
    from tickerlake.validation import CriticalValidationError

    asof = D(2024, 1, 2)
    bad = _scored(asof, [0.01, float("nan"), 0.02])
    with pytest.raises(CriticalValidationError, match="finite_pred_return failed for 1 row"):
        publish_predictions(settings, bad, asof, "run-1", expected_tickers=bad["ticker"])
    assert not lake.table_exists(settings, "gold.predictions_daily")
    assert not lake.table_exists(settings, "quarantine.predictions_daily")
    with pytest.raises(CriticalValidationError, match="no prediction"):
        publish_predictions(settings, _scored(asof, [0.01]), asof, "run-1", expected_tickers=["T0", "T9"])
    assert not lake.table_exists(settings, "gold.predictions_daily")

    scored = _scored(asof, [0.01, 0.8, -0.02])
    out = publish_predictions(settings, scored, asof, "run-1", expected_tickers=scored["ticker"])
    assert out["warned"] == 1 and out["validation"]["counts_by_rule"]["pred_in_range"] == 1
    assert len(lake.read_table(settings, "gold.predictions_daily")) == 3  # the warned row is published
    q = lake.read_table(settings, "quarantine.predictions_daily")
    assert q[["ticker", "asof_date", "rule", "severity", "run_id", "model_version"]].values.tolist() == [
        ["T1", asof, "pred_in_range", "warn", "run-1", "4"]]
    # the same run again: its quarantine rows are replaced, another run's are kept
    publish_predictions(settings, scored, asof, "run-1")
    publish_predictions(settings, scored.assign(run_id="run-2"), asof, "run-2")
    q = lake.read_table(settings, "quarantine.predictions_daily")
    assert sorted(q["run_id"]) == ["run-1", "run-2"]


def _write_features(settings: Settings, frame: pd.DataFrame, silver: pd.DataFrame, lo: dt.date, hi: dt.date) -> None:
    lake.replace_interval(settings, "gold.features_daily", frame.assign(year=frame["date"].map(lambda d: d.year)), lo, hi)
    lake.replace_interval(settings, "silver.bars_daily", silver.assign(year=silver["date"].map(lambda d: d.year)), lo, hi)


def test_validate_features_reads_gold_and_silver_and_quarantines_warnings(settings: Settings):
    import numpy as np

    from tickerlake import pipeline, suites
    from tickerlake.catalog import FEATURE_NAMES
    from tickerlake.validation import CriticalValidationError

    days = [D(2024, 1, 2), D(2024, 1, 3)]
    keys = pd.DataFrame([(t, d) for d in days for t in ("AAA", "BBB")], columns=["ticker", "date"])
    frame = keys.copy()
    for f in FEATURE_NAMES:
        frame[f] = float(np.mean(suites.FEATURE_BOUNDS[f]))
    frame.loc[3, "KMID"] = float("inf")
    silver = keys.assign(open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
    _write_features(settings, frame, silver, days[0], days[-1])

    out = pipeline.validate_features(settings, days[0], days[-1], "run-1")
    assert out["rows"] == 4 and out["warned"] == 1 and out["counts_by_rule"]["finite_KMID"] == 1
    assert out["input_versions"] == {"gold.features_daily": 0, "silver.bars_daily": 0}
    q = lake.read_table(settings, "quarantine.features_daily")
    assert q[["ticker", "date", "rule", "severity", "run_id"]].values.tolist() == [
        ["BBB", days[1], "finite_KMID", "warn", "run-1"]]

    # the Spark job lost a ticker of a session: coverage of the silver tickers is critical
    _write_features(settings, frame.drop(index=[3]), silver, days[0], days[-1])
    with pytest.raises(CriticalValidationError, match=r"coverage 1/2 on 2024-01-03.*\['BBB'\]"):
        pipeline.validate_features(settings, days[0], days[-1], "run-2")
    assert len(lake.read_table(settings, "quarantine.features_daily")) == 1  # untouched by the failed run
