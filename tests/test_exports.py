"""CSV exports are safe to open in a spreadsheet: text a shop or user wrote that starts
like a formula gets a leading quote; numbers stay numbers; ``--raw`` writes text as is.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.exports import FORMULA_TRIGGERS, cell, neutralize, write_csv
from campaign.coupons.policy import Offer
from campaign.coupons.store import reserve_coupon
from campaign.db.engine import make_engine, make_session_factory, session_scope
from campaign.db.models import Product, User
from tests.factories import DEFAULT_TS, make_events, make_product, make_user

runner = CliRunner()
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
EVIL = ["=cmd|'/c calc'!A1", "@SUM(1+1)", "+1+1", "-2+3", "\t=1+1", "\r=1+1"]


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


# -- the writer ---------------------------------------------------------------------


@pytest.mark.parametrize("text", EVIL)
def test_formula_text_gets_a_leading_quote(text: str) -> None:
    assert neutralize(text) == "'" + text
    assert cell(text, raw=True) == text


@given(st.text())
def test_any_text_is_kept_whole_and_never_starts_like_a_formula(text: str) -> None:
    written = cell(text)
    assert not written.startswith(FORMULA_TRIGGERS)
    assert written in (text, "'" + text)


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.decimals(allow_nan=False)))
def test_numbers_are_written_raw(value: object) -> None:
    assert cell(value) == str(value)


def test_missing_values_are_empty_and_booleans_are_words() -> None:
    assert [cell(None), cell(float("nan")), cell(True), cell(False)] == ["", "", "true", "false"]


def test_a_neutralized_file_reads_back_as_the_text_with_a_quote() -> None:
    out = io.StringIO()
    write_csv(out, ["user_id", "risk"], [(text, -0.5) for text in EVIL])
    rows = _rows(out.getvalue())
    assert [r["user_id"] for r in rows] == ["'" + text for text in EVIL]
    assert {r["risk"] for r in rows} == {"-0.5"}


# -- the commands -------------------------------------------------------------------


def test_coupons_export_neutralizes_shop_ids_by_default_and_not_with_raw(
    tmp_path: Path, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(make_session_factory(engine)) as session:
        for n, text in enumerate(EVIL):
            user = make_user(session, external_id=text)
            reserve_coupon(session, user.id, "winback", Offer(15, 9900, 14),
                           NOW + timedelta(minutes=n), random.Random(n))
    engine.dispose()
    config = _config(tmp_path, sqlite_url)
    out = tmp_path / "codes.csv"
    result = runner.invoke(app, ["--config", str(config), "coupons", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out.read_bytes().decode("utf-8"))
    assert [r["user_id"] for r in rows] == ["'" + text for text in EVIL]
    assert {r["percent_off"] for r in rows} == {"15"} and {r["min_order"] for r in rows} == {
        "99.00"}
    result = runner.invoke(app, ["--config", str(config), "coupons", "export", "--raw"])
    assert result.exit_code == 0, result.output
    assert [r["user_id"] for r in _rows(result.stdout)] == EVIL


def test_recommend_output_neutralizes_shop_ids_and_keeps_scores_numeric(
    tmp_path: Path, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(make_session_factory(engine)) as session:
        a = make_product(session, external_id="=HYPERLINK(\"http://x\")", name="@evil",
                         category="shoes")
        b = make_product(session, external_id="-2+3", name="+1", category="shoes")
        for n in range(4):
            buyer = make_user(session, external_id=f"+buyer{n}")
            make_events(session, buyer, [
                {"product": a, "type": "purchase", "ts": DEFAULT_TS - timedelta(days=20 + n)},
                {"product": b, "type": "purchase", "ts": DEFAULT_TS - timedelta(days=10 + n)},
            ])
        alice = make_user(session, external_id="@alice")
        make_events(session, alice, [
            {"product": a, "type": "purchase", "ts": DEFAULT_TS - timedelta(days=5)}])
    engine.dispose()
    config = _config(tmp_path, sqlite_url)
    args = ["--config", str(config), "recommend", "--user", "@alice", "-k", "1",
            "--as-of", DEFAULT_TS.isoformat()]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [row] = _rows(result.stdout)
    assert (row["user_id"], row["product_id"], row["rank"]) == ("'@alice", "'-2+3", "1")
    assert Decimal(row["score"]) > 0
    result = runner.invoke(app, [*args, "--raw"])
    [row] = _rows(result.stdout)
    assert (row["user_id"], row["product_id"]) == ("@alice", "-2+3")


def test_score_output_neutralizes_shop_ids(tmp_path: Path, sqlite_url: str) -> None:
    from tests.test_churn_db import T, load_shop, synthetic_purchases

    frame = synthetic_purchases(n_users=300, seed=3)
    frame["ts"] = frame["ts"].dt.floor("s")
    engine = make_engine(sqlite_url)
    load_shop(engine, frame[frame["ts"] <= T])
    with engine.begin() as connection:
        for n, text in enumerate(EVIL):
            connection.execute(
                update(User).where(User.external_id == f"U{n + 1:04d}").values(external_id=text)
            )
        connection.execute(update(Product).values(name="=1+1"))
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[model]\nmin_customers = 50\n'
        "min_history_days = 100\nsnapshots = 2\nmax_depth_candidates = [3]\n"
        "min_samples_leaf_candidates = [20]\n"
    )
    result = runner.invoke(app, ["--config", str(config), "train", "--as-of", T.isoformat()])
    assert result.exit_code == 0, result.output
    out, raw = tmp_path / "scores.csv", tmp_path / "raw.csv"
    for path, extra in ((out, []), (raw, ["--raw"])):
        result = runner.invoke(app, ["--config", str(config), "score", "--as-of", T.isoformat(),
                                     "--output", str(path), *extra])
        assert result.exit_code == 0, result.output
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    ids = set(written["user_id"])
    assert {"'" + text for text in EVIL} & ids and not set(EVIL) & ids
    assert not written["user_id"].str.match(r"^[=+\-@\t\r]").any()
    assert pd.to_numeric(written["risk"]).between(0, 1).all()
    assert set(EVIL) & set(pd.read_csv(raw, dtype=str, keep_default_na=False)["user_id"])
