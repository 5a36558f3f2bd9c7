"""The reviewer's case of one training run, logged to MLflow: a quant sees it on the run and model
version pages, no notebook needed.

On the run: parameters (the configuration, its hash), metrics in one batch (walk-forward and
promotion-window figures of the model and every baseline, the calibration, timings), the daily
out-of-sample rank IC as a metric series, and artifacts under `case/`: feature importance, rank
IC by session and by year, decile returns, net equity curves against the baselines, interval
coverage by fold, the full figures as JSON and a one-page summary (`case.md`, also the run's
note and the model version's description). The model is logged with signature and input example
and registered; the version carries the lineage tags and its calibration.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tickerlake import evaluation as ev
from tickerlake import walkforward as wf
from tickerlake.settings import Settings

MAX_BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics per call


def serving_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it. Given, not inferred: MLflow's
    inference imports the model in a subprocess (about 15 s here) to find the same ones."""
    import importlib.metadata as md

    return [f"{name}=={md.version(name)}" for name in ("lightgbm", "numpy", "pandas")]


def flat_metrics(figures: dict, prefix: str) -> dict[str, float]:
    """The numeric figures (model, then `baseline_<name>_`) as MLflow metric names."""
    out: dict[str, float] = {}
    for key, value in figures.items():
        if key == "baselines":
            for name, sub in value.items():
                out.update(flat_metrics({k: v for k, v in sub.items() if k != "baselines"}, f"{prefix}baseline_{name}_"))
        elif isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
        elif isinstance(value, int | float | np.floating | np.integer) and np.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def summary_markdown(cfg: wf.WalkForwardConfig, figures: dict, window_figures: dict, calib: dict, tags: dict) -> str:
    """One page: what was trained on what, and the model against every baseline."""
    def row(name: str, f: dict, w: dict) -> str:
        def num(x, fmt):
            return "–" if x is None or not np.isfinite(x) else format(x, fmt)
        return (f"| {name} | {num(f['rank_ic_mean'], '.4f')} | {num(f['rank_ic_t'], '.2f')} | "
                f"{num(f['icir_annual'], '.2f')} | {num(f.get('sharpe_net_5bp'), '.2f')} | "
                f"{num(f.get('turnover'), '.2f')} | {num(w['rank_ic_mean'], '.4f')} |")

    lines = [
        f"**Label** {cfg.label} (per-session rank), **config** `{tags['config_hash'][:12]}`, "
        f"**features** {tags['feature_list_hash'][:12]} (Delta v{tags['features_delta_version']}), "
        f"**labels** Delta v{tags['labels_delta_version']}, **data** {tags['train_start']} .. {tags['train_end']}, "
        f"**out of sample** {tags['oos_start']} .. {tags['oos_end']}, **commit** {tags['git_commit'][:12]}.",
        "",
        f"Walk-forward: {'rolling ' + str(cfg.train_sessions) if cfg.train_sessions else 'expanding'} train window, "
        f"{cfg.test_sessions}-session test blocks, purge {cfg.label_horizon + 1} sessions + embargo {cfg.embargo}, "
        f"early stopping on a purged {cfg.validation_sessions}-session block.",
        "",
        "| scorer | rank IC | NW t | ICIR (annual) | L/S Sharpe net 5 bp | turnover | rank IC, gate window |",
        "|---|---|---|---|---|---|---|",
        row("**model**", figures, window_figures),
    ]
    for name, f in figures["baselines"].items():
        w = window_figures["baselines"].get(name, {"rank_ic_mean": None})
        lines.append(row(name, f, w))
    lines += [
        "",
        f"Interval coverage {_pct(figures.get('coverage'))} over {figures.get('coverage_sessions')} sessions "
        f"(target {_pct(cfg.coverage)}); gate window: {_pct(window_figures.get('coverage'))}. "
        f"pred_return = {calib['calib_a']:.3g} + {calib['calib_b']:.3g} x score; interval "
        f"[{calib['interval_lo']:+.4f}, {calib['interval_hi']:+.4f}] around it.",
        "",
        "Charts and tables: the run's artifacts under `case/`.",
    ]
    return "\n".join(lines)


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def write_case(folder: Path, cfg: wf.WalkForwardConfig, oos: pd.DataFrame, figures: dict, booster,
               summary: str, series: dict[str, pd.DataFrame]) -> list[Path]:
    """The case's files (tables as CSV, charts as PNG) into `folder`."""
    from matplotlib.figure import Figure

    from tickerlake.report import save_png

    folder.mkdir(parents=True, exist_ok=True)
    ic, net = series["rank_ic"].sort_index(), series["net_5bp"].sort_index()
    ic.rename_axis("date").to_csv(folder / "rank_ic_by_session.csv")
    by_year = pd.DataFrame({name: ev.by_year(ic[name], cfg.label_horizon)["mean"] for name in ic.columns})
    by_year.to_csv(folder / "rank_ic_by_year.csv")
    equity = net.fillna(0.0).cumsum()
    equity.rename_axis("date").to_csv(folder / "equity_net_5bp.csv")
    importance = pd.DataFrame({"feature": booster.feature_name(), "gain": booster.feature_importance("gain"),
                               "splits": booster.feature_importance("split")}).sort_values("gain", ascending=False)
    importance.to_csv(folder / "feature_importance.csv", index=False)
    deciles = pd.DataFrame({"decile": range(1, len(figures["deciles"]) + 1), "mean_label": figures["deciles"]})
    deciles.to_csv(folder / "decile_returns.csv", index=False)
    covered = oos.dropna(subset=["pred_lo", "pred_hi", "label"])
    inside = (covered["label"] >= covered["pred_lo"]) & (covered["label"] <= covered["pred_hi"])
    coverage = inside.groupby(covered["fold"]).agg(["mean", "size"]).rename(columns={"mean": "coverage", "size": "rows"})
    coverage.to_csv(folder / "interval_coverage_by_fold.csv")
    (folder / "figures.json").write_text(json.dumps(wf.finite(figures), indent=2, default=str) + "\n")
    (folder / "case.md").write_text(summary + "\n")

    def chart(name: str, draw) -> None:
        fig = Figure(figsize=(8, 3.2))
        draw(fig.add_subplot())
        fig.tight_layout()
        save_png(fig, folder / f"{name}.png")

    def cumulative_ic(ax):
        for name in ic.columns:
            ax.plot(pd.to_datetime(ic.index), ic[name].fillna(0).cumsum(), linewidth=2.2 if name == "model" else 0.9,
                    label=name)
        ax.set_title("Cumulative daily rank IC, out of sample")
        ax.legend(fontsize=7, ncol=2)

    def equity_curves(ax):
        for name in equity.columns:
            ax.plot(pd.to_datetime(equity.index), equity[name], linewidth=2.2 if name == "model" else 0.9, label=name)
        ax.set_title("Long-short (turnover-controlled), cumulative return net of 5 bp per side")
        ax.legend(fontsize=7, ncol=2)

    def decile_bars(ax):
        values = deciles["mean_label"] * 100
        ax.bar(deciles["decile"], values, color=["#a40e26" if v < 0 else "#116329" for v in values])
        ax.set_xlabel("score decile (10 = highest)")
        ax.set_ylabel("mean label %")
        ax.set_title("Mean label by score decile, out of sample")

    def importance_bars(ax):
        top = importance.head(25).iloc[::-1]
        ax.barh(top["feature"], top["gain"])
        ax.tick_params(axis="y", labelsize=6)
        ax.set_title("Feature importance (gain), top 25")

    chart("rank_ic_cumulative", cumulative_ic)
    chart("equity_net_5bp", equity_curves)
    chart("decile_returns", decile_bars)
    chart("feature_importance", importance_bars)
    return sorted(folder.iterdir())


