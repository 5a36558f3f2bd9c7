-- Live rank IC per model version: per as-of session, Spearman's rank correlation between the
-- predicted return and the realised 1-session label ret_1d across tickers, then averaged per
-- model_version (the same statistic as the walk-forward's rank IC: average ranks for ties,
-- sessions with fewer than 3 labelled tickers left out).
--
-- Reads gold.predictions_daily joined to gold.labels_daily on (ticker, asof_date = date), one run per
-- session (chosen as in todays_signals.sql); only labelled rows count. rank_ic_t is
-- mean / std * sqrt(sessions). Stand-in for the rolling figures of gold.signal_outcomes (not built yet).
--
-- requires: gold.predictions_daily, gold.labels_daily
WITH runs AS (
    SELECT asof_date, run_id
    FROM gold.predictions_daily
    GROUP BY asof_date, run_id
    QUALIFY row_number() OVER (
        PARTITION BY asof_date
        ORDER BY bool_or(coalesce(published, false)) DESC, max(features_version) DESC NULLS LAST, run_id DESC
    ) = 1
),
scored AS (
    SELECT p.asof_date, p.model_version, p.ticker, p.pred_return, l.ret_1d
    FROM gold.predictions_daily AS p
    JOIN runs USING (asof_date, run_id)
    JOIN gold.labels_daily AS l ON l.ticker = p.ticker AND l.date = p.asof_date
    WHERE p.pred_return IS NOT NULL AND l.ret_1d IS NOT NULL
),
ranked AS (
    SELECT
        asof_date,
        model_version,
        rank() OVER (PARTITION BY asof_date, model_version ORDER BY pred_return)
            + (count(*) OVER (PARTITION BY asof_date, model_version, pred_return) - 1) / 2.0 AS pred_rank,
        rank() OVER (PARTITION BY asof_date, model_version ORDER BY ret_1d)
            + (count(*) OVER (PARTITION BY asof_date, model_version, ret_1d) - 1) / 2.0 AS ret_rank
    FROM scored
),
daily AS (
    SELECT asof_date, model_version, count(*) AS tickers, corr(pred_rank, ret_rank) AS rank_ic
    FROM ranked
    GROUP BY asof_date, model_version
    HAVING count(*) > 2
),
valid AS (
    SELECT * FROM daily WHERE rank_ic IS NOT NULL AND NOT isnan(rank_ic)
)
SELECT
    model_version,
    count(*) AS sessions,
    min(asof_date) AS first_asof_date,
    max(asof_date) AS last_asof_date,
    avg(rank_ic) AS rank_ic_mean,
    stddev_samp(rank_ic) AS rank_ic_std,
    CASE WHEN count(*) > 1 AND stddev_samp(rank_ic) > 0
         THEN avg(rank_ic) / stddev_samp(rank_ic) * sqrt(count(*)) END AS rank_ic_t,
    avg(CAST(rank_ic > 0 AS INTEGER)) AS positive_share,
    avg(tickers) AS mean_tickers
FROM valid
GROUP BY model_version
ORDER BY first_asof_date, model_version;
