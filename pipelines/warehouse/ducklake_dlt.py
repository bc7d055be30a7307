"""dlt's DuckLake destination, attaching with the data path exactly as configured.

DuckLake keeps the data path in its catalog as first given and refuses an attach that spells it
otherwise; dlt 1.31 turns a `file://` URL into a bare path before attaching, so a lake that
readers attach with `DATA_PATH 'file:///...'` would refuse dlt (or dlt's lake would refuse the
readers). These subclasses keep the configured spelling; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dlt.common.configuration import configspec
from dlt.destinations.impl.ducklake.configuration import (
    DuckLakeClientConfiguration,
    DuckLakeCredentials,
)
from dlt.destinations.impl.ducklake.ducklake import DuckLakeClient
from dlt.destinations.impl.ducklake.factory import ducklake


@configspec(init=False)
class LakeCredentials(DuckLakeCredentials):
    @property
    def storage_url(self) -> str:
        return str(self.storage.bucket_url)


@configspec
class LakeClientConfiguration(DuckLakeClientConfiguration):
    credentials: LakeCredentials = None  # type: ignore[assignment]


class LakeClient(DuckLakeClient):
    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        # the base class creates the local data directory from storage_url, which is a
        # file:// URL here; create it from the URL's path instead
        url = str(self.config.credentials.storage.bucket_url)
        if self.config.credentials.storage.is_local_filesystem:
            Path(urlparse(url).path if url.startswith("file://") else url).mkdir(
                parents=True, exist_ok=True
            )
        super(DuckLakeClient, self).initialize_storage(truncate_tables)  # type: ignore[arg-type]


class lake_destination(ducklake):  # noqa: N801 - dlt names destination factories in lower case
    @property
    def spec(self) -> type[Any]:
        return LakeClientConfiguration

    @property
    def client_class(self) -> type[Any]:
        return LakeClient
