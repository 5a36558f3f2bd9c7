"""Shared fixtures.

The pinned JVM jars are resolved once per machine into a shared cache (default
`<project>/.state/jars`, or $TICKERLAKE_JARS_DIR) and every test home sees that cache, so a
fresh temporary TICKERLAKE_HOME costs no download.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tickerlake.settings import PROJECT_ROOT, Settings, load_settings

SHARED_JARS = Path(os.environ.get("TICKERLAKE_JARS_DIR") or PROJECT_ROOT / ".state" / "jars").resolve()


def pytest_configure(config: pytest.Config) -> None:
    """One fresh state folder for the whole test session, set before anything imports Airflow
    (Airflow reads its configuration once per process)."""
    home = Path(tempfile.mkdtemp(prefix="tickerlake-test-"))
    os.environ["TICKERLAKE_HOME"] = str(home)
    os.environ["TICKERLAKE_JARS_DIR"] = str(SHARED_JARS)
    from tickerlake.services import airflow_env

    os.environ.update(airflow_env(load_settings()))

MakeSettings = Callable[..., Settings]


def _settings_for(home: Path, **changes) -> Settings:
    """Settings of `home` with the shared jar cache; `changes` go to dataclasses.replace."""
    return dataclasses.replace(load_settings(home=home), jars_dir=SHARED_JARS, **changes)


@pytest.fixture(scope="session")
def shared_jars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Resolve the pinned jars once (instant when the cache is complete); group -> jar paths."""
    from tickerlake.jars import ensure_jars

    SHARED_JARS.mkdir(parents=True, exist_ok=True)
    return ensure_jars(_settings_for(tmp_path_factory.mktemp("jars_home")), progress=print)


@pytest.fixture(scope="session")
def make_settings(shared_jars) -> MakeSettings:
    """`make_settings(home, **changes)`: Settings for a fresh home that sees the shared jars."""
    return _settings_for


@pytest.fixture
def jvm_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """Settings for a fresh temporary TICKERLAKE_HOME with the shared jars."""
    return make_settings(tmp_path / "home")


@pytest.fixture(scope="session")
def stack(shared_jars) -> Settings:
    """The test session's state folder after `tickerlake setup`: jars, Spark conf, Airflow DB, feast apply."""
    from tickerlake.bootstrap import setup

    settings = load_settings()
    setup(settings, progress=print)
    return settings
