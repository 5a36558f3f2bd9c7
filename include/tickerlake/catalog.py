"""The feature catalogue and the table schemas: one source for Spark, Feast, training and docs.

Formulas use Qlib's expression language (`Ref($close, 5)` is the close five sessions earlier,
`Mean`, `Std`, `Slope`, `Rsquare`, `Resi`, `Quantile`, `Rank`, `IdxMax`, `Corr` rolling over the
last n sessions). The Spark job (tickerlake.features) implements each with built-in window and
higher-order functions; include/sql/features_reference.sql is an independent DuckDB version.

Semantics shared by both implementations (docs/features.md says the same to users):
  - series are each ticker's own sessions; a session a ticker has no bar on (a rejected row)
    is a missing value, so windows count sessions, not rows;
  - a rolling value (and a Ref) is null unless every session it reads has a value: warm-up
    and a gap give null, never a partial window (Qlib fills partial windows; we do not, so a
    daily run and a backfill agree and a return never spans a rejected row);
  - Std is the sample standard deviation (ddof=1); Quantile interpolates linearly (numpy's
    default); Rank is the percentile of the latest value in its window with ties averaged,
    (count(x < x_t) + (count(x = x_t) + 1) / 2) / n; IdxMax/IdxMin are the 1-based position of the
    first maximum/minimum counted from the oldest session of the window; Slope/Rsquare/Resi are the
    least-squares fit of the window's values on 1..n (Resi: the latest value minus the fitted one);
    Corr is Pearson's; Rsquare and Corr are null when a series is constant over the window;
  - EMA(x, n) is Qlib's finite-window EMA: sum(a^k * x_{t-k}) / sum(a^k) over k = 0..n-1,
    a = 1 - 2/(n+1). Recursive (infinite-memory) smoothings such as Wilder's are not used:
    their value depends on where history starts, so a daily run could not equal a backfill;
  - x/0 is null.
VWAP0 is omitted: none of the vendors the platform reads (Kaggle S&P 500, Stooq, Yahoo style,
the HTTP vendor, the synthetic market) gives a VWAP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: str
    window: int  # sessions of history the value reads, the current one included
    formula: str


ALPHA158_WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)

_KBAR: tuple[tuple[str, str], ...] = (
    ("KMID", "($close-$open)/$open"),
    ("KLEN", "($high-$low)/$open"),
    ("KMID2", "($close-$open)/($high-$low+1e-12)"),
    ("KUP", "($high-Greater($open, $close))/$open"),
    ("KUP2", "($high-Greater($open, $close))/($high-$low+1e-12)"),
    ("KLOW", "(Less($open, $close)-$low)/$open"),
    ("KLOW2", "(Less($open, $close)-$low)/($high-$low+1e-12)"),
    ("KSFT", "(2*$close-$high-$low)/$open"),
    ("KSFT2", "(2*$close-$high-$low)/($high-$low+1e-12)"),
)

_PRICE: tuple[tuple[str, str], ...] = (
    ("OPEN0", "$open/$close"),
    ("HIGH0", "$high/$close"),
    ("LOW0", "$low/$close"),
)

# Alpha158's rolling families in Qlib's order: (prefix, formula with {d} for the window, extra
# sessions the formula reads beyond the window: 1 where it differences against Ref(x, 1)).
_ROLLING: tuple[tuple[str, str, int], ...] = (
    ("ROC", "Ref($close, {d})/$close", 1),
    ("MA", "Mean($close, {d})/$close", 0),
    ("STD", "Std($close, {d})/$close", 0),
    ("BETA", "Slope($close, {d})/$close", 0),
    ("RSQR", "Rsquare($close, {d})", 0),
    ("RESI", "Resi($close, {d})/$close", 0),
    ("MAX", "Max($high, {d})/$close", 0),
    ("MIN", "Min($low, {d})/$close", 0),
    ("QTLU", "Quantile($close, {d}, 0.8)/$close", 0),
    ("QTLD", "Quantile($close, {d}, 0.2)/$close", 0),
    ("RANK", "Rank($close, {d})", 0),
    ("RSV", "($close-Min($low, {d}))/(Max($high, {d})-Min($low, {d})+1e-12)", 0),
    ("IMAX", "IdxMax($high, {d})/{d}", 0),
    ("IMIN", "IdxMin($low, {d})/{d}", 0),
    ("IMXD", "(IdxMax($high, {d})-IdxMin($low, {d}))/{d}", 0),
    ("CORR", "Corr($close, Log($volume+1), {d})", 0),
    ("CORD", "Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), {d})", 1),
    ("CNTP", "Mean($close>Ref($close, 1), {d})", 1),
    ("CNTN", "Mean($close<Ref($close, 1), {d})", 1),
    ("CNTD", "Mean($close>Ref($close, 1), {d})-Mean($close<Ref($close, 1), {d})", 1),
    ("SUMP", "Sum(Greater($close-Ref($close, 1), 0), {d})/(Sum(Abs($close-Ref($close, 1)), {d})+1e-12)", 1),
    ("SUMN", "Sum(Greater(Ref($close, 1)-$close, 0), {d})/(Sum(Abs($close-Ref($close, 1)), {d})+1e-12)", 1),
    ("SUMD", "(Sum(Greater($close-Ref($close, 1), 0), {d})-Sum(Greater(Ref($close, 1)-$close, 0), {d}))"
             "/(Sum(Abs($close-Ref($close, 1)), {d})+1e-12)", 1),
    ("VMA", "Mean($volume, {d})/($volume+1e-12)", 0),
    ("VSTD", "Std($volume, {d})/($volume+1e-12)", 0),
    ("WVMA", "Std(Abs($close/Ref($close, 1)-1)*$volume, {d})/(Mean(Abs($close/Ref($close, 1)-1)*$volume, {d})+1e-12)",
     1),
    ("VSUMP", "Sum(Greater($volume-Ref($volume, 1), 0), {d})/(Sum(Abs($volume-Ref($volume, 1)), {d})+1e-12)", 1),
    ("VSUMN", "Sum(Greater(Ref($volume, 1)-$volume, 0), {d})/(Sum(Abs($volume-Ref($volume, 1)), {d})+1e-12)", 1),
    ("VSUMD", "(Sum(Greater($volume-Ref($volume, 1), 0), {d})-Sum(Greater(Ref($volume, 1)-$volume, 0), {d}))"
              "/(Sum(Abs($volume-Ref($volume, 1)), {d})+1e-12)", 1),
)

# Classic indicators, in the same expression language. `TR` is the true range,
# Greater(Greater($high-$low, Abs($high-Ref($close, 1))), Abs($low-Ref($close, 1))).
_TR = "Greater(Greater($high-$low, Abs($high-Ref($close, 1))), Abs($low-Ref($close, 1)))"
_DIF = "(EMA($close, 12)-EMA($close, 26))"
_INDICATORS: tuple[FeatureSpec, ...] = (
    # Cutler's RSI (simple sums; Wilder's recursive smoothing depends on where history starts)
    FeatureSpec("RSI14", "indicator", 15,
                "100*Sum(Greater($close-Ref($close, 1), 0), 14)/(Sum(Abs($close-Ref($close, 1)), 14)+1e-12)"),
    FeatureSpec("MACD", "indicator", 26, f"{_DIF}/$close"),
    FeatureSpec("MACDSIG", "indicator", 34, f"EMA({_DIF}, 9)/$close"),
    FeatureSpec("MACDHIST", "indicator", 34, f"({_DIF}-EMA({_DIF}, 9))/$close"),
    # Bollinger %B (20, 2) with the population standard deviation, as Bollinger defines the bands
    FeatureSpec("BBP20", "indicator", 20,
                "($close-Mean($close, 20)+2*StdP($close, 20))/(4*StdP($close, 20)+1e-12)"),
    FeatureSpec("ATR14", "indicator", 15, f"Mean({_TR}, 14)/$close"),
    # 12-1 momentum: the return from 12 months (252 sessions) ago to 1 month (21 sessions) ago
    FeatureSpec("MOM12_1", "indicator", 253, "Ref($close, 21)/Ref($close, 252)-1"),
    FeatureSpec("REV1", "indicator", 2, "-($close/Ref($close, 1)-1)"),
    FeatureSpec("REV5", "indicator", 6, "-($close/Ref($close, 5)-1)"),
)

# Cross-sectional transforms of the main features, per session over the tickers that have a value:
# CSR_<f> = percent_rank (0 lowest .. 1 highest, ties share the lowest rank), CSZ_<f> = the
# z-score (x - mean) / sample std. Market-relative returns subtract the session's equal-weighted
# mean over the tickers that have one. Sector-relative features are not built: no source gives
# point-in-time sector membership, and today's map applied to history is look-ahead.
CROSS_SECTIONAL_BASE: tuple[str, ...] = ("REV1", "REV5", "ROC20", "MOM12_1", "STD20", "MA20", "RSI14", "VMA20")
_CROSS_SECTIONAL: tuple[FeatureSpec, ...] = (
    *(FeatureSpec(f"CSR_{f}", "cross_sectional", 0, f"CSRank({f})") for f in CROSS_SECTIONAL_BASE),
    *(FeatureSpec(f"CSZ_{f}", "cross_sectional", 0, f"CSZScore({f})") for f in CROSS_SECTIONAL_BASE),
    *(FeatureSpec(f"MKTREL{d}", "market_relative", d + 1,
                  f"($close/Ref($close, {d})-1)-CSMean($close/Ref($close, {d})-1)") for d in (1, 5, 20)),
)

# Alternative data, joined point in time by session (silver.sentiment_daily counts a message for
# the session whose close it precedes; silver.macro_asof holds each series' value as known at
# that session). Inside a source's coverage (its first to last session) a ticker without
# messages has count 0 and sentiment null; outside it, or without the table, all are null.
MACRO_SERIES: tuple[str, ...] = ("VIXCLS", "T10Y2Y", "DGS10", "BAMLH0A0HYM2", "ANFCI")
_ALTERNATIVE: tuple[FeatureSpec, ...] = (
    FeatureSpec("SENT", "sentiment", 1, "Sentiment(ticker)"),
    FeatureSpec("MSGCNT", "sentiment", 1, "MessageCount(ticker)"),
    FeatureSpec("MKT_SENT", "sentiment", 1, "Sentiment(__MARKET__)"),
    FeatureSpec("MKT_MSGCNT", "sentiment", 1, "MessageCount(__MARKET__)"),
    *(FeatureSpec(f"MACRO_{s}", "macro", 1, f"AsOf({s})") for s in MACRO_SERIES),
)


def _alpha158() -> tuple[FeatureSpec, ...]:
    specs = [FeatureSpec(n, "kbar", 1, f) for n, f in _KBAR]
    specs += [FeatureSpec(n, "price", 1, f) for n, f in _PRICE]
    for prefix, formula, extra in _ROLLING:
        specs += [FeatureSpec(f"{prefix}{d}", prefix.lower(), d + extra, formula.format(d=d)) for d in ALPHA158_WINDOWS]
    return tuple(specs)


ALPHA158: tuple[FeatureSpec, ...] = _alpha158()
# Features computed from one ticker's own bars (the parity test checks all of them).
BAR_FEATURES: tuple[FeatureSpec, ...] = (*ALPHA158, *_INDICATORS)
FEATURES: tuple[FeatureSpec, ...] = (*BAR_FEATURES, *_CROSS_SECTIONAL, *_ALTERNATIVE)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BAR_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in BAR_FEATURES)
# The alternative-data features per ticker (social sentiment), and the market-wide macro series:
# Feast serves each group from a view of its own (tickerlake.feast_store).
SENTIMENT_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in _ALTERNATIVE if f.family == "sentiment")
MACRO_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in _ALTERNATIVE if f.family == "macro")

# A row can be scored when these are all present. The others may be legitimately missing and
# LightGBM takes a missing value as such: alternative data outside its sources' coverage, and the
# year-long MOM12_1 (and its transforms) during a listing's first year.
_MAY_BE_MISSING = {f.name for f in _ALTERNATIVE} | {"MOM12_1", "CSR_MOM12_1", "CSZ_MOM12_1"}
REQUIRED_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in _MAY_BE_MISSING)

# Sessions of history a feature row needs (the longest window).
LOOKBACK_SESSIONS: int = max(f.window for f in FEATURES)

# Labels: next open to the following open (what a signal computed at D's close can trade).
LABEL_HORIZONS: tuple[int, ...] = (1, 5)
LABEL_COLUMNS: tuple[str, ...] = tuple(f"ret_{h}d" for h in LABEL_HORIZONS)

TABLES: tuple[str, ...] = (
    "bronze.bars_daily",
    "quarantine.bars_daily",
    "silver.bars_daily",
    "silver.split_factors",
    "gold.features_daily",
    "gold.macro_daily",
    "gold.labels_daily",
    "gold.predictions_daily",
    "ops.validation_runs",
    "ops.model_decisions",
)


_DOC_HEAD = """\
# Feature catalogue

