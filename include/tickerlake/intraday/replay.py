"""`tickerlake replay`: 5-minute bars onto topic `market.bars.5m` through Kafka's idempotent producer.

Sources:

- `stooq`: the real bars in `../shared/data/stooq_5min_2026` (`<TICKER>,<PER>,<DATE>,<TIME>,...`).
  DATE/TIME is the bar's start on Stooq's clock, Europe/Warsaw: converted with that zone (never a
  fixed offset) to UTC, so a session reads 09:30-15:55 New York time also from 2026-03-09 to 03-27,
  when US daylight time had started and Europe's had not (14:30-20:55 on Stooq's clock).
- `synthetic`: bars of the synthetic market's tickers (`tickerlake.synthetic`), bridged from each
  session's synthetic daily open to its close, so intraday and daily data tell one story; early
  closes give fewer bars.

`speed` N replays at N times real speed (the gap between two bar times divided by N, overnight
gaps counted as one bar); 0 publishes as fast as the broker takes them. Pacing is the only
wall-clock read here: a replayer simulates a live feed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tickerlake.calendar import EXCHANGE_TZ, session_close_utc, sessions_between
from tickerlake.intraday.schema import BAR_MINUTES, encode_bar
from tickerlake.settings import PROJECT_ROOT, Settings
from tickerlake.tickers import canonical_ticker

log = logging.getLogger(__name__)

STOOQ_TZ = ZoneInfo("Europe/Warsaw")
STOOQ_DIR = PROJECT_ROOT.parent / "shared" / "data" / "stooq_5min_2026"
STOOQ_COLUMNS = ["<TICKER>", "<PER>", "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<VOL>", "<OPENINT>"]
BAR_COLUMNS = ["ticker", "ts", "open", "high", "low", "close", "volume"]
SESSION_OPEN = dt.time(9, 30)


class ReplayError(RuntimeError):
    pass


# --- sources ---------------------------------------------------------------------------------
def stooq_clock_to_utc(date: pd.Series, time_: pd.Series) -> pd.Series:
    """Stooq's DATE (YYYYMMDD) and TIME (HHMMSS) on the Europe/Warsaw clock -> aware UTC timestamps."""
    text = date.astype("int64").astype(str) + time_.astype("int64").astype(str).str.zfill(6)
    local = pd.to_datetime(text, format="%Y%m%d%H%M%S")
    # A 5-minute bar never starts at 02:00-03:00 local, where Warsaw's clock jumps: raise if one does.
    return local.dt.tz_localize(STOOQ_TZ, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")


def exchange_date(ts: pd.Series) -> pd.Series:
    """The New York session date of UTC bar times."""
    return ts.dt.tz_convert(EXCHANGE_TZ).dt.date


def read_stooq(path: str | Path | None = None, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Every bar of the Stooq folder in [start, end] (New York session dates): ticker, ts (UTC), OHLCV,
    sorted by ts then ticker."""
    folder = Path(path) if path else STOOQ_DIR
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ReplayError(f"no Stooq files (*.txt) in {folder}")
    frames = []
    for file in files:
        raw = pd.read_csv(file, dtype={"<TICKER>": str})
        if list(raw.columns) != STOOQ_COLUMNS:
            raise ReplayError(f"{file.name}: expected columns {','.join(STOOQ_COLUMNS)}, got {','.join(raw.columns)}")
        per = raw["<PER>"].astype(str).unique().tolist()
        if per != [str(BAR_MINUTES)]:
            raise ReplayError(f"{file.name}: period {per}, expected {BAR_MINUTES}-minute bars")
        tickers = raw["<TICKER>"].unique().tolist()
        if len(tickers) != 1:
            raise ReplayError(f"{file.name}: one ticker per file expected, got {tickers[:5]}")
        frame = pd.DataFrame({
            "ticker": canonical_ticker(tickers[0]),
            "ts": stooq_clock_to_utc(raw["<DATE>"], raw["<TIME>"]),
            "open": raw["<OPEN>"].astype(float), "high": raw["<HIGH>"].astype(float),
            "low": raw["<LOW>"].astype(float), "close": raw["<CLOSE>"].astype(float),
            "volume": raw["<VOL>"].astype(float),
        })
        frames.append(frame)
    bars = pd.concat(frames, ignore_index=True)
    day = exchange_date(bars["ts"])
    keep = np.ones(len(bars), dtype=bool)
    if start is not None:
        keep &= (day >= start).to_numpy()
    if end is not None:
        keep &= (day <= end).to_numpy()
    return bars[keep].sort_values(["ts", "ticker"], kind="stable").reset_index(drop=True)


def session_bar_starts(day: dt.date) -> list[dt.datetime]:
    """UTC starts of the session's 5-minute bars: 09:30 New York to the close (early closes included)."""
    first = dt.datetime.combine(day, SESSION_OPEN, tzinfo=EXCHANGE_TZ).astimezone(dt.UTC)
    close = session_close_utc(day)
    n = int((close - first).total_seconds() // (BAR_MINUTES * 60))
    return [first + dt.timedelta(minutes=BAR_MINUTES * i) for i in range(n)]


def _seed_for(seed: int, ticker: str, day: dt.date) -> int:
    digest = hashlib.blake2b(f"{seed}|{ticker}|{day.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def synthetic_bars(settings: Settings, start: dt.date, end: dt.date, tickers: int | None = None) -> pd.DataFrame:
    """5-minute bars for the synthetic market's sessions in [start, end]: each (ticker, session) path is a
    Brownian bridge from the daily synthetic open to its close (deterministic per seed, ticker and day),
    highs and lows cover the path, volume follows the usual U shape and sums to the daily volume."""
    from tickerlake.synthetic import bars_for_interval

    n = tickers or settings.universe_size
    daily = bars_for_interval(n, settings.history_start, start, end, settings.seed)
    if daily.empty:
        return pd.DataFrame(columns=BAR_COLUMNS)
    frames = []
    for day in sessions_between(start, end):
        starts = session_bar_starts(day)
        k = len(starts)
        shape = 1.0 + 1.5 * np.linspace(-1, 1, k) ** 2  # U-shaped volume through the day
        shape /= shape.sum()
        rows = daily[pd.to_datetime(daily["date"]).dt.date == day]
        for r in rows.itertuples(index=False):
            rng = np.random.default_rng(_seed_for(settings.seed, r.ticker, day))
            steps = rng.standard_normal(k) * 0.0015
            walk = np.concatenate([[0.0], np.cumsum(steps)])
            bridge = walk - np.linspace(0, 1, k + 1) * walk[-1]
            path = np.exp(np.log(r.open) + np.linspace(0, 1, k + 1) * np.log(r.close / r.open) + bridge)
            o, c = path[:-1], path[1:]
            wiggle = np.abs(rng.standard_normal(k)) * 0.0005
            frames.append(pd.DataFrame({
                "ticker": r.ticker, "ts": pd.to_datetime(starts, utc=True),
                "open": np.round(o, 4), "high": np.round(np.maximum(o, c) * (1 + wiggle), 4),
                "low": np.round(np.minimum(o, c) * (1 - wiggle), 4), "close": np.round(c, 4),
                "volume": np.round(float(r.volume) * shape),
            }))
    bars = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BAR_COLUMNS)
    return bars.sort_values(["ts", "ticker"], kind="stable").reset_index(drop=True)


# --- Kafka -------------------------------------------------------------------------------------
def producer_config(settings: Settings) -> dict:
    """Idempotent producer: retries never duplicate or reorder a partition's messages."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "client.id": "tickerlake-replay",
    }


def ensure_topic(settings: Settings, topic: str | None = None, partitions: int | None = None,
                 config: dict[str, str] | None = None) -> str:
    """Create the topic when missing. Kafka stamps each message with the time the broker appended
    it (LogAppendTime): the "reached Kafka" time of the latency figures."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    name = topic or settings.intraday_topic
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    if name in admin.list_topics(timeout=30).topics:
        return name
    conf = {"message.timestamp.type": "LogAppendTime", **(config or {})}
    new = NewTopic(name, num_partitions=partitions or settings.intraday_partitions, replication_factor=1, config=conf)
    try:
        admin.create_topics([new])[name].result(30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    return name


def publish(settings: Settings, messages: list[tuple[bytes, bytes]] | pd.DataFrame, topic: str | None = None,
            speed: float = 0.0, source: str = "synthetic", progress: Callable[[str], None] | None = None) -> dict:
    """Publish bars (a frame of BAR_COLUMNS, encoded here) or ready (key, value) pairs; every message
    must be acknowledged (acks=all) or this raises. Returns counts and timings."""
    from confluent_kafka import Producer

    name = ensure_topic(settings, topic)
    producer = Producer(producer_config(settings))
    failures: list[str] = []
    acked = 0

    def on_delivery(err, _msg) -> None:
        nonlocal acked
        if err is not None:
            failures.append(str(err))
        else:
            acked += 1

    groups = _message_groups(messages, source)
    started = time.perf_counter()  # wall-clock ok: pacing of the replay
    sent, last_ts, clock = 0, None, 0.0
    for ts, batch in groups:
        if speed > 0 and last_ts is not None:
            gap = min((ts - last_ts).total_seconds(), BAR_MINUTES * 60)
            clock += gap / speed
            delay = started + clock - time.perf_counter()  # wall-clock ok: pacing
            if delay > 0:
                producer.flush(delay)
                delay = started + clock - time.perf_counter()  # wall-clock ok: pacing
                if delay > 0:
                    time.sleep(delay)
        last_ts = ts
        for key, value in batch:
            while True:
                try:
                    producer.produce(name, key=key, value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent += 1
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started  # wall-clock ok: throughput figure
    if remaining or failures or acked != sent:
        raise ReplayError(f"{sent} sent, {acked} acknowledged, {remaining} unflushed, "
                          f"failures: {failures[:3]}")
    if progress:
        progress(f"published {sent:,} messages to {name} in {seconds:.1f}s")
    return {"topic": name, "messages": sent, "seconds": round(seconds, 3),
            "messages_per_s": round(sent / seconds) if seconds > 0 else None}


def _message_groups(messages, source: str):
    """(bar time or None, [(key, value)]) in publishing order."""
    if not isinstance(messages, pd.DataFrame):
        yield None, list(messages)
        return
    if messages.empty:
        return
    for ts, group in messages.groupby("ts", sort=True):
        batch = [
            (t.encode(), encode_bar(t, when, float(o), float(h), float(lo), float(c), float(v), source))
            for t, when, o, h, lo, c, v in zip(group["ticker"], group["ts"], group["open"],
                                               group["high"], group["low"], group["close"], group["volume"],
                                               strict=True)
        ]
        yield ts, batch


def replay(settings: Settings, source: str, path: str | None = None, start: dt.date | None = None,
           end: dt.date | None = None, speed: float = 0.0, topic: str | None = None,
           progress: Callable[[str], None] | None = None) -> dict:
    """`tickerlake replay`: read the source's bars for [start, end] and publish them."""
    if speed < 0:
        raise ValueError("--speed must be 0 (as fast as possible) or positive")
    if source == "stooq":
        bars = read_stooq(path, start, end)
    elif source == "synthetic":
        if start is None or end is None:
            raise ValueError("the synthetic source needs --start and --end")
        bars = synthetic_bars(settings, start, end)
    else:
        raise ValueError(f"unknown source {source!r} (stooq, synthetic)")
    if bars.empty:
        raise ReplayError(f"no {source} bars between {start} and {end}")
    out = publish(settings, bars, topic=topic, speed=speed, source=source, progress=progress)
    out.update({"source": source, "tickers": int(bars["ticker"].nunique()),
                "first_ts": bars["ts"].min().isoformat(), "last_ts": bars["ts"].max().isoformat()})
    return out
