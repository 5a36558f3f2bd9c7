"""Analyst SQL: a read-only DuckDB session over the lake's Delta tables.

`connect` opens an in-memory DuckDB, loads the DuckDB-signed `delta` extension by path from the
pip package duckdb-ext-delta (unsigned extensions stay off; nothing is downloaded), creates the
views of `include/sql/views.sql` (`gold.predictions_daily`, ...) for the tables that exist, and
then locks the session:

* `allowed_directories = ['<lake root>/']` and `enable_external_access = false`: files are read
  (and the delta extension's parquet reads happen) only under the lake root; `/etc/passwd`,
  other folders, `INSTALL` and `LOAD` of any extension file fail.
* `autoinstall_known_extensions` / `autoload_known_extensions` off.
* `lock_configuration = true`: no `SET`/`RESET` of any option afterwards.

DuckDB 1.4 does not separate reading from writing inside an allowed directory, so `COPY ... TO`,
`ATTACH` and `EXPORT` into the lake would pass the engine's checks. Every statement an analyst
sends through this module (`query`, `run_curated`, `interactive`, `tickerlake sql`) therefore goes
through `check_read_only` first: only `SELECT` (with `SHOW`, `DESCRIBE`, `SUMMARIZE`, `FROM ...`,
which parse as SELECT) and `EXPLAIN` of one, and no direct call of the table functions that read
outside the engine's file checks (`delta_scan`, whose Delta log reader is the extension's own) or
that hide SQL in a string (`query`, `query_table`). Use the views.

Curated queries live in `include/sql/curated/<name>.sql`. A header line `-- requires: a.b, c.d`
names the views a query needs (a clear error when the lake lacks them); `-- param name = 13`
declares an integer parameter used as `${name}`; `${quarantine_rows}` expands to the union of
every quarantine.* view of the session.
"""

from __future__ import annotations

import decimal
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tickerlake.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_ROOT / "include" / "sql"
VIEWS_FILE = SQL_DIR / "views.sql"
CURATED_DIR = SQL_DIR / "curated"
LAKE_ROOT_PLACEHOLDER = "${lake_root}"
LAYERS: tuple[str, ...] = ("bronze", "quarantine", "silver", "gold", "ops")
FORMATS: tuple[str, ...] = ("table", "csv", "json")

# Table functions an analyst statement may not call directly (see the module docstring).
DENIED_TABLE_FUNCTIONS = frozenset({"delta_scan", "query", "query_table"})

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_VIEW_STATEMENT = re.compile(
    r"^CREATE\s+OR\s+REPLACE\s+VIEW\s+([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s+AS\s+\S",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\b(?:\s+ANALY[SZ]E\b)?(?:\s*\([^)]*\))?", re.IGNORECASE)
