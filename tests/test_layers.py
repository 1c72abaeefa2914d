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
    # app/campaigns.py: the next slot the console's campaigns page shows.
    "apscheduler": ("daemon/", "app/campaigns.py"),
    "httpx": ("delivery/channels/", "delivery/sender.py", "coupons/shop.py"),
    "starlette": ("responses/app.py", "console/"),
    # demo/webhooks.py: the demo runs the real webhook server in a thread on 127.0.0.1.
    "uvicorn": ("responses/", "daemon/", "cli/", "demo/webhooks.py", "console/server.py"),
    "argon2": ("common/passwords.py",),
    # Compiled loops stay in one module, so the rest of the core is plain numpy.
    "numba": ("recommend/kernels.py",),
    # The optional deep extra: the sequence model and its network, loaded only with them.
    "torch": ("recommend/sequence.py", "recommend/sasrec.py"),
    # ECDSA verification of SendGrid's signed event webhook.
    "cryptography": ("responses/providers/sendgrid.py",),
    "phonenumbers": ("common/contacts.py",),
    # The optional parquet extra: the Parquet events reader alone, imported when it opens
    # a file.
    "pyarrow": ("ingest/parquet.py",),
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
    "recommend/sequence.py",
    "recommend/sasrec.py",
    "templating/lint.py",
    "templating/issues.py",
    "templating/html_check.py",
    "templating/sms.py",
    "templating/static_check.py",
    "templating/render.py",
    "templating/budget.py",
    "templating/filters.py",
    "templating/bounds.py",
    "experiments/holdout.py",
    "experiments/bandit.py",
    "experiments/uplift.py",
    "uplift/model.py",
    "uplift/evaluate.py",
    "uplift/reasons.py",
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


# -- the package layers (docs/architecture.md; lint-imports checks the same in CI) ------

ENTRY_POINTS = ("cli", "daemon", "demo", "console")
# The steps the use cases (campaign/app/) compose; entry points call app/ instead.
ORCHESTRATED = (
    "campaign.planner.run",
    "campaign.planner.test_send",
    "campaign.coupons.announcements",
    "campaign.coupons.shop",
    "campaign.churn.scoring",
    "campaign.churn.training",
    "campaign.measurement.reports.html",
)


def _package(relative: str) -> str:
    """``planner/run.py`` → ``planner``; a root module is its own package."""
    head = relative.split("/", 1)[0]
    return head[:-3] if head.endswith(".py") else head


def _target(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "campaign" and len(parts) > 1 else None


def _graph(modules: list[tuple[str, set[str]]]) -> dict[str, set[str]]:
    """Package → the other campaign packages it imports."""
    graph: dict[str, set[str]] = {}
    for relative, imported in modules:
        source = _package(relative)
        targets = {_target(name) for name in imported} - {None, source, "__version__"}
        graph.setdefault(source, set()).update(t for t in targets if t is not None)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every package that can reach itself, with the path that closes the loop."""
    found = []
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def _entry_point_imports(modules: list[tuple[str, set[str]]]) -> list[str]:
    """Modules outside the entry points that import one of them."""
    allowed = {"cli": ("cli/", "__main__.py"), "daemon": ("cli/", "daemon/"),
               "demo": ("cli/", "demo/"), "console": ("cli/", "console/")}
    return [
        f"{relative} -> {name}"
        for relative, imported in modules
        for name in sorted(imported)
        if _target(name) in allowed and not relative.startswith(allowed[_target(name) or ""])
    ]


def _orchestration_in_entry_points(modules: list[tuple[str, set[str]]]) -> list[str]:
    """Entry-point modules that import a step the use cases compose."""
    return [
        f"{relative} -> {name}"
        for relative, imported in modules
        if relative.startswith(tuple(f"{e}/" for e in ENTRY_POINTS))
        for name in sorted(imported)
        if name.startswith(ORCHESTRATED)
        # The demo names the baselines it prints beside its figures (BGNBD, RECENCY).
        and not (relative.startswith("demo/") and name.startswith("campaign.churn.training"))
    ]


def _all_imports(path: Path) -> set[str]:
    """Like :func:`_imports`, and ``from campaign.x import y`` also as ``campaign.x.y``
    (a submodule imported by name), without the imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for inner in ast.walk(child)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _code_modules() -> list[tuple[str, set[str]]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), _all_imports(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_no_two_packages_import_each_other() -> None:
    assert _cycles(_graph(_code_modules())) == []


def test_no_feature_imports_an_entry_point() -> None:
    assert _entry_point_imports(_code_modules()) == []


def test_entry_points_compose_no_pipeline_steps_themselves() -> None:
    """The CLI, the daemon and the demo call campaign/app/ for planning, announcing,
    training, scoring and the HTML report; importing those steps directly is how the
    same orchestration came to be written three times."""
    assert _orchestration_in_entry_points(_code_modules()) == []


def test_the_layer_checks_catch_what_they_forbid() -> None:
    """Each check above fails on a layout that breaks its rule."""
    bad = [
        ("delivery/sender.py", {"campaign.responses.recording"}),
        ("responses/app.py", {"campaign.delivery.signing", "campaign.cli.common"}),
        ("planner/run.py", {"campaign.daemon.jobs"}),
        ("cli/campaigns.py", {"campaign.planner.run"}),
        ("daemon/jobs.py", {"campaign.churn.training"}),
    ]
    assert ["delivery", "responses", "delivery"] in _cycles(_graph(bad))
    assert _entry_point_imports(bad) == [
        "responses/app.py -> campaign.cli.common", "planner/run.py -> campaign.daemon.jobs",
    ]
    assert _orchestration_in_entry_points(bad) == [
        "cli/campaigns.py -> campaign.planner.run", "daemon/jobs.py -> campaign.churn.training",
    ]
