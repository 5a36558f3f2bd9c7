"""Alternative data: the pure functions (parsing, scoring, point in time, release lags)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from tickerlake.altdata import MARKET_TICKER, canonical_ticker, macro, news, sentiment, social

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "altdata"
UTC = dt.UTC


def utc(*args) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime(*args, tzinfo=UTC))


def ny(*args) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime(*args, tzinfo=ZoneInfo("America/New_York"))).tz_convert("UTC")


# --- tickers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("aapl", "AAPL"), ("BRK-A", "BRK.A"), ("brk-b", "BRK.B"), ("RDS-B", "RDS.B"), ("$msft", "MSFT"),
     ("AAPL.US", "AAPL"), (" goog ", "GOOG"), ("BRK.B", "BRK.B")],
)
def test_canonical_ticker(raw, expected):
    assert canonical_ticker(raw) == expected


# --- social --------------------------------------------------------------------------------


def test_parse_created_at_is_utc():
    got = social.parse_created_at("Wed Jan 01 03:59:03 +0000 2014")
    assert got == dt.datetime(2014, 1, 1, 3, 59, 3, tzinfo=UTC)
    assert social.parse_created_at("Wed Jan 01 03:59:03 +0200 2014") == dt.datetime(2014, 1, 1, 1, 59, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty_line"),
        (b"   ", "empty_line"),
        (b"\xff\xfe", "invalid_encoding"),
        (b"this is not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"text": ["a"], "user_id_str": "1"}', "missing_created_at"),
        (b'{"text": ["a"], "created_at": "yesterday"}', "bad_created_at"),
        (b'{"created_at": "Wed Jan 01 03:59:03 +0000 2014"}', "missing_text"),
        (b'{"text": [], "created_at": "Wed Jan 01 03:59:03 +0000 2014"}', "missing_text"),
        (b'{"text": 42, "created_at": "Wed Jan 01 03:59:03 +0000 2014"}', "bad_text"),
        (b'{"text": ["a", 1], "created_at": "Wed Jan 01 03:59:03 +0000 2014"}', "bad_text"),
        (b'{"text": ["a"], "created_at": "Wed Jan 01 03:59:03 +0000 2014", "user_id_str": [1]}', "bad_user_id"),
    ],
)
def test_parse_message_line_rejects_with_reason(line, reason):
    parsed = social.parse_message_line(line)
    assert parsed.record is None and parsed.reason == reason


def test_parse_message_line_accepts_tokens_or_text():
    tokens = social.parse_message_line(
        b'{"text": ["rt", "AT_USER", "$", "aapl", "up"], "created_at": "Wed Jan 01 03:59:03 +0000 2014",'
        b' "user_id_str": "42"}'
    )
    assert tokens.reason is None
    assert tokens.record["text"] == "rt AT_USER $ aapl up"
    assert tokens.record["user_id"] == "42"
    plain = social.parse_message_line('{"text": "plain text", "created_at": "Wed Jan 01 03:59:03 +0000 2014"}')
    assert plain.record["text"] == "plain text" and plain.record["user_id"] is None


def _file(path: str, lines: list[bytes]) -> social.SourceFile:
    ticker, day = path.split("/")[-2:]
    return social.SourceFile(path, ticker, social.parse_file_date(day), lines)


def test_collect_interval_splits_landed_quarantined_and_outside():
    good = b'{"text": ["a"], "created_at": "Thu Jan 02 15:00:00 +0000 2014", "user_id_str": "1"}'
    early = b'{"text": ["b"], "created_at": "Tue Dec 31 23:00:00 +0000 2013", "user_id_str": "1"}'
    files = [
        _file("t/brk-b/2014-01-02", [good, early, b"{broken", b'{"text": ["x"]}']),
        _file("t/AAPL/not-a-date", [b"{broken"]),
    ]
    batch = social.collect_interval(files, dt.date(2014, 1, 1), dt.date(2014, 1, 31))
    assert [m["ticker"] for m in batch.messages] == ["BRK.B"]
    assert batch.messages[0]["ticker_raw"] == "brk-b" and batch.messages[0]["line_number"] == 1
    assert batch.outside_interval == 1  # written 2013-12-31 UTC, filed under 2014-01-02
    reasons = [(q["rule"], q["date"], q["key"]) for q in batch.quarantine]
    # a line without a readable created_at is judged by its file's date; none at all -> undated
    assert reasons == [("invalid_json", dt.date(2014, 1, 2), "BRK.B"),
                       ("missing_created_at", dt.date(2014, 1, 2), "BRK.B"),
                       ("invalid_json", None, "AAPL")]
    assert batch.lines_read == 5
    assert batch.lines_read == len(batch.messages) + len(batch.quarantine) + batch.outside_interval


def test_iter_source_files_reads_drop_folder_with_ticker_filter():
    root = FIXTURES / "stocknet"
    files = list(social.iter_source_files(root))
    assert sorted(f.ticker_raw for f in files) == ["AAPL", "AAPL", "BRK-B"]
    only = [f.path for f in social.iter_source_files(root, tickers=["brk.b"])]
    assert only == ["tweet/preprocessed/BRK-B/2025-11-26"]


# --- news ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-07-17", dt.date(2020, 7, 17)),
        ("18-Jul-20", dt.date(2020, 7, 18)),
        ("18-Jul-2020", dt.date(2020, 7, 18)),
        ("Jul 18 2020", dt.date(2020, 7, 18)),
        ("July 18, 2020", dt.date(2020, 7, 18)),
        ("7:51  PM ET Fri, 17 July 2020", dt.date(2020, 7, 17)),
        (" 10:01  AM ET Mon, 2 March 2020 ", dt.date(2020, 3, 2)),
        ("2020-02-30", None),
        ("not a date", None),
        ("", None),
        ("Foo 18 2020", None),
    ],
)
def test_parse_news_date(raw, expected):
    assert news.parse_news_date(raw) == expected


def test_publisher_of():
    assert news.publisher_of("/x/cnbc_headlines.csv") == "cnbc"
    assert news.publisher_of("reuters.csv") == "reuters"


def test_parse_news_csv_with_and_without_header():
    with_header = news.parse_news_csv('date,headlines\r\n2020-07-17,"A , B"\r\n2020-07-16,C\r\n')
    assert with_header.header and with_header.lines == 2
    assert [(r["date"], r["headline"], r["line_number"]) for r in with_header.rows] == [
        (dt.date(2020, 7, 17), "A , B", 2), (dt.date(2020, 7, 16), "C", 3)]
    no_header = news.parse_news_csv("18-Jul-20,Johnson asks Santa\n")
    assert not no_header.header and no_header.rows[0]["date"] == dt.date(2020, 7, 18)


def test_parse_news_csv_reads_vendor_column_orders():
    # the vendors' original exports: CNBC/Reuters `Headlines,Time,Description`, Guardian `Time,Headlines`
    cnbc = news.parse_news_csv('Headlines,Time,Description\nCramer rally,"7:51  PM ET Fri, 17 July 2020",Long text\n')
    assert [(r["date"], r["headline"]) for r in cnbc.rows] == [(dt.date(2020, 7, 17), "Cramer rally")]
    guardian = news.parse_news_csv("Time,Headlines\n18-Jul-20,Recovery hopes\n")
    assert [(r["date"], r["headline"]) for r in guardian.rows] == [(dt.date(2020, 7, 18), "Recovery hopes")]


def test_parse_news_csv_quarantines_with_reasons():
    text = '2020-07-17,ok\nnot a date,x\n2020-07-17,\n\n2020-07-17\n"2020-07-18","multi\nline headline"\n'
    parsed = news.parse_news_csv(text)
    assert [(r["headline"], r["line_number"]) for r in parsed.rows] == [("ok", 1), ("multi\nline headline", 6)]
    assert [(q["rule"], q["date"], q["line_number"]) for q in parsed.quarantine] == [
        ("bad_date", None, 2), ("empty_headline", dt.date(2020, 7, 17), 3), ("empty_line", None, 4),
        ("missing_columns", None, 5)]
    assert parsed.quarantine[0]["values"] == "not a date,x"
    assert parsed.lines == len(parsed.rows) + len(parsed.quarantine)


# --- sentiment: lexicon and scoring --------------------------------------------------------


def test_loughran_mcdonald_lexicon_ships_with_the_package():
    lm = sentiment.loughran_mcdonald()
    assert "loughran-mcdonald" in lm.name
    assert len(lm.positive) > 300 and len(lm.negative) > 2000
    assert {"gain", "gains", "strong", "outperform"} <= lm.positive
    assert {"loss", "losses", "weak", "downgrade", "decline"} <= lm.negative
    # finance-neutral words that general lexicons score (LM's point), and our market-neutral ones
    assert not {"liability", "tax", "cost", "breaking", "closed"} & (lm.positive | lm.negative)


def test_tokenize_drops_placeholders_and_keeps_contractions():
    assert sentiment.tokenize("rt AT_USER $ aapl Don't buy URL") == ["rt", "aapl", "don't", "buy"]
    assert sentiment.tokenize("Sunak\u2019s plan") == ["sunak's", "plan"]


TOY = sentiment.Lexicon("toy", frozenset({"good", "gain"}), frozenset({"bad", "loss"}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good gain", (2, 0)),
        ("bad loss good", (1, 2)),
        ("not good", (0, 1)),  # a negated positive word counts as negative
        ("never a very good", (0, 1)),  # negator within three words
        ("never one two three good", (1, 0)),  # four words back: not negated
        ("don't expect a gain", (0, 1)),
        ("not bad", (0, 1)),  # LM negate positive words only
        ("nothing here", (0, 0)),
    ],
)
def test_score_tokens_with_negation(text, expected):
    assert sentiment.score_tokens(sentiment.tokenize(text), TOY) == expected


def test_polarity_and_score_texts():
    assert sentiment.polarity(3, 1) == 0.5 and sentiment.polarity(0, 0) == 0.0
    scored = sentiment.score_texts(["good gain", "bad", "meh"], TOY)
    assert scored.to_dict("list") == {"positive": [2, 0, 0], "negative": [0, 1, 0], "polarity": [1.0, -1.0, 0.0]}


def test_real_lexicon_scores_finance_text():
    lm = sentiment.loughran_mcdonald()
    good = sentiment.score_tokens(sentiment.tokenize("Strong gains, earnings beat and an upgrade"), lm)
    bad = sentiment.score_tokens(sentiment.tokenize("Company reports a loss and weak guidance, shares decline"), lm)
    assert sentiment.polarity(*good) > 0 > sentiment.polarity(*bad)


# --- sentiment: point in time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "session"),
    [
        (ny(2025, 11, 25, 15, 59), dt.date(2025, 11, 25)),  # before the close: that session
        (ny(2025, 11, 25, 16, 1), dt.date(2025, 11, 26)),  # after the close: the next
        (ny(2025, 11, 25, 16, 0), dt.date(2025, 11, 26)),  # at the close: not known at the close
        (ny(2025, 11, 25, 8, 0), dt.date(2025, 11, 25)),  # before the open
        (ny(2025, 11, 25, 23, 30), dt.date(2025, 11, 26)),  # 04:30 UTC on the 26th: local day counts
        (ny(2025, 11, 27, 10, 0), dt.date(2025, 11, 28)),  # Thanksgiving (holiday) -> next session
        (ny(2025, 11, 28, 12, 59), dt.date(2025, 11, 28)),  # early close 13:00: before it
        (ny(2025, 11, 28, 13, 1), dt.date(2025, 12, 1)),  # after the early close -> Monday
        (ny(2025, 11, 29, 10, 0), dt.date(2025, 12, 1)),  # Saturday -> Monday
        (ny(2025, 11, 30, 22, 0), dt.date(2025, 12, 1)),  # Sunday night -> Monday
        (ny(2025, 7, 15, 15, 59), dt.date(2025, 7, 15)),  # summer time: 19:59 UTC
        (ny(2025, 7, 15, 16, 1), dt.date(2025, 7, 16)),
    ],
)
def test_session_for_timestamps(ts, session):
    got = sentiment.session_for_timestamps(pd.Series([ts]))
    assert got.iloc[0] == session


def test_session_for_timestamps_is_vectorised_and_keeps_the_index():
    ts = pd.Series([utc(2025, 11, 25, 20, 59), utc(2025, 11, 25, 21, 1)], index=[7, 3])
    got = sentiment.session_for_timestamps(ts)
    assert list(got.index) == [7, 3]
    assert list(got) == [dt.date(2025, 11, 25), dt.date(2025, 11, 26)]


@pytest.mark.parametrize(
    ("day", "session"),
    [
        (dt.date(2025, 11, 25), dt.date(2025, 11, 26)),  # a session day: the NEXT session
        (dt.date(2025, 11, 26), dt.date(2025, 11, 28)),  # before Thanksgiving -> the early-close Friday
        (dt.date(2025, 11, 27), dt.date(2025, 11, 28)),  # the holiday itself
        (dt.date(2025, 11, 29), dt.date(2025, 12, 1)),  # Saturday
        (dt.date(2025, 11, 21), dt.date(2025, 11, 24)),  # Friday -> Monday
    ],
)
def test_session_for_days_is_the_next_session(day, session):
    assert sentiment.session_for_days(pd.Series([day])).iloc[0] == session


def test_daily_sentiment_aggregates_per_ticker_and_session():
    scored = pd.DataFrame({
        "ticker": ["AAPL", "AAPL", "AAPL", MARKET_TICKER],
        "session": [dt.date(2025, 11, 25)] * 2 + [dt.date(2025, 11, 26)] * 2,
        "positive": [2, 0, 0, 1],
        "negative": [0, 1, 0, 0],
        "polarity": [1.0, -1.0, 0.0, 1.0],
    })
    daily = sentiment.daily_sentiment(scored).set_index(["ticker", "date"])
    row = daily.loc[("AAPL", dt.date(2025, 11, 25))]
    assert row["sentiment"] == 0.0 and row["message_count"] == 2 and row["scored_count"] == 2
    assert row["positive_words"] == 2 and row["negative_words"] == 1
    assert daily.loc[("AAPL", dt.date(2025, 11, 26)), "scored_count"] == 0
    assert daily.loc[(MARKET_TICKER, dt.date(2025, 11, 26)), "sentiment"] == 1.0
    assert sentiment.daily_sentiment(scored.iloc[:0]).empty


# --- macro: files and release lags ---------------------------------------------------------


def test_parse_value():
    assert macro.parse_value("4.04") == (4.04, True)
    assert macro.parse_value("") == (None, True)
    assert macro.parse_value(" . ") == (None, True)
    assert macro.parse_value("abc") == (None, False)
    assert macro.parse_value("nan") == (None, False)


def test_parse_fred_csv_formats():
    plain = macro.parse_fred_csv("date,value\n2025-10-01,\n2025-11-01,325.031\n", "cpiaucsl.csv")
    assert plain.series_id == "CPIAUCSL"
    assert [(r["date"], r["value"], r["value_raw"]) for r in plain.rows] == [
        (dt.date(2025, 10, 1), None, ""), (dt.date(2025, 11, 1), 325.031, "325.031")]
    native = macro.parse_fred_csv("observation_date,PAYEMS\r\n2025-10-01,.\r\n", "download.csv")
    assert native.series_id == "PAYEMS" and native.rows[0]["value"] is None
    skipped = macro.parse_fred_csv("series_id,last_updated\nGDP,2026\n", "metadata.csv")
    assert skipped.series_id is None and "not date,value" in skipped.skipped_reason
    assert macro.parse_fred_csv("", "x.csv").skipped_reason == "empty file"


def test_parse_fred_csv_quarantines_bad_rows():
    parsed = macro.parse_fred_csv("date,value\n2025-12-01,4.09\n2025-12-02,abc\nnot-a-date,1\n2025-12-03\n", "DGS10.csv")
    assert [r["line_number"] for r in parsed.rows] == [2]
    assert [(q["rule"], q["date"], q["line_number"]) for q in parsed.quarantine] == [
        ("bad_value", dt.date(2025, 12, 2), 3), ("bad_date", None, 4), ("bad_row_shape", None, 5)]


@pytest.mark.realdata
def test_every_shared_series_has_a_release_lag():
    names = {p.stem for p in (FIXTURES.parents[2].parent / "shared" / "data" / "fred_macro").glob("*.csv")}
    names -= {"metadata", "series_coverage", "market_coverage"}
    if not names:
        pytest.skip("real data ../shared/data/fred_macro is absent (not part of a fresh clone)")
    assert names <= set(macro.RELEASE_LAGS)


@pytest.mark.parametrize(
    ("series", "observed", "released"),
    [
        ("CPIAUCSL", dt.date(2025, 9, 1), dt.date(2025, 10, 15)),  # month end + 15
        ("PAYEMS", dt.date(2025, 11, 1), dt.date(2025, 12, 10)),  # first Friday, late side
        ("DGS10", dt.date(2025, 11, 26), dt.date(2025, 11, 27)),  # daily: next day
        ("GDP", dt.date(2025, 7, 1), dt.date(2025, 10, 30)),  # quarter end + 30
        ("UNRATE", dt.date(2024, 2, 1), dt.date(2024, 3, 10)),  # leap February
    ],
)
def test_release_date(series, observed, released):
    assert macro.release_date(series, observed) == released


def _bronze(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["series_id", "date", "value", "realtime_start", "realtime_end"])


def test_asof_panel_shows_an_observation_only_from_its_release():
    d = dt.date
    bronze = _bronze([("CPIAUCSL", d(2025, 8, 1), 323.364, None, None),
                      ("CPIAUCSL", d(2025, 9, 1), 324.368, None, None),
                      ("CPIAUCSL", d(2025, 10, 1), None, None, None),  # not published
                      ("CPIAUCSL", d(2025, 11, 1), 325.031, None, None)])
    known = macro.known_observations(bronze)
    sessions = [d(2025, 10, 14), d(2025, 10, 15), d(2025, 11, 17), d(2025, 12, 15)]
    panel = macro.asof_panel(known, sessions).set_index("date")
    assert panel.loc[d(2025, 10, 14), "observation_date"] == d(2025, 8, 1)  # Sept CPI not out yet
    assert panel.loc[d(2025, 10, 15), "observation_date"] == d(2025, 9, 1)
    assert panel.loc[d(2025, 10, 15), "release_date"] == d(2025, 10, 15)
    # the missing October value is never published: November 17 still shows September, stale
    assert panel.loc[d(2025, 11, 17), "observation_date"] == d(2025, 9, 1)
    assert panel.loc[d(2025, 11, 17), "value"] == 324.368
    assert panel.loc[d(2025, 12, 15), "value"] == 325.031
    assert set(panel["vintage"]) == {"file+lag"}


def test_asof_panel_before_any_release_has_no_row():
    bronze = _bronze([("DGS10", dt.date(2025, 11, 26), 4.0, None, None)])
    panel = macro.asof_panel(macro.known_observations(bronze), [dt.date(2025, 11, 26), dt.date(2025, 11, 28)])
    assert list(panel["date"]) == [dt.date(2025, 11, 28)]


def test_asof_panel_with_alfred_vintages_uses_the_value_known_then():
    rows = macro.parse_observations(json.loads((FIXTURES / "fred" / "api_alfred_vintages_cpiaucsl.json").read_text()),
                                    "CPIAUCSL")
    known = macro.known_observations(pd.DataFrame(rows))
    d = dt.date
    panel = macro.asof_panel(known, [d(2025, 9, 5), d(2025, 9, 12), d(2025, 10, 23), d(2025, 10, 24),
                                     d(2025, 12, 17), d(2025, 12, 18)]).set_index("date")
    assert (panel.loc[d(2025, 9, 5), ["observation_date", "value"]] == [d(2025, 7, 1), 322.132]).all()
    assert (panel.loc[d(2025, 9, 12), ["observation_date", "value"]] == [d(2025, 8, 1), 323.364]).all()
    assert panel.loc[d(2025, 10, 23), "value"] == 323.364  # August as first published
    assert (panel.loc[d(2025, 10, 24), ["observation_date", "value"]] == [d(2025, 9, 1), 324.368]).all()
    assert panel.loc[d(2025, 12, 17), "observation_date"] == d(2025, 9, 1)
    assert panel.loc[d(2025, 12, 18), "value"] == 325.031
    assert set(panel["vintage"]) == {"alfred"}


def test_known_observations_refuses_a_series_without_lag():
    with pytest.raises(ValueError, match="no release lag for series \\['MYSTERY'\\]"):
        macro.known_observations(_bronze([("MYSTERY", dt.date(2025, 1, 1), 1.0, None, None)]))


# --- macro: the API format -----------------------------------------------------------------


def test_observation_params_ask_for_vintages_as_json():
    params = macro.observation_params("CPIAUCSL", dt.date(2025, 1, 1), dt.date(2025, 12, 31),
                                      dt.date(2025, 6, 1), dt.date(2025, 6, 1), offset=10, limit=5)
    assert params == {"series_id": "CPIAUCSL", "observation_start": "2025-01-01", "observation_end": "2025-12-31",
                      "realtime_start": "2025-06-01", "realtime_end": "2025-06-01", "file_type": "json",
                      "sort_order": "asc", "limit": "5", "offset": "10"}
    assert "api_key" not in params


def test_parse_observations_documented_example():
    payload = json.loads((FIXTURES / "fred" / "api_series_observations_example.json").read_text())
    rows = macro.parse_observations(payload, "GNPCA")
    assert [(r["date"], r["value"]) for r in rows] == [
        (dt.date(1929, 1, 1), 1065.9), (dt.date(1930, 1, 1), 975.5), (dt.date(1931, 1, 1), 912.1)]
    assert rows[0]["realtime_start"] == rows[0]["realtime_end"] == dt.date(2013, 8, 14)


def test_parse_observations_missing_dot_and_errors():
    missing = {"observations": [{"realtime_start": "2025-01-01", "realtime_end": "9999-12-31",
                                 "date": "2025-01-01", "value": "."}]}
    assert macro.parse_observations(missing, "X")[0]["value"] is None
    error = json.loads((FIXTURES / "fred" / "api_error_example.json").read_text())
    with pytest.raises(macro.FredApiError, match="not registered"):
        macro.parse_observations(error, "X")
    with pytest.raises(macro.FredApiError, match="malformed"):
        macro.parse_observations({"observations": [{"date": "2025-01-01"}]}, "X")
