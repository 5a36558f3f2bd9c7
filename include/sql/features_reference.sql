-- The reference implementation of the feature catalogue (tickerlake.catalog.FEATURES) and of the
-- labels, in DuckDB SQL, written apart from the Spark job (tickerlake.features): the parity test
-- and the speed benchmark compare Spark against it.
--
-- Inputs (relations): `bars` (ticker, date, open, high, low, close, volume), one row per
-- (ticker, date), e.g. silver.bars_daily; `sentiment` (ticker, date, sentiment, message_count),
-- e.g. silver.sentiment_daily, market-wide rows under ticker '__MARKET__'; `macro` (series_id,
-- date, value), e.g. silver.macro_asof. Run by tickerlake.reference_features, which splits this
-- file on its `-- name: X` lines into sections and expands the templates into one statement:
--   - `features` and `labels` are statements. Every other section holds templates, each opened
--     by a `-- family: F` line (a template's own comment lines are dropped):
--       bar, indicators        one expression per catalogue feature F
--       rolling                one per Alpha158 rolling family F, `{d}` the window: feature
--                              "F{d}" for each d of catalog.ALPHA158_WINDOWS
--       returns                ret: `{d}` = each d of the MKTREL<d> features, column "ret{d}"
--       cross_sectional_stats  mean, sd: `{x}` = each of catalog.CROSS_SECTIONAL_BASE (mean
--                              also each ret{d}), column "mean_{x}" / "sd_{x}"
--       cross_sectional        CSR, CSZ: `{f}` = each of catalog.CROSS_SECTIONAL_BASE, column
--                              "CSR_{f}" / "CSZ_{f}"; MKTREL: `{d}` as for returns
--       macro                  MACRO: `{s}` = each of catalog.MACRO_SERIES, column "MACRO_{s}"
--     In the statement, `{bar_features}` stands for every bar feature (catalog.BAR_FEATURES) as
--     `<expression> AS "<name>"`, `{cross_sectional_inputs}` for the bar features
--     CROSS_SECTIONAL_BASE names and the returns, `{cross_sectional_stats}`,
--     `{cross_sectional}` and `{macro}` for their sections' expansions, and `{feature_columns}`
--     for the catalogue's names in catalogue order. Every catalogue feature must have exactly
--     one template and every template a feature (checked when the file is read).
--   - macros, expanded last:
--     `{SUM(x, d)}` = p_x - coalesce(lag(p_x, d), 0): Sum(x, d), the increase of x's running sum
--       p_x over the d sessions ending at the row; `{MEAN(x, d)}` = {SUM(x, d)} / d. One running
--       sum per series instead of one framed aggregate per window (DuckDB's cost is per window
--       expression); exact for the 0/1 series, otherwise within about 1e-16 * (sessions so far)
--       relative: far inside the parity tolerance (1e-9);
--     `{EMA(x, n)}`: Qlib's finite-window EMA of column x over the n sessions ending at the row,
--       sum_k w_k * lag(x, k), w_k = a^k / sum_j a^j, k = 0..n-1, a = 1 - 2/(n+1): NULL unless all
--       n values exist (a NULL term makes the sum NULL);
--     `{EMA(DIF(x, n1, n2), m)}`: the EMA over m sessions of EMA(x, n1) - EMA(x, n2), written out
--       as the one linear filter of x over the m + n2 - 1 sessions it reads (the same weighted
--       sum, its weights the convolution of the EMAs'; NULL unless all of them exist);
--     `{IDXMAX(x, d)}` / `{IDXMIN(x, d)}`: the 1-based position, from the oldest of the d sessions
--       ending at the row, of the first whose x equals the window's max / min:
--       CASE WHEN lag(x, d-1) = max(x) OVER wd THEN 1 WHEN lag(x, d-2) = ... THEN 2 ... THEN d END.
--
-- Semantics, over each ticker's own sessions in date order (catalog's docstring says the same):
--   - the aligned grid: each ticker on every session from its first bar to its last; a missing
--     session (a rejected row) is a row of NULLs, so lag() and ROWS frames count sessions;
--   - n_<x>: the consecutive sessions ending at the row on which series x has a value (0 where
--     x is NULL). A rolling value over d sessions is guarded by `n_x >= d`, a Ref(x, d) by
--     `n_x > d`: warm-up and a gap give NULL, never a partial window;
--   - Std is stddev_samp, StdP stddev_pop; Quantile is quantile_cont (linear, numpy's default);
--     Rank(x, d) = (count(x < x_t) + (count(x = x_t) + 1) / 2) / d, count(x < x_t) = the framed
--     rank() of the row ascending - 1, count(x > x_t) = descending - 1, the rest equal;
--     Slope = regr_slope on the session number (the slope on 1..d: a shift of x changes only
--     the intercept); Rsquare = Slope^2 * Sxx / Syy with Sxx = d(d^2-1)/12 (the sum of squares
--     of 1..d about their mean) and Syy = (d-1) * Std^2; Resi = y_t - fitted y_t
--     = y_t - Mean - Slope * (d-1)/2 (the line passes through the means and the latest x is
--     (d-1)/2 above theirs); Corr = corr (Pearson);
--   - Rsquare and Corr are NULL when a series is constant over the window: k_<x> is the number of
--     consecutive sessions ending at the row on which x equals the row's x; constant <=> k_x >= d;
--   - x/0 is NULL: every division is by nullif(denominator, 0) (DuckDB's double division gives
--     inf); Greater/Less are greatest/least, which skip NULLs in DuckDB, so a Greater of a
--     possibly-NULL value is written as a CASE that stays NULL. A missing value is NULL, never
--     NaN;
--   - a value depends only on what it reads, bit for bit: per-session sums run over the session's
--     rows in ticker order (a parallel sum's rounding would vary between runs).
-- Sessions are the dates present in `bars` (a session on which no ticker has a bar is not seen).
-- Cross-sectional values are over the rows returned (the tickers with a bar that session).
--
-- Speed: DuckDB's cost is about one pass per window expression, so the statement keeps their
-- number down (running sums, one framed aggregate shared by several features, lags) and sorts
-- narrow rows where it can: the cross-sectional inputs are computed apart from the wide pass
-- and joined into it.

-- name: features
WITH
sessions AS (
    SELECT date, row_number() OVER (ORDER BY date) AS s FROM (SELECT DISTINCT date FROM bars)
),
span AS (
    SELECT span.ticker, span.first_date, span.last_date, sessions.s AS s0
    FROM (SELECT ticker, min(date) AS first_date, max(date) AS last_date FROM bars GROUP BY ticker) span
    JOIN sessions ON sessions.date = span.first_date
),
aligned AS (
    SELECT g.ticker, g.date, g.s, g.s0, b.open, b.high, b.low, b.close, b.volume,
           CASE WHEN b.date IS NOT NULL THEN 1 END AS present
    FROM (SELECT span.ticker, span.s0, sessions.date, sessions.s FROM span JOIN sessions
          ON sessions.date BETWEEN span.first_date AND span.last_date) g
    LEFT JOIN bars b ON b.ticker = g.ticker AND b.date = g.date
),
-- the values one and two sessions back (NULL before the ticker's first bar and on a missing session)
lagged AS (
    SELECT *,
           lag(close, 1) OVER by_s  AS close_1,
           lag(close, 2) OVER by_s  AS close_2,
           lag(volume, 1) OVER by_s AS volume_1,
           lag(volume, 2) OVER by_s AS volume_2
    FROM aligned
    WINDOW by_s AS (PARTITION BY ticker ORDER BY s)
),
-- per-session series the windows aggregate, each NULL unless every value it reads exists
steps AS (
    SELECT *,
           close - close_1                                   AS dc,    -- $close-Ref($close, 1)
           volume - volume_1                                 AS dv,    -- $volume-Ref($volume, 1)
           close / nullif(close_1, 0)                        AS cx,    -- $close/Ref($close, 1)
           close_1 / nullif(close_2, 0)                      AS cx_1,
           volume / nullif(volume_1, 0) + 1                  AS vr,    -- $volume/Ref($volume, 1)+1
           volume_1 / nullif(volume_2, 0) + 1                AS vr_1,
           CASE WHEN volume + 1 > 0 THEN ln(volume + 1) END     AS lv,    -- Log($volume+1)
           CASE WHEN volume_1 + 1 > 0 THEN ln(volume_1 + 1) END AS lv_1,
           CASE WHEN high IS NOT NULL AND low IS NOT NULL AND close_1 IS NOT NULL   -- TR
                THEN greatest(high - low, abs(high - close_1), abs(low - close_1)) END AS tr
    FROM lagged
),
series AS (
    SELECT *,
           CASE WHEN dc > 0 THEN dc WHEN dc <= 0 THEN 0.0 END   AS up,   -- Greater($close-Ref($close, 1), 0)
           CASE WHEN dc < 0 THEN -dc WHEN dc >= 0 THEN 0.0 END  AS dn,   -- Greater(Ref($close, 1)-$close, 0)
           abs(dc)                                              AS adc,  -- Abs($close-Ref($close, 1))
           CASE WHEN close > close_1 THEN 1.0 WHEN close <= close_1 THEN 0.0 END AS gt,  -- $close>Ref($close, 1)
           CASE WHEN close < close_1 THEN 1.0 WHEN close >= close_1 THEN 0.0 END AS lt,  -- $close<Ref($close, 1)
           CASE WHEN dv > 0 THEN dv WHEN dv <= 0 THEN 0.0 END   AS vup,
           CASE WHEN dv < 0 THEN -dv WHEN dv >= 0 THEN 0.0 END  AS vdn,
           abs(dv)                                              AS adv,
           abs(cx - 1) * volume                                 AS wv,   -- Abs($close/Ref($close, 1)-1)*$volume
           CASE WHEN vr > 0 THEN ln(vr) END                     AS cy,   -- Log($volume/Ref($volume, 1)+1)
           CASE WHEN vr_1 > 0 THEN ln(vr_1) END                 AS cy_1
    FROM steps
),
-- n_x: consecutive sessions ending here on which x has a value (0 where x is NULL);
-- k_x: consecutive sessions ending here on which x equals this session's x;
-- p_x: the running sum of x over the ticker's sessions up to this one (what SUM and MEAN read)
runs AS MATERIALIZED (
    SELECT ticker, date, s, present, open, high, low, close, volume, cx, cy, lv, wv,
           s - coalesce(max(CASE WHEN close IS NULL THEN s END) OVER running, s0 - 1)  AS n_close,
           s - coalesce(max(CASE WHEN high IS NULL THEN s END) OVER running, s0 - 1)   AS n_high,
           s - coalesce(max(CASE WHEN low IS NULL THEN s END) OVER running, s0 - 1)    AS n_low,
           s - coalesce(max(CASE WHEN volume IS NULL THEN s END) OVER running, s0 - 1) AS n_volume,
           s - coalesce(max(CASE WHEN lv IS NULL THEN s END) OVER running, s0 - 1)     AS n_lv,
           s - coalesce(max(CASE WHEN dc IS NULL THEN s END) OVER running, s0 - 1)     AS n_dc,
           s - coalesce(max(CASE WHEN dv IS NULL THEN s END) OVER running, s0 - 1)     AS n_dv,
           s - coalesce(max(CASE WHEN wv IS NULL THEN s END) OVER running, s0 - 1)     AS n_wv,
           s - coalesce(max(CASE WHEN cx IS NULL OR cy IS NULL THEN s END) OVER running, s0 - 1) AS n_cord,
           s - coalesce(max(CASE WHEN tr IS NULL THEN s END) OVER running, s0 - 1)     AS n_tr,
           s + 1 - max(CASE WHEN close = close_1 THEN NULL ELSE s END) OVER running    AS k_close,
           s + 1 - max(CASE WHEN lv = lv_1 THEN NULL ELSE s END) OVER running          AS k_lv,
           s + 1 - max(CASE WHEN cx = cx_1 THEN NULL ELSE s END) OVER running          AS k_cx,
           s + 1 - max(CASE WHEN cy = cy_1 THEN NULL ELSE s END) OVER running          AS k_cy,
           sum(close) OVER running  AS p_close,
           sum(volume) OVER running AS p_volume,
           sum(gt) OVER running     AS p_gt,
           sum(lt) OVER running     AS p_lt,
           sum(up) OVER running     AS p_up,
           sum(dn) OVER running     AS p_dn,
           sum(adc) OVER running    AS p_adc,
           sum(vup) OVER running    AS p_vup,
           sum(vdn) OVER running    AS p_vdn,
           sum(adv) OVER running    AS p_adv,
           sum(wv) OVER running     AS p_wv,
           sum(tr) OVER running     AS p_tr
    FROM series
    WINDOW running AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
-- the few bar features the cross-sectional ones read, and the returns MKTREL compares (the same
-- templates as in per_ticker), so the per-session work below handles narrow rows
cross_sectional_inputs AS MATERIALIZED (
    SELECT ticker, date, present,
        {cross_sectional_inputs}
    FROM runs
    WINDOW
        by_s AS (PARTITION BY ticker ORDER BY s),
        w5 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 4 PRECEDING AND CURRENT ROW),
        w10 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 9 PRECEDING AND CURRENT ROW),
        w14 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 13 PRECEDING AND CURRENT ROW),
        w20 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 19 PRECEDING AND CURRENT ROW),
        w30 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
        w60 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
),
-- per session, over the rows returned (a ticker with a bar that session): the means and standard
-- deviations over the session's rows listed in ticker order, so their sums always run in one
-- order (a parallel sum's rounding differs between runs, and a value must not change when
-- nothing it reads did)
cross_sectional_stats AS (
    SELECT date,
        {cross_sectional_stats}
    FROM (SELECT date, list(i ORDER BY ticker) AS session_rows
          FROM cross_sectional_inputs i
          WHERE present = 1
          GROUP BY date)
),
cross_sectional AS (
    SELECT ticker, date,
        {cross_sectional}
    FROM cross_sectional_inputs
    JOIN cross_sectional_stats USING (date)
    WHERE present = 1
),
-- coverage of the sentiment rows: ticker-level and market-wide, each its first to last session
coverage AS (
    SELECT min(date) FILTER (WHERE ticker <> '__MARKET__') AS ticker_first,
           max(date) FILTER (WHERE ticker <> '__MARKET__') AS ticker_last,
           min(date) FILTER (WHERE ticker = '__MARKET__')  AS market_first,
           max(date) FILTER (WHERE ticker = '__MARKET__')  AS market_last
    FROM sentiment
),
macro_wide AS (
    SELECT date,
        {macro}
    FROM macro
    GROUP BY date
),
alternative AS (
    SELECT b.ticker, b.date,
        CAST(ts.sentiment AS DOUBLE)                                               AS "SENT",
        CAST(CASE WHEN ts.ticker IS NOT NULL THEN ts.message_count
                  WHEN b.date BETWEEN cov.ticker_first AND cov.ticker_last THEN 0 END AS DOUBLE) AS "MSGCNT",
        CAST(ms.sentiment AS DOUBLE)                                               AS "MKT_SENT",
        CAST(CASE WHEN ms.ticker IS NOT NULL THEN ms.message_count
                  WHEN b.date BETWEEN cov.market_first AND cov.market_last THEN 0 END AS DOUBLE) AS "MKT_MSGCNT",
        mw.* EXCLUDE (date)
    FROM bars b
    CROSS JOIN coverage cov
    LEFT JOIN sentiment ts ON ts.ticker = b.ticker AND ts.date = b.date AND ts.ticker <> '__MARKET__'
    LEFT JOIN sentiment ms ON ms.ticker = '__MARKET__' AND ms.date = b.date
    LEFT JOIN macro_wide mw ON mw.date = b.date
),
-- the per-session and alternative-data columns, joined into the per-ticker pass below (cheaper
-- than joining them to its wide result)
extras AS (
    SELECT * FROM cross_sectional JOIN alternative USING (ticker, date)
),
-- every bar feature, in one pass over each ticker's sessions (sections bar, rolling, indicators)
per_ticker AS (
    SELECT ticker, date, present,
        {bar_features},
        extras.* EXCLUDE (ticker, date)
    FROM runs
    LEFT JOIN extras USING (ticker, date)
    WINDOW
        by_s AS (PARTITION BY ticker ORDER BY s),
        w5 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 4 PRECEDING AND CURRENT ROW),
        w10 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 9 PRECEDING AND CURRENT ROW),
        w14 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 13 PRECEDING AND CURRENT ROW),
        w20 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 19 PRECEDING AND CURRENT ROW),
        w30 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
        w60 AS (PARTITION BY ticker ORDER BY s ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
)
SELECT ticker, date, {feature_columns}
FROM per_ticker
WHERE present = 1
ORDER BY ticker, date;

