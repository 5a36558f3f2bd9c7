"""The message contract of topic `market.bars.5m`: versioned JSON, schema in `bar_5m.v1.schema.json`.

One message per bar, keyed by the canonical ticker; the value is a JSON object:

    {"schema": "tickerlake.bar_5m", "version": 1, "ticker": "AAPL", "ts": "2026-03-10T13:30:00Z",
     "open": 257.645, "high": 259.9, "low": 256.95, "close": 259.395, "volume": 560856, "source": "stooq"}

`ts` is the bar's start in UTC. A message that breaks the contract is a dead letter with one rule:

- `bad_json`: not UTF-8 JSON (NaN/Infinity literals and duplicate keys included);
- `wrong_schema`: not an object, another schema name or version, a field missing or of another
  JSON type (a number written as a string too), a ticker that is not canonical, a `ts` that is not
  `YYYY-MM-DDTHH:MM:SSZ` in the years 1970-2099;
- `negative_price`: open, high, low or close below zero;
- `negative_volume`: volume below zero;
- `high_below_low`: high below low.

`classify` is the reference reading in Python (the plain-consumer benchmark, tests); the Spark
drain applies the same rules in the JVM (`tickerlake.intraday.drain.parse_messages`) and the tests
hold both to the same answers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_NAME = "tickerlake.bar_5m"
SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("bar_5m.v1.schema.json")
PRICE_FIELDS = ("open", "high", "low", "close")
NUMBER_FIELDS = (*PRICE_FIELDS, "volume")
STRING_FIELDS = ("ticker", "ts", "source")
TICKER_PATTERN = r"^[A-Z][A-Z0-9]{0,9}(\.[A-Z0-9]{1,2}){0,2}$"
# years 1970-2099: a bar outside them is a typo, and pandas (readers, the suite) holds no year past 2262
TS_PATTERN = r"^(19[7-9][0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
RULES = ("bad_json", "wrong_schema", "negative_price", "negative_volume", "high_below_low")
BAR_MINUTES = 5

_TICKER = re.compile(TICKER_PATTERN)
_TS = re.compile(TS_PATTERN)


@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def format_ts(ts: dt.datetime) -> str:
    """An aware datetime as the contract's UTC text (`2026-03-10T13:30:00Z`)."""
    if ts.tzinfo is None:
        raise ValueError("bar timestamps must be timezone-aware")
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_bar(ticker: str, ts: dt.datetime, open_: float, high: float, low: float, close: float,
               volume: float, source: str) -> bytes:
    """One message value (compact UTF-8 JSON)."""
    body = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "ticker": ticker, "ts": format_ts(ts),
            "open": open_, "high": high, "low": low, "close": close, "volume": volume, "source": source}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def classify(value: bytes | None) -> tuple[str | None, dict[str, Any] | None]:
    """(rule, None) for a dead letter, (None, bar) for a good message; `bar` has `ts` as aware UTC."""
    if value is None:
        return "bad_json", None
    try:
        doc = json.loads(value.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        return "bad_json", None
    if not isinstance(doc, dict):
        return "wrong_schema", None
    version = doc.get("version")
    if doc.get("schema") != SCHEMA_NAME or isinstance(version, bool) or not isinstance(version, int) \
            or version != SCHEMA_VERSION:
        return "wrong_schema", None
    if not all(isinstance(doc.get(f), str) for f in STRING_FIELDS) or not all(
            _is_number(doc.get(f)) for f in NUMBER_FIELDS):
        return "wrong_schema", None
    if not _TICKER.match(doc["ticker"]) or not _TS.match(doc["ts"]):
        return "wrong_schema", None
    try:
        ts = dt.datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "wrong_schema", None
    if any(doc[f] < 0 for f in PRICE_FIELDS):
        return "negative_price", None
    if doc["volume"] < 0:
        return "negative_volume", None
    if doc["high"] < doc["low"]:
        return "high_below_low", None
    bar = {f: doc[f] for f in (*STRING_FIELDS, *NUMBER_FIELDS)}
    bar["ts"] = ts
    return None, bar
