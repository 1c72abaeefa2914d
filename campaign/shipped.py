"""Where the files that ship with the product live: default templates and migrations.

The source of both is the top of the repository (``templates/``, ``migrations/``). A
wheel carries a copy inside the package (``campaign/_shipped/``, made by the build hook
in ``setup.py``), because an installed product has no checkout beside it. Run from a
checkout (an editable install, the tests), the top-level folders are used, so an edit
there shows at once; installed, the package copy is used. Marketers never edit either:
``campaign templates init DIR`` copies the defaults out and ``[templates] dir`` points
there.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The copy a built wheel carries (absent in a checkout).
PACKAGED_DIR = PACKAGE_DIR / "_shipped"
_CHECKOUT_DIR = PACKAGE_DIR.parent


def running_from_checkout() -> bool:
    """Whether this package is the ``campaign/`` folder of a source checkout.

    The checkout has ``pyproject.toml`` beside the package; site-packages does not (and a
    stray ``templates/`` folder of another project there must never be taken for ours).
    """
    return (_CHECKOUT_DIR / "pyproject.toml").is_file() and not PACKAGED_DIR.is_dir()


def shipped_folder(name: str) -> Path:
    """The shipped folder ``name`` (``templates`` or ``migrations``) for this install."""
    if running_from_checkout():
        return _CHECKOUT_DIR / name
    return PACKAGED_DIR / name


def templates_folder() -> Path:
    """The default template sets."""
    return shipped_folder("templates")


def migrations_folder() -> Path:
    """The Alembic migrations (``env.py`` and ``versions/``)."""
    return shipped_folder("migrations")
