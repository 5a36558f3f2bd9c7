"""Ingest benchmark: rows per second of landing + validation (`tickerlake bench ingest --out FILE.json`).

Tiers: synthetic 500 tickers x 5 years, synthetic 5,000 x 20 years, and the real Kaggle S&P 500
set (../shared/data/sp500_5yr) when it is present. Each tier runs in its own fresh state
folder under `<home>/bench/` (removed afterwards) and reports:

- land_s: `land_bars` (fetch or generate + the one Delta commit + the row count check), with
  fetch_s (reading the vendor files / simulating the market) and write_s (the Delta write alone);
- validate_s: `validate_interval` (read bronze, both Great Expectations suites, quarantine and
  ops writes, Data Docs), with read_s, rules_s (helper columns + GE) and docs_s; steady state:
  what a process pays once (importing Great Expectations and its Data Docs renderers, a first
  validation and page) is measured before the tiers as warmup_s, and the tiers share the
  install's compiled Data Docs templates (settings.cache_dir) as every run after the first does;
- rows_per_s over land + validate; validate_vs_land = validate_s / land_s (the issue's goal:
  validation costs no more than the landing itself, <= 1) and validate_vs_write = validate_s / write_s.
  Both timings of a ratio come from the same run, so the ratio holds on a busy machine where the
  seconds do not.

Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import time
from pathlib import Path

from tickerlake.settings import Settings

SHARED_SP500 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sp500_5yr"
TIERS = {
    "synthetic_500x5y": {"source": "synthetic", "tickers": 500, "start": "2021-01-04", "end": "2025-12-31"},
    "synthetic_5000x20y": {"source": "synthetic", "tickers": 5000, "start": "2006-01-03", "end": "2025-12-31"},
    "sp500_5yr": {"source": "csv", "path": str(SHARED_SP500), "start": "2013-02-08", "end": "2018-02-07"},
}
GOAL_5000X20Y_S = 600


def report_header(benchmark: str, **extra) -> dict:
    """The head of every benchmark's JSON: what was measured, on which machine, how busy it was
    (these machines are noisy: the ratios inside a run are the figures to compare), and when."""
    return {
        "benchmark": benchmark,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),  # wall-clock ok: when it was measured
        **extra,
        "tiers": {},
    }


def write_report(out: Path, report: dict) -> None:
    """A benchmark's figures as JSON at `out` (its folder made); the long benchmarks write it again
    after each tier, so partial figures survive an interrupted run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")


def bench_ingest(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                 progress=print) -> dict:
    """Run the ingest benchmark tiers (default: all that can run), print the figures, write JSON to `out_path`."""
    names = list(dict.fromkeys(TIERS if tiers is None else tiers))
    unknown = sorted(set(names) - set(TIERS))
    if unknown:
        raise ValueError(f"unknown ingest tiers {unknown}; known: {sorted(TIERS)}")
    t0 = time.perf_counter()
    # importing Great Expectations, its first validation and its Data Docs renderers: once per
    # process, and the compiled Data Docs templates: once per install (settings.cache_dir), not
    # per tier. A fresh task process pays the per-process part on top: reported as warmup_s.
    _warm_up(settings)
    warmup_s = round(time.perf_counter() - t0, 2)
    progress(f"Great Expectations warm-up: {warmup_s}s (once per process, not in the tiers)")
    report = report_header("ingest", warmup_s=warmup_s)
    for name in names:
        spec = TIERS[name]
        if spec["source"] == "csv" and not Path(spec["path"]).is_dir():
            report["tiers"][name] = {"skipped": f"{spec['path']} is not present"}
            progress(f"{name}: skipped ({spec['path']} is not present)")
            continue
        progress(f"{name}: running ...")
        figures = _run_tier(settings, name, spec)
        report["tiers"][name] = figures
        progress(_line(name, figures))
    ratios = {n: f["validate_vs_land"] for n, f in report["tiers"].items() if "validate_vs_land" in f}
    report["validate_vs_land"] = ratios
    report["validate_within_land"] = bool(ratios) and all(r <= 1 for r in ratios.values())
    progress("validate/land: " + ", ".join(f"{n} {r}" for n, r in ratios.items()))
    big = report["tiers"].get("synthetic_5000x20y", {})
    if "total_s" in big:
        report["goal_5000x20y_within_10_min"] = big["total_s"] <= GOAL_5000X20Y_S
    out = Path(out_path)
    write_report(out, report)
    progress(f"wrote {out}")
    return report


