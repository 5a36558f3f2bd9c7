-- Today's signals: the newest as-of session in gold.predictions_daily, one run of it, ranked.
--
-- "Today" is the latest asof_date in the table (no wall clock): the session whose close made the
-- features; target_session is the session the signal is for. Predictions are append-only per run,
-- so a session can hold several runs. The run shown is the published one when any row of the
-- session is marked published, else the run that read the newest features (features_version),
-- then the greatest run_id: the table carries no write time, so that is the best order it gives.
--
-- requires: gold.predictions_daily
WITH runs AS (
    SELECT asof_date, run_id
    FROM gold.predictions_daily
    WHERE asof_date = (SELECT max(asof_date) FROM gold.predictions_daily)
    GROUP BY asof_date, run_id
    QUALIFY row_number() OVER (
        PARTITION BY asof_date
        ORDER BY bool_or(coalesce(published, false)) DESC, max(features_version) DESC NULLS LAST, run_id DESC
    ) = 1
)
SELECT
    p.asof_date,
    p.target_session,
    p.rank,
    p.ticker,
    p.signal,
    p.pred_return,
    p.pred_lo,
    p.pred_hi,
    p.percentile,
    p.model_name,
    p.model_version,
    p.features_version,
    p.run_id,
    p.published
FROM gold.predictions_daily AS p
JOIN runs USING (asof_date, run_id)
ORDER BY p.rank, p.ticker;
