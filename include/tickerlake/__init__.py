"""Tickerlake: market data into stock signals (Airflow, Spark, Delta, Feast, MLflow)."""

__version__ = "0.1.0"


def _typeguard_as_in_optimized_mode() -> None:
    """Make typeguard's @typechecked the no-op it is under `python -O`, before Feast is imported.

    Feast decorates its classes with @typechecked, which re-parses and recompiles each decorated
    module at import: 6-12 s of every process that imports Feast here (an intraday scoring task
    spent half its time on it). typeguard documents the decorator as a development aid that does
    nothing in optimized mode; production processes get that behaviour without -O, which would
    also strip every `assert`. Feast's own explicit validation is unaffected."""
    try:
        import typeguard
    except ImportError:  # pragma: no cover - feast (and typeguard with it) not installed
        return

    def typechecked(target=None, **_options):
        return target if target is not None else (lambda inner: inner)

    typeguard.typechecked = typechecked


_typeguard_as_in_optimized_mode()
