"""Drive the product through its command line, in subprocesses (``python -m campaign``).

Nothing here imports the product's modules: the harness sees what a shop sees (CSV in,
CSV out), so moving the product's packages around does not break it. A split's
database holds only the events the product may see: they are written to the CSV
contract and imported with ``campaign import``, then checked (:func:`verify`) against
the cut: the same event ids, none at or after T.

Databases are cached per split under ``bench/.cache/realdata/<shop>/<task>/``. Forward
splits are built as a chain: the earliest split's events are imported into a fresh
SQLite file, each later split copies the previous file and imports only the events
in between. Every command that writes (``train``, ``score``, ``recommend``) runs on a
throw-away copy, so a cached database never holds a model or a score.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .datasets import CACHE, Shop
from .splits import Cut

Log = Callable[[str], None]
FORMAT = 1  # bump when the written CSVs change meaning


class ProductError(RuntimeError):
    """A product command failed; the message carries its command line and stderr tail."""


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def write_config(path: Path, database: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """A config.toml naming the database plus the given sections' settings."""
    merged: dict[str, dict[str, object]] = {"database": {"url": f"sqlite:///{database}"}}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    lines = []
    for name, values in merged.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _stamp(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S")


def write_contract(shop: Shop, events: pd.DataFrame, folder: Path, *,
                   known_users: set[str] | None = None, known_products: set[str] | None = None
                   ) -> dict[str, Path]:
    """users.csv, products.csv and events.csv of ``events`` (ids already imported left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    known_users, known_products = known_users or set(), known_products or set()
    files: dict[str, Path] = {}
    users = pd.Series(events["user_id"].unique(), name="user_id")
    users = users[~users.isin(known_users)]
    files["users"] = folder / "users.csv"
    users.to_frame().to_csv(files["users"], index=False)
    ids = events["product_id"].dropna().unique()
    ids = ids[~pd.Series(ids).isin(known_products).to_numpy()]
    if len(ids):
        catalogue = shop.products.set_index("product_id")
        rows = catalogue.reindex(pd.Index(ids, name="product_id")).reset_index()
        files["products"] = folder / "products.csv"
        rows[["product_id", "name", "category", "brand", "tags"]].to_csv(
            files["products"], index=False
        )
    out = pd.DataFrame(
        {
            "event_id": events["event_id"],
            "user_id": events["user_id"],
            "type": "purchase",
            "ts": _stamp(events["ts"]),
            "product_id": events["product_id"],
            "order_id": events["order_id"],
            "amount": (events["amount_cents"] // 100).astype(str)
            + "."
            + (events["amount_cents"] % 100).astype(str).str.zfill(2),
        }
    )
    files["events"] = folder / "events.csv"
    out.to_csv(files["events"], index=False)
    return files


def digest(event_ids: Iterable[str]) -> str:
    """A fingerprint of a set of event ids (order-free)."""
    h = hashlib.sha1()
    for event_id in sorted(event_ids):
        h.update(event_id.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Leak:
    """What :func:`verify` found in a split's database."""

    events: int
    newest: datetime | None
    missing: int  # cut events that are not in the database
    extra: int  # database events that are not in the cut (future ones among them)
    future: int  # database events at or after T (forward) / held out (leave-last)


def database_events(path: Path) -> pd.DataFrame:
    """source_event_id and ts of every event in a split's SQLite database."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT source_event_id, ts FROM events").fetchall()
    frame = pd.DataFrame(rows, columns=["event_id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame


def verify(path: Path, cut: Cut) -> Leak:
    """Compare a split database's events with the cut it was built from."""
    stored = database_events(path)
    ids = set(stored["event_id"])
    wanted = set(cut.train["event_id"])
    if cut.split.as_of is not None:
        future = int((stored["ts"] >= pd.Timestamp(cut.split.as_of)).sum())
    else:
        future = len(ids & set(cut.future["event_id"]))
    newest = stored["ts"].max().to_pydatetime() if len(stored) else None
    return Leak(len(stored), newest, len(wanted - ids), len(ids - wanted), future)


def _checkpoint(path: Path) -> None:
    """Fold a WAL-mode SQLite file's log into the file itself, so it can be copied alone."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Product:
    """The ``campaign`` command line, run as a subprocess with one config per call."""

    def __init__(self, workdir: Path, *, python: str = sys.executable, log: Log | None = None,
                 timeout: float = 6 * 3600) -> None:
        self.workdir = workdir
        self.python = python
        self.log = log or (lambda _: None)
        self.timeout = timeout
        workdir.mkdir(parents=True, exist_ok=True)
        self._trains_recommender: tuple[bool, bool] | None = None
        self._fresh: set[Path] = set()  # databases this process built (already migrated)

    def run(self, config: Path, *args: str) -> tuple[str, float]:
        """Run ``campaign --config CONFIG ARGS``; its stdout and wall seconds."""
        command = [self.python, "-m", "campaign", "--config", str(config), *args]
        env = dict(os.environ)
        env.setdefault("COLUMNS", "200")  # rich tables and lines unwrapped in the logs
        started = time.perf_counter()
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=self.timeout, env=env, check=False,
            cwd=self.workdir,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            tail = (result.stderr.strip() or result.stdout.strip())[-2000:]
            raise ProductError(
                f"`campaign {' '.join(args)}` exited {result.returncode}: {tail}"
            )
        return result.stdout, seconds

    # -- databases ---------------------------------------------------------------------

    def import_files(self, database: Path, files: Mapping[str, Path]) -> None:
        """``campaign import users|products|events`` into ``database``."""
        config = write_config(self.workdir / "import.toml", database, {})
        self.run(config, "db", "upgrade")
        for kind in ("users", "products", "events"):
            if kind in files:
                out, seconds = self.run(config, "import", kind, str(files[kind]))
                summary = out.strip().splitlines()[-1] if out.strip() else kind
                self.log(f"{summary} ({seconds:.0f} s)")

    def databases(self, shop: Shop, task: str, cuts: list[Cut], *, rebuild: bool = False
                  ) -> dict[str, Path]:
        """One verified SQLite database per cut (cached; forward cuts built as a chain)."""
        folder = CACHE / shop.name / task if shop.name != "mini" else self.workdir / "db" / task
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        forward = sorted((c for c in cuts if c.split.as_of is not None), key=lambda c: c.as_of)
        previous: tuple[Path, Cut] | None = None
        for c in forward:
            out[c.split.name] = self._database(shop, folder, c, previous, rebuild)
            previous = (out[c.split.name], c)
        for c in cuts:
            if c.split.as_of is None:
                out[c.split.name] = self._database(shop, folder, c, None, rebuild)
        return out

    def _database(self, shop: Shop, folder: Path, cut: Cut, previous: tuple[Path, Cut] | None,
                  rebuild: bool) -> Path:
        path = folder / f"{cut.split.name}.db"
        meta_path = path.with_suffix(".json")
        meta = {"format": FORMAT, "events": len(cut.train), "digest": digest(cut.train["event_id"])}
        if not rebuild and path.exists() and meta_path.exists():
            if json.loads(meta_path.read_text()) == meta:
                return path
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        if previous is not None:
            before_path, before = previous
            shutil.copyfile(before_path, building)
            delta = cut.train.loc[~cut.train["event_id"].isin(before.train["event_id"])]
            # Users and products are separate id spaces (Instacart's overlap).
            users, products = set(before.train["user_id"]), set(before.train["product_id"].dropna())
            self.log(f"{cut.split.name}: importing {len(delta):,} more events")
        else:
            delta, users, products = cut.train, set(), set()
            self.log(f"{cut.split.name}: importing {len(delta):,} events")
        files = write_contract(shop, delta, self.workdir / "csv", known_users=users,
                               known_products=products)
        self.import_files(building, files)
        _checkpoint(building)
        building.replace(path)
        leak = verify(path, cut)
        if leak.missing or leak.extra or leak.future:
            path.unlink()
            raise ProductError(f"{cut.split.name}: the database does not match its cut: {leak}")
        meta_path.write_text(json.dumps(meta))
        self._fresh.add(path)
        return path

    def working_copy(self, database: Path, name: str) -> Path:
        """A throw-away copy of a cached database for commands that write."""
        copy = self.workdir / f"{name}.db"
        shutil.copyfile(database, copy)
        for suffix in ("-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        if database not in self._fresh:
            # A cached database may predate the product's newest migrations.
            self.run(write_config(self.workdir / "upgrade.toml", copy, {}), "db", "upgrade")
        return copy

    # -- commands ------------------------------------------------------------------------

    def trains_recommender(self, config: Path) -> tuple[bool, bool]:
        """Whether ``campaign train recommend`` exists, and whether it takes ``--as-of``.

        The per-shop recommender tournament is part of the CLI contract; where the
        product has it, it is trained (on the split's database) before recommending.
        """
        if self._trains_recommender is None:
            out, _ = self.run(config, "train", "--help")
            exists = re.search(r"^\s+recommend\b", out, re.MULTILINE) is not None
            takes_as_of = exists and "--as-of" in self.run(
                config, "train", "recommend", "--help"
            )[0]
            self._trains_recommender = (exists, takes_as_of)
        return self._trains_recommender

    def recommend(self, database: Path, as_of: datetime, k: int, *, repeat: bool,
                  sections: Mapping[str, Mapping[str, object]]) -> tuple[pd.DataFrame, float]:
        """``campaign recommend -k K --as-of T --output`` with repurchase allowed or not.

        Repeat allowed means ``allow_repurchase = true`` with ``repurchase_window_days =
        0`` (an item may come back the day after it was bought); "new items" is the
        default config (``allow_repurchase = false``). Returns user_id, rank, product_id
        and the wall seconds of the command (with ``train recommend`` where it exists).
        """
        scope = "repeat" if repeat else "new"
        copy = self.working_copy(database, f"recommend-{scope}")
        settings = {name: dict(values) for name, values in sections.items()}
        settings.setdefault("recommender", {}).update(
            {"allow_repurchase": repeat, "repurchase_window_days": 0}
            if repeat
            else {"allow_repurchase": False}
        )
        config = write_config(self.workdir / f"recommend-{scope}.toml", copy, settings)
        stamp = f"{as_of.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
        seconds = 0.0
        exists, takes_as_of = self.trains_recommender(config)
        if exists:
            # Without --as-of it trains as of the newest event: the database holds
            # nothing later than T.
            when = ("--as-of", stamp) if takes_as_of else ()
            _, seconds = self.run(config, "train", "recommend", *when)
            self.log(f"product {scope}: train recommend ({seconds:.0f} s)")
        output = self.workdir / f"recommend-{scope}.csv"
        _, took = self.run(
            config, "recommend", "-k", str(k), "--as-of", stamp, "--output", str(output)
        )
        frame = pd.read_csv(output, dtype={"user_id": str, "product_id": str})
        copy.unlink(missing_ok=True)
        return frame[["user_id", "rank", "product_id"]], seconds + took

    def churn(self, database: Path, as_of: datetime, horizon: int, *,
              sections: Mapping[str, Mapping[str, object]]) -> tuple[pd.DataFrame, float]:
        """``campaign train --as-of T --horizon-days h`` then ``campaign score --output``.

        Returns user_id, risk (as the CSV has it), stored_risk (the unrounded value in
        ``churn_scores``, NaN where it cannot be read) and the wall seconds of both.
        """
        copy = self.working_copy(database, "churn")
        settings = {name: dict(values) for name, values in sections.items()}
        settings.setdefault("model", {})["horizon_days"] = horizon
        config = write_config(self.workdir / "churn.toml", copy, settings)
        stamp = f"{as_of.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
        _, trained = self.run(config, "train", "--as-of", stamp, "--horizon-days", str(horizon))
        self.log(f"product: train ({trained:.0f} s)")
        output = self.workdir / "scores.csv"
        _, scored = self.run(config, "score", "--as-of", stamp, "--output", str(output))
        frame = pd.read_csv(output, dtype={"user_id": str})[["user_id", "risk"]]
        frame["stored_risk"] = frame["user_id"].map(_stored_risks(copy))
        copy.unlink(missing_ok=True)
        return frame, trained + scored


def _stored_risks(path: Path) -> pd.Series:
    """The unrounded risks ``campaign score`` stored (a diagnostic: empty if unreadable)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT u.external_id, s.risk FROM churn_scores s JOIN users u ON u.id = s.user_id"
            ).fetchall()
    except sqlite3.Error:
        return pd.Series(dtype=float)
    return pd.Series({str(user): float(risk) for user, risk in rows}, dtype=float)
