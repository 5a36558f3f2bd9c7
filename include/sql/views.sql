-- DuckDB views over the lake's Delta tables, named <layer>.<table> as in DESIGN.md.
--
-- Read by tickerlake.sql.connect(): `${lake_root}` becomes the lake root of the settings
-- (TICKERLAKE_LAKE_ROOT, `file://` stripped), so no path is written here. A view is created only
-- when its table exists (a folder with a `_delta_log`); the others are listed as skipped. A Delta
-- table found under the lake root but not declared here still gets the plain view
-- `SELECT * FROM delta_scan('<lake root>/<layer>/<table>')`.
--
-- One statement per view, each `CREATE OR REPLACE VIEW <layer>.<table> AS ...;`. The views read the
-- table's latest Delta version at query time, so a long session sees new commits.

-- bronze: every row received, as received, plus source, batch id and run
CREATE OR REPLACE VIEW bronze.bars_daily AS SELECT * FROM delta_scan('${lake_root}/bronze/bars_daily');
CREATE OR REPLACE VIEW bronze.bars_intraday AS SELECT * FROM delta_scan('${lake_root}/bronze/bars_intraday');
CREATE OR REPLACE VIEW bronze.news AS SELECT * FROM delta_scan('${lake_root}/bronze/news');
CREATE OR REPLACE VIEW bronze.social AS SELECT * FROM delta_scan('${lake_root}/bronze/social');
CREATE OR REPLACE VIEW bronze.macro AS SELECT * FROM delta_scan('${lake_root}/bronze/macro');

-- quarantine: key, rule, severity, values, run (bars_intraday holds the stream's dead letters)
CREATE OR REPLACE VIEW quarantine.bars_daily AS SELECT * FROM delta_scan('${lake_root}/quarantine/bars_daily');
CREATE OR REPLACE VIEW quarantine.bars_intraday AS SELECT * FROM delta_scan('${lake_root}/quarantine/bars_intraday');
CREATE OR REPLACE VIEW quarantine.news AS SELECT * FROM delta_scan('${lake_root}/quarantine/news');
CREATE OR REPLACE VIEW quarantine.social AS SELECT * FROM delta_scan('${lake_root}/quarantine/social');
CREATE OR REPLACE VIEW quarantine.macro AS SELECT * FROM delta_scan('${lake_root}/quarantine/macro');
CREATE OR REPLACE VIEW quarantine.features_daily AS SELECT * FROM delta_scan('${lake_root}/quarantine/features_daily');
CREATE OR REPLACE VIEW quarantine.predictions_daily AS SELECT * FROM delta_scan('${lake_root}/quarantine/predictions_daily');

-- silver: cleaned and point-in-time tables
CREATE OR REPLACE VIEW silver.bars_daily AS SELECT * FROM delta_scan('${lake_root}/silver/bars_daily');
CREATE OR REPLACE VIEW silver.split_factors AS SELECT * FROM delta_scan('${lake_root}/silver/split_factors');
CREATE OR REPLACE VIEW silver.bars_intraday AS SELECT * FROM delta_scan('${lake_root}/silver/bars_intraday');
CREATE OR REPLACE VIEW silver.sentiment_daily AS SELECT * FROM delta_scan('${lake_root}/silver/sentiment_daily');
CREATE OR REPLACE VIEW silver.macro_asof AS SELECT * FROM delta_scan('${lake_root}/silver/macro_asof');

-- gold: features, labels, predictions and the live record
CREATE OR REPLACE VIEW gold.features_daily AS SELECT * FROM delta_scan('${lake_root}/gold/features_daily');
CREATE OR REPLACE VIEW gold.macro_daily AS SELECT * FROM delta_scan('${lake_root}/gold/macro_daily');
CREATE OR REPLACE VIEW gold.labels_daily AS SELECT * FROM delta_scan('${lake_root}/gold/labels_daily');
CREATE OR REPLACE VIEW gold.predictions_oos AS SELECT * FROM delta_scan('${lake_root}/gold/predictions_oos');
CREATE OR REPLACE VIEW gold.predictions_daily AS SELECT * FROM delta_scan('${lake_root}/gold/predictions_daily');
CREATE OR REPLACE VIEW gold.predictions_intraday AS SELECT * FROM delta_scan('${lake_root}/gold/predictions_intraday');
CREATE OR REPLACE VIEW gold.signal_outcomes AS SELECT * FROM delta_scan('${lake_root}/gold/signal_outcomes');
CREATE OR REPLACE VIEW gold.predictions_skipped AS SELECT * FROM delta_scan('${lake_root}/gold/predictions_skipped');

-- ops: the platform's own records
CREATE OR REPLACE VIEW ops.validation_runs AS SELECT * FROM delta_scan('${lake_root}/ops/validation_runs');
CREATE OR REPLACE VIEW ops.model_decisions AS SELECT * FROM delta_scan('${lake_root}/ops/model_decisions');
CREATE OR REPLACE VIEW ops.pipeline_runs AS SELECT * FROM delta_scan('${lake_root}/ops/pipeline_runs');