_REQUIRES = re.compile(r"^--\s*requires:\s*(.*)$", re.IGNORECASE)
_PARAM = re.compile(r"^--\s*param\s+([a-z_][a-z0-9_]*)\s*=\s*(-?\d+)\s*$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


class SqlGuardError(ValueError):
    """A statement the read-only analyst session refuses."""


# --- lake root and view SQL (pure) ------------------------------------------------------------
def lake_root_path(lake_root: str) -> str:
    """The local path of a lake root URI (`file://` stripped, no trailing slash).

    The analyst session reads a local lake; an object-store root (s3://, abfss://) would need
    DuckDB's httpfs/azure extensions and credentials, which this session does not load.
    """
    root = lake_root.strip()
    if root.startswith("file://"):
        root = root[len("file://") :]
    elif "://" in root:
        raise ValueError(
            f"analyst SQL reads a local lake; the lake root {lake_root!r} is not a file:// path or a local path"
        )
    if not root.startswith("/"):
        raise ValueError(f"the lake root must be an absolute path, got {lake_root!r}")
    return root.rstrip("/") or "/"


def sql_string_literal(text: str) -> str:
    """`text` as a SQL string literal ('' doubles a quote)."""
    return "'" + text.replace("'", "''") + "'"


def render_lake_root(template: str, root: str) -> str:
    """Substitute `${lake_root}` (always written inside a '...' literal) with `root`, quote-escaped."""
    return template.replace(LAKE_ROOT_PLACEHOLDER, root.replace("'", "''"))


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def parse_views(text: str) -> dict[str, str]:
    """`views.sql` -> {"<layer>.<table>": "CREATE OR REPLACE VIEW ... AS ..."} in file order.

    Statements end with `;` at the end of a line; `--` lines are comments. Each statement must be
    `CREATE OR REPLACE VIEW <layer>.<table> AS ...` with lower-case identifiers, once per name.
    """
    views: dict[str, str] = {}
    body = _strip_comments(text)
    for raw in re.split(r";[ \t]*(?:\n|$)", body):
        statement = " ".join(raw.split())
        if not statement:
            continue
        match = _VIEW_STATEMENT.match(statement)
        if match is None:
            raise ValueError(f"views.sql: expected CREATE OR REPLACE VIEW <layer>.<table> AS ..., got {statement[:80]!r}")
        layer, table = match.group(1), match.group(2)
        if not (_IDENT.match(layer) and _IDENT.match(table)):
            raise ValueError(f"views.sql: view names are lower case <layer>.<table>, got {layer}.{table}")
        name = f"{layer}.{table}"
        if name in views:
            raise ValueError(f"views.sql: {name} is declared twice")
        views[name] = statement
    return views


def default_view_sql(name: str) -> str:
    """The plain view over `<lake root>/<layer>/<table>` (still holding `${lake_root}`)."""
    layer, table = _split_name(name)
    return (
        f"CREATE OR REPLACE VIEW {layer}.{table} AS "
        f"SELECT * FROM delta_scan('{LAKE_ROOT_PLACEHOLDER}/{layer}/{table}')"
    )


def _split_name(name: str) -> tuple[str, str]:
    layer, _, table = name.partition(".")
    if not (_IDENT.match(layer) and _IDENT.match(table)):
        raise ValueError(f"table names are lower case <layer>.<table>, got {name!r}")
    return layer, table


def discover_tables(root: str | Path) -> list[str]:
    """Every `<layer>.<table>` under a local lake root: folders `<root>/<layer>/<table>/_delta_log`."""
    base = Path(root)
    found: list[str] = []
    if not base.is_dir():
        return found
    for layer_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for table_dir in sorted(p for p in layer_dir.iterdir() if p.is_dir()):
            if not (table_dir / "_delta_log").is_dir():
                continue
            name = f"{layer_dir.name}.{table_dir.name}"
            if _IDENT.match(layer_dir.name) and _IDENT.match(table_dir.name):
                found.append(name)
            else:
                log.warning("Delta table %s/%s has no SQL-friendly name; no view", layer_dir.name, table_dir.name)
    return found


@dataclass(frozen=True)
class ViewPlan:
    """Which views a session gets: `statements` (rendered SQL per name), declared ones `skipped`."""

    root: str
    statements: dict[str, str]
    skipped: list[str]
    undeclared: list[str] = field(default_factory=list)  # found in the lake, not in views.sql

    @property
    def created(self) -> list[str]:
        return list(self.statements)

    @property
    def schemas(self) -> list[str]:
        seen = dict.fromkeys(name.partition(".")[0] for name in self.statements)
        return list(seen)


def plan_views(views_text: str, root: str, present: Iterable[str]) -> ViewPlan:
    """Views for the tables `present` in the lake at `root`, from the `views.sql` text."""
    declared = parse_views(views_text)
    present_set = set(present)
    statements: dict[str, str] = {}
    for name, sql in declared.items():
        if name in present_set:
            statements[name] = render_lake_root(sql, root)
    undeclared = sorted(present_set - set(declared))
    for name in undeclared:
        statements[name] = render_lake_root(default_view_sql(name), root)
    skipped = [name for name in declared if name not in present_set]
    return ViewPlan(root=root, statements=statements, skipped=skipped, undeclared=undeclared)


def view_plan(settings: Settings, views_file: Path | None = None) -> ViewPlan:
    root = lake_root_path(settings.lake_root)
    text = (views_file or VIEWS_FILE).read_text(encoding="utf-8")
    return plan_views(text, root, discover_tables(root))


# --- the session ----------------------------------------------------------------------------
def delta_extension_path() -> Path:
    """The DuckDB-signed `delta` extension shipped by the pip package duckdb-ext-delta."""
    import duckdb

    from tickerlake.feast_store import _bundled_delta_extension

    with duckdb.connect(":memory:") as probe:
        row = probe.execute("SELECT platform FROM pragma_platform()").fetchone()
    platform = str(row[0]) if row else "linux_amd64"
    path = _bundled_delta_extension(f"v{duckdb.__version__}", platform)
    if path is None:
        raise FileNotFoundError(
            f"no DuckDB delta extension for duckdb {duckdb.__version__} on {platform}: install the pip package "
            f"duckdb-ext-delta matching duckdb {duckdb.__version__} (DuckDB cannot download it here)"
        )
    return path


def load_extension_file(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """LOAD an extension by path; DuckDB checks its signature (allow_unsigned_extensions is off)."""
    con.execute(f"LOAD {sql_string_literal(str(path))}")


_SESSION_CONFIG = {
    "allow_unsigned_extensions": "false",
    "allow_community_extensions": "false",
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
}


def connect(settings: Settings, views_file: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake's views, locked (see the module docstring).

    Only reads belong on it: pass analyst SQL through `check_read_only` (as `query` does).
    Declared views whose table does not exist yet are logged as skipped; `tickerlake_views`
    (schema main) lists every declared or found table with its status.
    """
    import duckdb

    started = time.perf_counter()
    plan = view_plan(settings, views_file)
    extension = delta_extension_path()
    con = duckdb.connect(":memory:", config=dict(_SESSION_CONFIG))
    try:
        con.execute("SET enable_progress_bar = false")  # a session option: not allowed in the config
        load_extension_file(con, extension)
        for schema in LAYERS + tuple(s for s in plan.schemas if s not in LAYERS):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, statement in plan.statements.items():
            try:
                con.execute(statement)
            except duckdb.Error as exc:
                raise RuntimeError(f"could not create the view {name}: {exc}") from exc
        _create_catalog_table(con, plan)
        lock_session(con, plan.root)
    except BaseException:
        con.close()
        raise
    if plan.skipped:
        log.info("analyst SQL: no table yet, view skipped: %s", ", ".join(plan.skipped))
    log.info("analyst SQL session: %d views over %s in %.2f s", len(plan.statements), plan.root,
             time.perf_counter() - started)
    return con


def _create_catalog_table(con: duckdb.DuckDBPyConnection, plan: ViewPlan) -> None:
    con.execute("CREATE TABLE main.tickerlake_views (name VARCHAR, status VARCHAR, location VARCHAR)")
    rows = [(n, "view", f"{plan.root}/{n.replace('.', '/')}") for n in plan.statements]
    rows += [(n, "skipped: no Delta table yet", f"{plan.root}/{n.replace('.', '/')}") for n in plan.skipped]
    if rows:  # one literal INSERT: executemany costs seconds for a few rows in duckdb 1.4
        values = ", ".join("(" + ", ".join(sql_string_literal(v) for v in row) + ")" for row in rows)
        con.execute(f"INSERT INTO main.tickerlake_views VALUES {values}")


def lock_session(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """Confine file access to `root`, switch off extension installs and loads, lock the configuration."""
    allowed = root if root.endswith("/") else root + "/"  # a prefix: '/lake/' does not admit '/lake2'
    con.execute(f"SET allowed_directories = [{sql_string_literal(allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


# --- the read-only guard ----------------------------------------------------------------------
def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The statements of `sql` if each is a read (SELECT, or EXPLAIN of one); else SqlGuardError.

    Parsing happens in `con` (the locked session), so a statement whose parsing touches files
    (PRAGMA import_database) meets the same file rules as its execution would.
    """
    statements = con.extract_statements(sql)
    if not statements:
        raise SqlGuardError("no SQL statement given")
    texts: list[str] = []
    for statement in statements:
        text = statement.query.strip().rstrip(";").rstrip()
        kind = statement.type.name
        if kind == "EXPLAIN":
            inner = _EXPLAIN.sub("", text, count=1)
            inner_statements = con.extract_statements(inner) if inner.strip() else []
            if len(inner_statements) != 1 or inner_statements[0].type.name != "SELECT":
                raise SqlGuardError(f"read-only session: EXPLAIN only of a SELECT, got: {_short(text)}")
            _check_select(con, inner_statements[0].query)
        elif kind == "SELECT":
            _check_select(con, text)
        else:
            raise SqlGuardError(
                f"read-only session: {kind} statements are not allowed (only SELECT, SHOW, DESCRIBE, "
                f"SUMMARIZE, EXPLAIN): {_short(text)}"
            )
        texts.append(text)
    return texts


def _check_select(con: duckdb.DuckDBPyConnection, text: str) -> None:
    row = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    tree = json.loads(row[0]) if row and row[0] else {"error": True, "error_message": "no parse tree"}
    if tree.get("error"):
        raise SqlGuardError(
            f"read-only session: statement not accepted ({tree.get('error_message', 'unknown form')}); "
            f"use SELECT, SHOW TABLES or DESCRIBE: {_short(text)}"
        )
    denied = sorted(table_functions(tree) & DENIED_TABLE_FUNCTIONS)
    if denied:
        raise SqlGuardError(
            f"read-only session: {', '.join(denied)}() may not be called directly; query the views "
            f"(SELECT * FROM tickerlake_views lists them)"
        )


def table_functions(tree: Any) -> set[str]:
    """Lower-case names of the table functions called anywhere in a json_serialize_sql tree."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
                name = node["function"].get("function_name")
                if isinstance(name, str):
                    names.add(name.lower())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- queries from Python ------------------------------------------------------------------------
def execute(con: duckdb.DuckDBPyConnection, statement: str) -> pd.DataFrame:
    """Run one already-checked statement as a DataFrame (DuckDB's conversion, but DATE columns as
    datetime.date like lake.read_table gives them, not midnight timestamps)."""
    result = con.execute(statement)
    types = [str(d[1]) for d in (result.description or [])]
    df = result.df()
    for i, kind in enumerate(types):
        if kind == "DATE" and i < df.shape[1]:
            df.isetitem(i, df.iloc[:, i].dt.date)
    return df


def query(settings: Settings, sql: str, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """One read-only statement over the views, as a DataFrame (a new session unless `con` is given)."""
    own = con is None
    session = connect(settings) if con is None else con
    try:
        statements = check_read_only(session, sql)
        if len(statements) != 1:
            raise SqlGuardError(f"one statement per query, got {len(statements)}")
        return execute(session, statements[0])
    finally:
        if own:
            session.close()


@dataclass(frozen=True)
class CuratedQuery:
    name: str
    text: str
    requires: tuple[str, ...]
    params: dict[str, int]
    description: str


def curated_names(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or CURATED_DIR).glob("*.sql"))


def parse_curated(name: str, text: str) -> CuratedQuery:
    requires: list[str] = []
    params: dict[str, int] = {}
    description = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            continue
        if m := _REQUIRES.match(stripped):
            requires += [r.strip() for r in m.group(1).split(",") if r.strip()]
        elif m := _PARAM.match(stripped):
            params[m.group(1).lower()] = int(m.group(2))
        elif not description and stripped.lstrip("-").strip():
            description = stripped.lstrip("-").strip()
    for req in requires:
        _split_name(req)
    return CuratedQuery(name, text, tuple(requires), params, description)


def load_curated(name: str, directory: Path | None = None) -> CuratedQuery:
    base = directory or CURATED_DIR
    if not re.fullmatch(r"[a-z0-9_]+", name) or not (base / f"{name}.sql").is_file():
        raise ValueError(f"no curated query {name!r}; there are: {', '.join(curated_names(base)) or 'none'}")
    return parse_curated(name, (base / f"{name}.sql").read_text(encoding="utf-8"))


def render_curated(curated: CuratedQuery, overrides: Mapping[str, Any] | None = None,
                   derived: Mapping[str, str] | None = None) -> str:
    """The curated SQL with `${param}` (integers only: nothing else can be injected) and derived
    relations (`${quarantine_rows}`) substituted."""
    values: dict[str, str] = {k: str(v) for k, v in curated.params.items()}
    for key, raw in (overrides or {}).items():
        key = key.lower()
        if key not in curated.params:
            raise ValueError(f"curated query {curated.name} has no parameter {key!r} "
                             f"(it has: {', '.join(curated.params) or 'none'})")
        try:
            number = int(str(raw).strip())
        except ValueError as exc:
            raise ValueError(f"parameter {key} of {curated.name} must be an integer, got {raw!r}") from exc
        values[key] = str(number)
    values.update(derived or {})

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ValueError(f"curated query {curated.name} uses ${{{key}}}, which is neither a declared "
                             f"parameter nor a derived relation")
        return values[key]

    return _PLACEHOLDER.sub(substitute, curated.text)


def quarantine_union_sql(columns_by_view: Mapping[str, Iterable[str]]) -> str:
    """`(... UNION ALL ...) AS quarantine_rows` over the quarantine views: source_table, date, rule, severity.

    `columns_by_view` maps each quarantine.* view to its columns; a view without rule and severity
    or without `date`/`ts` is left out. With none, an empty relation of the same shape.
    """
    parts: list[str] = []
    for name in sorted(columns_by_view):
        layer, table = _split_name(name)
        cols = {c.lower() for c in columns_by_view[name]}
        if not {"rule", "severity"} <= cols:
            continue
        if "date" in cols:
            day = "CAST(date AS DATE)"
        elif "ts" in cols:
            day = "CAST(ts AS DATE)"
        else:
            continue
        parts.append(f"SELECT {sql_string_literal(table)} AS source_table, {day} AS date, "
                     f"CAST(rule AS VARCHAR) AS rule, CAST(severity AS VARCHAR) AS severity FROM {layer}.{table}")
    if not parts:
        parts = ["SELECT CAST(NULL AS VARCHAR) AS source_table, CAST(NULL AS DATE) AS date, "
                 "CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS VARCHAR) AS severity WHERE false"]
    return "(" + " UNION ALL ".join(parts) + ") AS quarantine_rows"


def _session_views(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name <> 'main' ORDER BY column_index"
    ).fetchall()
    views: dict[str, list[str]] = {}
    for name, column in rows:
        views.setdefault(name, []).append(column)
    return views


def curated_sql(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None,
                directory: Path | None = None) -> str:
    """The runnable SQL of a curated query for this session (requirements checked)."""
    curated = load_curated(name, directory)
    views = _session_views(con)
    missing = [r for r in curated.requires if r not in views]
    if missing:
        raise RuntimeError(f"curated query {name} needs {', '.join(missing)}, which the lake does not have yet")
    quarantine = {n: cols for n, cols in views.items() if n.startswith("quarantine.")}
    return render_curated(curated, params, {"quarantine_rows": quarantine_union_sql(quarantine)})


def run_curated(settings: Settings, name: str, params: Mapping[str, Any] | None = None,
                con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """A curated query of include/sql/curated/ as a DataFrame (through the same read-only guard)."""
    own = con is None
    session = connect(settings) if con is None else con
    try:
        return query(settings, curated_sql(session, name, params), con=session)
    finally:
        if own:
            session.close()


# --- output ---------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not hasattr(value, "isoformat"):  # numpy scalars and arrays
        return _json_value(value.tolist())
    try:
        import pandas as pd

        if pd.isna(value) is True:  # None, NaN, NaT, pd.NA
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):  # date, datetime, time, pandas Timestamp
        return value.isoformat()
    return str(value)


def format_result(df: pd.DataFrame, fmt: str = "table") -> str:
    """`table` (aligned text and a row count), `csv` (header, no index) or `json` (an array of records)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        if df.empty:
            return "[]"
        columns = [str(c) for c in df.columns]
        records = [dict(zip(columns, (_json_value(v) for v in row), strict=True))
                   for row in df.itertuples(index=False, name=None)]
        return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]"
    n = len(df)
    count = f"({n} row{'s' if n != 1 else ''})"
    if df.columns.empty:
        return count
    if n == 0:
        return "  ".join(str(c) for c in df.columns) + "\n" + count
    return df.to_string(index=False) + "\n" + count


# --- interactive session -----------------------------------------------------------------------
_HELP = """\
Read-only SQL over the lake's Delta tables. End a statement with ';'.
  SELECT * FROM tickerlake_views;         the views (and the tables not built yet)
  DESCRIBE gold.predictions_daily;        the columns of a view
.tables             list the views
.curated [NAME]     list the curated queries, or run one
.format FMT         output format: table, csv or json
.help               this text
.quit / .exit       leave (so does end of input)"""


def interactive(settings: Settings, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
                stderr: IO[str] | None = None, fmt: str = "table") -> int:
    """A read-eval-print loop over stdin; returns the number of statements run.

    Statements end with ';' (what is left at end of input runs too); dot commands (.help) sit on
    a line of their own. Errors are printed and the session goes on; it ends at EOF or `.quit`.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tty = bool(getattr(stdin, "isatty", lambda: False)()) and stdin is sys.stdin
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:  # pragma: no cover
            pass
    con = connect(settings)
    run = 0
    buffer: list[str] = []
    try:
        if tty:
            n_views = con.execute("SELECT count(*) FROM tickerlake_views WHERE status = 'view'").fetchone()
            print(f"tickerlake sql: read-only DuckDB, {n_views[0] if n_views else 0} views over "
                  f"{lake_root_path(settings.lake_root)}. .help for help, .quit to leave.", file=stdout)

        def show(df: pd.DataFrame) -> None:
            print(format_result(df, fmt), file=stdout, flush=True)

        def run_text(text: str) -> None:
            nonlocal run
            try:
                for statement in check_read_only(con, text):
                    show(execute(con, statement))
                    run += 1
            except KeyboardInterrupt:
                con.interrupt()
                print("interrupted", file=stderr)
            except Exception as exc:  # the session goes on after a bad statement
                print(f"error: {exc}", file=stderr, flush=True)

        while True:
            try:
                if tty:
                    line = input("tickerlake> " if not buffer else "       ...> ")
                else:
                    line = stdin.readline()
                    if line == "":
                        raise EOFError
            except EOFError:
                break
            except KeyboardInterrupt:
                buffer.clear()
                print("", file=stdout)
                continue
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                command, _, arg = stripped.partition(" ")
                arg = arg.strip()
                if command in (".quit", ".exit", ".q"):
                    break
                if command == ".help":
                    print(_HELP, file=stdout)
                elif command == ".tables":
                    run_text("SELECT name, status FROM tickerlake_views ORDER BY name")
                elif command == ".format":
                    if arg in FORMATS:
                        fmt = arg
                    else:
                        print(f"error: .format takes one of {', '.join(FORMATS)}", file=stderr)
                elif command == ".curated":
                    if not arg:
                        print("\n".join(curated_names()), file=stdout)
                    else:
                        try:
                            run_text(curated_sql(con, arg))
                        except Exception as exc:
                            print(f"error: {exc}", file=stderr)
                else:
                    print(f"error: unknown command {command} (.help lists them)", file=stderr)
                continue
            if not stripped and not buffer:
                continue
            buffer.append(line.rstrip("\n"))
            if stripped.endswith(";"):
                run_text("\n".join(buffer))
                buffer.clear()
        if any(part.strip() for part in buffer):
            run_text("\n".join(buffer))
    finally:
        con.close()
    return run
