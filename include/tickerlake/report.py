"""The daily signal report: Jinja2 HTML and text parts, charts, archived per session.

Both parts are rendered with autoescape on: every value from the data (a ticker, a rule name, a
run id) is HTML-escaped in the HTML part and in the text part alike (a text part is shown as HTML
by some clients and forwarded into HTML by others), and control characters are removed from every
value, so a value can neither add markup nor lines. Values are data, never templates: Jinja2 does
not evaluate `{{ }}` inside a value.

Sections: top N long and short signals with their intervals; changes since the last published
report; model health (alias champion and its version, backtest rank IC against the live rank IC
of gold.signal_outcomes, live interval coverage, the last promotion decision); data quality
(quarantined rows by rule for the session, rows received and rejected, universe coverage and the
tickers skipped for missing features); charts (live IC history, decile returns) as PNG files the
email carries inline; links to the Airflow run and the MLflow model version.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from tickerlake import lake
from tickerlake.calendar import next_session
from tickerlake.settings import Settings

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
SKIPPED_SHOWN = 20


def _no_control(value):
    """Every printed value: control characters (new lines included) removed from strings."""
    return _CONTROL.sub("", value.replace("\n", " ")) if isinstance(value, str) else value


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("tickerlake", "templates"),
        autoescape=True,  # both parts: see the module docstring
        undefined=StrictUndefined,
        finalize=_no_control,
    )


def render(context: dict) -> tuple[str, str]:
    """(html, text) for a report context."""
    env = _environment()
    return env.get_template("report.html.j2").render(**context), env.get_template("report.txt.j2").render(**context)


def _run_rows(settings: Settings, asof: dt.date, run_id: str) -> pd.DataFrame:
    if not lake.table_exists(settings, "gold.predictions_daily"):
        return pd.DataFrame()
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", asof)])
    return preds[preds["run_id"] == run_id].drop_duplicates("ticker", keep="last")


def _previous_published(settings: Settings, asof: dt.date) -> tuple[str | None, pd.DataFrame]:
    """The last published run before `asof` (the last report's signals)."""
    if not lake.table_exists(settings, "gold.predictions_daily"):
        return None, pd.DataFrame()
    before = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "<", asof)],
                             columns=["ticker", "asof_date", "signal", "run_id", "published"])
    before = before[before["published"].fillna(False).astype(bool)]
    if before.empty:
        return None, before
    last_day = before["asof_date"].max()
    rows = before[before["asof_date"] == last_day]
    rows = rows[rows["run_id"] == sorted(rows["run_id"])[-1]]
    return str(pd.Timestamp(last_day).date()), rows


def _changes(preds: pd.DataFrame, previous: pd.DataFrame) -> dict:
    out = {}
    for side in ("long", "short"):
        now = set(preds.loc[preds["signal"] == side, "ticker"]) if len(preds) else set()
        before = set(previous.loc[previous["signal"] == side, "ticker"]) if len(previous) else set()
        out[f"new_{side}"], out[f"left_{side}"] = sorted(now - before), sorted(before - now)
    return out


def _skipped(settings: Settings, asof: dt.date, run_id: str) -> list[dict]:
    if not lake.table_exists(settings, "gold.predictions_skipped"):
        return []
    rows = lake.read_table(settings, "gold.predictions_skipped", filters=[("asof_date", "=", asof)])
    rows = rows[rows["run_id"] == run_id].drop_duplicates("ticker", keep="last").sort_values("ticker")
    return rows[["ticker", "reason", "missing_features"]].to_dict("records")


def _quarantine_by_rule(settings: Settings, asof: dt.date) -> list[dict]:
    if not lake.table_exists(settings, "quarantine.bars_daily"):
        return []
    q = lake.read_table(settings, "quarantine.bars_daily", filters=[("date", "=", asof)],
                        columns=["ticker", "rule", "severity"])
    if q.empty:
        return []
    counts = q.groupby(["rule", "severity"]).agg(rows=("ticker", "size"), tickers=("ticker", "nunique"))
    return counts.reset_index().sort_values(["rows", "rule"], ascending=[False, True]).to_dict("records")


def _last_decision(settings: Settings) -> dict | None:
    if not lake.table_exists(settings, "ops.model_decisions"):
        return None
    decisions = lake.read_table(settings, "ops.model_decisions").sort_values("decided_on")
    if decisions.empty:
        return None
    last = decisions.iloc[-1]
    try:
        gates = json.loads(last["gates"])
        gates_text = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in gates.items())
    except (TypeError, ValueError):
        gates_text = str(last["gates"])
    return {"decided_on": str(pd.Timestamp(last["decided_on"]).date()), "candidate_version": str(last["candidate_version"]),
            "decision": str(last["decision"]), "gates": gates_text,
            "candidate_rank_ic": _float(last.get("candidate_rank_ic"))}


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(v) else v


