"""`python -m tickerlake.feast_serve <feast CLI arguments>`: Feast's CLI (`feast serve`) with the startup
heap frozen.

A serving process imports Feast, pandas, pyarrow and protobuf: about a million long-lived objects
that every full garbage collection walks again. With a 500-ticker request allocating enough to set
off a full collection every few calls, those walks are most of the p99 (measured by `tickerlake bench
feast`, which reports both). gc.freeze() after the imports moves them out of the collector's view;
objects made while serving are still collected as usual.
"""

from __future__ import annotations

import gc
import sys


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections. Returns their count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def main(argv: list[str] | None = None) -> int:
    from feast.cli.cli import cli
    from feast.feature_server import get_app  # noqa: F401  (the server's imports, before the freeze)

    freeze_startup_heap()
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="feast", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
