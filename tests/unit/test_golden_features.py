"""Golden values for the DuckDB reference (tickerlake.reference_features), worked out here from
Qlib's formula strings in tickerlake.catalog, never from the SQL:

- a few rows by hand, with the arithmetic in the comments (HAND);
- every feature of the catalogue on a small hand-made market, from a plain numpy transcription
  of the formulas (loops over each ticker's sessions: np.polyfit for Slope, np.quantile for
  Quantile, np.corrcoef for Corr, nested EMAs for MACD), compared row by row with the SQL;
- the semantics the catalogue's docstring states: warm-up is NULL exactly until the window fills,
  a missing session makes every window over it NULL, a new listing starts with NULLs (not
  zeros), Rank averages ties, IdxMax takes the first maximum, a constant series gives NULL
  Rsquare and Corr, x/0 is NULL, and the alternative data's coverage rules;
- a 260-session series for MOM12_1, whose 253-session window the small market cannot fill.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from tickerlake import reference_features as rf
from tickerlake.catalog import (
    ALPHA158,
    ALPHA158_WINDOWS,
    BAR_FEATURE_NAMES,
    CROSS_SECTIONAL_BASE,
    FEATURE_NAMES,
    FEATURES,
    MACRO_SERIES,
)

pytestmark = pytest.mark.unit

RTOL, ATOL = 1e-9, 1e-12
N_SESSIONS = 72  # the 60-session windows fill, with room after them
SESSIONS = [d.date() for d in pd.bdate_range("2024-01-02", periods=N_SESSIONS)]
NAN = float("nan")
WINDOW = {f.name: f.window for f in FEATURES}
ROLLING_PREFIXES = {f.family.upper() for f in ALPHA158 if f.family not in ("kbar", "price")}


def _bar(ticker: str, t: int, o: float, h: float, lo: float, c: float, v: float) -> tuple:
    return (ticker, SESSIONS[t], o, h, lo, c, v)


def market() -> pd.DataFrame:
    """Five tickers over 72 sessions (t = 0..71):

    AAA  every session; integer-valued closes and half-integer highs, so windows hold ties
    BBB  smooth prices; no bar on t = 40 (a rejected row), which other tickers have
    CCC  listed at t = 50 (a new listing)
    DDD  close constant on t = 0..39 (then rising), volume constant from t = 40 on
    EEE  every session; volume 0 on t = 45, so Log($volume/Ref($volume, 1)+1) is x/0 on t = 46
    """
    rows = []
    for t in range(N_SESSIONS):
        c = 50.0 + (7 * t) % 13 + t // 10
        o = 50.0 + (5 * t) % 11 + t // 10
        rows.append(_bar("AAA", t, o, max(o, c) + 0.5 * (t % 3), min(o, c) - 0.25 - (t % 4 == 0), c,
                         1000.0 + 100 * ((11 * t) % 7)))
        if t != 40:
            c = 80 + 5 * math.sin(0.37 * t) + 0.1 * t
            o = 80 + 5 * math.sin(0.37 * t - 0.2) + 0.1 * t
            rows.append(_bar("BBB", t, o, max(o, c) + 0.3 + 0.2 * math.cos(t), min(o, c) - 0.4, c,
                             2e5 + 5e4 * math.cos(0.5 * t)))
        if t >= 50:
            c = 30 + 2 * math.cos(0.9 * t) + 0.05 * t * t / 10
            o = 30 + 2 * math.cos(0.9 * t - 0.5) + 0.05 * t * t / 10
            rows.append(_bar("CCC", t, o, max(o, c) * 1.01, min(o, c) * 0.99, c, 3000.0 + 17 * t))
        c = 20.0 if t < 40 else 20.0 + 0.5 * (t - 39)
        rows.append(_bar("DDD", t, c, c + 1, c - 1, c, 500.0 + 37 * (t % 5) * (t < 40)))
        c = 40 + 3 * math.sin(0.21 * t) + 2 * math.cos(0.77 * t)
        o = 40 + 3 * math.sin(0.21 * t - 0.3) + 2 * math.cos(0.77 * t - 0.3)
        rows.append(_bar("EEE", t, o, max(o, c) + 0.7, min(o, c) - 0.6, c,
                         0.0 if t == 45 else 4000.0 + 900 * math.sin(1.3 * t)))
    return pd.DataFrame(rows, columns=list(rf.BAR_COLUMNS))


def sentiment() -> pd.DataFrame:
    """AAA on t = 10, 11, 15 and BBB on t = 20: ticker-level coverage t = 10..20. Market-wide rows
    on the odd t = 5..25: market coverage t = 5..25."""
    rows = [("AAA", SESSIONS[10], 0.5, 3), ("AAA", SESSIONS[11], -0.25, 1), ("AAA", SESSIONS[15], 0.0, 2),
            ("BBB", SESSIONS[20], 0.75, 4)]
    rows += [("__MARKET__", SESSIONS[t], 0.01 * t, 10 * t) for t in range(5, 26, 2)]
    return pd.DataFrame(rows, columns=["ticker", "date", "sentiment", "message_count"])


def macro() -> pd.DataFrame:
    """VIXCLS on the even sessions, DGS10 on t = 3 only; the other series absent."""
    rows = [("VIXCLS", SESSIONS[t], 12.0 + t) for t in range(0, N_SESSIONS, 2)]
    rows += [("DGS10", SESSIONS[3], 4.25)]
    return pd.DataFrame(rows, columns=["series_id", "date", "value"])


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return market()


@pytest.fixture(scope="module")
def con():
    """The connection `got` ran on: its inputs stay registered as views."""
    return duckdb.connect()


@pytest.fixture(scope="module")
def got(bars, con) -> pd.DataFrame:
    return rf.features(bars, con=con, sentiment=sentiment(), macro=macro())


@pytest.fixture(scope="module")
def transcribed(bars) -> pd.DataFrame:
    return bar_features(bars)


# --- a plain transcription of the formulas ------------------------------------------------------


def window(x: np.ndarray, d: int, t: int) -> np.ndarray | None:
    """The d values of x ending at session t; None unless all of them exist."""
    if t - d + 1 < 0:
        return None
    w = x[t - d + 1: t + 1]
    return None if np.isnan(w).any() else w


def ref(x: np.ndarray, d: int, t: int) -> float:
    """Ref(x, d): x d sessions back, NaN unless x exists on all of t-d..t."""
    w = window(x, d + 1, t)
    return NAN if w is None else float(w[0])


def div(a: float, b: float) -> float:
    """x/0 is null."""
    return NAN if np.isnan(a) or np.isnan(b) or b == 0 else a / b


def lagged(x: np.ndarray) -> np.ndarray:
    return np.concatenate([[NAN], x[:-1]])


def greater0(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), NAN, np.maximum(x, 0.0))


def ema(x: np.ndarray, n: int, t: int) -> float:
    """Qlib's finite-window EMA: sum a^k x_{t-k} / sum a^k over k < n, a = 1 - 2/(n+1)."""
    w = window(x, n, t)
    if w is None:
        return NAN
    a = 1 - 2 / (n + 1)
    weights = np.array([a**k for k in range(n)])
    return float(np.sum(weights * w[::-1]) / np.sum(weights))


