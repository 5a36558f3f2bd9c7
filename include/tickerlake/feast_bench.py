"""Feast benchmark (`tickerlake bench feast --out FILE.json [--tiers ...]`): materialization into the
online store and online reads, Tickerlake's online store against stock Feast in the same run.

Tiers (tickers x sessions of gold.features_daily): 500x1d, 500x1y, 5000x1d by default, 5000x1y on
request (its 1.26M rows x 194 features are about 2 GB in memory while the table is written). Per tier, in a fresh state folder under `<home>/bench/feast_<tier>` (removed afterwards): a
features table of every catalogue feature (seeded random values, 2% nulls) for the tier's last
sessions and its market-wide macro table (one row per session), the repo applied twice: to the platform's store (feature_repo/feature_store.yaml:
tickerlake.feast_online, one row per ticker, batched materialization) and to a stock one (the same
definitions, Feast's SQLite online store, its own registry). Then:

- materialize: the same interval of the model's three views into each, timed on a FeatureStore at hand:
  `feast_store.materialize_store` (what the daily DAG's materialize_interval runs), which on the stock
  store runs stock `FeatureStore.materialize` for the per-ticker views. Both load, per ticker, the interval's latest row;
  entity rows/s counts the interval's rows; `vs_stock` = ours / stock (goal >= 10);
- answers: `get_online_features` of every served feature for up to 500 tickers (plus an unknown one and
  a repeated one) from both stores, the whole responses compared (values, statuses, event times): they
  must be identical;
- online reads (tiers with `reads`, the default: the one-year tiers leave the same one row per ticker in
  the store, so they only materialize): `calls` calls for 1 random ticker and for 500 random tickers on
  one warm store, with the process's startup heap frozen as the feature server runs
  (tickerlake.feast_serve; ours for 500 tickers also before the freeze): p50, p99, max in ms; stock is measured the same way with at most REFERENCE_CALLS
  calls of 500 tickers (about a second each).

Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickerlake.bench import report_header, write_report
from tickerlake.feast_serve import freeze_startup_heap
from tickerlake.settings import Settings

TIERS = {
    "500x1d": {"tickers": 500, "sessions": 1},
    "500x1y": {"tickers": 500, "sessions": 252, "reads": False},
    "5000x1d": {"tickers": 5000, "sessions": 1},
    "5000x1y": {"tickers": 5000, "sessions": 252, "reads": False},
}
DEFAULT_TIERS = ["500x1d", "500x1y", "5000x1d"]
LAST_SESSION = dt.date(2025, 12, 31)
CALLS = 1000
REFERENCE_CALLS = 100
UNFROZEN_CALLS = 300
MANY = 500
GOALS = {"materialize_vs_stock": 10.0, "p99_1_ticker_ms": 3.0, "p99_500_tickers_ms": 100.0}
NULL_SHARE = 0.02


def features_frame(tickers: int, sessions: list[dt.date], seed: int = 7):
    """gold.features_daily rows for `tickers` synthetic names over `sessions`, every catalogue feature."""
    import numpy as np
    import pandas as pd

    from tickerlake.calendar import session_close_utc
    from tickerlake.catalog import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    n = tickers * len(sessions)
    values = rng.standard_normal((n, len(FEATURE_NAMES)))
    values[rng.random(values.shape) < NULL_SHARE] = np.nan
    frame = pd.DataFrame(values, columns=list(FEATURE_NAMES))
    names = np.array([f"F{i:05d}" for i in range(tickers)])
    frame.insert(0, "ticker", np.tile(names, len(sessions)))
    days = np.repeat(np.array(sessions, dtype=object), tickers)
    frame.insert(1, "date", days)
    closes = {d: session_close_utc(d) for d in sessions}
    frame["event_ts"] = pd.to_datetime(pd.Series(days).map(closes), utc=True)
    frame["year"] = pd.Series([d.year for d in days], dtype="int32")
    return frame


def bench_feast(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                calls: int = CALLS, specs: dict[str, dict] | None = None,
                progress: Callable[[str], None] = print) -> dict:
    known = {**TIERS, **(specs or {})}
    report = report_header("feast", goals=GOALS, calls=calls)
    for name in tiers or DEFAULT_TIERS:
        if name not in known:
            raise ValueError(f"no tier {name!r} (known: {sorted(known)})")
        home = Path(settings.home) / "bench" / f"feast_{name}"
        shutil.rmtree(home, ignore_errors=True)
        try:
            report["tiers"][name] = run_tier(settings, home, name, known[name], calls, progress)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    out = Path(out_path)
    write_report(out, report)
    progress(f"wrote {out}")
    return report


def run_tier(settings: Settings, home: Path, name: str, spec: dict, calls: int,
             progress: Callable[[str], None]) -> dict:
    from tickerlake import lake
    from tickerlake.altdata.macro import macro_daily_schema
    from tickerlake.calendar import session_close_utc, sessions_back, sessions_between
    from tickerlake.catalog import FEATURE_NAMES, MACRO_FEATURE_NAMES
    from tickerlake.feast_store import (
        DAILY_FEATURE_VIEWS,
        FEATURES_TABLE,
        MACRO_TABLE,
        apply,
        feature_refs,
        feature_store,
        materialize_store,
    )

    s = dataclasses.replace(settings, home=home, lake_root=f"file://{home / 'lake'}")
    sessions = sessions_between(sessions_back(LAST_SESSION, spec["sessions"] - 1), LAST_SESSION)
    frame = features_frame(spec["tickers"], sessions)
    lake.replace_interval(s, FEATURES_TABLE, frame, sessions[0], sessions[-1])
    # the market-wide view's table: one row per session (the first ticker's macro values)
    macro = frame.drop_duplicates("date")[["date", "event_ts", *MACRO_FEATURE_NAMES, "year"]]
    lake.replace_interval(s, MACRO_TABLE, macro[macro_daily_schema().names], sessions[0], sessions[-1])
    apply(s)
    ours = feature_store(s)
    stock = stock_store(s, ours)
    figures: dict = {"tickers": spec["tickers"], "sessions": len(sessions), "entity_rows": len(frame),
                     "features": len(frame.columns) - 4, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    begin = session_close_utc(sessions[0])
    finish = session_close_utc(sessions[-1]) + dt.timedelta(microseconds=1)

    progress(f"{name}: materializing {len(frame):,} entity rows, ours then stock ...")
    # Both timed on a FeatureStore at hand, the model's three views. On the stock store
    # materialize_store runs Feast's own materialize for the per-ticker views and writes the
    # market-wide view's one row itself (Feast 0.67 cannot load a view without entity).
    views = list(DAILY_FEATURE_VIEWS)
    t0 = time.perf_counter()
    materialize_store(ours, begin, finish, views)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    materialize_store(stock, begin, finish, views)
    stock_s = time.perf_counter() - t0
    figures["materialize"] = {
        # seconds to the microsecond: a tiny tier takes ~0.04 s, where milliseconds are a 1% error
        "ours_s": round(ours_s, 6), "ours_entity_rows_per_s": round(len(frame) / ours_s, 1),
        "stock_s": round(stock_s, 6), "stock_entity_rows_per_s": round(len(frame) / stock_s, 1),
        "vs_stock": round(stock_s / ours_s, 4),
        "ours_db_bytes": _db_bytes(s.feast_dir / "online.db"),
        "stock_db_bytes": _db_bytes(s.feast_dir / "stock_online.db"),
    }
    figures["goal_materialize_10x_stock"] = figures["materialize"]["vs_stock"] >= GOALS["materialize_vs_stock"]
    m = figures["materialize"]
    progress(f"{name}: ours {m['ours_entity_rows_per_s']:,} entity rows/s, stock {m['stock_entity_rows_per_s']:,} "
             f"({m['vs_stock']}x)")

    refs = feature_refs(FEATURE_NAMES)  # every feature the model is served, from its three views
    tickers = frame.loc[frame["date"] == sessions[-1], "ticker"].tolist()
    figures["answers_identical_to_stock"] = _same_answers(ours, stock, refs, tickers[:MANY])
    if not spec.get("reads", True):
        figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        return figures
    # Reads as the feature server serves them, its startup heap frozen (tickerlake.feast_serve), for
    # both stores alike; ours for 500 tickers is measured before the freeze too, for the record.
    if len(tickers) >= MANY:
        figures["online_500_tickers_ms_heap_not_frozen"] = _latencies(ours, refs, tickers, MANY,
                                                                      min(calls, UNFROZEN_CALLS))
    figures["frozen_objects"] = freeze_startup_heap()
    try:
        _measure_reads(figures, ours, stock, refs, tickers, calls, name, progress)
    finally:
        gc.unfreeze()
    figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def _measure_reads(figures: dict, ours: Any, stock: Any, refs: list[str], tickers: list[str], calls: int, name: str,
                   progress: Callable[[str], None]) -> None:
    figures["online_1_ticker_ms"] = _latencies(ours, refs, tickers, 1, calls)
    figures["stock_online_1_ticker_ms"] = _latencies(stock, refs, tickers, 1, calls)
    one = figures["online_1_ticker_ms"]
    figures["goal_p99_1_ticker"] = one["p99"] <= GOALS["p99_1_ticker_ms"]
    line = f"{name}: get_online_features p99, 1 ticker: ours {one['p99']} ms, stock {figures['stock_online_1_ticker_ms']['p99']} ms"
    if len(tickers) >= MANY:
        figures["online_500_tickers_ms"] = _latencies(ours, refs, tickers, MANY, calls)
        figures["stock_online_500_tickers_ms"] = _latencies(stock, refs, tickers, MANY, min(calls, REFERENCE_CALLS))
        five = figures["online_500_tickers_ms"]
        figures["goal_p99_500_tickers"] = five["p99"] <= GOALS["p99_500_tickers_ms"]
        line += f"; 500 tickers: ours {five['p99']} ms, stock {figures['stock_online_500_tickers_ms']['p99']} ms"
    progress(line + f"; answers identical: {figures['answers_identical_to_stock']}")


def stock_store(s: Settings, ours: Any) -> Any:
    """A FeatureStore with the repo's definitions on Feast's stock SQLite online store (its own registry
    and database under the tier's feast folder), the reference the platform's store is measured against."""
    from feast import FeatureStore, RepoConfig

    from tickerlake.feast_store import load_definitions

    config = RepoConfig(
        project=ours.config.project, provider="local",
        registry={"registry_type": "file", "path": str(s.feast_dir / "stock_registry.db")},
        online_store={"type": "sqlite", "path": str(s.feast_dir / "stock_online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=ours.config.entity_key_serialization_version,
        repo_path=str(s.feast_repo),
    )
    stock = FeatureStore(config=config)
    stock.apply(load_definitions(s).objects())
    return stock


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _same_answers(ours: Any, stock: Any, refs: list[str], tickers: list[str]) -> bool:
    # an unknown ticker and a repeated one too: NOT_FOUND rows, and one read fanned out to two rows
    rows = [{"ticker": t} for t in tickers] + [{"ticker": "NOT.A.TICKER"}, {"ticker": tickers[0]}]
    a = ours.get_online_features(features=refs, entity_rows=rows).proto
    b = stock.get_online_features(features=refs, entity_rows=rows).proto
    return a.metadata == b.metadata and list(a.results) == list(b.results)


def _latencies(store, refs: list[str], tickers: list[str], size: int, calls: int) -> dict:
    """`calls` get_online_features calls for `size` random tickers each: p50, p99, max in ms."""
    import numpy as np

    rng = np.random.default_rng(11)
    times = []
    for _ in range(calls):
        picked = rng.choice(len(tickers), size=size, replace=False)
        rows = [{"ticker": tickers[i]} for i in picked]
        t0 = time.perf_counter()
        store.get_online_features(features=refs, entity_rows=rows)
        times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times)
    return {"calls": calls, "p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3),
            "max": round(float(ms.max()), 3)}
