"""A deterministic synthetic market with a planted, documented signal, and optional realism.

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

Realism, OFF by default (the default market is clean: every ticker trades every session):

- `events=True`: listings and delistings (about a fifth of the tickers list late, a seventh
  delist), splits (2:1, 3:1, 3:2, 4:1, 1:2 reverse) and spin-off drops (the price keeps 40-45%).
  Bars are raw, as a vendor that does not adjust would send them: a split shows as a one-day
  jump by its ratio. Each split and spin-off is recorded in `events` and, since the
  validation must flag it as a corporate action, in the manifest.
- `defect_rate > 0`: that fraction of the (ticker, session) cells carries an injected vendor
  defect, one class per cell, each recorded in the manifest with the rule that must catch
  it (see DEFECT_CLASSES).

Every random decision of the realism layer is a hash of (seed, ticker, session number), not a
draw from a stream, so the realism of a session does not depend on the end of the range: a
single session is still the same rows as the backfill's. Two decisions (defects, splits,
spin-offs) of one ticker are at least five sessions apart and never on a ticker's first two
or last two sessions, so each is judged against clean neighbours; a split is placed only on
a session whose own move (overnight and close to close) is under 2.5%, since a split on a
day that also moved 6% is not recognisable from the bars alone.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickerlake.calendar import sessions_between

PLANTED_STRENGTH = 0.008
N_SECTORS = 11
# Volatility may cluster up to this multiple of a ticker's base volatility: with Student-t shocks the
# GARCH recursion otherwise explodes now and then over millions of ticker-sessions (prices x5 a day,
# volumes of 1e13). The cap never binds in the small default markets (their bars are unchanged).
MAX_VOL_MULTIPLE = 8.0

# defect class -> the validation rule that must catch it (tickerlake.validation rule names)
DEFECT_CLASSES: dict[str, str] = {
    "blank_price": "not_null_open",
    "high_below_low": "high_ge_low",
    "close_outside_range": "high_ge_close",  # or close_ge_low for the "below" variant (see manifest)
    "zero_price": "positive_close",
    "decimal_shift": "jump_reverts",
    "stale_bar": "stale_bar",
    "duplicate_bar": "unique_ticker_date",
    "shifted_date": "date_is_session",
    "unadjusted_split": "unadjusted_split",
}
EVENT_RULES: dict[str, str] = {"split": "unadjusted_split", "spin_off": "corporate_action"}
SPLIT_RATIOS = (2.0, 3.0, 1.5, 4.0, 0.5)  # new shares per old share; price divides by it
LATE_LISTING_SHARE = 0.2
DELISTING_SHARE = 0.15
SPLIT_PER_SESSION = 1.0e-4  # about 2.5% of tickers a year
SPIN_OFF_PER_SESSION = 3.0e-5
MIN_GAP = 5  # sessions between two decisions of one ticker
QUIET_MOVE = 0.025

_SALT_LISTING, _SALT_LISTING_AT, _SALT_DELISTING, _SALT_DELISTING_AT = 11, 12, 13, 14
_SALT_CELL, _SALT_VARIANT = 21, 22
_MANIFEST_COLUMNS = ["ticker", "date", "defect", "rule", "severity", "detail"]
_EVENT_COLUMNS = ["ticker", "date", "event", "ratio"]


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


@dataclass(frozen=True)
class SyntheticMarket:
    """Bars plus what was done to them.

    bars: ticker, date, open, high, low, close, volume (rows as a vendor would send them).
    manifest: ticker, date, defect, rule, severity, detail: every injected defect and every
      corporate action the validation must flag (rule = the rule that must catch it).
    events: ticker, date, event (listing, delisting, split, spin_off), ratio.
    listed: session -> number of tickers listed that session (the expected universe).
    """

    bars: pd.DataFrame
    manifest: pd.DataFrame
    events: pd.DataFrame
    listed: pd.Series


@dataclass
class _Sim:
    sessions: list[dt.date]
    tickers: list[str]
    opens: np.ndarray  # (sessions, tickers)
    highs: np.ndarray
    lows: np.ndarray
    closes: np.ndarray
    volumes: np.ndarray
    listed: np.ndarray | None  # bool (sessions, tickers); None = all listed
    date_shift: dict[tuple[int, int], int]  # (t, i) -> days to add to the date
    duplicates: list[tuple[int, int]]  # (t, i) sent twice
    manifest: list[tuple[int, int, str, str, str, str]]  # t, i, defect, rule, severity, detail
    events: list[tuple[int, int, str, float]]  # t, i, event, ratio


def generate_bars(
    n_tickers: int,
    history_start: dt.date | str,
    end: dt.date | str,
    seed: int,
    *,
    events: bool = False,
    defect_rate: float = 0.0,
) -> pd.DataFrame:
    """Daily bars for every session in [history_start, end]: ticker, date, open, high, low, close, volume."""
    return generate_market(n_tickers, history_start, end, seed, events=events, defect_rate=defect_rate).bars


def bars_for_interval(
    n_tickers: int,
    history_start: dt.date | str,
    start: dt.date | str,
    end: dt.date | str,
    seed: int,
    *,
    events: bool = False,
    defect_rate: float = 0.0,
) -> pd.DataFrame:
    """Bars for sessions in [start, end], identical to the same rows of a full backfill."""
    return generate_market(
        n_tickers, history_start, end, seed, events=events, defect_rate=defect_rate, start=start
    ).bars


def generate_market(
    n_tickers: int,
    history_start: dt.date | str,
    end: dt.date | str,
    seed: int,
    *,
    events: bool = False,
    defect_rate: float = 0.0,
    start: dt.date | str | None = None,
) -> SyntheticMarket:
    """The market of [history_start, end] (rows from `start` on, if given) with its manifest."""
    sim = _simulate(n_tickers, history_start, end, seed, events, defect_rate)
    first = 0 if start is None else _first_index(sim.sessions, start)
    bars = _frame(sim, first)
    manifest = pd.DataFrame(
        [(sim.tickers[i], sim.sessions[t], d, r, s, x) for t, i, d, r, s, x in sim.manifest if t >= first],
        columns=_MANIFEST_COLUMNS,
    )
    ev = pd.DataFrame(
        [(sim.tickers[i], sim.sessions[t], e, ratio) for t, i, e, ratio in sim.events if t >= first],
        columns=_EVENT_COLUMNS,
    )
    counts = (
        np.full(len(sim.sessions), len(sim.tickers)) if sim.listed is None else sim.listed.sum(axis=1)
    )
    listed = pd.Series(counts[first:], index=pd.Index(sim.sessions[first:], name="date"), name="listed")
    return SyntheticMarket(bars=bars, manifest=manifest, events=ev, listed=listed)


@dataclass(frozen=True)
class ArrowBars:
    """The rows of `bars_for_interval` as Arrow record batches, built without a Python object per
    row (the fast path of a large backfill). `batches()` may be called again (a retried write)."""

    schema: object
    rows: int
    rows_by_date: dict[dt.date, int]
    _sim: _Sim
    _first: int
    _sessions_per_batch: int

    def batches(self) -> Iterator:
        import pyarrow as pa

        sim, names = self._sim, pa.array(self._sim.tickers, pa.string())
        for lo in range(self._first, len(sim.sessions), self._sessions_per_batch):
            hi = min(lo + self._sessions_per_batch, len(sim.sessions))
            yield _record_batch(pa, self.schema, names, _columns(sim, lo, hi, with_duplicates=False))
        dup = _duplicate_columns(sim, self._first)
        if dup is not None:
            yield _record_batch(pa, self.schema, names, dup)


def arrow_bars(
    n_tickers: int,
    history_start: dt.date | str,
    start: dt.date | str,
    end: dt.date | str,
    seed: int,
    *,
    events: bool = False,
    defect_rate: float = 0.0,
    sessions_per_batch: int = 126,
) -> ArrowBars:
    """The same rows as `bars_for_interval`, as Arrow batches with their count per date."""
    import pyarrow as pa

    sim = _simulate(n_tickers, history_start, end, seed, events, defect_rate)
    first = _first_index(sim.sessions, start)
    schema = pa.schema([("ticker", pa.string()), ("date", pa.date32()),
                        *[(c, pa.float64()) for c in ("open", "high", "low", "close", "volume")]])
    counts: dict[dt.date, int] = {}
    rows = 0
    if first < len(sim.sessions):
        days = _columns(sim, first, len(sim.sessions), dates_only=True)["date"]
        uniq, cnt = np.unique(days, return_counts=True)
        counts = {d: int(k) for d, k in zip(uniq.astype(object), cnt, strict=True)}
        rows = int(cnt.sum())
    return ArrowBars(schema, rows, counts, sim, first, sessions_per_batch)


def listed_counts(
    n_tickers: int, history_start: dt.date | str, start: dt.date | str, end: dt.date | str, seed: int,
    *, events: bool = False,
) -> pd.Series:
    """Tickers listed per session in [start, end] (the expected universe), without simulating prices."""
    sessions = sessions_between(history_start, end)
    first = _first_index(sessions, start) if sessions else 0
    listing, delisting = _listing_schedule(n_tickers, seed, events)
    t_idx = np.arange(first, len(sessions))[:, None]
    counts = ((t_idx >= listing[None, :]) & (t_idx < delisting[None, :])).sum(axis=1)
    return pd.Series(counts, index=pd.Index(sessions[first:], name="date"), name="listed")


# --- simulation ------------------------------------------------------------------------------


def _first_index(sessions: list[dt.date], start) -> int:
    s = pd.Timestamp(start).date()
    return int(np.searchsorted(np.array(sessions, dtype="datetime64[D]"), np.datetime64(s, "D")))


def _simulate(n: int, history_start, end, seed: int, events: bool, defect_rate: float) -> _Sim:
    if not 0.0 <= defect_rate < 0.2:
        raise ValueError(f"defect_rate must be in [0, 0.2), got {defect_rate}")
    sessions = sessions_between(history_start, end)
    tickers = universe(n)
    t_len = len(sessions)
    opens, highs, lows, closes, volumes = (np.empty((t_len, n)) for _ in range(5))
    if t_len:
        _clean_market(n, t_len, seed, opens, highs, lows, closes, volumes)
    sim = _Sim(sessions, tickers, opens, highs, lows, closes, volumes, None, {}, [], [], [])
    if t_len and (events or defect_rate > 0):
        _add_realism(sim, seed, events, defect_rate)
    for arr in (sim.opens, sim.highs, sim.lows, sim.closes):
        np.round(arr, 4, out=arr)
    return sim


def _clean_market(n, t_len, seed, opens, highs, lows, closes, volumes) -> None:
    """The factor model with the planted signal (unchanged draw order: same seed, same bars)."""
    rng = np.random.default_rng(seed)
    sector = rng.integers(0, N_SECTORS, n)
    beta = rng.uniform(0.6, 1.4, n)
    base_sigma = rng.uniform(0.012, 0.03, n)
    log_open = np.log(rng.uniform(10, 400, n))
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(2e7), n))

    var = base_sigma**2
    ewm_volume = base_volume.copy()
    vol_shock = np.zeros(n)
    alpha_prev = np.zeros(n)  # alpha of session t-1, applied to open(t) -> open(t+1)
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
        var = np.minimum(0.05 * base_sigma**2 + 0.85 * var + 0.10 * idio**2, MAX_VOL_MULTIPLE**2 * base_sigma**2)
        log_open = log_open + growth


def _uniform(seed: int, salt: int, a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """A uniform number in [0, 1) per (a, b): splitmix64 of (seed, salt, a, b), no stream state."""
    with np.errstate(over="ignore"):
        x = (
            np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
            ^ np.uint64(salt) * np.uint64(0xD1B54A32D192ED03)
            ^ np.asarray(a, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
            ^ (np.asarray(b, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x94D049BB133111EB)
        )
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


_NEVER = np.iinfo(np.int64).max // 4


def _listing_schedule(n: int, seed: int, events: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per ticker: first listed session number, first session number after its delisting."""
    tix = np.arange(n)
    if not events:
        return np.zeros(n, dtype=np.int64), np.full(n, _NEVER, dtype=np.int64)
    late = _uniform(seed, _SALT_LISTING, tix, 0) < LATE_LISTING_SHARE
    listing = np.where(late, 1 + (-np.log1p(-_uniform(seed, _SALT_LISTING_AT, tix, 0)) * 250).astype(np.int64), 0)
    gone = _uniform(seed, _SALT_DELISTING, tix, 0) < DELISTING_SHARE
    life = 60 + (-np.log1p(-_uniform(seed, _SALT_DELISTING_AT, tix, 0)) * 1500).astype(np.int64)
    return listing, np.where(gone, listing + life, _NEVER)


