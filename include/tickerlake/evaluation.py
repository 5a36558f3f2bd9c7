"""Out-of-sample evaluation of cross-sectional stock signals: pure functions, no I/O, no MLflow.

Conventions shared by every function here:

* A *panel* is a frame with one row per (session, ticker) and the columns `date`, `score`, `label`
  (and `ticker` for the portfolio). Column names can be changed by keyword. Rows whose score or
  label is NaN are dropped first.
* A *session series* is a float Series indexed by session (one value per session, sorted), such
  as the daily rank IC. NaN entries are dropped, and the remaining values are treated as
  consecutive in time (a dropped session is not a gap for the HAC variance).
* `label_horizon` h is the number of sessions the label spans beyond its decision session: the
  project's `ret_1d` (next open to the following open) has h = 1 and is complete at the open of
  the second session after the decision.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SESSIONS_PER_YEAR = 252
DEFAULT_COSTS_BPS = (0.0, 5.0, 10.0, 20.0)
_EPS = 1e-9  # slack for ceil/floor of products such as (n + 1) * 0.8 in floating point


# --------------------------------------------------------------------------------------------
# Walk-forward splits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkForwardBlock:
    """One walk-forward fold: session values (sorted) for training, early-stopping validation
    (possibly empty) and testing."""

    fold: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def masks(self, dates: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row masks (train, validation, test) for a column of session dates of a panel."""
        d = pd.Series(list(dates) if not isinstance(dates, pd.Series | np.ndarray) else dates)
        return (d.isin(self.train).to_numpy(), d.isin(self.validation).to_numpy(),
                d.isin(self.test).to_numpy())


def walk_forward_blocks(
    sessions: Iterable[Any],
    *,
    test_sessions: int,
    label_horizon: int = 1,
    train_sessions: int | None = None,
    embargo: int = 0,
    min_train: int | None = None,
    validation_sessions: int = 0,
    first_test: Any = None,
) -> list[WalkForwardBlock]:
    """Walk-forward folds over the distinct sorted `sessions`.

    With purge p = label_horizon + 1, a fold whose test block starts at position t0 is laid out as

        [train ...] [p purged] [validation: V sessions] [p purged] [test: test_sessions]

    (without validation, V = 0: `[train ...] [p purged] [test]`). So no train or validation
    session lies within p sessions before its test block, and no train session within p sessions
    before the validation block: a label of horizon h decided at session s is complete at the
    open of s + h + 1, so every training label is complete before the block it is scored against
    starts (one session of slack).

    * train: the expanding history from the first session (`train_sessions=None`), or only the
      last `train_sessions` sessions of it (rolling window).
    * Test blocks are disjoint, contiguous and in order; they cover every session from the
      first test session to the end (the last block may be shorter). The first test session is
      the earliest one that leaves `min_train` train sessions (default: `train_sessions`; it is
      required for an expanding window), or `first_test` (a session value) if that is later.
    * embargo: the `embargo` sessions immediately after each earlier test block are dropped from
      the train set of every later fold. Walk-forward only ever trains on the past, so this is not
      needed against leakage (that is the purge's job); it exists to keep the same meaning as in
      purged k-fold, where train data follow a test block, and to keep sessions whose features
      are still serially tied to a scored block out of later fits if wanted. Default 0.

    Raises ValueError when the sessions are too few for one fold.
    """
    if test_sessions < 1:
        raise ValueError("test_sessions must be >= 1")
    if label_horizon < 0 or embargo < 0 or validation_sessions < 0:
        raise ValueError("label_horizon, embargo and validation_sessions must be >= 0")
    if train_sessions is not None and train_sessions < 1:
        raise ValueError("train_sessions must be >= 1 or None (expanding)")
    if min_train is None:
        if train_sessions is None:
            raise ValueError("min_train is required for an expanding train window")
        min_train = train_sessions
    if min_train < 1 or (train_sessions is not None and min_train > train_sessions):
        raise ValueError("min_train must be >= 1 and <= train_sessions")

    values = pd.Index(list(sessions)).unique().sort_values().to_numpy()
    n = len(values)
    purge = label_horizon + 1
    v = validation_sessions
    before_test = purge + v + (purge if v else 0)  # sessions between the train end and the test start
    t0 = min_train + before_test
    if first_test is not None:
        t0 = max(t0, int(np.searchsorted(values, first_test, side="left")))
    if t0 >= n:
        raise ValueError(f"{n} sessions are too few: the first test block would start at position {t0}")

    starts = list(range(t0, n, test_sessions))
    blocks = []
    embargoed: set[int] = set()
    for fold, start in enumerate(starts):
        stop = min(start + test_sessions, n)
        train_stop = start - before_test
        train_start = 0 if train_sessions is None else max(0, train_stop - train_sessions)
        train_pos = [i for i in range(train_start, train_stop) if i not in embargoed]
        val_pos = np.arange(start - purge - v, start - purge) if v else np.arange(0)
        blocks.append(WalkForwardBlock(fold, values[train_pos], values[val_pos], values[start:stop]))
        embargoed.update(range(stop, min(stop + embargo, n)))
    return blocks


