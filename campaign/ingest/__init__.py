"""CSV import of users, products, events and responses with row-level validation.

``import_csv(engine, kind, path, ...)`` is the entry point; docs/import.md documents
the columns. :mod:`campaign.ingest.readers` turns CSV text into validated values,
:mod:`campaign.ingest.loaders` writes them (one transaction per file).
"""

from __future__ import annotations

from campaign.ingest.loaders import ImportReport, count_rows, default_rejects_path, import_csv
from campaign.ingest.readers import Kind

__all__ = ["ImportReport", "Kind", "count_rows", "default_rejects_path", "import_csv"]
