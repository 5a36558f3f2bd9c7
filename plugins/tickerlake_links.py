"""Airflow UI links and pages: from a task to the MLflow model registry and, from a validation
task, to its Great Expectations Data Docs (served by the api-server behind its login)."""

from __future__ import annotations

from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from tickerlake.data_docs_app import DATA_DOCS_PREFIX, LazyApp
from tickerlake.settings import load_settings


class MlflowModelLink(BaseOperatorLink):
    name = "MLflow model"

    def get_link(self, operator, *, ti_key):
        settings = load_settings()
        return f"http://127.0.0.1:{settings.mlflow_port}/#/models/{settings.model_name}"


class DataDocsLink(BaseOperatorLink):
    name = "Data Docs"

    def get_link(self, operator, *, ti_key):
        if "validate" not in ti_key.task_id:
            return ""  # only validation tasks have Data Docs
        settings = load_settings()
        return f"http://127.0.0.1:{settings.airflow_port}{DATA_DOCS_PREFIX}/runs/{quote(ti_key.run_id, safe='')}"


class TickerlakeLinksPlugin(AirflowPlugin):
    name = "tickerlake_links"
    global_operator_extra_links = [MlflowModelLink(), DataDocsLink()]
    fastapi_apps = [{"app": LazyApp(load_settings().home / "data_docs"), "url_prefix": DATA_DOCS_PREFIX,
                     "name": "Tickerlake Data Docs"}]