def fit(w: np.ndarray) -> tuple[float, float, float]:
    """Least squares of w on 1..n: (slope, r^2 or NaN when w is constant, latest residual)."""
    x = np.arange(1, len(w) + 1, dtype=float)
    slope, intercept = np.polyfit(x, w, 1)
    fitted = slope * x + intercept
    ss_tot = float(np.sum((w - w.mean()) ** 2))
    r2 = NAN if np.all(w == w[0]) else 1 - float(np.sum((w - fitted) ** 2)) / ss_tot
    return float(slope), r2, float(w[-1] - fitted[-1])


def corr(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or np.all(a == a[0]) or np.all(b == b[0]):
        return NAN
    return float(np.corrcoef(a, b)[0, 1])


def rank(w: np.ndarray) -> float:
    """The percentile of the latest value in its window, ties averaged."""
    return (np.sum(w < w[-1]) + (np.sum(w == w[-1]) + 1) / 2) / len(w)


def ticker_features(frame: pd.DataFrame, sessions: list[dt.date]) -> pd.DataFrame:
    """Every bar feature of one ticker, on the sessions from its first bar to its last (NaN
    prices where it has no bar), then only the rows with a bar."""
    frame = frame.set_index("date")
    grid = [d for d in sessions if frame.index.min() <= d <= frame.index.max()]
    g = frame.reindex(grid)
    o, h, lo, c, v = (g[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume"))
    pc, pv = lagged(c), lagged(v)
    dc, dv = c - pc, v - pv
    up, dn, adc = greater0(dc), greater0(-dc), np.abs(dc)
    vup, vdn, adv = greater0(dv), greater0(-dv), np.abs(dv)
    gt = np.where(np.isnan(dc), NAN, (c > pc).astype(float))
    lt = np.where(np.isnan(dc), NAN, (c < pc).astype(float))
    ratio = np.array([div(a, b) for a, b in zip(c, pc, strict=True)])
    vratio = np.array([div(a, b) for a, b in zip(v, pv, strict=True)])
    logv = np.log(v + 1)
    logvr = np.log(vratio + 1)
    wv = np.abs(ratio - 1) * v
    tr = np.fmax(np.fmax(h - lo, np.abs(h - pc)), np.abs(lo - pc))
    tr[np.isnan(pc) | np.isnan(h)] = NAN
    dif = np.array([ema(c, 12, t) - ema(c, 26, t) for t in range(len(c))])

    def rolling(prefix: str, d: int, t: int) -> float:
        wc, wh, wl, wvol = window(c, d, t), window(h, d, t), window(lo, d, t), window(v, d, t)
        ct = c[t]
        if prefix == "ROC":
            return div(ref(c, d, t), ct)
        if prefix in ("CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD"):
            wgt, wlt, wup, wdn, wad = (window(s, d, t) for s in (gt, lt, up, dn, adc))
            if wgt is None:
                return NAN
            return {"CNTP": wgt.mean(), "CNTN": wlt.mean(), "CNTD": wgt.mean() - wlt.mean(),
                    "SUMP": wup.sum() / (wad.sum() + 1e-12), "SUMN": wdn.sum() / (wad.sum() + 1e-12),
                    "SUMD": (wup.sum() - wdn.sum()) / (wad.sum() + 1e-12)}[prefix]
        if prefix in ("VSUMP", "VSUMN", "VSUMD"):
            wup, wdn, wad = (window(s, d, t) for s in (vup, vdn, adv))
            if wup is None:
                return NAN
            return {"VSUMP": wup.sum(), "VSUMN": wdn.sum(), "VSUMD": wup.sum() - wdn.sum()}[prefix] / (wad.sum() + 1e-12)
        if prefix == "WVMA":
            w = window(wv, d, t)
            return NAN if w is None else np.std(w, ddof=1) / (w.mean() + 1e-12)
        if prefix == "CORR":
            return corr(wc, window(logv, d, t))
        if prefix == "CORD":
            return corr(window(ratio, d, t), window(logvr, d, t))
        if prefix in ("VMA", "VSTD"):
            if wvol is None:
                return NAN
            return (wvol.mean() if prefix == "VMA" else np.std(wvol, ddof=1)) / (v[t] + 1e-12)
        if prefix in ("MAX", "IMAX"):
            if wh is None:
                return NAN
            return wh.max() / ct if prefix == "MAX" else (np.argmax(wh) + 1) / d
        if prefix in ("MIN", "IMIN"):
            if wl is None:
                return NAN
            return wl.min() / ct if prefix == "MIN" else (np.argmin(wl) + 1) / d
        if prefix in ("RSV", "IMXD"):
            if wh is None or wl is None:
                return NAN
            if prefix == "RSV":
                return (ct - wl.min()) / (wh.max() - wl.min() + 1e-12)
            return ((np.argmax(wh) + 1) - (np.argmin(wl) + 1)) / d
        if wc is None:
            return NAN
        if prefix == "MA":
            return wc.mean() / ct
        if prefix == "STD":
            return np.std(wc, ddof=1) / ct
        if prefix in ("BETA", "RSQR", "RESI"):
            slope, r2, resid = fit(wc)
            return {"BETA": slope / ct, "RSQR": r2, "RESI": resid / ct}[prefix]
        if prefix == "QTLU":
            return np.quantile(wc, 0.8) / ct
        if prefix == "QTLD":
            return np.quantile(wc, 0.2) / ct
        if prefix == "RANK":
            return rank(wc)
        raise AssertionError(prefix)

    def indicator(name: str, t: int) -> float:
        ct = c[t]
        if name == "RSI14":
            wup, wad = window(up, 14, t), window(adc, 14, t)
            return NAN if wup is None else 100 * wup.sum() / (wad.sum() + 1e-12)
        if name == "MACD":
            return dif[t] / ct
        if name in ("MACDSIG", "MACDHIST"):
            signal = ema(dif, 9, t)
            return (signal if name == "MACDSIG" else dif[t] - signal) / ct
        if name == "BBP20":
            w = window(c, 20, t)
            return NAN if w is None else (ct - w.mean() + 2 * np.std(w)) / (4 * np.std(w) + 1e-12)
        if name == "ATR14":
            w = window(tr, 14, t)
            return NAN if w is None else w.mean() / ct
        if name == "MOM12_1":
            return div(ref(c, 21, t), ref(c, 252, t)) - 1
        if name == "REV1":
            return -(div(ct, ref(c, 1, t)) - 1)
        if name == "REV5":
            return -(div(ct, ref(c, 5, t)) - 1)
        raise AssertionError(name)

    kbar = {
        "KMID": (c - o) / o, "KLEN": (h - lo) / o, "KMID2": (c - o) / (h - lo + 1e-12),
        "KUP": (h - np.maximum(o, c)) / o, "KUP2": (h - np.maximum(o, c)) / (h - lo + 1e-12),
        "KLOW": (np.minimum(o, c) - lo) / o, "KLOW2": (np.minimum(o, c) - lo) / (h - lo + 1e-12),
        "KSFT": (2 * c - h - lo) / o, "KSFT2": (2 * c - h - lo) / (h - lo + 1e-12),
        "OPEN0": o / c, "HIGH0": h / c, "LOW0": lo / c,
    }
    out = {}
    for name in BAR_FEATURE_NAMES:
        if name in kbar:
            out[name] = kbar[name]
            continue
        prefix, digits = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")):]
        if prefix in ROLLING_PREFIXES and int(digits) in ALPHA158_WINDOWS:
            out[name] = np.array([rolling(prefix, int(digits), t) for t in range(len(c))])
        else:
            out[name] = np.array([indicator(name, t) for t in range(len(c))])
    for d in (1, 5, 20):  # the returns MKTREL compares
        out[f"ret{d}"] = np.array([div(ct, ref(c, d, t)) - 1 for t, ct in enumerate(c)])
    result = pd.DataFrame(out, index=pd.Index(grid, name="date"))
    return result[~np.isnan(c)].reset_index()


def bar_features(bars: pd.DataFrame) -> pd.DataFrame:
    """ticker_features of every ticker, on the sessions of the whole market."""
    sessions = sorted(bars["date"].unique())
    return pd.concat(
        [ticker_features(group, sessions).assign(ticker=ticker) for ticker, group in bars.groupby("ticker")],
        ignore_index=True,
    )


def expected_features(bar: pd.DataFrame, sent: pd.DataFrame | None, mac: pd.DataFrame | None) -> pd.DataFrame:
    """Every catalogue feature: the bar features (bar_features), then the cross-sectional ones
    and the alternative data."""
    frame = bar.copy()
    # cross-sectional: per session over the rows with a value
    for f in CROSS_SECTIONAL_BASE:
        csr, csz = np.full(len(frame), NAN), np.full(len(frame), NAN)
        for _, idx in frame.groupby("date").groups.items():
            values = frame.loc[idx, f].to_numpy(dtype=float)
            ok = ~np.isnan(values)
            n = ok.sum()
            vals = values[ok]
            for i, x in zip(np.asarray(idx)[ok], vals, strict=True):
                csr[i] = 0.0 if n == 1 else np.sum(vals < x) / (n - 1)
                sd = np.std(vals, ddof=1) if n >= 2 else NAN
                csz[i] = NAN if np.isnan(sd) or sd == 0 else (x - vals.mean()) / sd
        frame[f"CSR_{f}"], frame[f"CSZ_{f}"] = csr, csz
    for d in (1, 5, 20):
        r = frame[f"ret{d}"]
        frame[f"MKTREL{d}"] = r - r.groupby(frame["date"]).transform("mean")
    # alternative data
    frame["SENT"] = frame["MSGCNT"] = frame["MKT_SENT"] = frame["MKT_MSGCNT"] = NAN
    if sent is not None:
        ticker_rows = sent[sent["ticker"] != "__MARKET__"].set_index(["ticker", "date"])
        market_rows = sent[sent["ticker"] == "__MARKET__"].set_index("date")
        lo_t, hi_t = ticker_rows.index.get_level_values("date").min(), ticker_rows.index.get_level_values("date").max()
        lo_m, hi_m = market_rows.index.min(), market_rows.index.max()
        for i, row in frame.iterrows():
            key = (row["ticker"], row["date"])
            if key in ticker_rows.index:
                frame.loc[i, ["SENT", "MSGCNT"]] = ticker_rows.loc[key, ["sentiment", "message_count"]].to_numpy(float)
            elif lo_t <= row["date"] <= hi_t:
                frame.loc[i, "MSGCNT"] = 0.0
            if row["date"] in market_rows.index:
                frame.loc[i, ["MKT_SENT", "MKT_MSGCNT"]] = market_rows.loc[row["date"], ["sentiment", "message_count"]].to_numpy(float)
            elif lo_m <= row["date"] <= hi_m:
                frame.loc[i, "MKT_MSGCNT"] = 0.0
    for s in MACRO_SERIES:
        values = {} if mac is None else dict(mac.loc[mac["series_id"] == s, ["date", "value"]].itertuples(index=False))
        frame[f"MACRO_{s}"] = frame["date"].map(values).astype(float)
    return frame[["ticker", "date", *FEATURE_NAMES]].sort_values(["ticker", "date"], ignore_index=True)


def mismatches(got: pd.DataFrame, want: pd.DataFrame) -> dict[str, str]:
    """feature -> what differs, on rows matched by (ticker, date); {} when all agree (both NULL, or
    |a - b| <= max(RTOL * max(|a|, |b|), ATOL))."""
    assert list(got["ticker"]) == list(want["ticker"]) and list(got["date"]) == list(want["date"])
    out = {}
    for name in FEATURE_NAMES:
        a, b = got[name].to_numpy(dtype=float), want[name].to_numpy(dtype=float)
        na, nb = np.isnan(a), np.isnan(b)
        tol = np.maximum(RTOL * np.maximum(np.abs(a), np.abs(b)), ATOL)
        bad = (na != nb) | (~na & ~nb & ~(np.abs(a - b) <= tol))
        if bad.any():
            k = int(np.argmax(bad))
            out[name] = (f"{int(bad.sum())} rows differ, e.g. {got['ticker'][k]} {got['date'][k]}: "
                         f"sql {a[k]!r} expected {b[k]!r}")
    return out


def rows_of(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """The ticker's rows indexed by session number t."""
    t_of = {d: t for t, d in enumerate(SESSIONS)}
    rows = frame[frame["ticker"] == ticker]
    return rows.set_index(rows["date"].map(t_of)).sort_index()


# --- every feature against the transcription ----------------------------------------------------


def test_every_feature_equals_the_formula(bars, got, transcribed):
    assert list(got.columns) == ["ticker", "date", *FEATURE_NAMES]
    assert len(got) == len(bars)
    assert mismatches(got, expected_features(transcribed, sentiment(), macro())) == {}


def test_without_alternative_data_those_features_are_null(bars, transcribed):
    plain = rf.features(bars)
    alternative = ["SENT", "MSGCNT", "MKT_SENT", "MKT_MSGCNT", *(f"MACRO_{s}" for s in MACRO_SERIES)]
    assert plain[alternative].isna().all().all()
    assert mismatches(plain, expected_features(transcribed, None, None)) == {}


def test_a_missing_value_is_null_never_nan_or_inf(got, con):
    """In DuckDB's own result (before pandas turns NULL into NaN): no NaN and no infinity, e.g. a
    Corr over a constant series or an x/0 is NULL."""
    table = con.execute(rf.queries()["features"]).fetch_arrow_table()
    for name in FEATURE_NAMES:
        column = table[name]
        assert not pc.any(pc.is_nan(column)).as_py(), f"{name}: NaN"
        assert not pc.any(pc.is_inf(column)).as_py(), f"{name}: infinity"


def test_the_transcription_covers_every_family(got):
    """Every rolling family prefix, kbar/price feature, indicator and cross-sectional feature has
    values (not only NULLs) in the compared frame, so the comparison above is not vacuous."""
    empty = [n for n in FEATURE_NAMES if got[n].isna().all() and n not in
             ("MOM12_1", "CSR_MOM12_1", "CSZ_MOM12_1", "MACRO_T10Y2Y", "MACRO_BAMLH0A0HYM2", "MACRO_ANFCI")]
    assert empty == []


# --- by hand -------------------------------------------------------------------------------------
#
# HAND: one ticker, sessions t = 1..6:
#   close  10  12  13  11  12  15
#   high   11  15  15  14  15  16      the highest high (15) first on t = 2, again on t = 3 and 5
#   low     9  11   9  10  11  14      the lowest low (9) first on t = 1, again on t = 3
#   open   10  11  12  12  11  14
#   volume 100 200 300 200 100 400
HAND = {
    "close": [10, 12, 13, 11, 12, 15],
    "high": [11, 15, 15, 14, 15, 16],
    "low": [9, 11, 9, 10, 11, 14],
    "open": [10, 11, 12, 12, 11, 14],
    "volume": [100, 200, 300, 200, 100, 400],
}
# t = 5, the 5-session window t = 1..5: closes 10 12 13 11 12, sorted 10 11 12 12 13, close_5 = 12
GOLDEN_T5 = {
    "KMID": 1 / 11,  # (12 - 11)/11
    "KLEN": 4 / 11,  # (15 - 11)/11
    "KUP": 3 / 11,  # (15 - Greater(11, 12))/11
    "KLOW": 0 / 11,  # (Less(11, 12) - 11)/11
    "KSFT": -2 / 11,  # (24 - 15 - 11)/11
    "OPEN0": 11 / 12,
    "MA5": 11.6 / 12,  # mean 58/5
    # Std: deviations from 11.6: -1.6 0.4 1.4 -0.6 0.4, squares sum 2.56+0.16+1.96+0.36+0.16 = 5.2
    "STD5": math.sqrt(5.2 / 4) / 12,
    # Slope on x = 1..5 (mean 3): sum (x-3)(y-11.6) = 3.2 - 0.4 + 0 - 0.6 + 0.8 = 3.0, Sxx = 10 -> 0.3
    "BETA5": 0.3 / 12,
    "RSQR5": 9 / (10 * 5.2),  # Sxy^2 / (Sxx * Syy)
    "RESI5": (12 - (11.6 + 0.3 * 2)) / 12,  # the fitted line at x = 5 is mean + slope * (5 - 3) = 12.2
    "MAX5": 15 / 12,
    "MIN5": 9 / 12,
    "QTLU5": (12 + 0.2 * (13 - 12)) / 12,  # position 0.8 * 4 = 3.2 in 10 11 12 12 13
    "QTLD5": (10 + 0.8 * (11 - 10)) / 12,  # position 0.2 * 4 = 0.8
    "RANK5": (2 + (2 + 1) / 2) / 5,  # below 12: 10, 11; equal: 12, 12 (itself included)
    "RSV5": (12 - 9) / (15 - 9 + 1e-12),
    "IMAX5": 2 / 5,  # the first 15 is the window's 2nd session (not the 3rd or the 5th)
    "IMIN5": 1 / 5,  # the first 9 is the 1st session (not the 3rd)
    "IMXD5": (2 - 1) / 5,
    "VMA5": 180 / (100 + 1e-12),  # mean 900/5
    "ROC5": None,  # needs close_0: not yet
    "CNTP5": None,  # Mean($close>Ref($close, 1), 5) reads t = 0..5
}
# t = 6: closes 10 12 13 11 12 15, changes t = 2..6: +2 +1 -2 +1 +3
GOLDEN_T6 = {
    "ROC5": 10 / 15,  # close_1 / close_6
    "REV5": -(15 / 10 - 1),
    "REV1": -(15 / 12 - 1),
    "CNTP5": 4 / 5,
    "CNTN5": 1 / 5,
    "CNTD5": 3 / 5,
    "SUMP5": 7 / (9 + 1e-12),  # ups 2+1+1+3 = 7, |changes| 2+1+2+1+3 = 9
    "SUMN5": 2 / (9 + 1e-12),
    "SUMD5": 5 / (9 + 1e-12),
    # volume changes t = 2..6: +100 +100 -100 -100 +300
    "VSUMP5": 500 / (700 + 1e-12),
    "VSUMN5": 200 / (700 + 1e-12),
    "VSUMD5": 300 / (700 + 1e-12),
    "RANK5": 1.0,  # 15 is above the other four
    "IMAX5": 5 / 5,  # t = 2..6 highs 15 15 14 15 16: the max is the latest
    "IMIN5": 2 / 5,  # lows 11 9 10 11 14: the 9 is the window's 2nd session
}


def test_golden_values_are_the_arithmetic_in_the_comments():
    assert GOLDEN_T5["RSQR5"] == pytest.approx(0.17307692307692307, rel=1e-15)
    assert GOLDEN_T5["RESI5"] == pytest.approx(-0.2 / 12, rel=1e-12)
    assert GOLDEN_T5["QTLU5"] == pytest.approx(np.quantile([10, 12, 13, 11, 12], 0.8) / 12, rel=1e-15)
    assert GOLDEN_T5["QTLD5"] == pytest.approx(np.quantile([10, 12, 13, 11, 12], 0.2) / 12, rel=1e-15)
    x = np.arange(1, 6)
    assert GOLDEN_T5["BETA5"] == pytest.approx(np.polyfit(x, [10, 12, 13, 11, 12], 1)[0] / 12, rel=1e-12)
    ranked = pd.Series([10, 12, 13, 11, 12.0]).rolling(5).rank(pct=True).iloc[-1]
    assert GOLDEN_T5["RANK5"] == pytest.approx(ranked, rel=1e-15)


def test_hand_worked_rows():
    frame = pd.DataFrame({"ticker": "HAND", "date": SESSIONS[1:7], **HAND})
    got = rf.features(frame).set_index(pd.Index(range(1, 7)))
    for t, golden in ((5, GOLDEN_T5), (6, GOLDEN_T6)):
        for name, value in golden.items():
            if value is None:
                assert pd.isna(got.loc[t, name]), f"{name} at t={t}: {got.loc[t, name]!r}, expected NULL"
            else:
                assert got.loc[t, name] == pytest.approx(value, rel=RTOL, abs=ATOL), f"{name} at t={t}"
    # one ticker alone: its cross-sectional rank is 0 and its z-score NULL (one value)
    assert (got["CSR_REV1"].dropna() == 0).all() and got["CSR_REV1"].notna().sum() == 5
    assert got["CSZ_REV1"].isna().all()
    assert (got["MKTREL1"].dropna() == 0).all()


# --- the semantics -------------------------------------------------------------------------------


def test_warm_up_is_null_exactly_until_the_window_fills(got):
    """AAA has every session: a feature reading w sessions is NULL on t < w-1 and has a value
    from t = w-1 on (MOM12_1's 253 never fill in 72)."""
    aaa = rows_of(got, "AAA")
    assert list(aaa.index) == list(range(N_SESSIONS))
    for name in BAR_FEATURE_NAMES:
        first = WINDOW[name] - 1
        missing = aaa[name].isna().to_numpy()
        assert missing[:first].all(), f"{name}: a value before t={first} (a partial window)"
        assert not missing[first:].any(), f"{name}: NULL at or after t={first}"


def test_a_missing_session_makes_every_window_over_it_null(got):
    """BBB has no bar on t = 40: a value reading w sessions is NULL on t = 41..39+w and back on t = 40+w."""
    bbb = rows_of(got, "BBB")
    assert 40 not in bbb.index
    for name in BAR_FEATURE_NAMES:
        w = WINDOW[name]
        if w == 1 or name == "MOM12_1":
            continue
        over = [t for t in range(41, 40 + w) if t < N_SESSIONS]
        assert bbb.loc[over, name].isna().all(), f"{name}: a value over the missing session"
        if 40 + w < N_SESSIONS:
            assert pd.notna(bbb.loc[40 + w, name]), f"{name}: NULL on t={40 + w}, after the gap"
        assert pd.notna(bbb.loc[39, name]) or w > 40, f"{name}: NULL on t=39, before the gap"


def test_a_new_listing_starts_with_nulls_not_zeros(got):
    ccc = rows_of(got, "CCC")
    assert ccc.index[0] == 50
    for name in ("ROC5", "MA5", "STD5", "CNTP5", "SUMP5", "VSUMP5", "REV1", "REV5", "RSI14", "MACD"):
        w = WINDOW[name]
        assert ccc[name].iloc[: w - 1].isna().all(), name
        assert ccc[name].iloc[w - 1:].notna().all(), name
    assert pd.notna(ccc.loc[50, "KMID"])


def test_a_constant_series_has_null_rsquare_and_corr(got):
    """DDD's close is constant on t = 0..39 (so is $close/Ref($close, 1), on t = 1..39) and its
    volume from t = 40 on (so is Log($volume/Ref($volume, 1)+1), from t = 41 on): Rsquare is NULL
    while the window lies in t = 0..39, Corr and CORD while either series is constant over it."""
    ddd = rows_of(got, "DDD")
    for d in ALPHA158_WINDOWS:
        assert ddd.loc[d - 1: 39, f"RSQR{d}"].isna().all()
        assert ddd.loc[max(40, d - 1):, f"RSQR{d}"].notna().all()
        assert (ddd.loc[d - 1: 39, f"STD{d}"] == 0).all()  # Std itself is 0, not NULL
        assert (ddd.loc[d - 1: 39, f"IMAX{d}"] == 1 / d).all()  # every high tied: the first
        corr_valid = {t for t in range(d - 1, N_SESSIONS) if t >= 40 and t - d + 1 <= 39}
        assert set(ddd.index[ddd[f"CORR{d}"].notna()]) == corr_valid, d
        cord_valid = {t for t in range(d, N_SESSIONS) if t >= 40 and t - d + 1 <= 40}
        assert set(ddd.index[ddd[f"CORD{d}"].notna()]) == cord_valid, d
    assert rows_of(got, "AAA")["CORR5"].iloc[4:].notna().all()


def test_ties_in_rank_are_averaged(got):
    """AAA's closes are integers that repeat; RANK equals pandas' rolling rank (average ties)."""
    aaa = rows_of(got, "AAA")
    close = rows_of(market(), "AAA")["close"]
    tied = 0
    for d in ALPHA158_WINDOWS:
        want = close.rolling(d).rank(pct=True, method="average")
        assert np.allclose(aaa[f"RANK{d}"], want, rtol=RTOL, atol=ATOL, equal_nan=True), d
        tied += sum((close.iloc[t - d + 1: t + 1] == close.iloc[t]).sum() > 1 for t in range(d - 1, N_SESSIONS))
    assert tied > 50  # the series does exercise ties


def test_idxmax_takes_the_first_maximum(got):
    aaa, high = rows_of(got, "AAA"), rows_of(market(), "AAA")["high"].to_numpy()
    repeated = 0
    for t in range(19, N_SESSIONS):
        w = high[t - 19: t + 1]
        first = int(np.argmax(w)) + 1
        assert aaa.loc[t, "IMAX20"] == pytest.approx(first / 20, abs=ATOL), t
        repeated += int((w == w.max()).sum() > 1)
    assert repeated > 10  # windows whose maximum occurs more than once


def test_x_over_zero_is_null(got):
    """EEE's volume is 0 on t = 45: Log($volume/Ref($volume, 1)+1) on t = 46 is x/0, so CORD over
    t = 46 is NULL; the zero volume itself is a value (VMA divides by $volume+1e-12)."""
    eee = rows_of(got, "EEE")
    for d in ALPHA158_WINDOWS:
        assert eee.loc[46: 45 + d, f"CORD{d}"].isna().all()
        assert pd.notna(eee.loc[45, f"CORD{d}"]) or d > 45
        if 46 + d < N_SESSIONS:
            assert pd.notna(eee.loc[46 + d, f"CORD{d}"])
    assert eee.loc[45, "VMA5"] > 1e14
    assert eee.loc[46:, "CORR5"].notna().all()


def test_sentiment_and_macro_follow_their_coverage(got):
    aaa, ccc = rows_of(got, "AAA"), rows_of(got, "CCC")
    assert (aaa.loc[10, "SENT"], aaa.loc[10, "MSGCNT"]) == (0.5, 3)
    assert pd.isna(aaa.loc[12, "SENT"]) and aaa.loc[12, "MSGCNT"] == 0  # inside coverage, no messages
    assert pd.isna(aaa.loc[9, "MSGCNT"]) and pd.isna(aaa.loc[21, "MSGCNT"])  # outside t = 10..20
    assert aaa.loc[20, "MSGCNT"] == 0 and rows_of(got, "BBB").loc[20, "MSGCNT"] == 4
    assert ccc["SENT"].isna().all() and ccc["MSGCNT"].isna().all()  # listed after the coverage
    assert (aaa.loc[7, "MKT_SENT"], aaa.loc[7, "MKT_MSGCNT"]) == (0.01 * 7, 70)
    assert pd.isna(aaa.loc[6, "MKT_SENT"]) and aaa.loc[6, "MKT_MSGCNT"] == 0
    assert aaa.loc[:4, "MKT_MSGCNT"].isna().all() and aaa.loc[26:, "MKT_MSGCNT"].isna().all()
    assert aaa.loc[8, "MACRO_VIXCLS"] == 20.0 and pd.isna(aaa.loc[9, "MACRO_VIXCLS"])
    assert aaa.loc[3, "MACRO_DGS10"] == 4.25 and aaa["MACRO_DGS10"].notna().sum() == 1
    assert got["MACRO_ANFCI"].isna().all()


def test_mom12_1_reads_253_sessions():
    """One ticker over 260 sessions with every bar, one without a bar on t = 100."""
    days = [d.date() for d in pd.bdate_range("2023-01-02", periods=260)]
    t = np.arange(260)
    close = 100 + 10 * np.sin(t / 17) + 0.05 * t
    full = pd.DataFrame({"ticker": "LONG", "date": days, "open": close, "high": close + 1, "low": close - 1,
                         "close": close, "volume": 1e6})
    gap = full.assign(ticker="GAPD", close=close * 1.1).drop(index=100)
    early = full.assign(ticker="GAPE", close=close * 0.9).drop(index=1)  # no bar on t = 1
    got = rf.features(pd.concat([full, gap, early], ignore_index=True))
    long = got[got["ticker"] == "LONG"].reset_index(drop=True)
    assert long["MOM12_1"].iloc[:252].isna().all()
    want = close[252 - 21: 260 - 21] / close[0: 8] - 1  # Ref($close, 21)/Ref($close, 252)-1
    assert np.allclose(long["MOM12_1"].iloc[252:], want, rtol=RTOL, atol=ATOL)
    assert long.loc[255, "MOM12_1"] == pytest.approx(close[234] / close[3] - 1, rel=RTOL)
    # the gap at t = 100 lies inside every 253-session window up to t = 352
    assert got.loc[got["ticker"] == "GAPD", "MOM12_1"].isna().all()
    # the gap at t = 1 lies inside the windows of t = 252 and 253 (both Refs exist on t = 252)
    gape = got[got["ticker"] == "GAPE"].set_index(pd.Index([0, *range(2, 260)]))
    assert gape.loc[:253, "MOM12_1"].isna().all()
    assert gape.loc[254, "MOM12_1"] == pytest.approx(0.9 * close[233] / (0.9 * close[2]) - 1, rel=RTOL)
    # the cross-sectional transforms of MOM12_1: LONG is alone with a value on t >= 252
    assert (long["CSR_MOM12_1"].iloc[252:] == 0).all() and long["CSZ_MOM12_1"].isna().all()
    assert long["CSR_MOM12_1"].iloc[:252].isna().all()