def _add_realism(sim: _Sim, seed: int, events: bool, defect_rate: float) -> None:
    t_len, n = sim.closes.shape
    tix = np.arange(n)
    listing, delisting = _listing_schedule(n, seed, events)
    if events:
        t_idx = np.arange(t_len)[:, None]
        sim.listed = (t_idx >= listing[None, :]) & (t_idx < delisting[None, :])
        for i in np.flatnonzero(listing > 0):
            if listing[i] < t_len:
                sim.events.append((int(listing[i]), int(i), "listing", float("nan")))
        for i in np.flatnonzero(delisting < t_len):
            sim.events.append((int(delisting[i]) - 1, int(i), "delisting", float("nan")))

    # one uniform per cell decides: [0, rate) a defect (class by sub-interval), then a split, a spin-off
    classes = list(DEFECT_CLASSES)
    p_split = SPLIT_PER_SESSION if events else 0.0
    p_spin = SPIN_OFF_PER_SESSION if events else 0.0
    t_grid = np.arange(t_len, dtype=np.uint64)[:, None]
    u = _uniform(seed, _SALT_CELL, tix[None, :], t_grid)
    cand = u < defect_rate + p_split + p_spin
    # eligible: two listed sessions before, two after (delisting known up front, not from `end`)
    t_col = np.arange(t_len)[:, None]
    cand &= (t_col >= listing[None, :] + 2) & (t_col < delisting[None, :] - 2)
    # spacing, looking back only (so the decision of a session never depends on later sessions)
    csum = np.cumsum(cand, axis=0, dtype=np.int32)
    before = np.zeros_like(csum)
    before[1:] = csum[:-1]
    before[MIN_GAP:] -= csum[:-MIN_GAP]
    kept = cand & (before == 0)
    ts, iss = np.nonzero(kept)
    if not len(ts):
        return
    uu = u[ts, iss]
    variant = _uniform(seed, _SALT_VARIANT, iss, ts.astype(np.uint64))

    prev_close = sim.closes[ts - 1, iss]
    quiet = (np.abs(np.log(sim.closes[ts, iss] / prev_close)) < QUIET_MOVE) & (
        np.abs(np.log(sim.opens[ts, iss] / prev_close)) < QUIET_MOVE
    )
    sessions = np.array(sim.sessions, dtype="datetime64[D]")

    log_factor = None
    row_defects = []
    for k in range(len(ts)):
        t, i, x, v = int(ts[k]), int(iss[k]), float(uu[k]), float(variant[k])
        if x < defect_rate:
            kind = classes[min(int(x / defect_rate * len(classes)), len(classes) - 1)]
        elif x < defect_rate + p_split:
            kind = "split"
        else:
            kind = "spin_off"
        if kind in ("unadjusted_split", "split", "spin_off"):
            if kind != "spin_off" and not quiet[k]:
                continue
            if log_factor is None:
                log_factor = np.zeros((t_len, n))
            if kind == "spin_off":
                ratio = 0.40 + 0.05 * v  # the price keeps 40-45%
                log_factor[t, i] += np.log(ratio)
                sim.events.append((t, i, "spin_off", ratio))
                sim.manifest.append((t, i, "spin_off", EVENT_RULES["spin_off"], "warn", f"price x {ratio:.3f}"))
            else:
                ratio = SPLIT_RATIOS[min(int(v * len(SPLIT_RATIOS)), len(SPLIT_RATIOS) - 1)]
                log_factor[t, i] -= np.log(ratio)
                sim.events.append((t, i, "split", ratio))
                sim.manifest.append((t, i, "unadjusted_split", DEFECT_CLASSES["unadjusted_split"], "warn",
                                     (f"split {ratio:g}:1" if ratio > 1 else f"reverse split 1:{1 / ratio:g}") + ", bars not adjusted"))
            continue
        if kind == "shifted_date":
            day = sessions[t] - np.timedelta64(1, "D")
            if t > 0 and sessions[t - 1] == day:
                continue  # the day before is a session: a one-day slip would not leave the calendar
        row_defects.append((t, i, kind, v))

    if log_factor is not None:
        factor = np.exp(np.cumsum(log_factor, axis=0))
        for arr in (sim.opens, sim.highs, sim.lows, sim.closes):
            arr *= factor
        sim.volumes /= factor
        np.round(sim.volumes, 0, out=sim.volumes)

    for t, i, kind, v in row_defects:
        rule, detail = DEFECT_CLASSES[kind], ""
        o, h, lo, c = sim.opens[t, i], sim.highs[t, i], sim.lows[t, i], sim.closes[t, i]
        if kind == "blank_price":
            sim.opens[t, i] = np.nan
            if v < 0.7:
                sim.highs[t, i] = sim.lows[t, i] = np.nan
                detail = "open, high and low blank"
            else:
                detail = "open blank"
        elif kind == "high_below_low":
            sim.highs[t, i], sim.lows[t, i] = lo * 0.995, h * 1.005
            detail = "high and low swapped"
        elif kind == "close_outside_range":
            if v < 0.5:
                sim.closes[t, i] = h * (1.05 + 0.5 * v)
                detail = "close above high"
            else:
                sim.closes[t, i] = lo * (0.3 + 0.4 * (v - 0.5))
                rule, detail = "close_ge_low", "close below low"
        elif kind == "zero_price":
            sim.closes[t, i] = 0.0
            detail = "close 0"
        elif kind == "decimal_shift":
            scale = 100.0 if v < 0.5 else 0.01
            for arr in (sim.opens, sim.highs, sim.lows, sim.closes):
                arr[t, i] *= scale
            detail = f"prices x {scale:g} for one session"
        elif kind == "stale_bar":
            for arr in (sim.opens, sim.highs, sim.lows, sim.closes, sim.volumes):
                arr[t, i] = arr[t - 1, i]
            detail = "the previous session's bar repeated"
        elif kind == "duplicate_bar":
            sim.duplicates.append((t, i))
            detail = "the same bar sent twice"
        elif kind == "shifted_date":
            sim.date_shift[(t, i)] = -1
            detail = "dated one calendar day early (a time zone slip)"
        del o, c
        sim.manifest.append((t, i, kind, rule, "reject", detail))
    sim.manifest.sort(key=lambda m: (m[0], m[1], m[2]))
    sim.events.sort(key=lambda e: (e[0], e[1], e[2]))
    sim.duplicates.sort()


