"""Airflow UI links: from a task to the MLflow model registry and to the report archive."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink


class MlflowModelLink(BaseOperatorLink):
    name = "MLflow model"

    def get_link(self, operator, *, ti_key):
        from tickerlake.settings import load_settings

        settings = load_settings()
        return f"http://127.0.0.1:{settings.mlflow_port}/#/models/{settings.model_name}"


class TickerlakeLinksPlugin(AirflowPlugin):
    name = "tickerlake_links"
    global_operator_extra_links = [MlflowModelLink()]
