"""Pinned JVM dependencies, resolved once from Maven Central into `settings.jars_dir`.

Two groups, each in its own folder:

* `spark/`: Delta Lake and the Spark Kafka connector with their dependencies, minus every
  module the installed pyspark already ships in `pyspark/jars` (no second scala-library,
  jackson, hadoop, ...). These jars go on `spark.jars`.
* `kafka/`: a single-node Apache Kafka broker with a log4j2 binding, run in its own JVM.

Resolution uses the Apache Ivy jar that pyspark ships, so no Maven install is needed. A
manifest (`manifest.json`: coordinates, files, sha256) is written last; with it present and
its files in place, `ensure_jars` returns at once. No job downloads jars at run time: callers
use `spark_jars` / `kafka_classpath`, which only read the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from tickerlake.settings import Settings

MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
MIN_JAVA = 17
RESOLVE_TIMEOUT_S = 1800


class JarsMissingError(RuntimeError):
    """The pinned jars have not been resolved into the jars folder."""


class JarsResolveError(RuntimeError):
    """Ivy could not resolve a jar group from Maven Central."""


class JavaMissingError(RuntimeError):
    """No Java, or a Java older than 17."""


@dataclass(frozen=True)
class JarGroup:
    name: str
    # group:artifact:version, resolved with their compile and runtime dependencies.
    dependencies: tuple[str, ...]
    # group:artifact:version forced wherever the module appears in the graph.
    overrides: tuple[str, ...] = ()
    # group:artifact whose version is taken from the pyspark jar of the given module name,
    # so a module pyspark lacks stays in step with its family that pyspark ships.
    align_with_pyspark: tuple[tuple[str, str], ...] = ()
    # Leave out (with their subtrees) modules whose name matches a jar in pyspark/jars.
    exclude_pyspark: bool = False


GROUPS: tuple[JarGroup, ...] = (
    JarGroup(
        name="spark",
        dependencies=(
            "io.delta:delta-spark_4.1_2.13:4.4.0",
            "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.3",
        ),
        # spark-token-provider-kafka-0-10_2.13 has no 4.1.2/4.1.3 jar in the reachable Maven
        # Central; 4.1.1 has every member spark-sql-kafka 4.1.3 calls (checked with javap).
        overrides=("org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.1.1",),
        # delta-kernel asks for jackson-datatype-jdk8 2.13; pyspark ships jackson 2.21.
        align_with_pyspark=(("com.fasterxml.jackson.datatype:jackson-datatype-jdk8", "jackson-databind"),),
        exclude_pyspark=True,
    ),
    JarGroup(
        name="kafka",
        dependencies=(
            "org.apache.kafka:kafka_2.13:4.1.1",
            "org.apache.logging.log4j:log4j-slf4j2-impl:2.24.3",
            "org.apache.logging.log4j:log4j-core:2.24.3",
        ),
    ),
)

_IVY_SETTINGS = """<ivysettings>
  <settings defaultResolver="central"/>
  <caches defaultCacheDir={cache} useOrigin="false"/>
  <resolvers>
    <ibiblio name="central" m2compatible="true" root={root}/>
  </resolvers>
</ivysettings>
"""


# --- Java ----------------------------------------------------------------------------------


def parse_java_version(text: str) -> int | None:
    """Major version from `java -version` output: '1.8.0_392' -> 8, '17.0.15' -> 17, '21-ea' -> 21."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?[^"]*"', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def find_java() -> str | None:
    """The java executable: $JAVA_HOME/bin/java when JAVA_HOME is set and has one, else PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


@lru_cache(maxsize=8)
def _java_version_output(java: str) -> str:
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return proc.stderr + proc.stdout


def java_version_error(java: str | None, version: int | None) -> str | None:
    """The one-line complaint about a java, or None when it will do."""
    if java is not None and version is not None and version >= MIN_JAVA:
        return None
    if java is None:
        found = "none on PATH or in JAVA_HOME"
    elif version is None:
        found = f"{java}, version unreadable"
    else:
        found = f"Java {version} at {java}"
    return (
        f"Java {MIN_JAVA} or newer is required (found {found}): install OpenJDK {MIN_JAVA} "
        f"(apt-get install openjdk-{MIN_JAVA}-jre-headless, brew install openjdk@{MIN_JAVA}) "
        "and put it on PATH or set JAVA_HOME"
    )


def check_java() -> str:
    """Path of a java of version 17 or newer; raises JavaMissingError (one line) otherwise."""
    java = find_java()
    version = parse_java_version(_java_version_output(java)) if java else None
    error = java_version_error(java, version)
    if error:
        raise JavaMissingError(error)
    assert java is not None
    return java


def java_home(java: str | None = None) -> str | None:
    """JAVA_HOME for child processes: the environment's, else derived from the java on PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = java or find_java()
    if not java:
        return None
    return str(Path(os.path.realpath(java)).parent.parent)


# --- pyspark -------------------------------------------------------------------------------