-- name: bar
-- Qlib's kbar and price features: one session's bar.

-- family: KMID
(close - open) / nullif(open, 0)
-- family: KLEN
(high - low) / nullif(open, 0)
-- family: KMID2
(close - open) / nullif(high - low + 1e-12, 0)
-- family: KUP
(high - greatest(open, close)) / nullif(open, 0)
-- family: KUP2
(high - greatest(open, close)) / nullif(high - low + 1e-12, 0)
-- family: KLOW
(least(open, close) - low) / nullif(open, 0)
-- family: KLOW2
(least(open, close) - low) / nullif(high - low + 1e-12, 0)
-- family: KSFT
(2 * close - high - low) / nullif(open, 0)
-- family: KSFT2
(2 * close - high - low) / nullif(high - low + 1e-12, 0)
-- family: OPEN0
open / nullif(close, 0)
-- family: HIGH0
high / nullif(close, 0)
-- family: LOW0
low / nullif(close, 0)

-- name: rolling
-- Alpha158's rolling families (catalog._ROLLING), `{d}` the window, over `runs` (see its
-- columns above); each guarded by the run of the series it reads.

-- family: ROC
-- Ref($close, d)/$close
CASE WHEN n_close > {d} THEN lag(close, {d}) OVER by_s / nullif(close, 0) END

