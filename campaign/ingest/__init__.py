"""CSV import of users, products, events and responses with row-level validation;
events also from Parquet (:mod:`campaign.ingest.parquet`, the ``parquet`` extra).

``import_file(engine, kind, path, ...)`` is the entry point (``import_csv`` is the
same function); docs/import.md documents the columns. :mod:`campaign.ingest.readers`
turns CSV text into validated values, :mod:`campaign.ingest.loaders` writes them (one
transaction per file).
"""

from __future__ import annotations

from campaign.ingest.loaders import (
    ImportReport,
    count_rows,
    default_rejects_path,
    import_csv,
    import_file,
)
from campaign.ingest.readers import Kind

__all__ = ["ImportReport", "Kind", "count_rows", "default_rejects_path", "import_csv",
           "import_file"]
