"""Every console page on the demo shop: how long a logged-in operator waits for it.

A real ``campaign console`` on 127.0.0.1 (a subprocess) over a copy of a demo shop
(``campaign demo``: built into ``bench/.cache/console-demo`` once, or ``--config`` for
another shop); an operator (who may open every page) asks each page ``--repeats`` times
(20) after one warm-up, in English and in Chinese (``Accept-Language: zh-CN``), plus
one customer's rendered message from the audience page. Printed per page:
``page.<name>.p50/p95/max`` in ms, and ``pages.worst_p95`` against the goal (under
500 ms). The baseline in the same run is ``/healthz`` (the server's floor).

    .venv/bin/python bench/console_pages.py [--users 3000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import httpx
from console_preview import PASSWORD, _campaign, _copied_shop, _quantile, console_client

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
FILE = "winback/en/email.html"
GOAL_MS = 500.0


def demo_config(users: int) -> Path:
    """The demo shop's config (built once per size)."""
    folder = CACHE / f"console-demo-{users}"
    config = folder / "config.toml"
    if not config.exists():
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        built = _campaign("demo", "--dir", str(folder), "--users", str(users), cwd=ROOT,
                          env=env)
        if built.returncode != 0:
            raise SystemExit(built.stderr)
    return config


def pages(client: httpx.Client) -> dict[str, str]:
    """name -> path of every page an operator reads, found from the shop itself."""
    found = {
        "home": "/", "templates": "/templates", "template_file": f"/templates/file?name={FILE}",
        "template_history": f"/templates/history?name={FILE}", "activity": "/activity",
        "report": "/report", "report_page": "/report?view=page",
        "report_csv": "/report/csv?table=funnel", "accounts": "/accounts", "outbox": "/outbox",
    }
    home = client.get("/").text
    campaign = re.search(r'href="/campaigns/([^/"]+)/audience', home)
    if campaign:
        audience = f"/campaigns/{campaign.group(1)}/audience"
        found["audience"] = audience
        found["audience_page_2"] = audience + "?page=2"
        listing = client.get(audience).text
        message = re.search(r'href="(/campaigns/[^"]+/audience\?user=[^"]+)"', listing)
        if message:
            found["audience_message"] = message.group(1).replace("&amp;", "&")
    return found


def timed(client: httpx.Client, path: str, repeats: int, headers: dict[str, str]) -> list[float]:
    answer = client.get(path, headers=headers)  # warm-up
    if answer.status_code != 200:
        raise SystemExit(f"{path}: HTTP {answer.status_code}")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a shop's config.toml (copied first)")
    parser.add_argument("--users", type=int, default=3000, help="demo shop size")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    source = args.config or demo_config(args.users)
    with tempfile.TemporaryDirectory(prefix="console-pages-") as scratch:
        config = _copied_shop(source, Path(scratch))
        cwd = config.parent
        added = _campaign("--config", str(config), "users", "add", "bench", "--role",
                          "operator", cwd=cwd, env={**env, "CAMPAIGN_PASSWORD": PASSWORD})
        if added.returncode != 0:
            raise SystemExit(added.stderr)
        results: dict[str, list[float]] = {}
        with console_client(config, cwd, env, "bench") as client:
            results["healthz"] = timed(client, "/healthz", args.repeats, {})
            for name, path in pages(client).items():
                for lang in ("en", "zh-CN"):
                    results[f"{name}.{lang}"] = timed(
                        client, path, args.repeats, {"Accept-Language": lang})
    ms = 1000
    print(f"shop: {source}")
    worst = ("", 0.0)
    for name, times in results.items():
        p95 = _quantile(times, 0.95) * ms
        print(f"page.{name}.p50: {_quantile(times, 0.5) * ms:.0f} ms")
        print(f"page.{name}.p95: {p95:.0f} ms")
        print(f"page.{name}.max: {max(times) * ms:.0f} ms")
        if name != "healthz" and p95 > worst[1]:
            worst = (name, p95)
    floor = _quantile(results["healthz"], 0.5) * ms
    print(f"pages.worst_p95: {worst[1]:.0f} ms ({worst[0]}; goal: under {GOAL_MS:.0f} ms)")
    print(f"pages.worst_p95_over_healthz_p50: {worst[1] / max(floor, 0.001):.0f} x")


if __name__ == "__main__":
    main()