`gold.features_daily` holds one row per (ticker, session) with every feature below; labels
(forward returns) are in `gold.labels_daily`, never here. The table is generated from
`include/tickerlake/catalog.py` (`tickerlake catalog > docs/features.md` after a change; a unit
test fails while this file and the code disagree).

Semantics, shared by the Spark job (`include/tickerlake/features.py`) and the independent
DuckDB reference (`include/sql/features_reference.sql`):

- Formulas are Qlib's expression language: `Ref($close, d)` is the close d sessions earlier;
  `Mean`, `Std` (sample), `Sum`, `Max`, `Min`, `Quantile` (linear), `Rank` (percentile of the
  latest value, ties averaged), `IdxMax`/`IdxMin` (1-based position of the first extreme from the
  oldest session), `Slope`/`Rsquare`/`Resi` (least squares on 1..n), `Corr` (Pearson) roll over
  the last n sessions; `EMA(x, n)` is Qlib's finite-window EMA (weights a^k, a = 1 - 2/(n+1)).
- Prices are split-adjusted (`silver.split_factors`, adjusted forward from a ticker's first bar,
  so history never changes when a split lands; every feature is scale-free).
- A value is null unless every session it reads has a bar: warm-up and a rejected row give null,
  never a partial window; a flagged corporate action (spin-off, share dividend) starts a new
  series, so no return spans it. Qlib fills partial windows; we do not, so a daily run equals a
  backfill bit for bit.
- `VWAP0` is omitted: no vendor the platform reads gives a VWAP.
- Cross-sectional (`CSR_`, `CSZ_`, `MKTREL`) values are per session over the tickers with a bar.
  No sector-relative features: no source gives point-in-time sector membership, and today's map
  applied to history is look-ahead.
- Sentiment and macro features are joined point in time; outside a source's coverage (or with
  no source) they are null, never zero.

"""


def catalogue_document() -> str:
    """docs/features.md: the shared semantics and the catalogue table."""
    return _DOC_HEAD + catalogue_markdown()


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table, for the docs (docs/features.md is generated from it)."""
    rows = ["| name | family | window | formula |", "|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.family} | {f.window} | `{f.formula}` |" for f in FEATURES]
    return "\n".join(rows) + "\n"
