"""`tickerlake drain`: Kafka -> Delta, exactly once, with Spark Structured Streaming.

One drain is one `Trigger.AvailableNow` run of a checkpointed query on topic `market.bars.5m`:
Spark fixes the end offsets when the run starts, splits what lies between the checkpoint and
them into bounded micro-batches (`maxOffsetsPerTrigger`) and stops. Per micro-batch, in
`foreachBatch`:

0. every message that parses (corrections included) goes through Great Expectations' intraday
   suite (`suites.intraday_rules` but the key's uniqueness: a zero price, a high below the open or
   close, a bar outside its session's hours, early closes included, a bar off the 5-minute grid,
   ...): a `reject` verdict makes it a dead letter, a `warn` verdict gives it a quarantine row and
   lets it land;
1. `bronze.bars_intraday`: one row per message (topic, partition, offset, Kafka's append time, the
   raw payload, the parsed bar where it parses, the rule it broke where it did: valid false);
2. `quarantine.bars_intraday`: the dead letters (bad JSON, wrong schema, negative price or volume,
   high below low, the suite's rejects) with the raw payload and the reason, and the suite's
   warnings; they never stop the drain;
3. `silver.bars_intraday`: the good bars merged on (ticker, ts), one row per key (the latest
   message for a key that passed wins: a vendor's correction replaces its first print).

Each of the three Delta commits carries the transaction id (txnAppId = this query's id, which
persists in the checkpoint; txnVersion = the batch id): Delta records it in the same commit and
skips a write whose (app id, version) it has already committed. Spark writes the batch's offsets
to the checkpoint before the batch and its commit after it, so a crash between the two replays the
batch with the same id and the same offsets, and the replay writes nothing twice; a crash before
the Delta commits replays a batch that was never written. A checkpoint offset that retention has
deleted fails the drain (failOnDataLoss): nothing is skipped silently.

`TICKERLAKE_DRAIN_FAULT=<point>@<batch>` (point: before_delta_commit, between_tables,
after_delta_commit) kills the drain's whole process group with SIGKILL at that point, for the
crash tests; unset, it does nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tickerlake.intraday.schema import (
    BAR_MINUTES,
    NUMBER_FIELDS,
    PRICE_FIELDS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STRING_FIELDS,
    TICKER_PATTERN,
    TS_PATTERN,
)
from tickerlake.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

BRONZE = "bronze.bars_intraday"
QUARANTINE = "quarantine.bars_intraday"
SILVER = "silver.bars_intraday"
FAULT_ENV = "TICKERLAKE_DRAIN_FAULT"
FAULT_POINTS = ("before_delta_commit", "between_tables", "after_delta_commit")
_NUMBER_TYPES = r"BIGINT|DOUBLE|DECIMAL\([0-9]+,[0-9]+\)"  # how JSON numbers parse into a variant

BRONZE_DDL = (
    "topic STRING, partition INT, offset BIGINT, kafka_ts TIMESTAMP, key STRING, value STRING, valid BOOLEAN, "
    "rule STRING, schema_version INT, ticker STRING, ts TIMESTAMP, open DOUBLE, high DOUBLE, low DOUBLE, "
    "close DOUBLE, volume DOUBLE, source STRING, batch_id BIGINT, drained_ts TIMESTAMP, run_id STRING"
)
QUARANTINE_DDL = (
    "ticker STRING, ts TIMESTAMP, date DATE, rule STRING, severity STRING, `values` STRING, payload BINARY, "
    "key STRING, topic STRING, partition INT, offset BIGINT, kafka_ts TIMESTAMP, batch_id BIGINT, run_id STRING"
)
SILVER_DDL = (
    "ticker STRING, ts TIMESTAMP, session DATE, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, "
    "volume DOUBLE, source STRING, topic STRING, partition INT, offset BIGINT, kafka_ts TIMESTAMP, "
    "batch_id BIGINT, drained_ts TIMESTAMP"
)
TABLE_DDL = {BRONZE: BRONZE_DDL, QUARANTINE: QUARANTINE_DDL, SILVER: SILVER_DDL}


class DrainError(RuntimeError):
    pass


# --- parsing -------------------------------------------------------------------------------
def _sql_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_BAR_STRUCT = ("struct<schema:string,version:bigint,ticker:string,ts:string,open:double,high:double,low:double,"
               "close:double,volume:double,source:string>")


def _type_is(field: str, types: str) -> str:
    """The top-level field is there with one of these JSON types: its own `schema_of_variant` (`STRING`,
    `DECIMAL(7,3)`, ...; NULL when the field is missing, `VOID` for a JSON null). Matching each field's
    short type string, not the whole message's shape, cost a third of the parse (11 regexes over a
    200-character `OBJECT<...>` string a message)."""
    return f"schema_of_variant(variant_get(_v, '$.{field}')) RLIKE {_sql_str(f'^({types})$')}"


def _rule_expr() -> str:
    """The dead-letter rule of a message (NULL = good), the same rules as schema.classify."""
    strings = " AND ".join(_type_is(f, "STRING") for f in ("schema", *STRING_FIELDS))
    numbers = " AND ".join(_type_is(f, _NUMBER_TYPES) for f in NUMBER_FIELDS)
    schema_ok = (
        f"coalesce({strings} AND {numbers} AND {_type_is('version', 'BIGINT')}"
        f" AND _j.version = {SCHEMA_VERSION} AND _j.schema = {_sql_str(SCHEMA_NAME)}"
        f" AND _j.ticker RLIKE {_sql_str(TICKER_PATTERN)} AND _j.ts RLIKE {_sql_str(TS_PATTERN)}"
        f" AND _ts IS NOT NULL AND {' AND '.join(f'_j.{f} IS NOT NULL' for f in NUMBER_FIELDS)}, false)"
    )
    negative_price = " OR ".join(f"_j.{f} < 0" for f in PRICE_FIELDS)
    return (
        "CASE WHEN value IS NULL OR NOT is_valid_utf8(value) OR _v IS NULL THEN 'bad_json'"
        f" WHEN NOT {schema_ok} THEN 'wrong_schema'"
        f" WHEN {negative_price} THEN 'negative_price'"
        " WHEN _j.volume < 0 THEN 'negative_volume'"
        " WHEN _j.high < _j.low THEN 'high_below_low'"
        " END"
    )


def parse_messages(kafka: DataFrame) -> DataFrame:
    """Kafka source rows -> one row per message with the parsed bar and its rule (NULL = good)."""
    from pyspark.sql import functions as F

    df = kafka.select(
        "topic", "partition", "offset", F.col("timestamp").alias("kafka_ts"),
        F.col("key").cast("string").alias("key"), "value",
    )
    df = df.withColumn("_text", F.expr("CASE WHEN is_valid_utf8(value) THEN CAST(value AS STRING) END"))
    df = df.withColumn("_v", F.expr("try_parse_json(_text)"))
    df = df.withColumn("_j", F.expr(f"try_variant_get(_v, '$', '{_BAR_STRUCT}')"))
    # only a ts of the contract's form is read (a year past pandas' range would break every reader)
    df = df.withColumn("_ts", F.expr(f"CASE WHEN _j.ts RLIKE {_sql_str(TS_PATTERN)} "
                                     "THEN try_to_timestamp(_j.ts, \"yyyy-MM-dd'T'HH:mm:ssX\") END"))
    df = df.withColumn("rule", F.expr(_rule_expr()))
    good = F.col("rule").isNull()

    def when_good(col: Column | str) -> Column:
        return F.when(good, col if not isinstance(col, str) else F.col(col))

    return df.select(
        "topic", "partition", "offset", "kafka_ts", "key",
        # The payload as text; bytes that are not UTF-8 as `base64:<bytes>` (the raw bytes stay in `payload`).
        F.coalesce(F.col("_text"), F.concat(F.lit("base64:"), F.base64("value"))).alias("text"),
        F.col("value").alias("payload"),
        good.alias("valid"), "rule",
        # try_cast: a version past INT (a poison message) is a wrong schema, not a failed batch
        F.when(F.expr(_type_is("version", "BIGINT")), F.expr("try_cast(_j.version AS INT)")).alias("schema_version"),
        when_good("_j.ticker").alias("ticker"),
        F.col("_ts").alias("ts"),
        *[when_good(f"_j.{f}").alias(f) for f in NUMBER_FIELDS],
        when_good("_j.source").alias("source"),
    )


# --- the intraday suite ----------------------------------------------------------------------
VERDICT_DDL = "partition INT, offset BIGINT, suite_rule STRING, suite_severity STRING, suite_values STRING"


def suite_rules() -> list:
    """The intraday suite as the drain runs it: every rule but the key's uniqueness. Two messages for
    one (ticker, ts) are a bar and its correction, and the latest that passes the suite lands."""
    from tickerlake.suites import intraday_rules

    return [r for r in intraday_rules(BAR_MINUTES) if r.name != "unique_ticker_ts"]


def suite_verdicts(bars: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Great Expectations' intraday suite over a batch's parsed messages (ticker, ts_us as UTC
    microseconds, OHLCV, partition, offset): one row per verdict, keyed by its message (partition,
    offset), with suite_rule, suite_severity (reject or warn) and suite_values (the bar as JSON)."""
    import pandas as pd

    from tickerlake.suites import REJECT, WARN, validate_intraday

    ts = pd.to_datetime(bars["ts_us"], unit="us", utc=True)  # the contract's years: inside pandas' range
    frame = pd.DataFrame({"ticker": bars["ticker"], "ts": ts, **{f: bars[f] for f in NUMBER_FIELDS}})
    judged = validate_intraday(frame, run_id, rules=suite_rules())
    at = [i for i, _ in judged.result.verdicts(REJECT, WARN)]  # judged.quarantine's rows, in this order
    q = judged.quarantine
    return pd.DataFrame({
        "partition": bars["partition"].to_numpy()[at].astype("int32"),
        "offset": bars["offset"].to_numpy()[at].astype("int64"),
        "suite_rule": q["rule"].to_numpy(dtype=object), "suite_severity": q["severity"].to_numpy(dtype=object),
        "suite_values": q["values"].to_numpy(dtype=object),
    })


