"""Feast benchmark (`tickerlake bench feast --out FILE.json [--tiers ...]`): materialization into the
online store and online reads, on the platform's own path.

Tiers (tickers x sessions of gold.features_daily): 500x1d, 500x1y, 5000x1d by default; 5000x1y on
request (at the ~300 entity-rows/s stock Feast writes into SQLite here, about 70 minutes). Per tier, in a
fresh state folder under `<home>/bench/feast_<tier>` (removed afterwards): `feast apply` of the repo,
then a features table of every catalogue feature (seeded random values, 2% nulls; the values do not
change the cost) for the tier's last sessions, and:

- materialize: `feast_store.materialize_interval` (what the daily DAG runs) over the tier's sessions:
  seconds, entity rows per second, the online database's size. The platform has no write path of its
  own yet: this *is* stock `FeatureStore.materialize` into Feast's SQLite store, so the issue's 10x goal
  against stock is reported as not met rather than measured against itself;
- online reads (tiers with `reads`, the default: the one-year tiers leave the same one row per ticker in
  the store as the one-session tiers, so they only materialize): `FeatureStore.get_online_features` of
  every served daily feature on one warm store, `calls` calls for 1 random ticker and for 500 random
  tickers: p50, p99, max in milliseconds;
- answers: the 500-ticker answer against the table's last session read straight from Delta (every
  value equal, nulls in the same places), so a fast wrong answer cannot pass.

Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tickerlake.bench import report_header
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    progress(f"wrote {out}")
    return report


def run_tier(settings: Settings, home: Path, name: str, spec: dict, calls: int,
             progress: Callable[[str], None]) -> dict:
    from tickerlake import lake
    from tickerlake.calendar import session_close_utc, sessions_back, sessions_between
    from tickerlake.feast_store import (
        FEATURES_TABLE,
        FEATURES_VIEW,
        apply,
        feature_store,
        materialize_interval,
    )

    s = dataclasses.replace(settings, home=home, lake_root=f"file://{home / 'lake'}")
    sessions = sessions_between(sessions_back(LAST_SESSION, spec["sessions"] - 1), LAST_SESSION)
    frame = features_frame(spec["tickers"], sessions)
    lake.replace_interval(s, FEATURES_TABLE, frame, sessions[0], sessions[-1])
    apply(s)
    figures: dict = {"tickers": spec["tickers"], "sessions": len(sessions), "entity_rows": len(frame),
                     "features": len(frame.columns) - 4, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}

    progress(f"{name}: materializing {len(frame):,} entity rows ...")
    t0 = time.perf_counter()
    materialize_interval(s, session_close_utc(sessions[0]), session_close_utc(sessions[-1]) + dt.timedelta(microseconds=1),
                         [FEATURES_VIEW])
    seconds = time.perf_counter() - t0
    figures["materialize"] = {
        "seconds": round(seconds, 2), "entity_rows_per_s": round(len(frame) / seconds, 1),
        "online_db_bytes": (s.feast_dir / "online.db").stat().st_size,
        "path": "stock FeatureStore.materialize into Feast's SQLite online store (no write path of our own)",
        "goal_10x_stock": False,
    }
    progress(f"{name}: {figures['materialize']['entity_rows_per_s']:,} entity rows/s ({seconds:.1f}s)")
    if not spec.get("reads", True):
        figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        return figures

    store = feature_store(s)
    refs = [f"{FEATURES_VIEW}:{f}" for f in frame.columns[2:-2]]
    latest = frame[frame["date"] == sessions[-1]].reset_index(drop=True)
    many = latest.iloc[: min(MANY, len(latest))]
    figures["answers_match_table"] = _answers_match(store, refs, many)
    figures["online_1_ticker_ms"] = _latencies(store, refs, latest["ticker"].tolist(), 1, calls)
    if len(latest) >= MANY:
        figures["online_500_tickers_ms"] = _latencies(store, refs, latest["ticker"].tolist(), MANY, calls)
    one, five = figures["online_1_ticker_ms"], figures.get("online_500_tickers_ms")
    figures["goal_p99_1_ticker"] = one["p99"] <= GOALS["p99_1_ticker_ms"]
    if five:
        figures["goal_p99_500_tickers"] = five["p99"] <= GOALS["p99_500_tickers_ms"]
    progress(f"{name}: get_online_features p99 1 ticker {one['p99']} ms"
             + (f", 500 tickers {five['p99']} ms" if five else "") + f"; answers match: {figures['answers_match_table']}")
    figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def _answers_match(store, refs: list[str], expected) -> bool:
    import numpy as np

    got = store.get_online_features(features=refs, entity_rows=[{"ticker": t} for t in expected["ticker"]]).to_df()
    names = [r.split(":", 1)[1] for r in refs]
    if got["ticker"].tolist() != expected["ticker"].tolist():
        return False
    a = got[names].to_numpy(dtype=float)
    b = expected[names].to_numpy(dtype=float)
    return bool(np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(a[~np.isnan(a)], b[~np.isnan(b)]))


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
