"""Issue 6's quality figures on the real `../shared/data/sp500_5yr`, reproducibly:
`python -m tickerlake.realdata_quality --out FILE.json [--test-sessions N]`.

The bars are landed and validated by the platform (bronze minus the rows a rejecting rule holds,
as silver is); features and labels come from the DuckDB reference engine, which has parity with the
Spark job to 1e-9 (`tests/integration/test_feature_parity.py`) and takes a minute here where the
Spark job would take hours. The walk-forward scores only sessions before the held-back year
(2017-02-08 .. 2018-02-07): that year is scored once, by the frozen configuration, and never by
this script, so re-running it cannot turn the held-back year into a tuning set.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd

from tickerlake import walkforward as wf
from tickerlake.bench import SHARED_SP500
from tickerlake.settings import load_settings

START, HELD_BACK_FROM = dt.date(2013, 2, 8), dt.date(2017, 2, 8)


def validated_bars(path: Path, home: Path) -> pd.DataFrame:
    """Bronze minus the rejected rows: what reaches silver (raw prices)."""
    from tickerlake import lake
    from tickerlake.ingest import land_bars, validate_interval

    settings = dataclasses.replace(load_settings(home=home), data_docs="off")
    end = dt.date(2018, 2, 7)
    logical = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    land_bars(settings, "csv", START, end, "quality", logical, path=path)
    validate_interval(settings, START, end, "quality")
    bronze = lake.read_table(settings, "bronze.bars_daily")
    rejected = lake.read_table(settings, "quarantine.bars_daily", columns=["ticker", "date", "severity"])
    rejected = rejected[rejected["severity"] == "reject"][["ticker", "date"]].drop_duplicates()
    kept = bronze.merge(rejected.assign(_rejected=True), on=["ticker", "date"], how="left")
    kept = kept[kept["_rejected"].isna()]
    return kept[["ticker", "date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    from tickerlake import reference_features
    from tickerlake.catalog import FEATURE_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--path", default=str(SHARED_SP500))
    parser.add_argument("--test-sessions", type=int, default=120, help="the frozen configuration used 120")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bars = validated_bars(Path(args.path), Path(tmp))
    feats = reference_features.features(bars)
    labels = reference_features.labels(bars)[["ticker", "date", "ret_1d"]]
    frame = feats.merge(labels, on=["ticker", "date"])[["ticker", "date", *FEATURE_NAMES, "ret_1d"]]
    frame = frame[frame["date"] < HELD_BACK_FROM]
    cfg = wf.WalkForwardConfig(test_sessions=args.test_sessions)
    oos = wf.walk_forward(frame, cfg)
    figures = wf.score_oos(oos, cfg)
    figures.update({"config_hash": cfg.config_hash(), "rows": len(frame), "bars": len(bars),
                    "oos_start": str(min(oos["date"])), "oos_end": str(max(oos["date"])),
                    "folds": int(oos["fold"].nunique())})
    Path(args.out).write_text(json.dumps(wf.finite(figures), indent=2, default=str) + "\n")
    keys = ("rank_ic_mean", "rank_ic_t", "icir_annual", "sharpe_net_5bp", "turnover", "coverage", "best_baseline")
    print(json.dumps({k: figures[k] for k in keys} | {"config_hash": figures["config_hash"][:8]}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
