"""Tickerlake: market data into stock signals (Airflow, Spark, Delta, Feast, MLflow)."""

__version__ = "0.1.0"
