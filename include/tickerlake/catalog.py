"""The feature catalogue and the table schemas: one source for Spark, Feast, training and docs.

Formulas use Qlib's Alpha158 expression language (`Ref($close, 5)` is the close five
sessions earlier); the Spark job implements each with built-in window functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: str
    window: int
    formula: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("KMID", "kbar", 1, "($close-$open)/$open"),
    FeatureSpec("KLEN", "kbar", 1, "($high-$low)/$open"),
    FeatureSpec("KUP", "kbar", 1, "($high-Greater($open, $close))/$open"),
    FeatureSpec("KLOW", "kbar", 1, "(Less($open, $close)-$low)/$open"),
    FeatureSpec("KSFT", "kbar", 1, "(2*$close-$high-$low)/$open"),
    FeatureSpec("ROC5", "roc", 5, "Ref($close, 5)/$close"),
    FeatureSpec("ROC20", "roc", 20, "Ref($close, 20)/$close"),
    FeatureSpec("MA5", "ma", 5, "Mean($close, 5)/$close"),
    FeatureSpec("MA20", "ma", 20, "Mean($close, 20)/$close"),
    FeatureSpec("STD20", "std", 20, "Std($close, 20)/$close"),
    FeatureSpec("VMA5", "vma", 5, "Mean($volume, 5)/($volume+1e-12)"),
    FeatureSpec("VMA20", "vma", 20, "Mean($volume, 20)/($volume+1e-12)"),
    FeatureSpec("RSV10", "rsv", 10, "($close-Min($low, 10))/(Max($high, 10)-Min($low, 10)+1e-12)"),
    FeatureSpec("REV1", "reversal", 1, "-($close/Ref($close, 1)-1)"),
    FeatureSpec("REV5", "reversal", 5, "-($close/Ref($close, 5)-1)"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

# Sessions of history a feature row needs (the longest window plus one for Ref()).
LOOKBACK_SESSIONS: int = max(f.window for f in FEATURES) + 1

# Labels: next open to the following open (what a signal computed at D's close can trade).
LABEL_HORIZONS: tuple[int, ...] = (1, 5)
LABEL_COLUMNS: tuple[str, ...] = tuple(f"ret_{h}d" for h in LABEL_HORIZONS)

TABLES: tuple[str, ...] = (
    "bronze.bars_daily",
    "quarantine.bars_daily",
    "silver.bars_daily",
    "gold.features_daily",
    "gold.labels_daily",
    "gold.predictions_daily",
    "ops.validation_runs",
    "ops.model_decisions",
)


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table, for the docs."""
    rows = ["| name | family | window | formula |", "|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.family} | {f.window} | `{f.formula}` |" for f in FEATURES]
    return "\n".join(rows) + "\n"
