"""The `csv` source: vendor formats recognised from their header, and every file defect named."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import pandas as pd
import pytest

from tickerlake.sources import OUTPUT_COLUMNS, NoDataError, SourceFormatError, fetch_bars
from tickerlake.sources.csv_files import detect_format, read_bar_file, read_drop_folder

pytestmark = pytest.mark.unit

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
D = dt.date

KAGGLE = """date,open,high,low,close,volume,Name
2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL
2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL
2013-02-08,67.7142,68.4014,66.8928,67.8542,158168416,AAPL
"""
STOOQ = """Date,Open,High,Low,Close,Volume,OpenInt
2017-11-06,171.75,174.36,171.1,173.63,34901241,0
2017-11-07,173.29,174.51,173.29,174.18,24424877,0
2017-11-08,174.03,175.61,173.71,175.61,24451166,0
"""
STOOQ_TAGGED = """<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>
BRK-B.US,D,20240102,000000,357.0,359.5,355.1,358.2,3400000,0
BRK-B.US,D,20240103,000000,358.0,360.0,356.0,357.5,3100000,0
"""
YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2016-06-28,12.1,12.4,12.0,12.3,11.9,120000
2016-06-29,null,null,null,null,null,null
2016-06-30,12.3,12.6,12.2,12.5,12.1,130000
"""
OHLCV = """Date,Open,High,Low,Close,Volume
2024-01-02,10,11,9,10.5,1000
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- formats -----------------------------------------------------------------------------


def test_kaggle_format_one_file_many_tickers(tmp_path):
    write(tmp_path, "all_stocks_5yr.csv", KAGGLE)
    frame = read_drop_folder(tmp_path)
    assert list(frame.columns) == ["ticker", "date", "open", "high", "low", "close", "volume",
                                   "source_file", "source_row"]
    assert frame["ticker"].tolist() == ["AAL", "AAL", "AAPL"]
    assert frame["date"].tolist() == [D(2013, 2, 8), D(2013, 2, 11), D(2013, 2, 8)]
    assert isinstance(frame["date"].iloc[0], dt.date)
    assert frame["close"].tolist() == [14.75, 14.46, 67.8542]
    assert frame["volume"].dtype == "float64" and frame["volume"].iloc[2] == 158168416.0
    assert frame["source_file"].unique().tolist() == ["all_stocks_5yr.csv"]
    assert frame["source_row"].tolist() == [2, 3, 4]  # the header is line 1
    assert frame.attrs["source_report"]["formats"] == ["kaggle_sp500"]


def test_kaggle_format_one_file_per_ticker_and_share_class_names(tmp_path):
    write(tmp_path, "AAL_data.csv", KAGGLE.splitlines()[0] + "\n" + KAGGLE.splitlines()[1] + "\n")
    write(tmp_path, "BRK.B_data.csv", "date,open,high,low,close,volume,Name\n2013-02-08,1,2,0.5,1.5,10,BRK.B\n")
    write(tmp_path, "BF.B_data.csv", "date,open,high,low,close,volume,Name\n2013-02-08,1,2,0.5,1.5,10,bf-b\n")
    frame = read_drop_folder(tmp_path)
    assert sorted(frame["ticker"]) == ["AAL", "BF.B", "BRK.B"]
    assert dict(zip(frame["ticker"], frame["source_file"], strict=True))["BF.B"] == "BF.B_data.csv"


def test_stooq_daily_ticker_from_file_name(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    write(tmp_path, "brk-b.us.txt", STOOQ.replace("171.75", "300.5"))
    frame = read_drop_folder(tmp_path)
    assert set(frame["ticker"]) == {"AAPL", "BRK.B"}
    assert "openint" not in {c.lower() for c in frame.columns}
    aapl = frame[frame["ticker"] == "AAPL"]
    assert aapl["source_file"].unique().tolist() == ["aapl.us.txt"]
    assert aapl["open"].tolist() == [171.75, 173.29, 174.03]
    assert frame.attrs["source_report"]["formats"] == ["stooq"]


def test_stooq_tagged_header_ticker_from_column(tmp_path):
    write(tmp_path, "brk-b.us.txt", STOOQ_TAGGED)
    frame = read_drop_folder(tmp_path)
    assert frame["ticker"].unique().tolist() == ["BRK.B"]
    assert frame["date"].tolist() == [D(2024, 1, 2), D(2024, 1, 3)]
    assert frame["volume"].tolist() == [3400000.0, 3100000.0]


def test_stooq_tagged_intraday_file_is_refused(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ_TAGGED.replace("BRK-B.US,D,20240103", "BRK-B.US,5,20240103"))
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 3 column '<PER>': period '5' is not daily"):
        read_drop_folder(tmp_path)


def test_yahoo_ticker_from_file_name_null_is_missing_and_adj_close_kept(tmp_path):
    write(tmp_path, "BRK-B.csv", YAHOO)
    frame = read_drop_folder(tmp_path)
    assert frame["ticker"].unique().tolist() == ["BRK.B"]
    assert frame["adj_close"].iloc[0] == 11.9
    assert len(frame) == 3  # the all-null row is kept ...
    missing = frame.iloc[1]
    assert missing["date"] == D(2016, 6, 29) and missing["source_row"] == 3
    assert all(math.isnan(missing[c]) for c in ("open", "high", "low", "close", "volume"))  # ... as NaN


def test_plain_ohlcv_format(tmp_path):
    write(tmp_path, "msft.csv", OHLCV)
    assert read_drop_folder(tmp_path)["ticker"].tolist() == ["MSFT"]


def test_mixed_formats_in_one_folder(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    write(tmp_path, "IBM.csv", YAHOO)
    frame = read_drop_folder(tmp_path)
    assert frame.attrs["source_report"]["formats"] == ["stooq", "yahoo"]
    assert frame.loc[frame["ticker"] == "AAPL", "adj_close"].isna().all()


def test_header_detection_ignores_case_spaces_and_order():
    assert detect_format([" DATE", "Open ", "high", "LOW", "Close", "Volume", "name"]).name == "kaggle_sp500"
    assert detect_format(["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]).name == "yahoo"
    assert detect_format(["<TICKER>", "<PER>", "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>",
                          "<VOL>", "<OPENINT>"]).name == "stooq_tagged"


def test_named_format_must_match(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    assert len(read_drop_folder(tmp_path, fmt="stooq")) == 3
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 1: .*does not match format 'yahoo'"):
        read_drop_folder(tmp_path, fmt="yahoo")
    with pytest.raises(ValueError, match="unknown csv format"):
        read_drop_folder(tmp_path, fmt="excel")


def test_interval_filter_is_inclusive(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    frame = read_drop_folder(tmp_path, D(2017, 11, 7), D(2017, 11, 8))
    assert frame["date"].tolist() == [D(2017, 11, 7), D(2017, 11, 8)]
    assert frame["source_row"].tolist() == [3, 4]
    assert frame.attrs["source_report"]["rows_read"] == 3


def test_blank_price_is_nan_and_kept(tmp_path):
    write(tmp_path, "DHR_data.csv", "date,open,high,low,close,volume,Name\n"
                                    "2016-01-12,,,,88.55,0,DHR\n2016-01-13,88.1,89.0,87.5,88.0,100,DHR\n")
    frame = read_drop_folder(tmp_path)
    assert len(frame) == 2
    assert frame[["open", "high", "low"]].iloc[0].isna().all()
    assert frame["close"].iloc[0] == 88.55 and frame["volume"].iloc[0] == 0.0


def test_line_numbers_survive_blank_lines_crlf_and_bom(tmp_path):
    text = "\ufeffDate,Open,High,Low,Close,Volume,OpenInt\r\n2024-01-02,1,2,0.5,1.5,10,0\r\n\r\n\r\n" \
           "2024-01-03,1,2,0.5,1.5,10,0\r\n\r\n"
    write(tmp_path, "aapl.us.txt", text.encode("utf-8"))
    frame = read_drop_folder(tmp_path)
    assert frame["source_row"].tolist() == [2, 5]
    assert frame["date"].tolist() == [D(2024, 1, 2), D(2024, 1, 3)]


def test_fetch_bars_csv_has_the_common_columns(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    frame = fetch_bars("csv", "2017-11-06", "2017-11-06", path=tmp_path)
    assert list(frame.columns) == list(OUTPUT_COLUMNS)
    assert len(frame) == 1 and frame["adj_close"].isna().all()
    with pytest.raises(ValueError, match="needs path"):
        fetch_bars("csv", "2017-11-06", "2017-11-06")
    with pytest.raises(ValueError, match="unknown market data source"):
        fetch_bars("ftp", "2017-11-06", "2017-11-06")


def test_read_one_file(tmp_path):
    frame = read_bar_file(write(tmp_path, "aapl.us.txt", STOOQ))
    assert len(frame) == 3 and frame["ticker"].unique().tolist() == ["AAPL"]


def test_glob_selects_files(tmp_path):
    write(tmp_path, "AAL_data.csv", KAGGLE)
    write(tmp_path, "aapl.us.txt", STOOQ)
    frame = read_drop_folder(str(tmp_path / "*_data.csv"))
    assert frame.attrs["source_report"]["files"] == 1


# --- defects: each one a clear error or a kept row, never a silent loss ----------------------


def test_truncated_last_line_names_file_and_line(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ + "2017-11-09,175.11,176.09")  # cut off, no newline
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 5: expected 7 fields .* got 3 \(truncated line\?\)"):
        read_drop_folder(tmp_path)


def test_line_with_too_many_fields_names_the_line(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ.replace("173.63", "173,63"))  # decimal comma, unquoted
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 2: expected 7 fields .* got 8"):
        read_drop_folder(tmp_path)


def test_empty_file_is_an_error(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    write(tmp_path, "msft.us.txt", "")
    with pytest.raises(SourceFormatError, match=r"msft\.us\.txt: empty file"):
        read_drop_folder(tmp_path)


def test_header_only_file_gives_no_rows_and_is_reported(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    write(tmp_path, "msft.us.txt", STOOQ.splitlines()[0] + "\n")
    frame = read_drop_folder(tmp_path)
    assert set(frame["ticker"]) == {"AAPL"}
    assert frame.attrs["source_report"]["header_only_files"] == ["msft.us.txt"]


def test_only_header_only_files_is_no_data(tmp_path):
    write(tmp_path, "msft.us.txt", STOOQ.splitlines()[0] + "\n")
    with pytest.raises(NoDataError, match=r"header-only.*msft\.us\.txt"):
        read_drop_folder(tmp_path)


def test_empty_drop_folder_is_no_data(tmp_path):
    (tmp_path / "drop").mkdir()
    write(tmp_path / "drop", "README.md", "not data")
    with pytest.raises(NoDataError, match=r"no vendor files .*README\.md"):
        read_drop_folder(tmp_path / "drop")
    with pytest.raises(NoDataError, match="does not exist"):
        read_drop_folder(tmp_path / "nowhere")


def test_no_bar_in_the_interval_is_no_data(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    with pytest.raises(NoDataError, match=r"3 rows in 1 file\(s\) dated 2017-11-06\.\.2017-11-08, none in \[2018-01-02"):
        read_drop_folder(tmp_path, D(2018, 1, 2), D(2018, 1, 2))


def test_wrong_column_order_is_read_by_name(tmp_path):
    reordered = ("Volume,Close,Date,Low,OpenInt,High,Open\n"
                 "34901241,173.63,2017-11-06,171.1,0,174.36,171.75\n")
    write(tmp_path, "aapl.us.txt", reordered)
    row = read_drop_folder(tmp_path).iloc[0]
    assert (row["date"], row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        D(2017, 11, 6), 171.75, 174.36, 171.1, 173.63, 34901241.0)


def test_extra_column_is_an_error_naming_it(tmp_path):
    write(tmp_path, "AAL_data.csv", KAGGLE.replace("volume,Name", "volume,Name,Exchange")
          .replace(",AAL\n", ",AAL,XNYS\n").replace(",AAPL\n", ",AAPL,XNAS\n"))
    with pytest.raises(SourceFormatError, match=r"AAL_data\.csv line 1: .*unknown column\(s\) \['Exchange'\]"):
        read_drop_folder(tmp_path)


def test_missing_column_is_an_error_naming_it(tmp_path):
    write(tmp_path, "aapl.us.txt", "Date,Open,High,Close,Volume,OpenInt\n2017-11-06,1,2,1.5,10,0\n")
    with pytest.raises(SourceFormatError, match=r"missing column\(s\) \['low'\]"):
        read_drop_folder(tmp_path)


def test_duplicate_column_is_an_error(tmp_path):
    write(tmp_path, "aapl.us.txt", "Date,Open,High,Low,Close,Close,Volume\n2017-11-06,1,2,0.5,1.5,1.5,10\n")
    with pytest.raises(SourceFormatError, match=r"duplicate column\(s\) \['close'\]"):
        read_drop_folder(tmp_path)


@pytest.mark.parametrize("value", ["abc", '"12,5"', "1_000", "12.5.1", "N/A"])
def test_text_in_a_price_column_names_file_line_and_column(tmp_path, value):
    write(tmp_path, "aapl.us.txt", STOOQ.replace("174.51", value))  # line 3, High
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 3 column 'High': .* is not a number"):
        read_drop_folder(tmp_path)


def test_infinite_price_is_an_error(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ.replace("173.63", "inf"))
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 2 column 'Close': inf is not a finite number"):
        read_drop_folder(tmp_path)


@pytest.mark.parametrize("value", ["2017-13-07", "07/11/2017", ""])
def test_bad_date_names_file_line_and_column(tmp_path, value):
    write(tmp_path, "aapl.us.txt", STOOQ.replace("2017-11-07", value))
    with pytest.raises(SourceFormatError, match=r"aapl\.us\.txt line 3 column 'Date': .* is not a date"):
        read_drop_folder(tmp_path)


def test_bad_ticker_in_name_column_names_the_line(tmp_path):
    write(tmp_path, "all.csv", KAGGLE.replace("14.46,8882000,AAL", "14.46,8882000,^GSPC"))
    with pytest.raises(SourceFormatError, match=r"all\.csv line 3 column 'Name': '\^GSPC' is not a ticker"):
        read_drop_folder(tmp_path)


def test_file_name_without_ticker_is_an_error(tmp_path):
    write(tmp_path, "prices (1).csv", OHLCV)
    with pytest.raises(SourceFormatError, match=r"prices \(1\)\.csv: no ticker in the file name"):
        read_drop_folder(tmp_path)


def test_same_bar_in_two_files_is_kept_twice_with_its_source(tmp_path):
    write(tmp_path, "aapl.us.txt", STOOQ)
    write(tmp_path, "AAPL.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2017-11-07,173.3,174.5,173.3,174.2,170,24424877\n")
    frame = read_drop_folder(tmp_path)
    dup = frame[(frame["ticker"] == "AAPL") & (frame["date"] == D(2017, 11, 7))]
    assert len(dup) == 2  # not deduplicated here: validation's unique rule quarantines both
    assert sorted(zip(dup["source_file"], dup["source_row"], strict=True)) == [("AAPL.csv", 2), ("aapl.us.txt", 3)]


# --- real data ---------------------------------------------------------------------------

# ../shared/data/README.md, "Known defects", sp500_5yr: the 11 rows with blank prices.
BLANK_PRICE_ROWS = {
    ("DHR", D(2016, 1, 12)): ("open", "high", "low"),
    ("O", D(2016, 1, 12)): ("open", "high", "low"),
    ("FTV", D(2016, 7, 1)): ("open", "high", "low"),
    ("UA", D(2016, 4, 7)): ("open", "high", "low"),
    ("BHF", D(2017, 7, 26)): ("open", "high", "low"),
    ("REGN", D(2015, 6, 9)): ("open", "high", "low"),
    ("VRTX", D(2015, 5, 12)): ("open", "high", "low"),
    ("WRK", D(2015, 6, 26)): ("open", "high", "low"),
    ("DHR", D(2015, 7, 17)): ("open",),
    ("ES", D(2015, 7, 17)): ("open",),
    ("O", D(2015, 7, 17)): ("open",),
}


@pytest.mark.realdata
def test_sp500_5yr_loads_whole_and_fast():
    folder = SHARED_DATA / "sp500_5yr"
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (it sits beside the project on developer machines and CI)")
    began = time.perf_counter()
    frame = read_drop_folder(folder, D(2013, 2, 8), D(2018, 2, 7))
    seconds = time.perf_counter() - began
    print(f"sp500_5yr: {len(frame):,} rows from {frame.attrs['source_report']['files']} files in {seconds:.2f}s")
    assert len(frame) == 619_040
    assert frame["ticker"].nunique() == 505
    assert frame.attrs["source_report"]["files"] == 505
    assert {"BRK.B", "BF.B"} <= set(frame["ticker"])
    assert frame["date"].min() == D(2013, 2, 8) and frame["date"].max() == D(2018, 2, 7)

    prices = ["open", "high", "low", "close", "volume"]
    blank = frame[frame[prices].isna().any(axis=1)]
    assert {(t, d) for t, d in zip(blank["ticker"], blank["date"], strict=True)} == set(BLANK_PRICE_ROWS)
    for (ticker, day), columns in BLANK_PRICE_ROWS.items():
        row = blank[(blank["ticker"] == ticker) & (blank["date"] == day)].iloc[0]
        assert [c for c in prices if pd.isna(row[c])] == list(columns), (ticker, day)
    assert not frame.duplicated(["source_file", "source_row"]).any()
    assert seconds < 10, f"loading sp500_5yr took {seconds:.1f}s"