def pyspark_jars_dir() -> Path:
    """`pyspark/jars` of the installed pyspark, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise JarsMissingError("pyspark is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations))) / "jars"


def split_jar_name(filename: str) -> tuple[str, str]:
    """'hive-exec-2.3.10-core.jar' -> ('hive-exec', '2.3.10'). The version is the last
    dash-separated part that starts with a digit and has a dot ('log4j-1.2-api-2.24.3' keeps
    its name, 'zstd-jni-1.5.7-6' is version 1.5.7), else the last part starting with a digit."""
    stem = filename[:-4] if filename.endswith(".jar") else filename
    parts = stem.split("-")
    candidates = [i for i in range(1, len(parts)) if parts[i][:1].isdigit()]
    dotted = [i for i in candidates if "." in parts[i]]
    if not candidates:
        return stem, ""
    i = (dotted or candidates)[-1]
    return "-".join(parts[:i]), parts[i]


def pyspark_modules() -> dict[str, str]:
    """Module name -> version of every jar pyspark ships."""
    jars = pyspark_jars_dir()
    if not jars.is_dir():
        raise JarsMissingError(f"pyspark ships no jars folder at {jars}")
    return dict(split_jar_name(p.name) for p in sorted(jars.glob("*.jar")))


def _pyspark_version() -> str:
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _ivy_jar() -> Path:
    jars = sorted(pyspark_jars_dir().glob("ivy-*.jar"))
    if not jars:
        raise JarsResolveError(f"no Apache Ivy jar in {pyspark_jars_dir()} (pyspark should ship one)")
    return jars[-1]


# --- resolution plan -----------------------------------------------------------------------


def _plan(group: JarGroup, pyspark: dict[str, str]) -> dict[str, Any]:
    """What decides a group's files; a manifest written for another plan is stale."""
    overrides = list(group.overrides)
    for module, family in group.align_with_pyspark:
        if family in pyspark:
            overrides.append(f"{module}:{pyspark[family]}")
    excludes = sorted(pyspark) if group.exclude_pyspark else []
    return {
        "coordinates": list(group.dependencies),
        "overrides": overrides,
        "excluded_pyspark_modules": excludes,
        "pyspark": _pyspark_version() if group.exclude_pyspark else None,
    }


def _ivy_xml(group: JarGroup, plan: dict[str, Any]) -> str:
    lines = [
        '<ivy-module version="2.0">',
        f'  <info organisation="tickerlake" module={quoteattr(group.name + "-jars")} revision="1"/>',
        '  <configurations><conf name="default"/></configurations>',
        "  <dependencies>",
    ]
    for coord in plan["coordinates"]:
        org, name, rev = coord.split(":")
        lines.append(
            f"    <dependency org={quoteattr(org)} name={quoteattr(name)} rev={quoteattr(rev)}"
            ' conf="default->default(runtime)"/>'
        )
    for module in plan["excluded_pyspark_modules"]:
        lines.append(f"    <exclude module={quoteattr(module)}/>")
    for coord in plan["overrides"]:
        org, name, rev = coord.split(":")
        lines.append(f"    <override org={quoteattr(org)} module={quoteattr(name)} rev={quoteattr(rev)}/>")
    lines += ["  </dependencies>", "</ivy-module>", ""]
    return "\n".join(lines)


# --- manifest ------------------------------------------------------------------------------


def manifest_path(settings: Settings) -> Path:
    return settings.jars_dir / MANIFEST_NAME