def _warm_up(settings: Settings) -> None:
    import tempfile

    import pandas as pd

    from tickerlake.validation import build_data_docs, validate_bars

    bars = pd.DataFrame({"ticker": ["A"], "date": [dt.date(2024, 1, 2)], "open": [1.0], "high": [1.0],
                         "low": [1.0], "close": [1.0], "volume": [1.0]})
    result = validate_bars(bars, "warm-up", keep_ge_results=True)
    if settings.data_docs == "off":
        return
    with tempfile.TemporaryDirectory(prefix="bench-warm-up-") as home:
        build_data_docs(dataclasses.replace(settings, home=Path(home)), result.ge_results, "warm-up", None,
                        "warm-up")


def _run_tier(settings: Settings, name: str, spec: dict) -> dict:
    from tickerlake.ingest import land_bars, validate_interval

    home = Path(settings.home) / "bench" / name
    shutil.rmtree(home, ignore_errors=True)
    changes = {"home": home, "lake_root": f"file://{home / 'lake'}", "history_start": spec["start"]}
    if spec["source"] == "synthetic":
        changes["universe_size"] = spec["tickers"]
    s = dataclasses.replace(settings, **changes)
    start, end = dt.date.fromisoformat(spec["start"]), dt.date.fromisoformat(spec["end"])
    logical = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
    run_id = f"bench__{name}"
    try:
        t0, c0 = time.perf_counter(), _cpu()
        landed = land_bars(s, spec["source"], start, end, run_id, logical, path=spec.get("path"))
        t1, c1 = time.perf_counter(), _cpu()
        validated = validate_interval(s, start, end, run_id)
        t2, c2 = time.perf_counter(), _cpu()
    finally:
        size = _size(home)
        shutil.rmtree(home, ignore_errors=True)
    rows = int(landed["rows"])
    land_s, validate_s = t1 - t0, t2 - t1
    write_s = landed["timings"]["write_s"]
    return {
        "rows": rows,
        "tickers": spec.get("tickers"),
        "interval": [spec["start"], spec["end"]],
        "land_s": round(land_s, 2),
        "fetch_s": landed["timings"]["fetch_s"],
        "write_s": write_s,
        "validate_s": round(validate_s, 2),
        **{k: v for k, v in validated["timings"].items()},
        "total_s": round(land_s + validate_s, 2),
        "rows_per_s": round(rows / (land_s + validate_s)),
        "land_rows_per_s": round(rows / land_s),
        "write_rows_per_s": round(rows / max(write_s, 1e-9)),
        "validate_rows_per_s": round(rows / validate_s),
        "validate_vs_land": round(validate_s / max(land_s, 1e-9), 2),
        # CPU seconds (every thread of this process and its finished worker processes): the work
        # done, which another process on the machine slows less than the wall clock
        "land_cpu_s": round(c1 - c0, 2),
        "validate_cpu_s": round(c2 - c1, 2),
        "validate_vs_land_cpu": round((c2 - c1) / max(c1 - c0, 1e-9), 2),
        "validate_vs_write": round(validate_s / max(write_s, 1e-9), 2),
        "rows_rejected": validated["rows_rejected"],
        "rows_warned": validated["rows_warned"],
        "reconciled": validated["reconciled"],
        "bronze_bytes": size,
    }


def _line(name: str, f: dict) -> str:
    return (f"{name}: {f['rows']:,} rows; land {f['land_s']}s (fetch {f['fetch_s']}s, write {f['write_s']}s), "
            f"validate {f['validate_s']}s (read {f.get('read_s')}s, rules {f.get('rules_s')}s, "
            f"docs {f.get('docs_s')}s); {f['rows_per_s']:,} rows/s overall; validate/land = {f['validate_vs_land']} "
            f"(CPU {f['validate_cpu_s']}s / {f['land_cpu_s']}s = {f['validate_vs_land_cpu']}), "
            f"validate/write = {f['validate_vs_write']}")


def _cpu() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0
