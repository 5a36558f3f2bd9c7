"""Canonical ticker names: one spelling for every table, whatever the vendor wrote.

Canonical form: upper case, a share class (or other class suffix) after a dot: `AAPL`,
`BRK.B`, `SPG.P.J` (Simon Property preferred series J).

`canonical_ticker(raw)` applies these rules, in order:

1. Surrounding white space and quotes are removed; an empty name is an error.
2. A vendor file name becomes its ticker: a `.csv` / `.txt` extension is dropped, and so is
   the Kaggle S&P 500 suffix `_data` (`BRK.B_data.csv` -> `BRK.B`). Pass a file *name*
   (`Path.name`), not a path: a `/` inside a name is a share-class separator (`BRK/B`).
3. Upper case.
4. Stooq's (and EODHD's) market suffix `.US` is dropped (`AAPL.US` -> `AAPL`,
   `brk-b.us.txt` -> `BRK.B`). A non-US market suffix (`.UK`, `.DE`, `.JP`, `.HK`, `.HU`,
   `.PL`, Yahoo's `.TO`, `.AX`, ...) is an error: the platform trades US sessions only.
5. Share-class separators `.`, `-` (Yahoo, Tiingo), `_`, `/` (Nasdaq, StockCharts) and a
   single space (CQS, Interactive Brokers) all become a dot: `BRK-B`, `brk_b`, `BRK/B`,
   `BRK B`, `BF-B` -> `BRK.B`, `BF.B`.
6. The result must read `ROOT(.CLASS){0,2}`: ROOT a letter followed by up to nine letters or
   digits, each CLASS one or two letters or digits (`A`, `B`, `WS`). Anything else (index
   symbols such as `^GSPC`, `$SPX`, two separators in a row, a leading or trailing separator,
   punctuation, non-ASCII letters) raises ValueError naming the input.

`vendor_ticker(canonical, vendor)` goes the other way for request URLs (Tiingo writes
`BRK-B`: periods are not used in its REST paths, per its symbology appendix).
"""

from __future__ import annotations

import re
from functools import lru_cache

_FILE_EXTENSIONS = (".csv", ".txt")
_KAGGLE_SUFFIX = "_data"
_US_SUFFIX = ".US"
# Market suffixes of non-US listings (Stooq's country codes and common Yahoo exchange codes).
_FOREIGN_SUFFIXES = frozenset(
    {"UK", "DE", "JP", "HK", "HU", "PL", "TO", "AX", "SW", "MI", "AS", "NS", "BO", "SS", "SZ", "KS", "SA"}
)
_SEPARATORS = re.compile(r"[.\-_/ ]")
_CANONICAL = re.compile(r"[A-Z][A-Z0-9]{0,9}(?:\.[A-Z0-9]{1,2}){0,2}")


@lru_cache(maxsize=65536)
def canonical_ticker(raw: str) -> str:
    """The canonical name of a vendor's ticker or file name; ValueError on empty or garbage input."""
    if not isinstance(raw, str):
        raise ValueError(f"ticker must be a string, got {type(raw).__name__}: {raw!r}")
    # A cashtag (`$AAPL`, as social feeds write it) names the same ticker.
    name = raw.strip().strip("'\"").strip().removeprefix("$")
    if not name:
        raise ValueError(f"empty ticker name {raw!r}")
    if not name.isascii():
        raise ValueError(f"not a ticker: {raw!r} (non-ASCII characters)")
    lowered = name.lower()
    for ext in _FILE_EXTENSIONS:
        if lowered.endswith(ext):
            name, lowered = name[: -len(ext)], lowered[: -len(ext)]
            break
    if lowered.endswith(_KAGGLE_SUFFIX):
        name = name[: -len(_KAGGLE_SUFFIX)]
    name = name.upper()
    if name.endswith(_US_SUFFIX):
        name = name[: -len(_US_SUFFIX)]
    head, sep, tail = name.rpartition(".")
    if sep and head and tail == "US":
        raise ValueError(f"not a ticker: {raw!r} (repeated market suffix .US)")
    if sep and head and tail in _FOREIGN_SUFFIXES:
        raise ValueError(f"ticker {raw!r} is a non-US listing (market suffix .{tail}); only US tickers are supported")
    name = _SEPARATORS.sub(".", name)
    if not _CANONICAL.fullmatch(name):
        raise ValueError(
            f"not a ticker: {raw!r} (expected ROOT or ROOT.CLASS such as AAPL, BRK.B, brk-b.us.txt)"
        )
    return name


def vendor_ticker(ticker: str, vendor: str) -> str:
    """The spelling `vendor` expects in a request for canonical `ticker` (`tiingo`: `BRK.B` -> `BRK-B`)."""
    canonical = canonical_ticker(ticker)
    if vendor == "tiingo":
        return canonical.replace(".", "-")
    raise ValueError(f"unknown vendor {vendor!r} (known: tiingo)")