-- family: MA
-- Mean($close, d)/$close
CASE WHEN n_close >= {d} THEN {MEAN(close, {d})} / nullif(close, 0) END

-- family: STD
-- Std($close, d)/$close
CASE WHEN n_close >= {d} THEN stddev_samp(close) OVER w{d} / nullif(close, 0) END

-- family: BETA
-- Slope($close, d)/$close
CASE WHEN n_close >= {d} THEN regr_slope(close, s) OVER w{d} / nullif(close, 0) END

-- family: RSQR
-- Rsquare($close, d) = Slope^2 * Sxx / Syy; NULL when close is constant over the window
CASE WHEN n_close >= {d} AND k_close < {d}
     THEN regr_slope(close, s) OVER w{d} * regr_slope(close, s) OVER w{d} * ({d} * ({d} * {d} - 1) / 12.0)
          / nullif(({d} - 1) * stddev_samp(close) OVER w{d} * stddev_samp(close) OVER w{d}, 0) END

-- family: RESI
-- Resi($close, d)/$close = ($close - Mean($close, d) - Slope($close, d) * (d-1)/2)/$close
CASE WHEN n_close >= {d}
     THEN (close - {MEAN(close, {d})} - regr_slope(close, s) OVER w{d} * ({d} - 1) / 2.0) / nullif(close, 0) END

