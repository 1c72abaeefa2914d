"""Preview after an edit: from the POST of an edited template to the console's answer.

A real ``campaign console`` on 127.0.0.1 (a subprocess) and a logged-in client post
``--edits`` successive edits (50) of ``winback/en/email.html`` to ``/templates/check``,
one at a time, as the editor does while a marketer types; each answer carries lint's
findings for the set and the rendered preview. Printed:

* ``console_check_p50/p95/max``: the wall time of one edit's answer (the goal: p95
  under 300 ms);
* the same with a real customer (``--user``: their recommendations are computed), when
  given;
* ``cli_lint_and_render``: the loop it replaces, measured in the same run: ``campaign
  templates lint`` then ``campaign templates render winback`` as subprocesses (the
  median of 3), and the ratio to the console's p50.

Without ``--config`` it builds a small shop (the shipped templates, an empty SQLite
file); ``--config campaign-demo/config.toml`` measures on the demo shop (its folder is
copied first: the benchmark adds a console account).

    .venv/bin/python bench/console_preview.py
    .venv/bin/python bench/console_preview.py --config campaign-demo/config.toml --user U000042
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "bench password 123"
FILE = "winback/en/email.html"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _campaign(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "campaign", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _small_shop(folder: Path) -> Path:
    from campaign.db.engine import make_engine
    from campaign.db.migrate import upgrade
    from campaign.templating.defaults import copy_default_templates
    from tests.console_helpers import CONFIG

    database = folder / "campaign.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    copy_default_templates(folder / "templates")
    config = folder / "config.toml"
    config.write_text(CONFIG.format(url=f"sqlite:///{database}"), encoding="utf-8")
    return config


def _copied_shop(config: Path, folder: Path) -> Path:
    source = config.resolve().parent
    target = folder / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"))
    templates = target / "templates"
    if not templates.is_dir():  # the demo reads the shipped sets: edit a copy
        from campaign.templating.defaults import copy_default_templates

        copy_default_templates(templates)
    return target / config.name


@contextmanager
def console_client(config: Path, cwd: Path, env: dict[str, str], account: str
                   ) -> Iterator[httpx.Client]:
    """A real ``campaign console`` on a free port of 127.0.0.1 (a subprocess) and a
    client logged in as ``account`` (password :data:`PASSWORD`); stopped on exit."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "campaign", "--config", str(config), "console", "--port",
         str(port), "--log-level", "warning"], cwd=cwd, env=env,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            login = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', login)
            if csrf is None:
                raise SystemExit("no CSRF token on the console's login page")
            client.post("/login", data={"csrf": csrf.group(1), "name": account,
                                        "password": PASSWORD, "next": "/"})
            yield client
    finally:
        server.terminate()
        server.wait(timeout=30)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _edits(client: httpx.Client, csrf: str, source: str, n: int, user: str | None) -> list[float]:
    lines = source.splitlines()
    times = []
    for i in range(n):
        edited = list(lines)
        target = 4 + i % 10
        edited[target] = edited[target] + f" edit{i}"
        form = {"csrf": csrf, "name": FILE, "source": "\n".join(edited), "locale": "en"}
        if user:
            form["user"] = user
        started = time.perf_counter()
        answer = client.post("/templates/check", data=form)
        times.append(time.perf_counter() - started)
        body = answer.json()
        if answer.status_code != 200 or body.get("preview") is None:
            raise SystemExit(f"edit {i}: {answer.status_code} {body.get('error')}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a shop's config.toml (copied first)")
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--user", help="also preview with this real customer (shop id)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    with tempfile.TemporaryDirectory(prefix="console-bench-") as scratch:
        folder = Path(scratch)
        config = _copied_shop(args.config, folder) if args.config else _small_shop(folder)
        if args.config:
            text = config.read_text(encoding="utf-8")
            if "[templates]" not in text:
                config.write_text(text + '\n[templates]\ndir = "templates"\n', encoding="utf-8")
        cwd = config.parent
        added = _campaign("--config", str(config), "users", "add", "bench", "--role",
                          "marketer", cwd=cwd, env={**env, "CAMPAIGN_PASSWORD": PASSWORD})
        if added.returncode != 0:
            raise SystemExit(added.stderr)
        with console_client(config, cwd, env, "bench") as client:
            page = client.get(f"/templates/file?name={FILE}").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            source = (cwd / "templates" / FILE).read_text(encoding="utf-8")
            _edits(client, csrf, source, 3, None)  # warm: templates compiled once
            sample = _edits(client, csrf, source, args.edits, None)
            real = _edits(client, csrf, source, args.edits, args.user) if args.user else []
        cli = []
        for _ in range(3):
            started = time.perf_counter()
            _campaign("--config", str(config), "templates", "lint", cwd=cwd, env=env)
            _campaign("--config", str(config), "templates", "render", "winback", cwd=cwd,
                      env=env)
            cli.append(time.perf_counter() - started)
    ms = 1000
    where = f"the shop of {args.config}" if args.config else "a small shop"
    print(f"edits: {args.edits} on {where}")
    print(f"console_check_p50: {_quantile(sample, 0.5) * ms:.0f} ms")
    print(f"console_check_p95: {_quantile(sample, 0.95) * ms:.0f} ms (goal: under 300 ms)")
    print(f"console_check_max: {max(sample) * ms:.0f} ms")
    if real:
        print(f"console_check_real_user_p50: {_quantile(real, 0.5) * ms:.0f} ms")
        print(f"console_check_real_user_p95: {_quantile(real, 0.95) * ms:.0f} ms")
    baseline = statistics.median(cli)
    print(f"cli_lint_and_render: {baseline * ms:.0f} ms (median of 3)")
    print(f"ratio_cli_to_console_p50: {baseline / _quantile(sample, 0.5):.1f} x")


if __name__ == "__main__":
    main()
