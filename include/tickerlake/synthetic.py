"""A deterministic synthetic market with a planted, documented signal.

Prices follow market, sector and idiosyncratic factors with fat tails (Student t) and
volatility clustering (GARCH(1,1)-like). The same (seed, universe, history start) always
gives the same bars, so generating one session alone equals slicing it out of a backfill.

The planted signal (what the demo's model can honestly learn, and what the simple
baselines cannot): a move from open to close confirmed by unusual volume continues into the
next open-to-open return,

    alpha_t = PLANTED_STRENGTH * tanh(KMID_t / sigma) * (V_t / Vbar_t - 1), clipped to +-3 sigma,

where KMID_t = (close - open) / open, sigma is the ticker's daily volatility and Vbar_t the
ticker's running (EWMA, 20-session) volume. alpha_t is added to log(open[t+2] / open[t+1]),
which is exactly the 1-session label of session t.
"""

from __future__ import annotations

import datetime as dt
import string

import numpy as np
import pandas as pd

from tickerlake.calendar import sessions_between

PLANTED_STRENGTH = 0.008
N_SECTORS = 11


def universe(n: int) -> list[str]:
    """Deterministic ticker names; every tenth one is a share class with a dot (`ABC.B`)."""
    letters = string.ascii_uppercase
    names = []
    for i in range(n):
        a, rem = divmod(i, 26 * 26)
        b, c = divmod(rem, 26)
        base = "S" + letters[a % 26] + letters[b] + letters[c]
        names.append(f"{base}.B" if i % 10 == 9 else base)
    return names


def generate_bars(
    n_tickers: int, history_start: dt.date | str, end: dt.date | str, seed: int
) -> pd.DataFrame:
    """Daily bars for every session in [history_start, end]: ticker, date, open, high, low, close, volume."""
    sessions = sessions_between(history_start, end)
    if not sessions:
        return _empty()
    rng = np.random.default_rng(seed)
    n, t_len = n_tickers, len(sessions)
    tickers = universe(n)
    sector = rng.integers(0, N_SECTORS, n)
    beta = rng.uniform(0.6, 1.4, n)
    base_sigma = rng.uniform(0.012, 0.03, n)
    log_open = np.log(rng.uniform(10, 400, n))
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(2e7), n))

    var = base_sigma**2
    ewm_volume = base_volume.copy()
    vol_shock = np.zeros(n)
    alpha_prev = np.zeros(n)  # alpha of session t-1, applied to open(t) -> open(t+1)

    opens = np.empty((t_len, n))
    highs = np.empty((t_len, n))
    lows = np.empty((t_len, n))
    closes = np.empty((t_len, n))
    volumes = np.empty((t_len, n))
    for t in range(t_len):
        market = 0.0003 + 0.009 * rng.standard_t(5) / np.sqrt(5 / 3)
        sectors = 0.005 * rng.standard_t(5, N_SECTORS) / np.sqrt(5 / 3)
        sigma = np.sqrt(var)
        idio = sigma * rng.standard_t(4, n) / np.sqrt(2.0)
        move = beta * market + sectors[sector] + idio  # open(t) -> open(t+1), before alpha
        growth = move + alpha_prev
        o = np.exp(log_open)
        c = o * np.exp(0.7 * growth + 0.25 * sigma * rng.standard_normal(n))
        wick = 0.35 * sigma
        h = np.maximum(o, c) * np.exp(np.abs(rng.standard_normal(n)) * wick)
        lo = np.minimum(o, c) * np.exp(-np.abs(rng.standard_normal(n)) * wick)
        vol_shock = 0.6 * vol_shock + 0.35 * rng.standard_normal(n)
        v = np.round(base_volume * np.exp(vol_shock + 8.0 * np.abs(idio)))
        opens[t], highs[t], lows[t], closes[t], volumes[t] = o, h, lo, c, v

        kmid = (c - o) / o
        ratio = v / ewm_volume - 1.0
        alpha_prev = np.clip(PLANTED_STRENGTH * np.tanh(kmid / base_sigma) * ratio, -3 * sigma, 3 * sigma)
        ewm_volume = ewm_volume + (v - ewm_volume) * (2.0 / 21.0)
        var = 0.05 * base_sigma**2 + 0.85 * var + 0.10 * idio**2
        log_open = log_open + growth

    frame = pd.DataFrame(
        {
            "ticker": np.tile(np.array(tickers, dtype=object), t_len),
            "date": np.repeat(np.array(sessions, dtype="datetime64[D]"), n),
            "open": opens.ravel(),
            "high": highs.ravel(),
            "low": lows.ravel(),
            "close": closes.ravel(),
            "volume": volumes.ravel(),
        }
    )
    frame["date"] = frame["date"].dt.date
    for col in ("open", "high", "low", "close"):
        frame[col] = frame[col].round(4)
    return frame


def bars_for_interval(
    n_tickers: int, history_start: dt.date | str, start: dt.date | str, end: dt.date | str, seed: int
) -> pd.DataFrame:
    """Bars for sessions in [start, end], identical to the same rows of a full backfill."""
    full = generate_bars(n_tickers, history_start, end, seed)
    s = pd.Timestamp(start).date()
    return full[full["date"] >= s].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": pd.Series(dtype=object),
            "date": pd.Series(dtype=object),
            **{c: pd.Series(dtype="float64") for c in ("open", "high", "low", "close", "volume")},
        }
    )
