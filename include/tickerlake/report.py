"""The daily signal report: Jinja2 (autoescaped) HTML and text, archived per session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tickerlake import lake
from tickerlake.calendar import next_session
from tickerlake.settings import Settings
from tickerlake.training import INTERVAL_COVERAGE


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("tickerlake", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=StrictUndefined,
    )


def render(context: dict) -> tuple[str, str]:
    """(html, text) for a report context."""
    env = _environment()
    return env.get_template("report.html.j2").render(**context), env.get_template("report.txt.j2").render(**context)


def build_context(settings: Settings, asof: dt.date, run_id: str, airflow_run_id: str | None = None) -> dict:
    preds = pd.DataFrame()
    if lake.table_exists(settings, "gold.predictions_daily"):
        preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", asof)])
        preds = preds[preds["run_id"] == run_id]
    quality = {"rows_received": 0, "rows_rejected": 0}
    if lake.table_exists(settings, "ops.validation_runs"):
        runs = lake.read_table(settings, "ops.validation_runs", filters=[("interval_start", "=", asof)])
        if len(runs):
            quality = {k: int(runs.iloc[-1][k]) for k in quality}
    decision, model_ic = None, None
    if lake.table_exists(settings, "ops.model_decisions"):
        decisions = lake.read_table(settings, "ops.model_decisions").sort_values("decided_on")
        if len(decisions):
            last = decisions.iloc[-1]
            decision = f"{last['decided_on']}: v{last['candidate_version']} {last['decision']} ({last['gates']})"
    top_n = settings.report_top_n
    longs = preds[preds["signal"] == "long"].nsmallest(top_n, "rank") if len(preds) else preds
    shorts = preds[preds["signal"] == "short"].nlargest(top_n, "rank") if len(preds) else preds
    version = str(preds["model_version"].iloc[0]) if len(preds) else "-"
    if len(preds):
        from tickerlake.training import champion_version

        champion = champion_version(settings)
        if champion is not None:
            model_ic = float(champion.tags.get("holdout_rank_ic", "nan")) if "holdout_rank_ic" in champion.tags else None
    airflow_url = f"http://127.0.0.1:{settings.airflow_port}/dags/tickerlake_daily"
    if airflow_run_id:
        airflow_url += f"/runs/{quote(airflow_run_id, safe='')}"
    return {
        "asof_date": asof.isoformat(),
        "target_session": next_session(asof).isoformat(),
        "model_name": settings.model_name,
        "model_version": version,
        "features_version": int(preds["features_version"].iloc[0]) if len(preds) else "-",
        "run_id": run_id,
        "skipped_reason": None if len(preds) else "no predictions for this session (no champion model yet)",
        "longs": longs.to_dict("records"),
        "shorts": shorts.to_dict("records"),
        "coverage_pct": int(INTERVAL_COVERAGE * 100),
        "model_ic": model_ic,
        "decision": decision,
        "quality": quality,
        "n_predicted": len(preds),
        "airflow_url": airflow_url,
        "mlflow_url": f"http://127.0.0.1:{settings.mlflow_port}/#/models/{settings.model_name}/versions/{version}",
    }


def write_report(settings: Settings, asof: dt.date, run_id: str, airflow_run_id: str | None = None) -> dict:
    """Render and archive the report for `asof` under reports/<asof>/; returns the paths."""
    context = build_context(settings, asof, run_id, airflow_run_id)
    html, text = render(context)
    folder = settings.reports_dir / asof.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    html_path, text_path = folder / "report.html", folder / "report.txt"
    _atomic_write(html_path, html)
    _atomic_write(text_path, text)
    _atomic_write(folder / "context.json", json.dumps(context, default=str, indent=1))
    subject = f"Tickerlake signals for {context['target_session']}: {len(context['longs'])} long, {len(context['shorts'])} short"
    return {"html": str(html_path), "text": str(text_path), "subject": subject, "predicted": context["n_predicted"]}


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)
