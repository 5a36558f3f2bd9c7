-- The reference implementation of the feature catalogue (tickerlake.catalog.FEATURES) and of the
-- labels, in DuckDB SQL, written apart from the Spark job (tickerlake.features): the parity test
-- and the speed benchmark compare Spark against it.
--
-- Input: a relation named `bars` (ticker, date, open, high, low, close, volume), one row per
-- (ticker, date), e.g. silver.bars_daily. Run by tickerlake.reference_features, which splits this
-- file on its `-- name:` lines.
--
-- Qlib's Alpha158 semantics, over each ticker's own sessions in date order:
--   Ref($x, d)   lag(x, d): the value d sessions (rows) earlier; NULL until d earlier rows exist
--   Mean/Std/Min/Max($x, n)  over the n rows ending at the current one (Std: sample, ddof=1),
--                and only where the window is full: warm-up gives NULL, never a partial value
--                (hence every rolling value is guarded by `count(*) OVER wN = N`)
--   Greater/Less greatest/least
-- Adding a feature = adding one `<expression> AS "<NAME>"` line below (and its catalogue entry);
-- windows w5, w10, w20, w30 and w60 are declared for the Alpha158 families.

-- name: features
SELECT
    ticker,
    date,
    -- kbar
    (close - open) / open                                                     AS "KMID",
    (high - low) / open                                                       AS "KLEN",
    (high - greatest(open, close)) / open                                     AS "KUP",
    (least(open, close) - low) / open                                         AS "KLOW",
    (2 * close - high - low) / open                                           AS "KSFT",
    -- roc: Ref($close, d)/$close
    lag(close, 5) OVER by_date / close                                        AS "ROC5",
    lag(close, 20) OVER by_date / close                                       AS "ROC20",
    -- ma: Mean($close, n)/$close
    CASE WHEN count(*) OVER w5 = 5 THEN avg(close) OVER w5 END / close        AS "MA5",
    CASE WHEN count(*) OVER w20 = 20 THEN avg(close) OVER w20 END / close     AS "MA20",
    -- std: Std($close, n)/$close
    CASE WHEN count(*) OVER w20 = 20 THEN stddev_samp(close) OVER w20 END / close AS "STD20",
    -- vma: Mean($volume, n)/($volume+1e-12)
    CASE WHEN count(*) OVER w5 = 5 THEN avg(volume) OVER w5 END / (volume + 1e-12)    AS "VMA5",
    CASE WHEN count(*) OVER w20 = 20 THEN avg(volume) OVER w20 END / (volume + 1e-12) AS "VMA20",
    -- rsv: ($close-Min($low, n))/(Max($high, n)-Min($low, n)+1e-12)
    (close - CASE WHEN count(*) OVER w10 = 10 THEN min(low) OVER w10 END)
        / (CASE WHEN count(*) OVER w10 = 10 THEN max(high) OVER w10 END
           - CASE WHEN count(*) OVER w10 = 10 THEN min(low) OVER w10 END + 1e-12)    AS "RSV10",
    -- reversal: -($close/Ref($close, d)-1)
    -(close / lag(close, 1) OVER by_date - 1)                                 AS "REV1",
    -(close / lag(close, 5) OVER by_date - 1)                                 AS "REV5"
FROM bars
WINDOW
    by_date AS (PARTITION BY ticker ORDER BY date),
    w5 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 4 PRECEDING AND CURRENT ROW),
    w10 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 9 PRECEDING AND CURRENT ROW),
    w20 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 19 PRECEDING AND CURRENT ROW),
    w30 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
    w60 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
ORDER BY ticker, date;

-- name: labels
-- Forward returns a signal computed at D's close can trade: open(D+1) -> open(D+1+h), h = 1 and 5,
-- and their per-session percent rank among the tickers that have one. A row only where the
-- 1-session label is complete; ret_5d is NULL until its own horizon has passed.
WITH forward AS (
    SELECT
        ticker,
        date,
        lead(open, 2) OVER by_date / lead(open, 1) OVER by_date - 1 AS ret_1d,
        lead(open, 6) OVER by_date / lead(open, 1) OVER by_date - 1 AS ret_5d
    FROM bars
    WINDOW by_date AS (PARTITION BY ticker ORDER BY date)
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
WHERE ret_1d IS NOT NULL
ORDER BY ticker, date;
