"""Build hook: the wheel carries the top-level ``templates/`` and ``migrations/``.

Both folders stay at the top of the repository as the source (marketers and Alembic
work on them there). An installed product has no checkout, so a non-editable build
copies them into the package as ``campaign/_shipped/``, where ``campaign.shipped``
finds them at run time. Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "migrations")


class BuildWithShippedFiles(build_py):
    """``build_py`` that also copies the shipped folders into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own folders
        target = Path(self.build_lib) / "campaign" / "_shipped"
        for name in SHIPPED:
            destination = target / name
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(
                ROOT / name, destination,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )


setup(cmdclass={"build_py": BuildWithShippedFiles})
