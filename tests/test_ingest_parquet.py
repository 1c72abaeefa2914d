"""Parquet events (``campaign import events FILE.parquet|FOLDER/``): the same rows as the
equivalent CSV, the same one-line errors (file, row, row group, column), all or
nothing, idempotent, streamed in row groups, and picked up from the drop folder."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

pa = pytest.importorskip(
    "pyarrow", reason="Parquet tests need pyarrow: pip install -e '.[parquet]'"
)
pq = pytest.importorskip("pyarrow.parquet")
pc = pytest.importorskip("pyarrow.compute")

from campaign.cli import app  # noqa: E402
from campaign.common.errors import InputError, InputErrors  # noqa: E402
from campaign.db.models import Event  # noqa: E402
from campaign.ingest import count_rows, import_file  # noqa: E402
from campaign.ingest.parquet import open_parquet, parquet_files  # noqa: E402
from campaign.ingest.readers import event_chunks, open_csv  # noqa: E402

runner = CliRunner()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))

USERS = "user_id,email\nu1,u1@example.com\nu2,u2@example.com\n1001,n@example.com\n"
PRODUCTS = "product_id,name,price\np1,Shoe,129\np2,Sock,9.9\n"

# The same events as CSV text and as typed Parquet columns.
EVENTS_CSV = (
    "event_id,user_id,type,ts,product_id,order_id,quantity,amount,coupon_code\n"
    "e1,u1,view,2024-03-01T10:00:00Z,p1,,,,\n"
    "e2,u1,purchase,2024-03-01T18:30:00+08:00,p1,o1,2,258.00,WELCOME10\n"
    ",u2,visit,2024-03-02T09:00:00,,,,,\n"
    ",1001,cart,2024-03-02T09:00:00.250000,p2,,3,,\n"
    ",1001,purchase,2024-03-03,p2,o2,1,9.90,\n"
)


def _events_table() -> Any:
    return pa.table({
        "event_id": ["e1", "e2", None, None, None],
        "user_id": ["u1", "u1", "u2", "1001", "1001"],
        "type": ["view", "purchase", "visit", "cart", "purchase"],
        "ts": pa.array(
            [datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 30), datetime(2024, 3, 2, 9),
             datetime(2024, 3, 2, 9, 0, 0, 250000), datetime(2024, 3, 3)],
            pa.timestamp("us"),
        ),
        "product_id": ["p1", "p1", None, "p2", "p2"],
        "order_id": [None, "o1", None, None, "o2"],
        "quantity": pa.array([None, 2, None, 3, 1], pa.int32()),
        "amount": pa.array(
            [None, Decimal("258.00"), None, None, Decimal("9.90")], pa.decimal128(12, 2)
        ),
        "coupon_code": [None, "WELCOME10", None, None, None],
    })


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _shop(engine: Engine, tmp_path: Path) -> None:
    import_file(engine, "users", _write(tmp_path / "users.csv", USERS), now=NOW)
    import_file(engine, "products", _write(tmp_path / "products.csv", PRODUCTS), now=NOW)


def _events(engine: Engine) -> list[tuple[Any, ...]]:
    """The events table without its surrogate ids, in a stable order."""
    columns = [c for c in Event.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return sorted((tuple(row) for row in connection.execute(select(*columns))), key=repr)


def _clear_events(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(Event))


def _csv_events(engine: Engine, tmp_path: Path, text: str = EVENTS_CSV) -> list[tuple[Any, ...]]:
    report = import_file(engine, "events", _write(tmp_path / "events.csv", text), now=NOW)
    assert report.rejected == 0
    stored = _events(engine)
    _clear_events(engine)
    return stored


# -- the same rows as CSV ---------------------------------------------------------------


def test_a_typed_parquet_file_imports_the_same_events_as_the_csv(
    engine: Engine, tmp_path: Path
) -> None:
    _shop(engine, tmp_path)
    expected = _csv_events(engine, tmp_path)
    table = _events_table()
    # An aware column (any zone) is the same instant: Arrow stores it in UTC.
    table = table.set_column(
        table.schema.get_field_index("ts"), "ts",
        table.column("ts").cast(pa.timestamp("us", tz="Asia/Shanghai")),
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    report = import_file(engine, "events", path, now=NOW)
    assert (report.source, report.rows_read, report.inserted, report.rejected) == (
        "events.parquet", 5, 5, 0
    )
    assert _events(engine) == expected


def test_string_columns_and_integer_ids_import_the_same_events(
    engine: Engine, tmp_path: Path
) -> None:
    _shop(engine, tmp_path)
    expected = _csv_events(engine, tmp_path)
    rows = list(csv.DictReader(io.StringIO(EVENTS_CSV)))
    table = pa.table({name: [row[name] or None for row in rows] for name in rows[0]})
    # The shop's numeric ids as integers: 1001 is user '1001'.
    numeric = pa.table({
        "user_id": pa.array([1001, 1001], pa.int64()),
        "type": ["cart", "purchase"],
        "ts": ["2024-03-02T09:00:00.250000", "2024-03-03"],
        "product_id": ["p2", "p2"],
        "order_id": [None, "o2"],
        "quantity": pa.array([3, 1], pa.int64()),
        "amount": [None, "9.90"],
    })
    pq.write_table(table.slice(0, 3), tmp_path / "strings.parquet")
    pq.write_table(numeric, tmp_path / "numeric.parquet")
    import_file(engine, "events", tmp_path / "strings.parquet", now=NOW)
    import_file(engine, "events", tmp_path / "numeric.parquet", now=NOW)
    assert _events(engine) == expected


def test_a_partitioned_lake_folder_imports_the_same_events_as_the_csv(
    engine: Engine, tmp_path: Path
) -> None:
    _shop(engine, tmp_path)
    expected = _csv_events(engine, tmp_path)
    table = _events_table()
    lake = tmp_path / "lake" / "events"
    # Partitioned as a lake export writes it: the `type` partition key is a column the
    # files do not hold, `dt` is not an events column (ignored); bookkeeping files
    # and folders (_SUCCESS, .crc, _temporary/) are skipped.
    for kind in ("cart", "purchase", "view", "visit"):
        part = table.filter(pc.equal(table.column("type"), kind))
        part = part.select([name for name in part.column_names if name != "type"])
        folder = lake / "dt=2024-03" / f"type={kind}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-00000.parquet")
        (folder / ".part-00000.parquet.crc").write_bytes(b"crc")
    (lake / "_SUCCESS").write_bytes(b"")
    (lake / "_temporary").mkdir()
    (lake / "_temporary" / "junk.parquet").write_bytes(b"not parquet")
    assert [p.relative_to(lake).as_posix() for p in parquet_files(lake)] == [
        f"dt=2024-03/type={kind}/part-00000.parquet"
        for kind in ("cart", "purchase", "view", "visit")
    ]
    assert count_rows(lake) == 5
    report = import_file(engine, "events", lake, now=NOW)
    assert (report.source, report.rows_read, report.inserted) == ("events/", 5, 5)
    assert _events(engine) == expected


def test_reimporting_a_parquet_file_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    _shop(engine, tmp_path)
    path = tmp_path / "events.parquet"
    pq.write_table(_events_table(), path)
    import_file(engine, "events", path, now=NOW)
    before = _events(engine)
    again = import_file(engine, "events", path, now=datetime.now(UTC))
    assert (again.inserted, again.unchanged, again.rejected) == (0, 5, 0)
    assert _events(engine) == before
    # The same events from the CSV are the same events, too (same ids, same hashes).
    csv_again = import_file(engine, "events", _write(tmp_path / "e.csv", EVENTS_CSV), now=NOW)
    assert (csv_again.inserted, csv_again.unchanged) == (0, 5)


# -- streaming --------------------------------------------------------------------------


def test_many_small_row_groups_are_streamed_batch_by_batch(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shop(engine, tmp_path)
    rows = 1_000
    table = pa.table({
        "event_id": [f"e{i}" for i in range(rows)],
        "user_id": ["u1" if i % 2 else "u2" for i in range(rows)],
        "type": ["visit"] * rows,
        "ts": pa.array([datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(rows)],
                       pa.timestamp("s")),
    })
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=25)
    assert pq.ParquetFile(path).metadata.num_row_groups == 40

    batches: list[int] = []
    groups: list[list[int]] = []
    real_iter_batches = pq.ParquetFile.iter_batches

    def counting_iter_batches(self: Any, *args: Any, **kwargs: Any) -> Any:
        groups.append(kwargs.get("row_groups"))
        for batch in real_iter_batches(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    def whole_file(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the whole file was read at once")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting_iter_batches)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    monkeypatch.setattr(pq, "read_table", whole_file)
    report = import_file(engine, "events", path, now=NOW, chunk_rows=100)
    assert (report.rows_read, report.inserted) == (rows, rows)
    # Asked for row group by row group: never more than one row group's batch in memory.
    assert groups == [[group] for group in range(40)]
    assert len(batches) == 40 and max(batches) == 25 and sum(batches) == rows
    assert len(_events(engine)) == rows


# -- bad input: one line each, nothing written ------------------------------------------


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path


def _cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["--config", str(config), "import", *args])


def _good_rows(count: int) -> dict[str, list[Any]]:
    return {
        "user_id": ["u1"] * count,
        "type": ["view"] * count,
        "ts": [f"2024-03-01T10:00:{i:02d}" for i in range(count)],
    }


@pytest.mark.parametrize(
    ("column", "value", "line"),
    [
        ("type", "bogus",
         "type: unknown event type 'bogus' (known: cart, purchase, search, view, visit)"),
        ("ts", "2024-13-01", "ts: not an ISO 8601 timestamp: '2024-13-01'"),
        ("user_id", None, "user_id: required"),
        ("user_id", "u9", "user_id: unknown user 'u9' (import users first)"),
    ],
)
def test_a_bad_row_is_one_line_with_file_row_group_and_column_and_imports_nothing(
    db_url: str, tmp_path: Path, column: str, value: str | None, line: str
) -> None:
    config = _config(tmp_path, db_url)
    assert _cli(config, "users", str(_write(tmp_path / "users.csv", USERS))).exit_code == 0
    columns = _good_rows(30)
    columns[column][22] = value  # row 23: the third row group of ten
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=10)
    result = _cli(config, "events", str(path))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "error: events.parquet: 1 invalid row(s), nothing imported",
        f"events.parquet: row 23 (row group 3): {line}",
    ]
    assert result.stdout == ""
    from tests.test_ingest_cli import _count

    assert _count(db_url, Event.id) == 0


def test_file_level_problems_are_one_line_each(sqlite_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, sqlite_url)
    _cli(config, "users", str(_write(tmp_path / "users.csv", USERS)))
    missing = _good_rows(2)
    del missing["ts"]
    pq.write_table(pa.table(missing), tmp_path / "no-ts.parquet")
    mistyped = {**_good_rows(2), "ammount": ["1", "2"]}
    pq.write_table(pa.table(mistyped), tmp_path / "typo.parquet")
    epoch = {**_good_rows(2), "ts": pa.array([1, 2], pa.int64())}
    pq.write_table(pa.table(epoch), tmp_path / "epoch.parquet")
    (tmp_path / "fake.parquet").write_text("user_id,type,ts\n")
    (tmp_path / "empty").mkdir()
    pq.write_table(pa.table(_good_rows(2)), tmp_path / "users.parquet")
    expected = {
        "no-ts.parquet": "error: no-ts.parquet: missing required column(s): ts "
        "(found: user_id, type)",
        "typo.parquet": "error: typo.parquet: unknown column(s): ammount (did you mean "
        "'amount'?); events files have only user_id, type, ts, event_id, product_id, "
        "order_id, quantity, amount, coupon_code",
        "epoch.parquet": "error: epoch.parquet: ts: Parquet type int64 is not accepted "
        "(a string, timestamp or date column is)",
        "empty": f"error: {tmp_path / 'empty'}: no .parquet files in the folder",
        "missing.parquet": f"error: {tmp_path / 'missing.parquet'}: file not found",
    }
    for name, line in expected.items():
        result = _cli(config, "events", str(tmp_path / name))
        assert result.exit_code == 1, (name, result.output)
        assert result.stderr.strip().splitlines() == [line], name
    fake = _cli(config, "events", str(tmp_path / "fake.parquet"))
    assert fake.exit_code == 1
    assert fake.stderr.strip().startswith("error: fake.parquet: not a Parquet file (")
    assert len(fake.stderr.strip().splitlines()) == 1
    users = _cli(config, "users", str(tmp_path / "users.parquet"))
    assert users.exit_code == 1
    assert users.stderr.strip() == (
        "error: users.parquet: only events import from Parquet; import users from a CSV file"
    )


def test_skip_invalid_imports_the_rest_and_rejects_name_file_and_row(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    _cli(config, "users", str(_write(tmp_path / "users.csv", USERS)))
    lake = tmp_path / "events"
    (lake / "day=1").mkdir(parents=True)
    (lake / "day=2").mkdir()
    good = _good_rows(3)
    bad = {**_good_rows(3), "user_id": ["u2"] * 3}
    bad["ts"][1] = "yesterday"
    pq.write_table(pa.table(good), lake / "day=1" / "part-0.parquet")
    pq.write_table(pa.table(bad), lake / "day=2" / "part-0.parquet")
    result = _cli(config, "events", str(lake), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"events/: 6 rows, 5 inserted, 0 updated, 0 unchanged, 1 rejected; "
        f"rejected rows in {tmp_path / 'events.rejected.csv'}"
    )
    with (tmp_path / "events.rejected.csv").open(encoding="utf-8") as handle:
        rejected = list(csv.reader(handle))
    assert rejected == [
        ["user_id", "type", "ts", "file", "row", "reason"],
        ["u2", "view", "yesterday", "events/day=2/part-0.parquet", "2",
         "ts: not an ISO 8601 timestamp: 'yesterday'"],
    ]
    again = _cli(config, "events", str(lake), "--skip-invalid")
    assert "0 inserted, 0 updated, 5 unchanged, 1 rejected" in again.stdout


def test_an_event_id_repeated_in_another_file_of_the_folder_is_named_there(
    sqlite_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, sqlite_url)
    _cli(config, "users", str(_write(tmp_path / "users.csv", USERS)))
    lake = tmp_path / "events"
    lake.mkdir()
    first = {**_good_rows(2), "event_id": ["a", "b"]}
    second = {**_good_rows(2), "event_id": ["c", "a"]}
    pq.write_table(pa.table(first), lake / "part-0.parquet")
    pq.write_table(pa.table(second), lake / "part-1.parquet")
    engine_url = sqlite_url
    from campaign.db.engine import make_engine

    engine = make_engine(engine_url)
    try:
        with pytest.raises(InputErrors) as caught:
            import_file(engine, "events", lake, now=NOW, chunk_rows=2)
        assert [str(e) for e in caught.value.errors] == [
            "events/part-1.parquet: row 2 (row group 1): event_id: duplicate event_id 'a' "
            "(earlier in the file)"
        ]
        assert _events(engine) == []
    finally:
        engine.dispose()


# -- the extra, the progress bar, the daemon ---------------------------------------------


def test_without_pyarrow_a_parquet_import_says_which_extra_to_install(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, sqlite_url)
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(_good_rows(2)), path)
    # A None in sys.modules makes `import pyarrow` raise ImportError, as if absent.
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    result = _cli(config, "events", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: events.parquet: reading Parquet needs pyarrow: pip install 'campaign[parquet]'"
    ]


def test_the_progress_total_is_the_row_count_of_the_metadata(
    sqlite_url: str, tmp_path: Path
) -> None:
    from tests.tty import bar_counts, run_on_terminal

    config = _config(tmp_path, sqlite_url)
    _cli(config, "users", str(_write(tmp_path / "users.csv", USERS)))
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(_good_rows(50)), path, row_group_size=7)
    assert count_rows(path) == 50
    code, _out, screen = run_on_terminal(
        ["--config", str(config), "import", "events", str(path)], tmp_path
    )
    assert code == 0, screen
    counts = bar_counts(screen, "importing events.parquet")
    assert counts and counts[-1] == "50/50" and all(c.endswith("/50") for c in counts), screen


def test_the_drop_folder_imports_a_parquet_events_file(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.daemon.ingest_jobs import ingest_folder

    drops = tmp_path / "drops"
    drops.mkdir()
    _write(drops / "users-1.csv", USERS)
    _write(drops / "products-1.csv", PRODUCTS)
    pq.write_table(_events_table(), drops / "events-2026-11-01.parquet")
    pq.write_table(pa.table(_good_rows(2)), drops / "users-2.parquet")
    later = datetime.now(UTC) + timedelta(minutes=1)

    # Without pyarrow a Parquet drop waits for the extra instead of being rejected.
    with monkeypatch.context() as hidden:
        hidden.setitem(sys.modules, "pyarrow", None)
        hidden.setitem(sys.modules, "pyarrow.parquet", None)
        waiting = dict(ingest_folder(engine, drops, now=lambda: later, settle_seconds=1))
    assert waiting == {
        "users-1.csv": "imported",
        "products-1.csv": "imported",
        "events-2026-11-01.parquet": "waiting",
        "users-2.parquet": "waiting",
    }

    seen = dict(ingest_folder(engine, drops, now=lambda: later, settle_seconds=1))
    assert seen == {"events-2026-11-01.parquet": "imported", "users-2.parquet": "rejected"}
    assert sorted(p.name for p in (drops / "done").iterdir()) == [
        "events-2026-11-01.parquet", "products-1.csv", "users-1.csv"
    ]
    assert (drops / "rejected" / "users-2.parquet.reason.txt").read_text().startswith(
        "users-2.parquet: only events import from Parquet"
    )
    assert len(_events(engine)) == 5


# -- property: CSV and Parquet rows are validated alike ---------------------------------

EVENT_HEADER = ["event_id", "user_id", "type", "ts", "product_id", "quantity", "amount"]
CELL = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=20),
    st.sampled_from(["u1", "p1", "view", "purchase", "2024-03-01T10:00:00+08:00",
                     "2024-03-01", "9999-12-31T23:59:59-05:00", "1", "0", "12.5", "1e3",
                     "12.999", " 7 ", "nan"]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=7, max_size=7), min_size=1, max_size=4),
       currency=st.sampled_from(["JPY", "KWD", "CNY"]))
def test_any_rows_give_the_same_records_and_errors_from_csv_and_parquet(
    tmp_path: Path, rows: list[list[str]], currency: str
) -> None:
    text = io.StringIO()
    # Every cell quoted, so a lone '\r' in a cell stays in its cell.
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(EVENT_HEADER)
    writer.writerows(rows)
    csv_path = tmp_path / "events.csv"
    csv_path.write_text(text.getvalue(), encoding="utf-8", newline="")
    parquet_path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table({name: [row[i] for row in rows] for i, name in enumerate(EVENT_HEADER)}),
        parquet_path, row_group_size=2,
    )
    users, products = {"u1": 1}, {"p1": 1}

    def outcome(source: Any) -> tuple[list[Any], list[tuple[str | None, str]]]:
        chunks = list(event_chunks(source, users, products))
        records = [r for chunk in chunks for r in chunk.records]
        errors = [(e.column, e.reason) for chunk in chunks for e, _ in chunk.errors]
        return records, errors

    with open_csv(csv_path, "events", currency) as csv_file:
        expected = outcome(csv_file)
    with open_parquet(parquet_path, "events", currency) as parquet_file:
        assert outcome(parquet_file) == expected


# A day inside the accepted years: an instant near their edge may be 1899 in UTC but
# 1900 in its own zone, which only text (CSV, or a string column) still carries.
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30),
                    timezones=st.sampled_from([UTC, SHANGHAI, None])))
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_parquet_timestamp_is_the_same_instant_as_its_iso_text(
    tmp_path: Path, moment: datetime
) -> None:
    zone = None if moment.tzinfo is None else str(moment.tzinfo)
    arrow_zone = "+08:00" if moment.tzinfo is SHANGHAI else ("UTC" if zone else None)
    path = tmp_path / "ts.parquet"
    pq.write_table(pa.table({
        "user_id": ["u1", "u1"],
        "type": ["visit", "visit"],
        "ts": pa.array([moment, None], pa.timestamp("us", tz=arrow_zone)),
    }), path)
    with open_parquet(path, "events") as parquet_file:
        chunk = next(event_chunks(parquet_file, {"u1": 1}, {}))
    stored = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert chunk.records[0][3] == stored.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert chunk.errors[0][0].column == "ts" and chunk.errors[0][0].reason == "required"


def test_dates_and_dictionary_strings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array(["u1", "u1"]).dictionary_encode(),
        "type": pa.array(["visit", "view"]).dictionary_encode(),
        "ts": pa.array([date(2024, 3, 1), date(2024, 3, 2)], pa.date32()),
    }), path)
    with open_parquet(path, "events") as parquet_file:
        chunk = next(event_chunks(parquet_file, {"u1": 1}, {}))
    assert [r[3] for r in chunk.records] == [
        "2024-03-01 00:00:00.000000", "2024-03-02 00:00:00.000000"
    ]


def test_a_list_column_is_refused_with_its_type(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({**_good_rows(1), "coupon_code": [["A", "B"]]}), path)
    with pytest.raises(InputError) as caught:
        open_parquet(path, "events")
    # pyarrow names the list's items 'item' or 'element', by version.
    message = str(caught.value)
    assert message.startswith("events.parquet: coupon_code: Parquet type list<"), message
    assert message.endswith(": string> is not accepted (a string or integer column is)")


def test_a_float_amount_is_read_as_its_shortest_decimal_and_never_rounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "user_id": ["u1"] * 3,
        "type": ["purchase"] * 3,
        "ts": ["2024-03-01T10:00:00"] * 3,
        "amount": pa.array([9.9, 0.1 + 0.2, 258.0], pa.float64()),
    }), path)
    with open_parquet(path, "events", "CNY") as parquet_file:
        chunk = next(event_chunks(parquet_file, {"u1": 1}, {}))
    assert [r[6] for r in chunk.records] == [990, 25800]
    [(error, _row)] = chunk.errors
    assert (error.line, error.row_group, error.column) == (2, 1, "amount")
    assert "0.30000000000000004" in error.reason
