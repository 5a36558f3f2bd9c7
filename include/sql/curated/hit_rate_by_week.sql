-- Hit rate of the long and short signals per week (weeks start on Monday, by asof_date) and model version.
--
-- gold.signal_outcomes (the live record) is not built yet, so predictions are scored here against
-- gold.labels_daily on (ticker, asof_date = date) with the 1-session label ret_1d: next open to the
-- following open, the return a signal made at asof_date's close can trade. Only labelled rows count:
-- the newest sessions appear once their label is complete. Once gold.signal_outcomes exists this
-- query should read it instead.
--
-- A long is a hit when ret_1d > 0, a short when ret_1d < 0 (0 is a miss); neutral rows are not
-- signals. interval_coverage is the share of all labelled predictions, signals or not, whose ret_1d
-- lies inside [pred_lo, pred_hi]. One run per session, chosen as in todays_signals.sql.
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
    SELECT
        p.asof_date,
        p.model_version,
        p.signal,
        l.ret_1d,
        l.ret_1d BETWEEN p.pred_lo AND p.pred_hi AS inside,
        CASE p.signal WHEN 'long' THEN l.ret_1d > 0 WHEN 'short' THEN l.ret_1d < 0 END AS hit
    FROM gold.predictions_daily AS p
    JOIN runs USING (asof_date, run_id)
    JOIN gold.labels_daily AS l ON l.ticker = p.ticker AND l.date = p.asof_date
    WHERE l.ret_1d IS NOT NULL
)
SELECT
    CAST(date_trunc('week', asof_date) AS DATE) AS week,
    model_version,
    count(DISTINCT asof_date) AS sessions,
    count(hit) AS signals,
    count(*) FILTER (WHERE hit) AS hits,
    avg(CAST(hit AS INTEGER)) AS hit_rate,
    count(*) FILTER (WHERE signal = 'long') AS longs,
    avg(CAST(hit AS INTEGER)) FILTER (WHERE signal = 'long') AS long_hit_rate,
    count(*) FILTER (WHERE signal = 'short') AS shorts,
    avg(CAST(hit AS INTEGER)) FILTER (WHERE signal = 'short') AS short_hit_rate,
    avg(ret_1d) FILTER (WHERE signal = 'long') AS long_mean_ret_1d,
    avg(ret_1d) FILTER (WHERE signal = 'short') AS short_mean_ret_1d,
    count(*) AS labelled_predictions,
    avg(CAST(inside AS INTEGER)) AS interval_coverage
FROM scored
GROUP BY ALL
ORDER BY week, model_version;
