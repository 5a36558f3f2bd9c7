-- The reference implementation of the feature catalogue (tickerlake.catalog.FEATURES) and of the
-- labels, in DuckDB SQL, written apart from the Spark job (tickerlake.features): the parity test
-- and the speed benchmark compare Spark against it.
--
-- Input: a relation named `bars` (ticker, date, open, high, low, close, volume), one row per
-- (ticker, date), e.g. silver.bars_daily. Run by tickerlake.reference_features, which splits this
-- file on its `-- name:` lines.
--
-- Qlib's Alpha158 semantics, over each ticker's own sessions in date order:
--   Ref($x, d)   lag(x, d) on the session-aligned series: the value d sessions earlier; NULL
--                before the ticker's first bar, and NULL when any of those d+1 sessions has no
--                bar (a return that spans a rejected row is NULL, never the raw jump across it)
--   Mean/Std/Min/Max($x, n)  over the n sessions ending at the current one (Std: sample, ddof=1),
--                and only where all n have a bar: warm-up and a missing session give NULL,
--                never a partial value (every rolling value is guarded by `count(present) OVER wN = N`)
--   Greater/Less greatest/least
-- Sessions are the dates present in `bars` (a session on which no ticker has a bar is not seen).
-- Adding a feature = adding one `<expression> AS "<NAME>"` line below (and its catalogue entry);
-- windows wN (the N sessions ending at the row) are declared for N = 2, 5, 6, 10, 11, 20, 21, 30,
-- 31, 60, 61: the Alpha158 windows and, for Ref($x, d), w(d+1).

-- name: features
WITH
sessions AS (SELECT DISTINCT date FROM bars),
span AS (SELECT ticker, min(date) AS first_date, max(date) AS last_date FROM bars GROUP BY ticker),
-- each ticker on every session from its first bar to its last; a missing session (a rejected
-- row) is a row of NULLs, so Ref() and windows count sessions, not rows, and a value that would
-- reach over the missing session is NULL (never the raw jump across it)
aligned AS (
    SELECT g.ticker, g.date, b.open, b.high, b.low, b.close, b.volume,
           CASE WHEN b.date IS NOT NULL THEN 1 END AS present
    FROM (SELECT span.ticker, sessions.date FROM span JOIN sessions
          ON sessions.date BETWEEN span.first_date AND span.last_date) g
    LEFT JOIN bars b ON b.ticker = g.ticker AND b.date = g.date
),
computed AS (
    SELECT
        ticker,
        date,
        present,
        -- kbar
        (close - open) / open                                                         AS "KMID",
        (high - low) / open                                                           AS "KLEN",
        (high - greatest(open, close)) / open                                         AS "KUP",
        (least(open, close) - low) / open                                             AS "KLOW",
        (2 * close - high - low) / open                                               AS "KSFT",
        -- roc: Ref($close, d)/$close
        CASE WHEN count(present) OVER w6 = 6 THEN lag(close, 5) OVER by_date END / close    AS "ROC5",
        CASE WHEN count(present) OVER w21 = 21 THEN lag(close, 20) OVER by_date END / close AS "ROC20",
        -- ma: Mean($close, n)/$close
        CASE WHEN count(present) OVER w5 = 5 THEN avg(close) OVER w5 END / close      AS "MA5",
        CASE WHEN count(present) OVER w20 = 20 THEN avg(close) OVER w20 END / close   AS "MA20",
        -- std: Std($close, n)/$close
        CASE WHEN count(present) OVER w20 = 20 THEN stddev_samp(close) OVER w20 END / close AS "STD20",
        -- vma: Mean($volume, n)/($volume+1e-12)
        CASE WHEN count(present) OVER w5 = 5 THEN avg(volume) OVER w5 END / (volume + 1e-12)    AS "VMA5",
        CASE WHEN count(present) OVER w20 = 20 THEN avg(volume) OVER w20 END / (volume + 1e-12) AS "VMA20",
        -- rsv: ($close-Min($low, n))/(Max($high, n)-Min($low, n)+1e-12)
        (close - CASE WHEN count(present) OVER w10 = 10 THEN min(low) OVER w10 END)
            / (CASE WHEN count(present) OVER w10 = 10 THEN max(high) OVER w10 END
               - CASE WHEN count(present) OVER w10 = 10 THEN min(low) OVER w10 END + 1e-12) AS "RSV10",
        -- reversal: -($close/Ref($close, d)-1)
        -(close / CASE WHEN count(present) OVER w2 = 2 THEN lag(close, 1) OVER by_date END - 1) AS "REV1",
        -(close / CASE WHEN count(present) OVER w6 = 6 THEN lag(close, 5) OVER by_date END - 1) AS "REV5"
    FROM aligned
    WINDOW
        by_date AS (PARTITION BY ticker ORDER BY date),
        -- wN: the N sessions ending at the current one (Ref($x, d) is guarded by w(d+1))
        w2 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),
        w5 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 4 PRECEDING AND CURRENT ROW),
        w6 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 5 PRECEDING AND CURRENT ROW),
        w10 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 9 PRECEDING AND CURRENT ROW),
        w11 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 10 PRECEDING AND CURRENT ROW),
        w20 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 19 PRECEDING AND CURRENT ROW),
        w21 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 20 PRECEDING AND CURRENT ROW),
        w30 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
        w31 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 30 PRECEDING AND CURRENT ROW),
        w60 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 59 PRECEDING AND CURRENT ROW),
        w61 AS (PARTITION BY ticker ORDER BY date ROWS BETWEEN 60 PRECEDING AND CURRENT ROW)
)
SELECT * EXCLUDE (present) FROM computed
WHERE present = 1
ORDER BY ticker, date;

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
