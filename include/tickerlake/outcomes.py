"""The live record: each daily prediction scored against what happened (gold.signal_outcomes).

A prediction made at the close of `asof_date` is for `target_session`; its 1-session label
(gold.labels_daily.ret_1d of asof_date: open of the target session to the open of the session
after) is complete at the open of the session after its target session. So the run of session S
scores exactly the predictions with asof_date <= previous_session(previous_session(S)): a function
of S, whatever the labels table already holds.

For each scored session the run is the one the report used (the published run), else the one
that read the newest features (then the greatest run id): the same choice as the curated SQL
(include/sql/curated/todays_signals.sql). Each run re-scores the last SCORING_WINDOW sessions in
one replace of that asof_date interval, so a label restated by a late validation verdict is
re-scored, and a rerun writes the same rows.

Scores per row: realised return, hit (the sign of the prediction is the sign of what happened; a
zero return is no hit), inside the conformal interval. Per model version: rolling live rank IC
(Spearman of predicted and realised return across tickers, per session, averaged over the last
`live_ic_window` sessions), coverage (share inside the interval, against the nominal coverage)
and hit rate.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from tickerlake import lake
from tickerlake.calendar import previous_session, sessions_back
from tickerlake.settings import Settings

log = logging.getLogger(__name__)

OUTCOMES = "gold.signal_outcomes"
PREDICTIONS = "gold.predictions_daily"
LABELS = "gold.labels_daily"
LABEL = "ret_1d"
SCORING_WINDOW = 60  # sessions re-scored by each run (labels restated later than this stay as scored)

OUTCOME_COLUMNS = [
    "ticker", "asof_date", "target_session", "model_name", "model_version", "run_id", "published", "signal",
    "rank", "percentile", "pred_return", "pred_lo", "pred_hi", "realised_return", "hit", "inside_interval",
    "scored_through", "labels_version", "year",
]


def complete_through(session: dt.date) -> dt.date:
    """The last asof_date whose 1-session label is complete at the close of `session`."""
    return previous_session(previous_session(session))


def chosen_runs(preds: pd.DataFrame) -> pd.DataFrame:
    """One run per asof_date: the published one, else the newest features, else the greatest run id."""
    if preds.empty:
        return preds
    runs = (preds.assign(_pub=preds["published"].fillna(False).astype(bool))
            .groupby(["asof_date", "run_id"], as_index=False)
            .agg(_pub=("_pub", "max"), _fv=("features_version", "max")))
    runs = runs.sort_values(["asof_date", "_pub", "_fv", "run_id"], ascending=[True, False, False, False])
    best = runs.drop_duplicates("asof_date")[["asof_date", "run_id"]]
    return preds.merge(best, on=["asof_date", "run_id"])


def score(preds: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Join predictions (asof_date) to their complete 1-session labels (date) and score them."""
    lab = labels[["ticker", "date", LABEL]].rename(columns={"date": "asof_date", LABEL: "realised_return"})
    lab = lab[lab["realised_return"].notna()]
    out = preds.merge(lab, on=["ticker", "asof_date"], how="inner")
    realised = out["realised_return"].astype("float64")
    out["hit"] = (np.sign(out["pred_return"].astype("float64")) == np.sign(realised)) & (realised != 0)
    out["inside_interval"] = (realised >= out["pred_lo"]) & (realised <= out["pred_hi"])
    return out


def score_session(settings: Settings, session: dt.date) -> dict:
    """Score every prediction whose label is complete at `session`'s close, over the last
    SCORING_WINDOW sessions, into gold.signal_outcomes (one replace of that asof_date interval)."""
    hi = complete_through(session)
    lo = sessions_back(hi, SCORING_WINDOW - 1)
    if not (lake.table_exists(settings, PREDICTIONS) and lake.table_exists(settings, LABELS)):
        return {"rows": 0, "reason": "no predictions or no labels yet", "complete_through": hi.isoformat()}
    preds = lake.read_table(settings, PREDICTIONS, filters=[("asof_date", ">=", lo), ("asof_date", "<=", hi)])
    lv = lake.table_version(settings, LABELS)
    labels = lake.read_table(settings, LABELS, version=lv, filters=[("date", ">=", lo), ("date", "<=", hi)],
                             columns=["ticker", "date", LABEL])
    scored = score(chosen_runs(preds), labels)
    if scored.empty and not lake.table_exists(settings, OUTCOMES):
        return {"rows": 0, "reason": f"no prediction with a complete label in [{lo}, {hi}]",
                "complete_through": hi.isoformat()}
    scored = scored.assign(scored_through=session, labels_version=np.int64(lv),
                           year=pd.to_datetime(scored["asof_date"]).dt.year.astype("int32"))
    frame = scored.reindex(columns=OUTCOME_COLUMNS)
    version = lake.replace_interval(settings, OUTCOMES, _typed(frame), lo, hi, date_column="asof_date")
    log.info("scored %d predictions of [%s, %s] into %s v%d", len(frame), lo, hi, OUTCOMES, version)
    return {"rows": len(frame), "sessions": int(frame["asof_date"].nunique()), "start": lo.isoformat(),
            "complete_through": hi.isoformat(), "labels_version": lv, "outcomes_version": version}