# --- output ----------------------------------------------------------------------------------


def _columns(sim: _Sim, lo: int, hi: int, with_duplicates: bool = True,
             dates_only: bool = False) -> dict[str, np.ndarray]:
    """Row-major (session, ticker) columns of sessions [lo, hi): ticker index, date, prices, volume."""
    n = len(sim.tickers)
    rows = hi - lo
    dates = np.repeat(np.array(sim.sessions[lo:hi], dtype="datetime64[D]"), n)
    cols = {"date": dates}
    if not dates_only:
        cols.update({
            "ticker": np.tile(np.arange(n, dtype=np.int32), rows),
            "open": sim.opens[lo:hi].ravel(),
            "high": sim.highs[lo:hi].ravel(),
            "low": sim.lows[lo:hi].ravel(),
            "close": sim.closes[lo:hi].ravel(),
            "volume": sim.volumes[lo:hi].ravel(),
        })
    if sim.date_shift:
        cols["date"] = cols["date"].copy()
        for (t, i), days in sim.date_shift.items():
            if lo <= t < hi:
                cols["date"][(t - lo) * n + i] += np.timedelta64(days, "D")
    if sim.listed is not None:
        mask = sim.listed[lo:hi].ravel()
        cols = {k: v[mask] for k, v in cols.items()}
    dup = _duplicate_columns(sim, lo, hi) if (with_duplicates or dates_only) else None
    if dup is not None:
        cols = {k: np.concatenate([cols[k], dup[k]]) for k in cols}
    return cols


