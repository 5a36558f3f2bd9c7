"""All settings in one place: environment variables with local defaults.

Nothing here holds a credential. Credentials live in Airflow connections (or a secrets
backend) and, for the embedded default, in generated files under the state folder that
only the owner can read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    home: Path
    jars_dir: Path  # pinned JVM jars; a machine-wide cache may be shared between homes
    cache_dir: Path  # compiled caches (Data Docs templates), keyed by their sources; may be shared too
    lake_root: str
    spark_master: str
    spark_driver_memory: str
    kafka_bootstrap: str
    kafka_port: int
    kafka_controller_port: int
    airflow_port: int
    airflow_parallelism: int
    mlflow_port: int
    feature_server_port: int  # Feast's feature server (127.0.0.1 only; it has no login)
    mlflow_tracking_uri: str
    feast_repo: Path
    email_mode: str  # "auto": SendGrid when sendgrid_default has a key, else dry run; "dry-run"
    universe_size: int
    market_source: str  # "synthetic" | "csv" | "http"
    csv_drop_dir: Path
    csv_format: str  # "auto" or a name in tickerlake.sources.csv_files.FORMATS
    tiingo_base_url: str
    synthetic_defect_rate: float  # share of synthetic bars given an injected defect (0 = a clean market)
    synthetic_events: bool  # listings, delistings, splits and spin-offs in the synthetic market
    min_coverage: float  # critical: share of the expected universe each session must cover
    validation_jump_factor: float
    validation_corporate_action_factor: float
    validation_split_tolerance: float
    validation_context_sessions: int  # sessions re-judged by the rules that need the next session
    validation_workers: int
    validation_chunk_rows: int  # rows of bronze validated as one piece (and one Great Expectations batch)
    data_docs: str  # "each_run" or "off"
    tiingo_requests_per_second: float
    social_path: str  # StockNet-layout tweets (tgz or folder); "" = no social source
    news_path: str  # folder of dated headline CSVs; "" = no news source
    macro_path: str  # folder of FRED-format CSVs; "" = no macro source
    history_start: str
    seed: int
    model_name: str
    retrain_every_sessions: int
    daily_end_date: str  # last session the daily DAG schedules ("" = open-ended); the demo pins it
    signal_threshold: float
    report_top_n: int
    # --- intraday stream (issue 8) ---------------------------------------------------------
    intraday_topic: str = "market.bars.5m"
    intraday_partitions: int = 3
    intraday_max_offsets_per_trigger: int = 250_000  # bounded micro-batches within one drain
    intraday_checkpoint: str = ""  # "" = <home>/streaming/bars_intraday (a URI at scale)
    kafka_retention_check_ms: int = 300_000  # the broker's log.retention.check.interval.ms
    # --- signal report delivery and live record (issue 7) ------------------------------------
    sendgrid_api_host: str = "https://api.sendgrid.com"  # SendGrid's v3 API base URL
    sendgrid_max_attempts: int = 5  # attempts per send on 429 / 5xx / a failed connection
    sendgrid_backoff_seconds: float = 2.0  # first wait; doubles each attempt (Retry-After wins if longer)
    sendgrid_max_wait_seconds: float = 120.0  # cap on one wait
    sendgrid_timeout_seconds: float = 30.0  # HTTP timeout of one attempt
    live_ic_window: int = 20  # sessions in the rolling live rank IC and coverage
    alert_reject_share: float = 0.05  # data-quality alert above this share of rejected rows in a session
    report_deadline_minutes: int = 150  # deadline alert: no report this long after the run's logical time
    # --- Delta maintenance (tickerlake.maintenance) ------------------------------------------
    maintenance_retention_hours: float = 168.0  # VACUUM keeps at least this much history
    maintenance_margin_hours: float = 24.0  # added to the age of the oldest version a model was trained on
    maintenance_headroom_hours: float = 336.0  # kept beyond that on pinned tables, until a later run
    # --- training, walk-forward evaluation and the promotion gate (tickerlake.training) -------
    label: str = "ret_1d"  # next open to the open 1 (ret_1d) or 5 (ret_5d) sessions later
    train_params: str = ""  # JSON merged over walkforward.DEFAULT_PARAMS (LightGBM)
    train_num_rounds: int = 400  # boosting rounds at most; early stopping on a purged block picks fewer
    train_early_stopping_rounds: int = 40
    train_test_sessions: int = 60  # sessions per walk-forward test block
    train_validation_sessions: int = 40  # the early-stopping block, purged like a test block
    train_min_sessions: int = 250  # training sessions before the first test block
    train_window_sessions: int = 0  # rolling train window in sessions; 0 = expanding
    train_embargo_sessions: int = 0  # extra sessions dropped after each purge
    interval_coverage: float = 0.8  # split-conformal prediction interval coverage
    promotion_window_sessions: int = 250  # the latest out-of-sample sessions the gate compares on
    promotion_min_ic_diff: float = 0.0  # challenger minus champion daily rank IC must exceed this
    promotion_coverage_tolerance: float = 0.05  # |interval coverage - target| allowed over the window
    promotion_live_sessions: int = 250  # the champion's live record joins the gate once it holds this many

    # --- derived locations inside the state folder -------------------------------------
    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def spark_conf_dir(self) -> Path:
        return self.home / "spark" / "conf"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """PID files and generated secrets of the local services."""
        return self.home / "run"

    @property
    def intraday_checkpoint_dir(self) -> str:
        """Checkpoint of the intraday drain's streaming query (path or URI)."""
        return self.intraday_checkpoint or str(self.home / "streaming" / "bars_intraday")

    def table_uri(self, name: str) -> str:
        """`<layer>.<table>` -> `<lake root>/<layer>/<table>`."""
        layer, _, table = name.partition(".")
        if not layer or not table or "/" in name:
            raise ValueError(f"table names are <layer>.<table>, got {name!r}")
        return f"{self.lake_root.rstrip('/')}/{layer}/{table}"

    def table_path(self, name: str) -> str:
        """Path form of a table URI for local libraries (delta-rs takes either)."""
        uri = self.table_uri(name)
        return uri[len("file://") :] if uri.startswith("file://") else uri


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from the environment; `home` (the CLI's --home) overrides TICKERLAKE_HOME."""
    home_path = Path(home or _env("TICKERLAKE_HOME", str(PROJECT_ROOT / ".state"))).resolve()
    return Settings(
        home=home_path,
        jars_dir=Path(_env("TICKERLAKE_JARS_DIR", str(home_path / "jars"))).resolve(),
        cache_dir=Path(_env("TICKERLAKE_CACHE_DIR", str(home_path / ".cache"))).resolve(),
        lake_root=_env("TICKERLAKE_LAKE_ROOT", f"file://{home_path / 'lake'}"),
        spark_master=_env("TICKERLAKE_SPARK_MASTER", "local[*]"),
        spark_driver_memory=_env("TICKERLAKE_SPARK_DRIVER_MEMORY", "4g"),
        kafka_bootstrap=_env("TICKERLAKE_KAFKA_BOOTSTRAP", f"127.0.0.1:{_env_int('TICKERLAKE_KAFKA_PORT', 9092)}"),
        kafka_port=_env_int("TICKERLAKE_KAFKA_PORT", 9092),
        kafka_controller_port=_env_int("TICKERLAKE_KAFKA_CONTROLLER_PORT", 9093),
        airflow_port=_env_int("TICKERLAKE_AIRFLOW_PORT", 8080),
        airflow_parallelism=_env_int("TICKERLAKE_AIRFLOW_PARALLELISM", 4),
        mlflow_port=_env_int("TICKERLAKE_MLFLOW_PORT", 5000),
        feature_server_port=_env_int("TICKERLAKE_FEATURE_SERVER_PORT", 6566),
        mlflow_tracking_uri=_env(
            "TICKERLAKE_MLFLOW_TRACKING_URI", f"sqlite:///{home_path / 'mlflow' / 'mlflow.db'}"
        ),
        feast_repo=Path(_env("TICKERLAKE_FEAST_REPO", str(PROJECT_ROOT / "feature_repo"))),
        email_mode=_env("TICKERLAKE_EMAIL_MODE", "auto"),
        universe_size=_env_int("TICKERLAKE_UNIVERSE_SIZE", 50),
        market_source=_env("TICKERLAKE_MARKET_SOURCE", "synthetic"),
        csv_drop_dir=Path(_env("TICKERLAKE_CSV_DROP_DIR", str(home_path / "drop" / "bars_daily"))),
        csv_format=_env("TICKERLAKE_CSV_FORMAT", "auto"),
        synthetic_defect_rate=_env_float("TICKERLAKE_SYNTHETIC_DEFECT_RATE", 0.0),
        synthetic_events=_env("TICKERLAKE_SYNTHETIC_EVENTS", "false").lower() in ("1", "true", "yes"),
        min_coverage=_env_float("TICKERLAKE_MIN_COVERAGE", 0.9),
        validation_jump_factor=_env_float("TICKERLAKE_VALIDATION_JUMP_FACTOR", 2.0),
        validation_corporate_action_factor=_env_float("TICKERLAKE_VALIDATION_CORPORATE_ACTION_FACTOR", 2.0),
        validation_split_tolerance=_env_float("TICKERLAKE_VALIDATION_SPLIT_TOLERANCE", 0.05),
        validation_context_sessions=_env_int("TICKERLAKE_VALIDATION_CONTEXT_SESSIONS", 10),
        validation_workers=_env_int("TICKERLAKE_VALIDATION_WORKERS", min(len(os.sched_getaffinity(0)), 4)),
        validation_chunk_rows=_env_int("TICKERLAKE_VALIDATION_CHUNK_ROWS", 1_500_000),
        data_docs=_env("TICKERLAKE_DATA_DOCS", "each_run"),
        tiingo_base_url=_env("TICKERLAKE_TIINGO_BASE_URL", "https://api.tiingo.com"),
        tiingo_requests_per_second=_env_float("TICKERLAKE_TIINGO_REQUESTS_PER_SECOND", 1.0),
        social_path=_env("TICKERLAKE_SOCIAL_PATH", ""),
        news_path=_env("TICKERLAKE_NEWS_PATH", ""),
        macro_path=_env("TICKERLAKE_MACRO_PATH", ""),
        history_start=_env("TICKERLAKE_HISTORY_START", "2023-01-03"),
        seed=_env_int("TICKERLAKE_SEED", 7),
        model_name=_env("TICKERLAKE_MODEL_NAME", "tickerlake_daily_lgbm"),
        daily_end_date=_env("TICKERLAKE_DAILY_END_DATE", ""),
        retrain_every_sessions=_env_int("TICKERLAKE_RETRAIN_EVERY_SESSIONS", 5),
        signal_threshold=_env_float("TICKERLAKE_SIGNAL_THRESHOLD", 0.8),
        report_top_n=_env_int("TICKERLAKE_REPORT_TOP_N", 10),
        intraday_topic=_env("TICKERLAKE_INTRADAY_TOPIC", "market.bars.5m"),
        intraday_partitions=_env_int("TICKERLAKE_INTRADAY_PARTITIONS", 3),
        intraday_max_offsets_per_trigger=_env_int("TICKERLAKE_INTRADAY_MAX_OFFSETS_PER_TRIGGER", 250_000),
        intraday_checkpoint=_env("TICKERLAKE_INTRADAY_CHECKPOINT", ""),
        kafka_retention_check_ms=_env_int("TICKERLAKE_KAFKA_RETENTION_CHECK_MS", 300_000),
        sendgrid_api_host=_env("TICKERLAKE_SENDGRID_API_HOST", "https://api.sendgrid.com"),
        sendgrid_max_attempts=_env_int("TICKERLAKE_SENDGRID_MAX_ATTEMPTS", 5),
        sendgrid_backoff_seconds=_env_float("TICKERLAKE_SENDGRID_BACKOFF_SECONDS", 2.0),
        sendgrid_max_wait_seconds=_env_float("TICKERLAKE_SENDGRID_MAX_WAIT_SECONDS", 120.0),
        sendgrid_timeout_seconds=_env_float("TICKERLAKE_SENDGRID_TIMEOUT_SECONDS", 30.0),
        live_ic_window=_env_int("TICKERLAKE_LIVE_IC_WINDOW", 20),
        alert_reject_share=_env_float("TICKERLAKE_ALERT_REJECT_SHARE", 0.05),
        report_deadline_minutes=_env_int("TICKERLAKE_REPORT_DEADLINE_MINUTES", 150),
        maintenance_retention_hours=_env_float("TICKERLAKE_MAINTENANCE_RETENTION_HOURS", 168.0),
        maintenance_margin_hours=_env_float("TICKERLAKE_MAINTENANCE_MARGIN_HOURS", 24.0),
        maintenance_headroom_hours=_env_float("TICKERLAKE_MAINTENANCE_HEADROOM_HOURS", 336.0),
        label=_env("TICKERLAKE_LABEL", "ret_1d"),
        train_params=_env("TICKERLAKE_TRAIN_PARAMS", ""),
        train_num_rounds=_env_int("TICKERLAKE_TRAIN_NUM_ROUNDS", 400),
        train_early_stopping_rounds=_env_int("TICKERLAKE_TRAIN_EARLY_STOPPING_ROUNDS", 40),
        train_test_sessions=_env_int("TICKERLAKE_TRAIN_TEST_SESSIONS", 60),
        train_validation_sessions=_env_int("TICKERLAKE_TRAIN_VALIDATION_SESSIONS", 40),
        train_min_sessions=_env_int("TICKERLAKE_TRAIN_MIN_SESSIONS", 250),
        train_window_sessions=_env_int("TICKERLAKE_TRAIN_WINDOW_SESSIONS", 0),
        train_embargo_sessions=_env_int("TICKERLAKE_TRAIN_EMBARGO_SESSIONS", 0),
        interval_coverage=_env_float("TICKERLAKE_INTERVAL_COVERAGE", 0.8),
        promotion_window_sessions=_env_int("TICKERLAKE_PROMOTION_WINDOW_SESSIONS", 250),
        promotion_min_ic_diff=_env_float("TICKERLAKE_PROMOTION_MIN_IC_DIFF", 0.0),
        promotion_coverage_tolerance=_env_float("TICKERLAKE_PROMOTION_COVERAGE_TOLERANCE", 0.05),
        promotion_live_sessions=_env_int("TICKERLAKE_PROMOTION_LIVE_SESSIONS", 250),
    )
