import pytest

from tickerlake.tickers import canonical_ticker, vendor_ticker

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # plain names, any case, white space
        ("AAPL", "AAPL"),
        ("aapl", "AAPL"),
        ("  msft \n", "MSFT"),
        ('"GOOGL"', "GOOGL"),
        ("T", "T"),
        # share classes: one canonical spelling whatever the separator
        ("BRK.B", "BRK.B"),
        ("brk.b", "BRK.B"),
        ("BRK-B", "BRK.B"),
        ("brk_b", "BRK.B"),
        ("BRK/B", "BRK.B"),
        ("BRK B", "BRK.B"),
        ("BF-B", "BF.B"),
        ("BF.B", "BF.B"),
        ("SPG-P-J", "SPG.P.J"),  # Tiingo's preferred-share spelling
        ("XYZ.WS", "XYZ.WS"),  # two-letter class suffix (warrants)
        # Stooq / EODHD market suffix
        ("AAPL.US", "AAPL"),
        ("aapl.us", "AAPL"),
        ("T.US", "T"),
        ("BRK-B.US", "BRK.B"),
        # vendor file names
        ("aapl.us.txt", "AAPL"),
        ("brk-b.us.txt", "BRK.B"),
        ("AAPL.csv", "AAPL"),
        ("RDS-B.csv", "RDS.B"),
        ("BRK-A.CSV", "BRK.A"),
        ("AAPL_data.csv", "AAPL"),
        ("BRK.B_data.csv", "BRK.B"),
        ("BF.B_data.csv", "BF.B"),
        # the synthetic universe's names are already canonical
        ("SAAJ.B", "SAAJ.B"),
        # a cashtag, as social feeds write it
        ("$msft", "MSFT"),
    ],
)
def test_vendor_spellings_map_to_canonical(raw, expected):
    assert canonical_ticker(raw) == expected


@pytest.mark.parametrize("raw", ["AAPL", "BRK.B", "SPG.P.J", "BF.B"])
def test_canonical_is_a_fixed_point(raw):
    assert canonical_ticker(canonical_ticker(raw)) == canonical_ticker(raw) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("''", "empty"),
        ("^GSPC", "not a ticker"),  # an index, not a stock
        ("$", "empty ticker name"),
        ("$$SPX", "not a ticker"),
        ("BRK..B", "not a ticker"),
        ("BRK-", "not a ticker"),
        ("-B", "not a ticker"),
        ("123", "not a ticker"),
        ("A B C D", "not a ticker"),
        ("BRK.BBB", "not a ticker"),  # class suffix too long
        ("ABCDEFGHIJK", "not a ticker"),  # root too long
        ("ÄPFEL", "non-ASCII"),
        ("AAPL;DROP", "not a ticker"),
        ("VOD.UK", "non-US"),
        ("7203.JP", "non-US"),
        ("SHOP.TO", "non-US"),
        ("AAPL.US.US", "repeated"),
        ("nasdaq_stocks__1__aapl.us.txt", "not a ticker"),
        (".csv", "not a ticker"),
    ],
)
def test_garbage_raises(raw, reason):
    with pytest.raises(ValueError, match=reason) as info:
        canonical_ticker(raw)
    assert repr(raw) in str(info.value)


def test_non_string_raises():
    with pytest.raises(ValueError, match="string"):
        canonical_ticker(12)  # type: ignore[arg-type]


def test_vendor_spelling_for_tiingo():
    assert vendor_ticker("BRK.B", "tiingo") == "BRK-B"
    assert vendor_ticker("brk/b", "tiingo") == "BRK-B"
    assert vendor_ticker("AAPL", "tiingo") == "AAPL"
    with pytest.raises(ValueError, match="unknown vendor"):
        vendor_ticker("AAPL", "bloomberg")