def read_manifest(settings: Settings) -> dict[str, Any] | None:
    try:
        data = json.loads(manifest_path(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    return data


def _group_files(settings: Settings, manifest: dict[str, Any] | None, group: str) -> list[Path] | None:
    """The group's jar paths when every file the manifest lists is present with its size."""
    entry = (manifest or {}).get("groups", {}).get(group)
    if not entry or not entry.get("files"):
        return None
    folder = settings.jars_dir / group
    paths = []
    for item in entry["files"]:
        path = folder / item["name"]
        try:
            if path.stat().st_size != item["size"]:
                return None
        except OSError:
            return None
        paths.append(path)
    return paths


def _missing(settings: Settings) -> JarsMissingError:
    return JarsMissingError(f"JVM jars are missing under {settings.jars_dir}: run `tickerlake setup`")


def spark_jars(settings: Settings) -> list[Path]:
    """Jars for `spark.jars` (Delta, Kafka connector); raises JarsMissingError when absent."""
    paths = _group_files(settings, read_manifest(settings), "spark")
    if paths is None:
        raise _missing(settings)
    return paths


def kafka_classpath(settings: Settings) -> str:
    """Classpath of the Kafka broker JVM; raises JarsMissingError when absent."""
    paths = _group_files(settings, read_manifest(settings), "kafka")
    if paths is None:
        raise _missing(settings)
    return os.pathsep.join(str(p) for p in paths)


# --- checks --------------------------------------------------------------------------------


# Every Spark module jar carries this stub; multi-release and module descriptors are per jar.
_SHARED_BY_DESIGN = ("org/apache/spark/unused/", "META-INF/")


def _classes(jar: Path) -> set[str]:
    with zipfile.ZipFile(jar) as zf:
        return {
            n
            for n in zf.namelist()
            if n.endswith(".class")
            and not n.startswith(_SHARED_BY_DESIGN)
            and not n.endswith("module-info.class")
        }


def duplicate_classes(jars: Iterable[Path], against: Iterable[Path]) -> dict[str, list[str]]:
    """Jar name -> classes it shares with any jar of `against` (at most five named per jar)."""
    seen: set[str] = set()
    for jar in against:
        seen |= _classes(jar)
    found = {}
    for jar in jars:
        shared = sorted(_classes(jar) & seen)
        if shared:
            found[jar.name] = shared[:5]
    return found


# --- resolution ----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unresolved(log: str) -> str:
    names = re.findall(r"::\s+(\S+;\S+): (not found|.*)", log)
    if names:
        return ", ".join(f"{n} ({why.strip()})" for n, why in names)
    tail = [line.strip() for line in log.strip().splitlines()[-3:]]
    return " / ".join(tail)


def _resolve_group(
    java: str, group: JarGroup, plan: dict[str, Any], work: Path, out: Path, log: Path
) -> None:
    ivy_dir = work / f"ivy-{group.name}"
    ivy_dir.mkdir(parents=True)
    (ivy_dir / "ivysettings.xml").write_text(
        _IVY_SETTINGS.format(cache=quoteattr(str(work / "cache")), root=quoteattr(MAVEN_CENTRAL))
    )
    (ivy_dir / "ivy.xml").write_text(_ivy_xml(group, plan))
    cmd = [
        java,
        f"-Divy.home={ivy_dir}",
        "-cp",
        str(_ivy_jar()),
        "org.apache.ivy.Main",
        "-settings",
        str(ivy_dir / "ivysettings.xml"),
        "-ivy",
        str(ivy_dir / "ivy.xml"),
        "-confs",
        "default",
        "-types",
        "jar",
        "bundle",
        "-retrieve",
        f"{out}/[artifact]-[revision](-[classifier]).[ext]",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, cwd=ivy_dir)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {RESOLVE_TIMEOUT_S}s", -1
    log.write_text(output)
    if code != 0 or not any(out.glob("*.jar")):
        raise JarsResolveError(
            f"could not resolve the {group.name} jars from {MAVEN_CENTRAL}: {_unresolved(output)} (log: {log})"
        )


def ensure_jars(settings: Settings, progress: Callable[[str], None] = print) -> dict[str, list[Path]]:
    """Resolve every jar group once; group name -> jar paths. Instant when already done."""
    pyspark = pyspark_modules()
    plans = {g.name: _plan(g, pyspark) for g in GROUPS}

    def current() -> dict[str, list[Path]] | None:
        manifest = read_manifest(settings)
        if manifest is None:
            return None
        result = {}
        for name, plan in plans.items():
            entry = manifest.get("groups", {}).get(name, {})
            files = _group_files(settings, manifest, name)
            if files is None or entry.get("plan") != plan:
                return None
            result[name] = files
        return result

    done = current()
    if done is not None:
        return done

    java = check_java()
    jars_dir = settings.jars_dir
    with _locked(jars_dir):
        done = current()  # another process may have finished while we waited for the lock
        if done is not None:
            return done
        manifest: dict[str, Any] = {"format": MANIFEST_FORMAT, "repository": MAVEN_CENTRAL, "groups": {}}
        work = Path(tempfile.mkdtemp(prefix=".resolve-", dir=jars_dir))
        try:
            for group in GROUPS:
                plan = plans[group.name]
                progress(f"resolving {group.name} jars from Maven Central: {', '.join(plan['coordinates'])}")
                started = time.monotonic()
                staged = work / group.name
                _resolve_group(java, group, plan, work, staged, jars_dir / f"resolve-{group.name}.log")
                files = sorted(staged.glob("*.jar"))
                if group.exclude_pyspark:
                    clashes = duplicate_classes(files, sorted(pyspark_jars_dir().glob("*.jar")))
                    if clashes:
                        raise JarsResolveError(
                            f"{group.name} jars repeat classes pyspark already ships: {clashes}"
                        )
                manifest["groups"][group.name] = {
                    "plan": plan,
                    "files": [
                        {"name": p.name, "size": p.stat().st_size, "sha256": _sha256(p)} for p in files
                    ],
                }
                size_mb = sum(p.stat().st_size for p in files) / 1e6
                progress(
                    f"  {group.name}: {len(files)} jars, {size_mb:.1f} MB in {time.monotonic() - started:.0f} s"
                )
            manifest_path(settings).unlink(missing_ok=True)  # readers see "missing", not a mix
            for group in GROUPS:
                target = jars_dir / group.name
                if target.exists():
                    shutil.rmtree(target)
                (work / group.name).rename(target)
            tmp = manifest_path(settings).with_suffix(".json.tmp")
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            tmp.replace(manifest_path(settings))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    done = current()
    if done is None:  # pragma: no cover - the manifest was just written
        raise _missing(settings)
    return done
