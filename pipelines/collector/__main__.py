"""`python -m pipelines.collector [--host H] [--port P]`: the collector without the cli."""

from __future__ import annotations

import argparse
import sys

from pipelines.collector.server import serve
from pipelines.config import CollectorSettings, SettingsError


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.collector")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    try:
        settings = CollectorSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"trackflow collect: {exc}")
    serve(args.host, args.port, settings)


if __name__ == "__main__":
    main()