-- family: MAX
-- Max($high, d)/$close
CASE WHEN n_high >= {d} THEN max(high) OVER w{d} / nullif(close, 0) END

-- family: MIN
-- Min($low, d)/$close
CASE WHEN n_low >= {d} THEN min(low) OVER w{d} / nullif(close, 0) END

-- family: QTLU
-- Quantile($close, d, 0.8)/$close
CASE WHEN n_close >= {d} THEN (quantile_cont(close, [0.2, 0.8]) OVER w{d})[2] / nullif(close, 0) END

-- family: QTLD
-- Quantile($close, d, 0.2)/$close
CASE WHEN n_close >= {d} THEN (quantile_cont(close, [0.2, 0.8]) OVER w{d})[1] / nullif(close, 0) END

-- family: RANK
-- Rank($close, d) = (below + (equal + 1)/2)/d: below = rank ascending - 1, above = rank
-- descending - 1, equal = d - below - above (the row itself included)
CASE WHEN n_close >= {d}
     THEN ((rank(ORDER BY close) OVER w{d} - 1)
           + ({d} - (rank(ORDER BY close) OVER w{d} - 1) - (rank(ORDER BY close DESC) OVER w{d} - 1) + 1) / 2.0)
          / {d} END

-- family: RSV
-- ($close-Min($low, d))/(Max($high, d)-Min($low, d)+1e-12)
CASE WHEN n_high >= {d} AND n_low >= {d}
     THEN (close - min(low) OVER w{d}) / nullif(max(high) OVER w{d} - min(low) OVER w{d} + 1e-12, 0) END

