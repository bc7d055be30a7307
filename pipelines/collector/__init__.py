"""HTTP collector (Segment tracking API) and the browser tracker it serves; see README.md."""

from pipelines.collector.server import create_app, serve
from pipelines.config import CollectorSettings, SettingsError

__all__ = ["CollectorSettings", "SettingsError", "create_app", "serve"]
