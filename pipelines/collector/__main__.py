"""`python -m pipelines.collector [--host H] [--port P] [--workers N]`: the collector without the
cli."""

from __future__ import annotations

import argparse
import sys

from pipelines.collector.server import serve
from pipelines.config import CollectorSettings, SettingsError


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.collector")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--workers",
        type=int,
        help="processes serving the port (default: COLLECTOR_WORKERS, else one per CPU up to 8, "
        "or 1 when COLLECTOR_RATE_LIMIT is set)",
    )
    args = parser.parse_args()
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        settings = CollectorSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"trackflow collect: {exc}")
    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    serve(args.host, args.port, settings)


if __name__ == "__main__":
    main()