-- family: IMAX
-- IdxMax($high, d)/d
CASE WHEN n_high >= {d} THEN {IDXMAX(high, {d})} / {d} END

-- family: IMIN
-- IdxMin($low, d)/d
CASE WHEN n_low >= {d} THEN {IDXMIN(low, {d})} / {d} END

-- family: IMXD
-- (IdxMax($high, d)-IdxMin($low, d))/d
CASE WHEN n_high >= {d} AND n_low >= {d} THEN ({IDXMAX(high, {d})} - {IDXMIN(low, {d})}) / {d} END

-- family: CORR
-- Corr($close, Log($volume+1), d), NULL when either is constant over the window
CASE WHEN n_close >= {d} AND n_lv >= {d} AND k_close < {d} AND k_lv < {d}
     THEN corr(close, lv) OVER w{d} END

-- family: CORD
-- Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), d), NULL when either is constant
CASE WHEN n_cord >= {d} AND k_cx < {d} AND k_cy < {d} THEN corr(cx, cy) OVER w{d} END

-- family: CNTP
-- Mean($close>Ref($close, 1), d)
CASE WHEN n_dc >= {d} THEN {MEAN(gt, {d})} END

-- family: CNTN
-- Mean($close<Ref($close, 1), d)
CASE WHEN n_dc >= {d} THEN {MEAN(lt, {d})} END

