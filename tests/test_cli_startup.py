"""The command line starts without the heavy libraries: they load in the commands.

Every ``campaign`` invocation, ``campaign --help`` and every subprocess test imports
``campaign.cli``, which imports every command module. A module-level import of the
planner, the recommender or pandas there costs seconds per start, so this checks
which modules a fresh interpreter holds (modules, not time: timing is for bench/).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "alembic",
    "apscheduler",
    "httpx",
    "jinja2",
    "matplotlib",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "starlette",
    "torch",
    "uvicorn",
)

_LOADED = "sorted(m for m in HEAVY if m in sys.modules)"

IMPORT_ONLY = f"""
import json, sys
HEAVY = {HEAVY!r}
import campaign.cli
print(json.dumps({_LOADED}))
"""

# `campaign --help`, then `--help` of every command and sub-command, in one process.
EVERY_HELP = f"""
import contextlib, io, json, sys
HEAVY = {HEAVY!r}
import typer.main
from campaign.cli import app

root = typer.main.get_command(app)
shown = []

def show(command, path):
    with contextlib.redirect_stdout(io.StringIO()):
        command.main(["--help"], prog_name=" ".join(path), standalone_mode=False)
    shown.append(" ".join(path))
    for name, sub in getattr(command, "commands", {{}}).items():
        show(sub, [*path, name])

show(root, ["campaign"])
print(json.dumps({{"shown": shown, "loaded": {_LOADED}}}))
"""


def _run(script: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_none_of_the_heavy_libraries() -> None:
    assert _run(IMPORT_ONLY) == []


def test_help_of_every_command_loads_none_of_the_heavy_libraries() -> None:
    result = _run(EVERY_HELP)
    assert isinstance(result, dict)
    # The walk really reached the commands and the sub-apps' commands.
    assert {"campaign", "campaign demo", "campaign run", "campaign send",
            "campaign import users", "campaign evaluate recommend"} <= set(result["shown"])
    assert result["loaded"] == []


# Beyond the command modules themselves, `import campaign.cli` may load only these:
# the package and the demo's defaults (shown in `campaign demo --help`). Config,
# errors and every feature load inside the commands that use them.
CLI_IMPORT_ALLOWED = {"campaign", "campaign.demo", "campaign.demo.constants"}

PRODUCT_MODULES = """
import json, sys
import campaign.cli
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "campaign")))
"""


def test_importing_the_cli_loads_only_the_command_modules() -> None:
    loaded = _run(PRODUCT_MODULES)
    assert isinstance(loaded, list)
    outside = {m for m in loaded if m != "campaign.cli" and not m.startswith("campaign.cli.")}
    assert outside == CLI_IMPORT_ALLOWED
