"""jars: the missing-jars message, Java version parsing, jar-name parsing. No downloads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tickerlake import jars
from tickerlake.settings import load_settings

pytestmark = pytest.mark.unit


def _own_jars_dir(home: Path):
    """Settings of `home` whose jars folder is its own (never a shared TICKERLAKE_JARS_DIR)."""
    return dataclasses.replace(load_settings(home=home), jars_dir=home / "jars")


def test_missing_jars_message_names_folder_and_command(tmp_path: Path):
    settings = _own_jars_dir(tmp_path)
    settings.jars_dir.mkdir(parents=True)  # present but empty
    expected = f"JVM jars are missing under {settings.jars_dir}: run `tickerlake setup`"
    with pytest.raises(jars.JarsMissingError) as spark_err:
        jars.spark_jars(settings)
    with pytest.raises(jars.JarsMissingError) as kafka_err:
        jars.kafka_classpath(settings)
    assert str(spark_err.value) == expected == str(kafka_err.value)
    assert isinstance(spark_err.value, RuntimeError)


def test_manifest_with_a_missing_file_counts_as_missing(tmp_path: Path):
    settings = _own_jars_dir(tmp_path)
    (settings.jars_dir / "spark").mkdir(parents=True)
    (settings.jars_dir / "spark" / "a-1.0.jar").write_bytes(b"jar")
    files = [{"name": "a-1.0.jar", "size": 3, "sha256": ""}, {"name": "b-1.0.jar", "size": 1, "sha256": ""}]
    manifest = {"format": jars.MANIFEST_FORMAT, "groups": {"spark": {"plan": {}, "files": files}}}
    jars.manifest_path(settings).write_text(json.dumps(manifest))
    with pytest.raises(jars.JarsMissingError, match="run `tickerlake setup`"):
        jars.spark_jars(settings)
    (settings.jars_dir / "spark" / "b-1.0.jar").write_bytes(b"j")
    assert [p.name for p in jars.spark_jars(settings)] == ["a-1.0.jar", "b-1.0.jar"]


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)', 17),
        ('openjdk version "21" 2023-09-19\nOpenJDK 64-Bit Server VM (build 21+35-2513, mixed mode)', 21),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment (build 1.8.0_392-b08)', 8),
        ('openjdk version "11.0.22" 2024-01-16 LTS', 11),
        ('openjdk version "24-ea" 2025-03-18', 24),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "17.0.2" 2022-01-18', 17),
        ("bash: java: command not found", None),
        ("", None),
    ],
)
def test_parse_java_version(output: str, major: int | None):
    assert jars.parse_java_version(output) == major


def test_java_version_error_is_one_line_naming_what_to_install():
    assert jars.java_version_error("/usr/bin/java", 17) is None
    assert jars.java_version_error("/usr/bin/java", 21) is None
    old = jars.java_version_error("/usr/bin/java", 11)
    none = jars.java_version_error(None, None)
    for message in (old, none):
        assert message is not None and "\n" not in message
        assert message.startswith("Java 17 or newer is required (found ")
        assert "install OpenJDK 17" in message
    assert "(found Java 11 at /usr/bin/java)" in old
    assert "found none" in none


def test_check_java_on_this_machine():
    java = jars.check_java()
    assert Path(java).name == "java"
    assert jars.parse_java_version(jars._java_version_output(java)) >= 17


@pytest.mark.parametrize(
    ("filename", "name", "version"),
    [
        ("scala-library-2.13.17.jar", "scala-library", "2.13.17"),
        ("spark-core_2.13-4.1.3.jar", "spark-core_2.13", "4.1.3"),
        ("hive-exec-2.3.10-core.jar", "hive-exec", "2.3.10"),
        ("log4j-1.2-api-2.24.3.jar", "log4j-1.2-api", "2.24.3"),
        ("netty-codec-native-quic-4.2.7.Final-linux-x86_64.jar", "netty-codec-native-quic", "4.2.7.Final"),
        ("jline-3.29.0-jdk8.jar", "jline", "3.29.0"),
        ("zstd-jni-1.5.7-6.jar", "zstd-jni", "1.5.7"),
    ],
)
def test_split_jar_name(filename: str, name: str, version: str):
    assert jars.split_jar_name(filename) == (name, version)


def test_spark_group_excludes_what_pyspark_ships():
    pyspark = jars.pyspark_modules()
    assert "scala-library" in pyspark and "jackson-databind" in pyspark
    spark = next(g for g in jars.GROUPS if g.name == "spark")
    plan = jars._plan(spark, pyspark)
    xml = jars._ivy_xml(spark, plan)
    assert '<exclude module="scala-library"/>' in xml
    assert 'name="delta-spark_4.1_2.13" rev="4.4.0"' in xml
    assert f'module="jackson-datatype-jdk8" rev="{pyspark["jackson-databind"]}"' in xml