-- family: CNTD
-- Mean($close>Ref($close, 1), d)-Mean($close<Ref($close, 1), d)
CASE WHEN n_dc >= {d} THEN {MEAN(gt, {d})} - {MEAN(lt, {d})} END

-- family: SUMP
-- Sum(Greater($close-Ref($close, 1), 0), d)/(Sum(Abs($close-Ref($close, 1)), d)+1e-12)
CASE WHEN n_dc >= {d} THEN {SUM(up, {d})} / nullif({SUM(adc, {d})} + 1e-12, 0) END

-- family: SUMN
-- Sum(Greater(Ref($close, 1)-$close, 0), d)/(Sum(Abs($close-Ref($close, 1)), d)+1e-12)
CASE WHEN n_dc >= {d} THEN {SUM(dn, {d})} / nullif({SUM(adc, {d})} + 1e-12, 0) END

-- family: SUMD
-- (Sum(Greater($close-Ref($close, 1), 0), d)-Sum(Greater(Ref($close, 1)-$close, 0), d))/(Sum(Abs(...), d)+1e-12)
CASE WHEN n_dc >= {d}
     THEN ({SUM(up, {d})} - {SUM(dn, {d})}) / nullif({SUM(adc, {d})} + 1e-12, 0) END

-- family: VMA
-- Mean($volume, d)/($volume+1e-12)
CASE WHEN n_volume >= {d} THEN {MEAN(volume, {d})} / nullif(volume + 1e-12, 0) END