def first_rejects(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per rejected message (partition, offset, suite_rule): its first reject rule in suite order,
    the rule bronze records."""
    from tickerlake.suites import REJECT

    rejects = verdicts[verdicts["suite_severity"] == REJECT]
    return rejects.drop_duplicates(["partition", "offset"])[["partition", "offset", "suite_rule"]]


# --- tables ----------------------------------------------------------------------------------
def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    """Create the three tables, empty, where they do not exist yet (readers always find them)."""
    from delta.tables import DeltaTable

    from tickerlake.lake import table_exists

    for name, ddl in TABLE_DDL.items():
        if not table_exists(settings, name):  # delta-rs: no Spark job for the common case
            path = settings.table_uri(name)
            if not DeltaTable.isDeltaTable(spark, path):
                spark.createDataFrame([], ddl).write.format("delta").mode("append").save(path)


def _delta_version(settings: Settings, name: str) -> int:
    from tickerlake.lake import table_version

    return table_version(settings, name)  # delta-rs reads the log: no Spark job per table and batch


def checkpoint_state(settings: Settings) -> dict[str, list[int]]:
    """Batch ids in the checkpoint's offset log (planned) and commit log (done): a batch in `offsets`
    but not in `commits` is the one the next drain replays."""
    root = Path(settings.intraday_checkpoint_dir.removeprefix("file://"))

    def ids(sub: str) -> list[int]:
        folder = root / sub
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []

    return {"offsets": ids("offsets"), "commits": ids("commits")}


def committed_txn(settings: Settings, name: str) -> dict[str, int]:
    """app id -> latest transaction version Delta recorded for the table (its `txn` actions)."""
    from deltalake import DeltaTable

    log_dir = Path(settings.table_path(name)) / "_delta_log"
    txns: dict[str, int] = {}
    if not log_dir.is_dir():
        return txns
    DeltaTable(settings.table_path(name))  # a readable table, or raise
    for file in sorted(log_dir.glob("*.json")):
        for line in file.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action:
                app, version = action["txn"]["appId"], int(action["txn"]["version"])
                txns[app] = max(version, txns.get(app, -1))
    return txns


# --- the drain ---------------------------------------------------------------------------------
def _fault(point: str, batch_id: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    where, _, batch = spec.partition("@")
    if where not in FAULT_POINTS:
        raise DrainError(f"{FAULT_ENV}={spec!r}: point must be one of {FAULT_POINTS}")
    if where == point and int(batch or 0) == batch_id:
        log.warning("fault injection: killing the drain's process group at %s of batch %d", point, batch_id)
        os.killpg(os.getpgrp(), signal.SIGKILL)


def kafka_stream(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("maxOffsetsPerTrigger", str(settings.intraday_max_offsets_per_trigger))
        .load()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # wall-clock ok: drained_ts, a latency measurement


def _exchange_date(ts: Column) -> Column:
    """The New York calendar date of a UTC timestamp (a bar's session), as column `date`."""
    from pyspark.sql import functions as F

    return F.to_date(F.from_utc_timestamp(ts, "America/New_York")).alias("date")


def drain(spark: SparkSession, settings: Settings, run_id: str, topic: str | None = None) -> dict[str, Any]:
    """Drain the topic up to the end offsets seen at the start; returns per-batch counts and timings."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from tickerlake.suites import WARN

    topic = topic or settings.intraday_topic
    started = _now()
    ensure_tables(spark, settings)
    app: dict[str, str] = {}
    ready = threading.Event()
    batches: list[dict[str, Any]] = []
    paths = {name: settings.table_uri(name) for name in TABLE_DDL}

    def write_batch(df: DataFrame, batch_id: int) -> None:
        ready.wait(60)
        app_id = app["id"]
        _fault("before_delta_commit", batch_id)
        t0 = time.perf_counter()  # wall-clock ok: batch timing
        drained = _now()
        df = df.withColumn("batch_id", F.lit(batch_id).cast("bigint")).persist()
        try:
            stats = df.agg(
                F.count(F.lit(1)).alias("rows"), F.count("rule").alias("quarantined"),
                F.min("ts").alias("min_ts"),
                F.percentile_approx(F.unix_micros("kafka_ts"), [0.05, 0.5], 1000).alias("kafka_q"),
            ).collect()[0]
            rows, dead = int(stats["rows"]), int(stats["quarantined"])
            phases = {"read_parse_s": time.perf_counter() - t0}  # wall-clock ok: phase timings
            versions = {name: _delta_version(settings, name) for name in TABLE_DDL}
            txn = {"txnAppId": app_id, "txnVersion": str(batch_id)}

            # Every message that parses is judged by the intraday suite, a vendor's correction too, so
            # what lands does not depend on where a batch boundary falls between a bar and its correction.
            mark = time.perf_counter()  # wall-clock ok
            verdicts = rejects = None
            suite = {"rejected": 0, "warned": 0}
            if rows > dead:
                local = df.where("valid").select(
                    "ticker", F.unix_micros("ts").alias("ts_us"), *NUMBER_FIELDS, "partition", "offset").toPandas()
                found = suite_verdicts(local, run_id)
                if len(found):
                    first = first_rejects(found)
                    suite = {"rejected": len(first), "warned": int((found["suite_severity"] == WARN).sum())}
                    verdicts = F.broadcast(spark.createDataFrame(found, VERDICT_DDL))
                    if len(first):
                        rejects = F.broadcast(spark.createDataFrame(first, "partition INT, offset BIGINT, suite_rule STRING"))
            phases["suite_s"] = time.perf_counter() - mark  # wall-clock ok
            quarantined = dead + suite["rejected"]

            judged = df
            if rejects is not None:  # a rejected bar is a dead letter in bronze too: valid false, its rule
                judged = df.join(rejects, ["partition", "offset"], "left").select(
                    *[c for c in df.columns if c not in ("valid", "rule")],
                    (F.col("valid") & F.col("suite_rule").isNull()).alias("valid"),
                    F.coalesce("rule", "suite_rule").alias("rule"),
                )
            bronze = judged.select(
                "topic", "partition", "offset", "kafka_ts", "key", F.col("text").alias("value"), "valid", "rule",
                "schema_version", "ticker", "ts", *NUMBER_FIELDS, "source", "batch_id",
                F.lit(drained).alias("drained_ts"), F.lit(run_id).alias("run_id"),
            )
            mark = time.perf_counter()  # wall-clock ok
            bronze.write.format("delta").mode("append").options(**txn).save(paths[BRONZE])
            phases["bronze_s"] = time.perf_counter() - mark  # wall-clock ok
            _fault("between_tables", batch_id)
            mark = time.perf_counter()  # wall-clock ok
            # one quarantine write per batch (one transaction id): the parse's dead letters and the suite's verdicts
            letters = []
            if dead:
                letters.append(df.where(F.col("rule").isNotNull()).select(
                    F.expr(f"CASE WHEN try_variant_get(try_parse_json(text), '$.ticker', 'string') RLIKE "
                           f"{_sql_str(TICKER_PATTERN)} THEN try_variant_get(try_parse_json(text), '$.ticker', "
                           f"'string') END").alias("ticker"),
                    "ts", _exchange_date(F.coalesce("ts", "kafka_ts")),
                    "rule", F.lit("reject").alias("severity"), F.col("text").alias("values"), "payload", "key",
                    "topic", "partition", "offset", "kafka_ts", "batch_id", F.lit(run_id).alias("run_id"),
                ))
            if verdicts is not None:
                letters.append(df.join(verdicts, ["partition", "offset"]).select(
                    "ticker", "ts", _exchange_date(F.col("ts")), F.col("suite_rule").alias("rule"),
                    F.col("suite_severity").alias("severity"), F.col("suite_values").alias("values"), "payload", "key",
                    "topic", "partition", "offset", "kafka_ts", "batch_id", F.lit(run_id).alias("run_id"),
                ))
            if letters:
                out = letters[0] if len(letters) == 1 else letters[0].unionByName(letters[1])
                out.write.format("delta").mode("append").options(**txn).save(paths[QUARANTINE])
            phases["quarantine_s"] = time.perf_counter() - mark  # wall-clock ok
            mark = time.perf_counter()  # wall-clock ok
            if rows > quarantined:
                good = df.where("valid")
                if rejects is not None:
                    good = good.join(rejects, ["partition", "offset"], "left_anti")
                latest = Window.partitionBy("ticker", "ts").orderBy(
                    F.col("kafka_ts").desc(), F.col("partition").desc(), F.col("offset").desc())
                good = good.withColumn("_n", F.row_number().over(latest)).where("_n = 1").select(
                    "ticker", "ts", _exchange_date(F.col("ts")).alias("session"),
                    *NUMBER_FIELDS, "source", "topic", "partition", "offset", "kafka_ts", "batch_id",
                    F.lit(drained).alias("drained_ts"))
                newer = ("s.kafka_ts > t.kafka_ts OR (s.kafka_ts = t.kafka_ts AND (s.partition > t.partition "
                         "OR (s.partition = t.partition AND s.offset > t.offset)))")
                on = f"t.ticker = s.ticker AND t.ts = s.ts AND t.ts >= timestamp'{stats['min_ts'].isoformat()}'" \
                    if stats["min_ts"] is not None else "t.ticker = s.ticker AND t.ts = s.ts"
                spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
                spark.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
                try:
                    (DeltaTable.forPath(spark, paths[SILVER]).alias("t").merge(good.alias("s"), on)
                     .whenMatchedUpdateAll(condition=newer).whenNotMatchedInsertAll().execute())
                finally:
                    spark.conf.unset("spark.databricks.delta.write.txnAppId")
                    spark.conf.unset("spark.databricks.delta.write.txnVersion")
            phases["silver_s"] = time.perf_counter() - mark  # wall-clock ok
            committed = _now()
            _fault("after_delta_commit", batch_id)
            after = {name: _delta_version(settings, name) for name in TABLE_DDL}
            q05, q50 = (stats["kafka_q"] or [None, None])
            batches.append({
                "batch_id": batch_id, "rows": rows, "quarantined": quarantined,
                "suite_rejected": suite["rejected"], "suite_warned": suite["warned"],
                "commits": {name: after[name] - versions[name] for name in TABLE_DDL},
                "seconds": round(time.perf_counter() - t0, 3),  # wall-clock ok
                "phases_s": {k: round(v, 3) for k, v in phases.items()},
                "drained_ts": drained.isoformat(), "committed_ts": committed.isoformat(),
                # Kafka append time -> Delta commit, per message: p50 and p95 of (commit - kafka_ts).
                "drain_latency_p50_s": None if q50 is None else round(committed.timestamp() - q50 / 1e6, 3),
                "drain_latency_p95_s": None if q05 is None else round(committed.timestamp() - q05 / 1e6, 3),
            })
        finally:
            df.unpersist()

    query = (
        parse_messages(kafka_stream(spark, settings, topic))
        .writeStream.queryName("tickerlake_drain_bars_intraday")
        .foreachBatch(write_batch)
        .option("checkpointLocation", settings.intraday_checkpoint_dir)
        .trigger(availableNow=True)
        .start()
    )
    app["id"] = f"tickerlake.drain.bars_intraday.{query.id}"
    ready.set()
    try:
        query.awaitTermination()
    except Exception as exc:  # StreamingQueryException: offsets past retention, broker gone, ...
        text = str(exc)
        if "Some data may have been lost" in text or "OffsetOutOfRange" in text:
            raise DrainError(
                f"data loss on {topic}: offsets the checkpoint has not drained yet are no longer in Kafka "
                "(deleted by retention); the drain stops instead of skipping them (failOnDataLoss=true). "
                "Recover the lost range from the source (tickerlake replay) before moving the checkpoint on."
            ) from exc
        raise DrainError(f"drain of {topic} failed: {text.strip().splitlines()[0]}") from exc
    finished = _now()
    return {
        "run_id": run_id, "topic": topic, "app_id": app["id"], "started_ts": started.isoformat(),
        "finished_ts": finished.isoformat(), "seconds": round((finished - started).total_seconds(), 3),
        "batches": batches, "messages": sum(b["rows"] for b in batches),
        "quarantined": sum(b["quarantined"] for b in batches), "checkpoint": checkpoint_state(settings),
    }