# --------------------------------------------------------------------------------------------
# Per-session cross-sectional metrics
# --------------------------------------------------------------------------------------------


def _panel(frame: pd.DataFrame, date: str, score: str, label: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    cols = {"d": frame[date].to_numpy(), "s": frame[score].to_numpy(dtype=float),
            "y": frame[label].to_numpy(dtype=float)}
    cols.update({c: frame[c].to_numpy() for c in extra})
    data = pd.DataFrame(cols)
    return data[np.isfinite(data["s"]) & np.isfinite(data["y"])].reset_index(drop=True)


def _pearson_by_session(d: pd.Series, x: pd.Series, y: pd.Series, min_names: int) -> pd.Series:
    data = pd.DataFrame({"d": d, "x": x, "y": y})
    grp = data.groupby("d", sort=True)
    xd = data["x"] - grp["x"].transform("mean")
    yd = data["y"] - grp["y"].transform("mean")
    sums = pd.DataFrame({"d": data["d"], "xy": xd * yd, "xx": xd * xd, "yy": yd * yd}).groupby("d", sort=True).sum()
    constant = (grp["x"].max() == grp["x"].min()) | (grp["y"].max() == grp["y"].min())
    ok = (grp.size() >= min_names) & ~constant
    r = sums["xy"] / np.sqrt(sums["xx"] * sums["yy"])
    return r[ok].astype(float).rename(None)


def ic_by_session(frame: pd.DataFrame, *, date: str = "date", score: str = "score", label: str = "label",
                  min_names: int = 3) -> pd.Series:
    """Pearson correlation of score and label across the names of each session.

    Sessions with fewer than `min_names` names, or a constant score or label, are left out.
    Returns a Series indexed by session (sorted)."""
    p = _panel(frame, date, score, label)
    return _pearson_by_session(p["d"], p["s"], p["y"], min_names)


def rank_ic_by_session(frame: pd.DataFrame, *, date: str = "date", score: str = "score", label: str = "label",
                       min_names: int = 3) -> pd.Series:
    """Spearman rank IC per session: the Pearson correlation of the per-session ranks of score
    and label (ties get their average rank). Same exclusions as `ic_by_session`."""
    p = _panel(frame, date, score, label)
    grp = p.groupby("d", sort=True)
    return _pearson_by_session(p["d"], grp["s"].rank(method="average"), grp["y"].rank(method="average"), min_names)


def hit_rate_by_session(frame: pd.DataFrame, *, date: str = "date", score: str = "score", label: str = "label",
                        min_names: int = 3) -> pd.Series:
    """Per session, the share of names whose score and label fall on the same side of their
    session means: mean of 1[sign(score - mean score) == sign(label - mean label)] over the names
    where neither deviation is exactly 0. 0.5 is no skill. Sessions with fewer than `min_names`
    such names, or a constant score or label, are left out."""
    p = _panel(frame, date, score, label)
    grp = p.groupby("d", sort=True)
    sd = np.sign(p["s"] - grp["s"].transform("mean"))
    yd = np.sign(p["y"] - grp["y"].transform("mean"))
    constant = (grp["s"].transform("max") == grp["s"].transform("min")) | (
        grp["y"].transform("max") == grp["y"].transform("min"))
    valid = (sd != 0) & (yd != 0) & ~constant
    data = pd.DataFrame({"d": p["d"][valid], "hit": (sd[valid] == yd[valid]).astype(float)})
    g = data.groupby("d", sort=True)["hit"]
    counts = g.size()
    return g.mean()[counts >= min_names].astype(float).rename(None)


# --------------------------------------------------------------------------------------------
# Inference on a session series
# --------------------------------------------------------------------------------------------


def _values(series: pd.Series | Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(series, dtype=float)
    return x[np.isfinite(x)]


def default_lags(n: int, label_horizon: int = 1) -> int:
    """HAC lags used when none are given: max(label_horizon - 1, floor(4 * (n / 100) ** (2 / 9))).

    The first term covers the overlap of h-session labels (a moving average of order h - 1);
    the second is the Newey-West (1994) rule of thumb for other serial correlation."""
    rule = math.floor(4 * (max(n, 0) / 100) ** (2 / 9)) if n > 0 else 0
    return max(label_horizon - 1, rule, 0)


def newey_west_t(series: pd.Series | Sequence[float] | np.ndarray, lags: int, *, small_sample: bool = True) -> float:
    """t statistic of the mean with the Newey-West (Bartlett kernel) HAC variance.

    With e_t = x_t - mean(x), gamma_j = sum_{t=j}^{n-1} e_t e_{t-j} / n and L = min(lags, n - 1):
        S = gamma_0 + 2 * sum_{j=1}^{L} (1 - j / (L + 1)) * gamma_j
        var(mean) = S / n * (n / (n - 1) if small_sample else 1)
        t = mean / sqrt(var(mean))
    With lags = 0 and small_sample, this is the classic one-sample t (sample std, ddof 1).
    For overlapping labels of horizon h use lags >= h - 1. NaN when n < 2; +-inf when the
    variance is 0 and the mean is not."""
    if lags < 0:
        raise ValueError("lags must be >= 0")
    x = _values(series)
    n = len(x)
    if n < 2:
        return float("nan")
    mean = float(x.mean())
    e = x - mean
    L = min(int(lags), n - 1)
    s = float(e @ e) / n
    for j in range(1, L + 1):
        s += 2.0 * (1.0 - j / (L + 1)) * float(e[j:] @ e[:-j]) / n
    if small_sample:
        s *= n / (n - 1)
    var_mean = s / n
    if var_mean <= 0:
        return float("nan") if mean == 0 else math.copysign(float("inf"), mean)
    return mean / math.sqrt(var_mean)


def summarize(series: pd.Series | Sequence[float] | np.ndarray, label_horizon: int = 1, *,
              lags: int | None = None) -> dict[str, float]:
    """Summary of a session series (e.g. the daily rank IC):

    mean; std (ddof 1); icir = mean / std; icir_annual = icir * sqrt(252); t_nw = `newey_west_t`
    with `lags` (default `default_lags(n, label_horizon)`), and the lags used; n = sessions;
    hit_rate = share of sessions with a value > 0."""
    x = _values(series)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    icir = mean / std if n > 1 and std > 0 else float("nan")
    used = default_lags(n, label_horizon) if lags is None else int(lags)
    return {
        "mean": mean,
        "std": std,
        "icir": icir,
        "icir_annual": icir * math.sqrt(SESSIONS_PER_YEAR),
        "t_nw": newey_west_t(x, used) if n > 1 else float("nan"),
        "lags": float(used),
        "n": float(n),
        "hit_rate": float((x > 0).mean()) if n else float("nan"),
    }


def by_year(series: pd.Series, label_horizon: int = 1) -> pd.DataFrame:
    """`summarize` of each calendar year of a session series (index: sessions as dates), one row
    per year (the index), lags chosen per year."""
    clean = series.dropna()
    years = pd.to_datetime(pd.Index(clean.index)).year
    rows = {int(y): summarize(part, label_horizon) for y, part in clean.groupby(np.asarray(years), sort=True)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("year")


def paired_difference_t(ic_a: pd.Series, ic_b: pd.Series, lags: int) -> dict[str, float]:
    """Paired comparison of two session series (e.g. the daily rank IC of a candidate and of a
    champion): d_t = a_t - b_t on the sessions both have (non-NaN), then
    mean_diff = mean(d), t_nw = `newey_west_t(d, lags)`, n, and share_a_better = share of d_t > 0."""
    both = pd.concat({"a": ic_a, "b": ic_b}, axis=1, join="inner").dropna().sort_index()
    d = (both["a"] - both["b"]).to_numpy()
    n = len(d)
    return {
        "mean_diff": float(d.mean()) if n else float("nan"),
        "t_nw": newey_west_t(d, lags) if n > 1 else float("nan"),
        "n": float(n),
        "lags": float(lags),
        "share_a_better": float((d > 0).mean()) if n else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# Score buckets
# --------------------------------------------------------------------------------------------


def decile_returns_by_session(frame: pd.DataFrame, n_bins: int = 10, *, date: str = "date", score: str = "score",
                              label: str = "label") -> pd.DataFrame:
    """Mean label per score bucket per session: a frame (sessions x buckets 1..n_bins, 1 = lowest
    score). In a session of m names the name of score rank r (1 = lowest; ties broken by row
    order) is in bucket floor((r - 1) * n_bins / m) + 1, so buckets differ in size by at most one.
    Sessions with fewer than `n_bins` names are left out."""
    if n_bins < 2:
        raise ValueError("n_bins must be >= 2")
    p = _panel(frame, date, score, label)
    grp = p.groupby("d", sort=True)
    m = grp["s"].transform("size").to_numpy()
    r = grp["s"].rank(method="first").to_numpy().astype(np.int64)
    p["bin"] = (r - 1) * n_bins // m + 1
    p = p[m >= n_bins]
    table = p.groupby(["d", "bin"], sort=True)["y"].mean().unstack("bin")
    table = table.reindex(columns=range(1, n_bins + 1))
    table.index.name = None
    table.columns.name = None
    return table


def decile_returns(frame: pd.DataFrame, n_bins: int = 10, **columns: str) -> pd.Series:
    """The per-session bucket means of `decile_returns_by_session` averaged over sessions (each
    session weighs the same): a Series indexed 1..n_bins."""
    return decile_returns_by_session(frame, n_bins, **columns).mean(axis=0)


def top_minus_bottom(frame: pd.DataFrame, n_bins: int = 10, **columns: str) -> pd.Series:
    """Per session, mean label of the top score bucket minus that of the bottom bucket (the
    buckets of `decile_returns_by_session`): a session series to `summarize`."""
    table = decile_returns_by_session(frame, n_bins, **columns)
    return (table[n_bins] - table[1]).rename(None)


# --------------------------------------------------------------------------------------------
# Long-short portfolio with turnover control and costs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongShortResult:
    """`sessions`: one row per session (index) with gross, turnover, net (at the cost asked),
    n_long, n_short. `summary`: see `long_short_portfolio`."""

    sessions: pd.DataFrame
    summary: dict[str, float]


def _next_leg(held: Sequence[Hashable], ranked: Sequence[Hashable], k: int, max_swaps: int | None,
              keep_within: float) -> list[Hashable]:
    """New holdings of one leg. `ranked`: the session's eligible names, best first."""
    if max_swaps is None:
        return list(ranked[:k])
    position = {t: i for i, t in enumerate(ranked)}
    kept = sorted((t for t in held if t in position), key=position.__getitem__)[:k]  # forced exits, trims
    acceptable = math.ceil(keep_within * k - _EPS)
    unacceptable = [t for t in kept if position[t] >= acceptable]  # best first
    sells = set(unacceptable[len(unacceptable) - min(max_swaps, len(unacceptable)):])  # the worst ones
    new = [t for t in kept if t not in sells]
    have = set(new)
    for t in ranked:
        if len(new) >= k:
            break
        if t not in have and t not in sells:
            new.append(t)
            have.add(t)
    return new


def long_short_portfolio(
    frame: pd.DataFrame,
    *,
    k: int | None = None,
    fraction: float | None = None,
    max_swap_fraction: float | None = None,
    keep_within: float = 2.0,
    cost_bps_per_side: float = 0.0,
    label_horizon: int = 1,
    costs_bps: Sequence[float] = DEFAULT_COSTS_BPS,
    date: str = "date",
    score: str = "score",
    label: str = "label",
    ticker: str = "ticker",
) -> LongShortResult:
    """Equal-weight long-short book decided at each session and held to the next decision.

    Leg size per session: `k` names, or floor(`fraction` * names in the session) (at least 1),
    capped at half the names so the legs cannot overlap.

    * No control (`max_swap_fraction=None`): long the top k by score, short the bottom k.
    * Turnover control: each leg keeps every held name still ranked within the best
      ceil(`keep_within` * k) of its side (top for the long leg, bottom for the short), and
      replaces at most max(1, floor(`max_swap_fraction` * k)) of the others per session, the
      worst-ranked first, by the best names it does not hold. Names absent from the session
      (no score or label) are always sold, and empty slots (first session, forced exits, a larger
      k) always filled; neither counts against the limit. The short leg never takes a name the
      long leg holds.

    Returns per session (weights w = +1/k long, -1/k short, each leg of unit notional):
      gross = mean(label of the long leg) - mean(label of the short leg), divided by
        `label_horizon`. For h = 1 (the project's ret_1d: this decision's next open to the open
        after) it is exactly the session's return; for h > 1 the label / h is an approximation of
        the daily return of an h-session position and consecutive sessions overlap.
      turnover = sum over names of |w_t - w_{t-1}| across both legs: the notional traded, both
        sides (building the book from cash = 2, replacing every name of both legs = 4). The first
        session's build is included. Weight drift within the session is ignored.
      net = gross - turnover * cost_bps_per_side / 1e4.
    Summary: n, mean_gross, sharpe_gross (mean / std * sqrt(252)), mean_turnover,
      break_even_cost_bps, and mean_net_{c}bp, sharpe_net_{c}bp for each c in `costs_bps`.
    """
    if (k is None) == (fraction is None):
        raise ValueError("give exactly one of k and fraction")
    if k is not None and k < 1:
        raise ValueError("k must be >= 1")
    if fraction is not None and not 0 < fraction <= 0.5:
        raise ValueError("fraction must be in (0, 0.5]")
    if max_swap_fraction is not None and not 0 < max_swap_fraction <= 1:
        raise ValueError("max_swap_fraction must be in (0, 1] or None")
    if keep_within < 1:
        raise ValueError("keep_within must be >= 1")

    p = _panel(frame, date, score, label, extra=[ticker])
    rows = []
    long_held: list[Hashable] = []
    short_held: list[Hashable] = []
    weights: dict[Hashable, float] = {}
    for session, g in p.groupby("d", sort=True):
        g = g.drop_duplicates(subset=ticker, keep="last")
        m = len(g)
        if m < 2:
            continue
        size = k if k is not None else max(1, math.floor(fraction * m + _EPS))
        size = min(size, m // 2)
        swaps = None if max_swap_fraction is None else max(1, math.floor(max_swap_fraction * size + _EPS))
        order = np.argsort(-g["s"].to_numpy(), kind="stable")
        names = g[ticker].to_numpy()[order]
        long_held = _next_leg(long_held, list(names), size, swaps, keep_within)
        taken = set(long_held)
        short_ranked = [t for t in names[::-1] if t not in taken]
        short_held = _next_leg([t for t in short_held if t not in taken], short_ranked, size, swaps, keep_within)
        new_weights = {t: 1.0 / len(long_held) for t in long_held}
        new_weights.update({t: -1.0 / len(short_held) for t in short_held})
        turnover = sum(abs(new_weights.get(t, 0.0) - weights.get(t, 0.0)) for t in set(weights) | set(new_weights))
        weights = new_weights
        y = dict(zip(g[ticker].to_numpy(), g["y"].to_numpy(), strict=True))
        gross = (np.mean([y[t] for t in long_held]) - np.mean([y[t] for t in short_held])) / label_horizon
        rows.append((session, float(gross), float(turnover), len(long_held), len(short_held)))

    sessions = pd.DataFrame(rows, columns=["date", "gross", "turnover", "n_long", "n_short"]).set_index("date")
    sessions.index.name = None
    sessions["net"] = sessions["gross"] - sessions["turnover"] * cost_bps_per_side / 1e4
    return LongShortResult(sessions, portfolio_summary(sessions, costs_bps))


def _sharpe(x: pd.Series) -> float:
    sd = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
    return float(x.mean()) / sd * math.sqrt(SESSIONS_PER_YEAR) if sd > 0 else float("nan")


def portfolio_summary(sessions: pd.DataFrame, costs_bps: Sequence[float] = DEFAULT_COSTS_BPS) -> dict[str, float]:
    """Summary of a per-session frame with columns gross and turnover (see `long_short_portfolio`)."""
    out = {
        "n": float(len(sessions)),
        "mean_gross": float(sessions["gross"].mean()),
        "sharpe_gross": _sharpe(sessions["gross"]),
        "mean_turnover": float(sessions["turnover"].mean()),
        "break_even_cost_bps": break_even_cost_bps(sessions),
    }
    for c in costs_bps:
        net = sessions["gross"] - sessions["turnover"] * c / 1e4
        tag = f"{c:g}bp"
        out[f"mean_net_{tag}"] = float(net.mean())
        out[f"sharpe_net_{tag}"] = _sharpe(net)
    return out


def break_even_cost_bps(sessions: pd.DataFrame) -> float:
    """The cost per side (bp) at which the mean net return is 0:
    1e4 * mean(gross) / mean(turnover). Negative when the gross mean is negative; +-inf (NaN if
    the gross mean is 0 too) when nothing is traded."""
    g = float(sessions["gross"].mean())
    t = float(sessions["turnover"].mean())
    if t == 0:
        return float("nan") if g == 0 else math.copysign(float("inf"), g)
    return 1e4 * g / t


# --------------------------------------------------------------------------------------------
# Prediction intervals
# --------------------------------------------------------------------------------------------


def conformal_interval(calibration_residuals: Sequence[float] | np.ndarray, coverage: float, *,
                       symmetric: bool = True) -> tuple[float, float]:
    """Split-conformal offsets (lo, hi): the interval for a new prediction is [pred + lo, pred + hi],
    with residual = realized - pred on a calibration set of n rows not used for fitting.

    * symmetric: q = the k-th smallest |residual|, k = ceil((n + 1) * coverage); (lo, hi) = (-q, q).
    * asymmetric (`symmetric=False`), alpha = 1 - coverage: lo = the k_lo-th smallest residual,
      k_lo = floor((n + 1) * alpha / 2); hi = the k_hi-th smallest, k_hi = ceil((n + 1) * (1 - alpha / 2)).
    The exact order statistic is used (no interpolation), so for exchangeable data the coverage is
    at least `coverage` (each tail misses at most alpha / 2 in the asymmetric case). When k is out
    of range (n too small for the level) the offset is infinite."""
    if not 0 < coverage < 1:
        raise ValueError("coverage must be in (0, 1)")
    r = _values(calibration_residuals)
    n = len(r)
    if n == 0:
        raise ValueError("no calibration residuals")
    if symmetric:
        kk = math.ceil((n + 1) * coverage - _EPS)
        if kk > n:
            return float("-inf"), float("inf")
        q = float(np.sort(np.abs(r))[kk - 1])
        return -q, q
    alpha = 1.0 - coverage
    s = np.sort(r)
    k_lo = math.floor((n + 1) * alpha / 2 + _EPS)
    k_hi = math.ceil((n + 1) * (1 - alpha / 2) - _EPS)
    lo = float(s[k_lo - 1]) if k_lo >= 1 else float("-inf")
    hi = float(s[k_hi - 1]) if k_hi <= n else float("inf")
    return lo, hi


def interval_coverage(pred: Any, lo: Any, hi: Any, realized: Any) -> float:
    """Share of rows with pred + lo <= realized <= pred + hi (lo, hi: offsets, scalars or arrays).
    Rows where realized or pred is NaN are left out."""
    pred_a, real = np.asarray(pred, dtype=float), np.asarray(realized, dtype=float)
    lo_a, hi_a = np.broadcast_to(np.asarray(lo, dtype=float), pred_a.shape), np.broadcast_to(
        np.asarray(hi, dtype=float), pred_a.shape)
    ok = np.isfinite(pred_a) & np.isfinite(real)
    if not ok.any():
        return float("nan")
    inside = (real[ok] >= pred_a[ok] + lo_a[ok]) & (real[ok] <= pred_a[ok] + hi_a[ok])
    return float(inside.mean())