-- family: VSTD
-- Std($volume, d)/($volume+1e-12)
CASE WHEN n_volume >= {d} THEN stddev_samp(volume) OVER w{d} / nullif(volume + 1e-12, 0) END

-- family: WVMA
-- Std(Abs($close/Ref($close, 1)-1)*$volume, d)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, d)+1e-12)
CASE WHEN n_wv >= {d} THEN stddev_samp(wv) OVER w{d} / nullif({MEAN(wv, {d})} + 1e-12, 0) END

-- family: VSUMP
-- Sum(Greater($volume-Ref($volume, 1), 0), d)/(Sum(Abs($volume-Ref($volume, 1)), d)+1e-12)
CASE WHEN n_dv >= {d} THEN {SUM(vup, {d})} / nullif({SUM(adv, {d})} + 1e-12, 0) END

-- family: VSUMN
-- Sum(Greater(Ref($volume, 1)-$volume, 0), d)/(Sum(Abs($volume-Ref($volume, 1)), d)+1e-12)
CASE WHEN n_dv >= {d} THEN {SUM(vdn, {d})} / nullif({SUM(adv, {d})} + 1e-12, 0) END

-- family: VSUMD
-- (Sum(Greater($volume-Ref($volume, 1), 0), d)-Sum(Greater(Ref($volume, 1)-$volume, 0), d))/(Sum(Abs(...), d)+1e-12)
CASE WHEN n_dv >= {d}
     THEN ({SUM(vup, {d})} - {SUM(vdn, {d})}) / nullif({SUM(adv, {d})} + 1e-12, 0) END

-- name: indicators
-- The classic indicators (catalog._INDICATORS).

-- family: RSI14
-- 100*Sum(Greater($close-Ref($close, 1), 0), 14)/(Sum(Abs($close-Ref($close, 1)), 14)+1e-12)
CASE WHEN n_dc >= 14 THEN 100 * {SUM(up, 14)} / nullif({SUM(adc, 14)} + 1e-12, 0) END

-- family: MACD
-- (EMA($close, 12)-EMA($close, 26))/$close
({EMA(close, 12)} - {EMA(close, 26)}) / nullif(close, 0)

-- family: MACDSIG
-- EMA(DIF, 9)/$close, DIF = EMA($close, 12)-EMA($close, 26)
{EMA(DIF(close, 12, 26), 9)} / nullif(close, 0)

-- family: MACDHIST
-- (DIF-EMA(DIF, 9))/$close
({EMA(close, 12)} - {EMA(close, 26)} - {EMA(DIF(close, 12, 26), 9)}) / nullif(close, 0)

-- family: BBP20
-- ($close-Mean($close, 20)+2*StdP($close, 20))/(4*StdP($close, 20)+1e-12)
CASE WHEN n_close >= 20
     THEN (close - {MEAN(close, 20)} + 2 * stddev_pop(close) OVER w20)
          / nullif(4 * stddev_pop(close) OVER w20 + 1e-12, 0) END

-- family: ATR14
-- Mean(TR, 14)/$close, TR = Greater(Greater($high-$low, Abs($high-Ref($close, 1))), Abs($low-Ref($close, 1)))
CASE WHEN n_tr >= 14 THEN {MEAN(tr, 14)} / nullif(close, 0) END

-- family: MOM12_1
-- Ref($close, 21)/Ref($close, 252)-1
CASE WHEN n_close > 252 THEN lag(close, 21) OVER by_s / nullif(lag(close, 252) OVER by_s, 0) - 1 END