def _duplicate_columns(sim: _Sim, lo: int, hi: int | None = None) -> dict[str, np.ndarray] | None:
    hi = len(sim.sessions) if hi is None else hi
    dups = [(t, i) for t, i in sim.duplicates if lo <= t < hi]
    if not dups:
        return None
    ts = np.array([d[0] for d in dups])
    iss = np.array([d[1] for d in dups])
    return {
        "ticker": iss.astype(np.int32),
        "date": np.array(sim.sessions, dtype="datetime64[D]")[ts],
        "open": sim.opens[ts, iss],
        "high": sim.highs[ts, iss],
        "low": sim.lows[ts, iss],
        "close": sim.closes[ts, iss],
        "volume": sim.volumes[ts, iss],
    }


def _frame(sim: _Sim, first: int) -> pd.DataFrame:
    if not sim.sessions or first >= len(sim.sessions):
        return _empty()
    cols = _columns(sim, first, len(sim.sessions))
    names = np.array(sim.tickers, dtype=object)
    frame = pd.DataFrame(
        {
            "ticker": names[cols["ticker"]],
            "date": cols["date"].astype(object),
            **{c: cols[c] for c in ("open", "high", "low", "close", "volume")},
        }
    )
    return frame


def _record_batch(pa, schema, names, cols: dict[str, np.ndarray]):
    import pyarrow.compute as pc

    tick = pc.take(names, pa.array(cols["ticker"]))
    return pa.RecordBatch.from_arrays(
        [tick, pa.array(cols["date"]).cast(pa.date32()),
         *[pa.array(cols[c]) for c in ("open", "high", "low", "close", "volume")]],
        schema=schema,
    )


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": pd.Series(dtype=object),
            "date": pd.Series(dtype=object),
            **{c: pd.Series(dtype="float64") for c in ("open", "high", "low", "close", "volume")},
        }
    )