def build_context(settings: Settings, asof: dt.date, run_id: str, airflow_run_id: str | None = None,
                  live: dict | None = None) -> dict:
    from tickerlake.outcomes import live_record

    preds = _run_rows(settings, asof, run_id)
    quality = {"rows_received": 0, "rows_rejected": 0}
    if lake.table_exists(settings, "ops.validation_runs"):
        runs = lake.read_table(settings, "ops.validation_runs", filters=[("interval_start", "=", asof)])
        if len(runs):
            quality = {k: int(runs.iloc[-1][k]) for k in quality}
    top_n = settings.report_top_n
    longs = preds[preds["signal"] == "long"].nsmallest(top_n, "rank") if len(preds) else preds
    shorts = preds[preds["signal"] == "short"].nlargest(top_n, "rank") if len(preds) else preds
    version = str(preds["model_version"].iloc[0]) if len(preds) else "-"
    backtest_ic, champion_alias_version = None, None
    if len(preds):
        from tickerlake.training import champion_version

        champion = champion_version(settings)
        if champion is not None:
            champion_alias_version = str(champion.version)
            backtest_ic = _float(champion.tags.get("backtest_rank_ic"))
    live = live if live is not None else live_record(settings, asof)
    live_version = live["by_version"].get(version)
    skipped = _skipped(settings, asof, run_id)
    previous_day, previous = _previous_published(settings, asof)
    universe = len(preds) + len(skipped)
    airflow_url = f"http://127.0.0.1:{settings.airflow_port}/dags/tickerlake_daily"
    if airflow_run_id:
        airflow_url += f"/runs/{quote(airflow_run_id, safe='')}"
    return {
        "asof_date": asof.isoformat(),
        "target_session": next_session(asof).isoformat(),
        "model_name": settings.model_name,
        "model_version": version,
        "champion_version": champion_alias_version,
        "features_version": int(preds["features_version"].iloc[0]) if len(preds) else "-",
        "run_id": run_id,
        "skipped_reason": None if len(preds) else "no predictions for this session (no champion model yet)",
        "longs": longs.to_dict("records"),
        "shorts": shorts.to_dict("records"),
        "coverage_pct": round(settings.interval_coverage * 100),
        "backtest_ic": backtest_ic,
        "live": live_version,
        "live_window": settings.live_ic_window,
        "live_versions": {k: v for k, v in live["by_version"].items() if k != version},
        "decision": _last_decision(settings),
        "quality": quality,
        "quarantine_by_rule": _quarantine_by_rule(settings, asof),
        "n_predicted": len(preds),
        "n_skipped": len(skipped),
        "skipped": skipped[:SKIPPED_SHOWN],
        "universe": universe,
        "universe_coverage": (len(preds) / universe) if universe else None,
        "previous_report": previous_day,
        "changes": _changes(preds, previous),
        "charts": [],
        "airflow_url": airflow_url,
        "mlflow_url": f"http://127.0.0.1:{settings.mlflow_port}/#/models/{quote(settings.model_name)}/versions/{quote(version)}",
    }


# --- charts -------------------------------------------------------------------------------------


def save_png(fig, path: Path) -> None:
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})  # no version stamp: same data, same bytes
    tmp.replace(path)


def draw_charts(folder: Path, live: dict, backtest_ic: float | None) -> list[dict]:
    """PNG charts (matplotlib's Agg canvas, no pyplot state): live IC history and decile returns."""
    from matplotlib.figure import Figure

    charts = []
    history = live["history"]
    if len(history) and history["rank_ic"].notna().any():
        fig = Figure(figsize=(7, 2.8))
        ax = fig.add_subplot()
        for version, g in history.groupby("model_version"):
            g = g.sort_values("asof_date")
            x = pd.to_datetime(g["asof_date"])
            ax.plot(x, g["rank_ic"], marker=".", linewidth=0.8, label=f"v{version} daily")
            ax.plot(x, g["rank_ic"].rolling(5, min_periods=1).mean(), linewidth=2, label=f"v{version} 5-session mean")
        if backtest_ic is not None:
            ax.axhline(backtest_ic, linestyle="--", color="grey", label="backtest (walk-forward, gate window)")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title("Live rank IC by session")
        ax.legend(fontsize=7, loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        path = folder / "live_ic.png"
        save_png(fig, path)
        charts.append({"cid": "live_ic", "path": str(path), "alt": "Live rank IC history"})
    deciles = live["deciles"]
    if len(deciles):
        fig = Figure(figsize=(7, 2.8))
        ax = fig.add_subplot()
        values = deciles["mean_return"].astype(float) * 100
        ax.bar(deciles["decile"].astype(int), values, color=["#a40e26" if v < 0 else "#116329" for v in values])
        ax.set_xticks(range(1, 11))
        ax.set_xlabel("predicted decile (10 = most long)")
        ax.set_ylabel("mean realised %")
        ax.set_title("Realised 1-session return by predicted decile")
        fig.tight_layout()
        path = folder / "deciles.png"
        save_png(fig, path)
        charts.append({"cid": "deciles", "path": str(path), "alt": "Decile returns"})
    return charts


def write_report(settings: Settings, asof: dt.date, run_id: str, airflow_run_id: str | None = None) -> dict:
    """Render and archive the report for `asof` under reports/<asof>/; returns the paths."""
    from tickerlake.outcomes import live_record

    folder = settings.reports_dir / asof.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    live = live_record(settings, asof)
    context = build_context(settings, asof, run_id, airflow_run_id, live=live)
    charts = draw_charts(folder, live, context["backtest_ic"])
    context["charts"] = [{"cid": c["cid"], "alt": c["alt"]} for c in charts]
    html, text = render(context)
    html_path, text_path = folder / "report.html", folder / "report.txt"
    _atomic_write(html_path, html)
    _atomic_write(text_path, text)
    _atomic_write(folder / "context.json", json.dumps(context, default=str, indent=1))
    subject = f"Tickerlake signals for {context['target_session']}: {len(context['longs'])} long, {len(context['shorts'])} short"
    return {"html": str(html_path), "text": str(text_path), "subject": subject, "predicted": context["n_predicted"],
            "skipped": context["n_skipped"], "images": [{"cid": c["cid"], "path": c["path"]} for c in charts],
            "asof": asof.isoformat(), "run_id": run_id}


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)