-- family: REV1
-- -($close/Ref($close, 1)-1)
-(cx - 1)

-- family: REV5
-- -($close/Ref($close, 5)-1)
CASE WHEN n_close > 5 THEN -(close / nullif(lag(close, 5) OVER by_s, 0) - 1) END

-- name: returns
-- ret{d} = $close/Ref($close, d)-1, the return the market-relative features compare

-- family: ret
CASE WHEN n_close > {d} THEN close / nullif(lag(close, {d}) OVER by_s, 0) - 1 END

-- name: cross_sectional_stats
-- Per session over the rows with a value (list aggregates skip NULLs): `{x}` a column of
-- cross_sectional_inputs, the bar features CROSS_SECTIONAL_BASE names and the returns ret{d}.

-- family: mean
list_avg(list_transform(session_rows, lambda r: r."{x}"))

-- family: sd
list_stddev_samp(list_transform(session_rows, lambda r: r."{x}"))

-- name: cross_sectional
-- Per session over the rows with a value: `{f}` a bar feature's column.

-- family: CSR
-- percent_rank among the session's non-NULL values: (rank-1)/(n-1), 0 when n = 1; NULL where f is
CASE WHEN "{f}" IS NOT NULL
     THEN percent_rank() OVER (PARTITION BY date, "{f}" IS NULL ORDER BY "{f}") END

-- family: CSZ
-- (f - mean) / sample std over the session's non-NULL values (NULL when fewer than 2, or std 0)
("{f}" - "mean_{f}") / nullif("sd_{f}", 0)

-- family: MKTREL
-- ($close/Ref($close, d)-1)-CSMean($close/Ref($close, d)-1)
ret{d} - "mean_ret{d}"

-- name: macro
-- The value of series `{s}` on the session (silver.macro_asof: as known at that session)

-- family: MACRO
max(value) FILTER (WHERE series_id = '{s}')

-- name: labels
-- Forward returns a signal computed at D's close can trade: open(D+1) -> open(D+1+h), h = 1 and 5,
-- over the sessions (a missing session from D+1 to the exit makes it NULL), and their per-session
-- percent rank among the tickers that have one. A row only where the 1-session label is
-- complete; ret_5d is NULL until its own horizon has passed.
WITH
sessions AS (SELECT DISTINCT date FROM bars),
span AS (SELECT ticker, min(date) AS first_date, max(date) AS last_date FROM bars GROUP BY ticker),
aligned AS (
    SELECT g.ticker, g.date, b.open, CASE WHEN b.date IS NOT NULL THEN 1 END AS present
    FROM (SELECT span.ticker, sessions.date FROM span JOIN sessions
          ON sessions.date BETWEEN span.first_date AND span.last_date) g
    LEFT JOIN bars b ON b.ticker = g.ticker AND b.date = g.date
),
forward AS (
    SELECT
        ticker,
        date,
        present,
        CASE WHEN count(present) OVER next2 = 2
            THEN lead(open, 2) OVER by_date / lead(open, 1) OVER by_date - 1 END AS ret_1d,
        CASE WHEN count(present) OVER next6 = 6
            THEN lead(open, 6) OVER by_date / lead(open, 1) OVER by_date - 1 END AS ret_5d
    FROM aligned
    WINDOW
        by_date AS (PARTITION BY ticker ORDER BY date),
        next2 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 1 FOLLOWING AND 2 FOLLOWING),
        next6 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 1 FOLLOWING AND 6 FOLLOWING)
)
SELECT
    ticker,
    date,
    ret_1d,
    ret_5d,
    percent_rank() OVER (PARTITION BY date ORDER BY ret_1d) AS ret_1d_rank,
    CASE WHEN ret_5d IS NOT NULL
        THEN percent_rank() OVER (PARTITION BY date, ret_5d IS NULL ORDER BY ret_5d) END AS ret_5d_rank
FROM forward
WHERE present = 1 AND ret_1d IS NOT NULL
ORDER BY ticker, date;
