"""The import rules of docs/architecture.md, checked so they cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "campaign"

# library → the only places (path prefixes under campaign/) allowed to import it
LIBRARY_HOMES = {
    "typer": ("cli/",),
    "click": ("cli/",),
    "rich": ("cli/",),
    "apscheduler": ("daemon/",),
    "httpx": ("delivery/channels/", "delivery/sender.py", "coupons/shop.py"),
    "starlette": ("responses/app.py",),
    # demo/loop.py: the demo runs the real webhook server in a thread on 127.0.0.1.
    "uvicorn": ("responses/", "daemon/", "cli/", "demo/loop.py"),
    # Compiled loops stay in one module, so the rest of the core is plain numpy.
    "numba": ("recommend/kernels.py",),
    # ECDSA verification of SendGrid's signed event webhook.
    "cryptography": ("responses/providers/sendgrid.py",),
    "phonenumbers": ("common/contacts.py",),
}

# Pure core: no I/O libraries at all.
PURE_MODULES = (
    "common/errors.py",
    "common/contacts.py",
    "common/exports.py",
    "common/money.py",
    "common/progress.py",
    "common/optout.py",
    "common/signing.py",
    "common/links.py",
    "coupons/policy.py",
    "profile/features.py",
    "profile/clustering.py",
    "churn/labels.py",
    "churn/btyd.py",
    "churn/model.py",
    "churn/evaluate.py",
    "churn/splits.py",
    "recommend/itemcf.py",
    "recommend/content.py",
    "recommend/popularity.py",
    "recommend/buyagain.py",
    "recommend/hybrid.py",
    "recommend/kernels.py",
    "recommend/feedback.py",
    "recommend/ranking.py",
    "recommend/reasons.py",
    "templating/lint.py",
    "templating/render.py",
    "templating/budget.py",
    "templating/bounds.py",
    "experiments/holdout.py",
    "experiments/bandit.py",
    "experiments/uplift.py",
    "delivery/policy.py",
    "responses/pages.py",
)
IO_LIBRARIES = {"sqlalchemy", "httpx", "typer", "rich", "apscheduler", "starlette", "psycopg"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[tuple[str, set[str]]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), _imports(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


@pytest.mark.parametrize("library", sorted(LIBRARY_HOMES))
def test_each_library_has_one_home(library: str) -> None:
    homes = LIBRARY_HOMES[library]
    offenders = [
        relative
        for relative, imported in _modules()
        if any(name == library or name.startswith(f"{library}.") for name in imported)
        and not relative.startswith(homes)
    ]
    assert offenders == [], f"{library} imported outside {homes}: {offenders}"


def test_core_never_imports_the_cli() -> None:
    offenders = [
        relative
        for relative, imported in _modules()
        if not relative.startswith("cli/")
        and relative != "__main__.py"
        and any(name == "campaign.cli" or name.startswith("campaign.cli.") for name in imported)
    ]
    assert offenders == []


def test_pure_modules_import_no_io_library() -> None:
    offenders = {}
    for relative, imported in _modules():
        if relative in PURE_MODULES:
            bad = {name for name in imported if name.split(".")[0] in IO_LIBRARIES}
            bad |= {name for name in imported if name.startswith("campaign.db")}
            if bad:
                offenders[relative] = sorted(bad)
    assert offenders == {}


def test_currency_arithmetic_has_one_home() -> None:
    """Only campaign/common/money.py asks babel about currencies; everyone else calls it, so
    parsing and printing can never again disagree about a currency's decimals."""
    names = ("get_currency_precision", "format_currency", "currency_digits")
    offenders = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "money.py" and any(n in path.read_text(encoding="utf-8") for n in names)
    ]
    assert offenders == []