def log_case(settings: Settings, *, run_name: str, cfg: wf.WalkForwardConfig, oos: pd.DataFrame, figures: dict,
             window_figures: dict, calib: dict, booster, frame: pd.DataFrame, features: list[str], tags: dict,
             version_tags: dict, timings: dict, series: dict[str, pd.DataFrame]) -> dict:
    """Log the case to one run, register the model; returns version, run_id and mlflow_s (the
    seconds spent on all of it, the figure `bench train` holds against the training time).
    `series`: walkforward.session_series of `oos`, computed with the evaluation's figures."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.models import infer_signature

    from tickerlake.training import configure_mlflow

    started = time.perf_counter()
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    summary = summary_markdown(cfg, figures, window_figures, calib, tags)
    with mlflow.start_run(run_name=run_name) as run:
        params = {k: v for k, v in json.loads(wf.config_json(cfg)).items() if k != "params"}
        params.update({f"lgbm_{k}": v for k, v in cfg.params.items()})
        params.update({"config_hash": tags["config_hash"], "features": len(features),
                       "rounds_final": wf.final_rounds(oos)})
        mlflow.log_params(params)
        mlflow.set_tags({**tags, "mlflow.note.content": summary})
        metrics = {**flat_metrics(figures, "wf_"), **flat_metrics(window_figures, "window_"), **calib,
                   **{k: float(v) for k, v in timings.items()}}
        mlflow.log_metrics(metrics)  # one batch
        ic = series["rank_ic"]["model"].dropna().sort_index()
        # each point is stamped with its session, so the chart's x axis is the calendar
        points = [Metric("oos_rank_ic_by_session", float(v), int(pd.Timestamp(d).timestamp() * 1000), i)
                  for i, (d, v) in enumerate(ic.items())]
        for i in range(0, len(points), MAX_BATCH):
            client.log_batch(run.info.run_id, metrics=points[i:i + MAX_BATCH])
        with tempfile.TemporaryDirectory() as tmp:
            write_case(Path(tmp), cfg, oos, figures, booster, summary, series)
            mlflow.log_artifacts(tmp, "case")
        example = frame[features].head(5)
        info = mlflow.lightgbm.log_model(booster, name="model", signature=infer_signature(example, booster.predict(example)),
                                         input_example=example, registered_model_name=settings.model_name,
                                         pip_requirements=serving_requirements())
    version = str(info.registered_model_version)
    for key, value in version_tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    client.update_model_version(settings.model_name, version, description=summary)
    client.update_registered_model(
        settings.model_name,
        description=f"LightGBM on the daily feature catalogue; target: per-session rank of {cfg.label} (next "
        "open to a later open). Each version's page holds its walk-forward case against the baselines; alias "
        "`champion` moves only through the promotion gate (ops.model_decisions), `previous` is the one it replaced.")
    return {"version": version, "run_id": run.info.run_id, "mlflow_s": time.perf_counter() - started}
