"""Campaign and model reports: frames (data.py) and a self-contained HTML page (html.py)."""

from __future__ import annotations
