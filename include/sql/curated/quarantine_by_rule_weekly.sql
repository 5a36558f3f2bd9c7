-- Quarantined rows per week (weeks start on Monday, by the row's session date), source table, rule
-- and severity, across every quarantine table of the lake.
--
-- `${quarantine_rows}` is expanded by tickerlake.sql to the UNION ALL of every quarantine.* view the
-- session has (source_table, date, rule, severity; an intraday table's `ts` gives its date), so the
-- query works whichever sources have landed so far.
SELECT
    CAST(date_trunc('week', date) AS DATE) AS week,
    source_table,
    rule,
    severity,
    count(*) AS quarantined_rows,
    count(DISTINCT date) AS sessions
FROM ${quarantine_rows}
GROUP BY ALL
ORDER BY week, source_table, rule, severity;
