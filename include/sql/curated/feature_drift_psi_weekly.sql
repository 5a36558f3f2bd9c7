-- Feature drift: the population stability index (PSI) per week of a few main features against a
-- reference window.
--
-- Monitored: the last `monitor_weeks` weeks of gold.features_daily (weeks start on Monday, the last
-- one being the week of the newest date). Reference: the `ref_weeks` weeks right before them.
-- Features: the ones the baselines use (REV1, REV5, ROC20, STD20) and the volume ratio VMA20; nulls
-- (warm-up) and non-finite values are left out. Bins: the reference deciles of each feature
-- (10 bins; a value equal to an edge goes to the lower bin). An empty bin counts as a share of
-- 0.0001 so that the log stays finite.
--   PSI = sum over bins (p_week - p_ref) * ln(p_week / p_ref)
--   drift: < 0.1 stable, 0.1 to 0.25 moderate, >= 0.25 significant
--
-- requires: gold.features_daily
-- param monitor_weeks = 13
-- param ref_weeks = 26
WITH bounds AS (
    SELECT
        last_week,
        last_week - 7 * (${monitor_weeks} - 1) AS monitor_start,
        last_week - 7 * (${monitor_weeks} - 1) - 7 * ${ref_weeks} AS ref_start
    FROM (SELECT CAST(date_trunc('week', max(date)) AS DATE) AS last_week FROM gold.features_daily)
),
long AS (
    SELECT date, feature, value
    FROM (
        SELECT f.date, f.REV1, f.REV5, f.ROC20, f.STD20, f.VMA20
        FROM gold.features_daily AS f, bounds AS b
        WHERE f.date >= b.ref_start
    ) UNPIVOT (value FOR feature IN (REV1, REV5, ROC20, STD20, VMA20))
    WHERE value IS NOT NULL AND isfinite(value)
),
edges AS (
    SELECT l.feature,
           quantile_cont(l.value, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) AS edges,
           count(*) AS reference_rows
    FROM long AS l, bounds AS b
    WHERE l.date >= b.ref_start AND l.date < b.monitor_start
    GROUP BY l.feature
),
binned AS (
    SELECT
        CASE WHEN l.date >= b.monitor_start THEN CAST(date_trunc('week', l.date) AS DATE) END AS week,
        l.feature,
        len(list_filter(e.edges, x -> x < l.value)) AS bucket
    FROM long AS l
    JOIN edges AS e USING (feature), bounds AS b
),
ref AS (
    SELECT feature, bucket, count(*) / sum(count(*)) OVER (PARTITION BY feature) AS share
    FROM binned
    WHERE week IS NULL
    GROUP BY feature, bucket
),
cur AS (
    SELECT week, feature, bucket, count(*) AS n
    FROM binned
    WHERE week IS NOT NULL
    GROUP BY week, feature, bucket
),
weeks AS (
    SELECT week, feature, CAST(sum(n) AS BIGINT) AS n_week FROM cur GROUP BY week, feature
),
grid AS (
    SELECT w.week, w.feature, w.n_week, g.bucket,
           greatest(coalesce(c.n, 0) / w.n_week, 0.0001) AS p_week,
           greatest(coalesce(r.share, 0), 0.0001) AS p_ref
    FROM weeks AS w
    CROSS JOIN range(10) AS g(bucket)
    LEFT JOIN cur AS c ON c.week = w.week AND c.feature = w.feature AND c.bucket = g.bucket
    LEFT JOIN ref AS r ON r.feature = w.feature AND r.bucket = g.bucket
),
psi AS (
    SELECT week, feature, any_value(n_week) AS rows, sum((p_week - p_ref) * ln(p_week / p_ref)) AS psi
    FROM grid
    GROUP BY week, feature
)
SELECT
    p.week,
    p.feature,
    p.rows,
    e.reference_rows,
    b.ref_start AS reference_start,
    b.monitor_start - 1 AS reference_end,
    p.psi,
    CASE WHEN p.psi < 0.1 THEN 'stable' WHEN p.psi < 0.25 THEN 'moderate' ELSE 'significant' END AS drift
FROM psi AS p
JOIN edges AS e USING (feature), bounds AS b
ORDER BY p.week, p.feature;