def _typed(frame: pd.DataFrame):
    import pyarrow as pa

    schema = pa.schema([
        ("ticker", pa.string()), ("asof_date", pa.date32()), ("target_session", pa.date32()),
        ("model_name", pa.string()), ("model_version", pa.string()), ("run_id", pa.string()),
        ("published", pa.bool_()), ("signal", pa.string()), ("rank", pa.int32()), ("percentile", pa.float64()),
        ("pred_return", pa.float64()), ("pred_lo", pa.float64()), ("pred_hi", pa.float64()),
        ("realised_return", pa.float64()), ("hit", pa.bool_()), ("inside_interval", pa.bool_()),
        ("scored_through", pa.date32()), ("labels_version", pa.int64()), ("year", pa.int32()),
    ])
    frame = frame.copy()
    frame["model_version"] = frame["model_version"].astype(str)
    frame["published"] = frame["published"].fillna(False).astype(bool)
    for c in ("asof_date", "target_session", "scored_through"):
        frame[c] = [pd.Timestamp(v).date() for v in frame[c]]
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


# --- the record as the report and the promotion gate read it ------------------------------------


def read_outcomes(settings: Settings, through: dt.date) -> pd.DataFrame:
    if not lake.table_exists(settings, OUTCOMES):
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    return lake.read_table(settings, OUTCOMES, filters=[("asof_date", "<=", through)])


def ic_by_session(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per (model_version, asof_date): live rank IC, coverage, hit rate, names scored."""
    rows = []
    for (version, day), g in outcomes.groupby(["model_version", "asof_date"], sort=True):
        ic = np.nan
        if len(g) >= 3 and g["pred_return"].nunique() > 1 and g["realised_return"].nunique() > 1:
            ic = float(g["pred_return"].rank().corr(g["realised_return"].rank()))
        rows.append({"model_version": str(version), "asof_date": day, "rank_ic": ic,
                     "coverage": float(g["inside_interval"].mean()), "hit_rate": float(g["hit"].mean()),
                     "n": len(g)})
    return pd.DataFrame(rows, columns=["model_version", "asof_date", "rank_ic", "coverage", "hit_rate", "n"])


def live_record(settings: Settings, session: dt.date, window: int | None = None) -> dict:
    """The live record known at `session`'s close: per model version, rolling rank IC, coverage and
    hit rate over its last `window` scored sessions; the IC history; decile returns of the window."""
    window = window or settings.live_ic_window
    outcomes = read_outcomes(settings, complete_through(session))
    per_session = ic_by_session(outcomes)
    by_version = {}
    for version, g in per_session.groupby("model_version"):
        last = g.sort_values("asof_date").tail(window)
        names = outcomes[(outcomes["model_version"].astype(str) == version)
                         & outcomes["asof_date"].isin(set(last["asof_date"]))]
        by_version[version] = {
            "sessions": len(last), "rank_ic": _mean(last["rank_ic"]),
            "coverage": float(names["inside_interval"].mean()) if len(names) else None,
            "hit_rate": float(names["hit"].mean()) if len(names) else None,
            "first": str(last["asof_date"].min()), "last": str(last["asof_date"].max()),
        }
    history = per_session.sort_values("asof_date")
    recent_days = sorted(set(outcomes["asof_date"]))[-window:] if len(outcomes) else []
    recent = outcomes[outcomes["asof_date"].isin(set(recent_days))]
    return {"by_version": by_version, "history": history, "deciles": decile_returns(recent),
            "sessions_scored": int(outcomes["asof_date"].nunique()) if len(outcomes) else 0}


def decile_returns(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Mean realised return by predicted decile (1 = lowest percentile), over the given rows."""
    if outcomes.empty:
        return pd.DataFrame(columns=["decile", "mean_return", "n"])
    decile = np.clip(np.ceil(outcomes["percentile"].astype("float64") * 10), 1, 10).astype(int)
    out = outcomes.assign(decile=decile).groupby("decile")["realised_return"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "mean_return", "size": "n"})


def _mean(values: pd.Series) -> float | None:
    v = values.dropna()
    return float(v.mean()) if len(v) else None
