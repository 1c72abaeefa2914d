"""CSV reading and cell parsing: exact money, UTC timestamps, clear errors with places."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.common.errors import InputError
from campaign.ingest.readers import (
    SPECS,
    CsvFile,
    event_chunks,
    is_locale,
    is_timezone,
    lookalike,
    open_csv,
    parse_bool,
    parse_timestamp,
    user_record,
)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _open_error(path: Path, kind: str = "events") -> str:
    with pytest.raises(InputError) as caught:
        open_csv(path, kind).close()
    return str(caught.value)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2199, 12, 31),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_timestamps_come_back_as_the_same_instant_in_utc(value: datetime) -> None:
    parsed = parse_timestamp(value.isoformat())
    assert parsed == value and parsed.tzinfo == UTC


def test_naive_timestamps_mean_utc_and_z_is_accepted() -> None:
    assert parse_timestamp("2024-03-01T10:00:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parse_timestamp("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp: '2024-13-01'"):
        parse_timestamp("2024-13-01")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("false", False), ("NO", False), ("0", False),
     ("", False)],
)
def test_booleans_accept_the_documented_spellings(text: str, expected: bool) -> None:
    assert parse_bool(text, False) is expected


def test_a_boolean_typo_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe", False)


def test_timezones_must_be_iana_names_and_locales_look_like_locales() -> None:
    assert is_timezone("Europe/Paris") and is_timezone("Asia/Shanghai")
    assert not is_timezone("Mars/Olympus") and not is_timezone("../etc/passwd")
    assert is_locale("en") and is_locale("zh-CN") and is_locale("pt_BR")
    assert not is_locale("english please") and not is_locale("e")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert "file not found" in _open_error(tmp_path / "nope.csv")


def test_an_empty_file_says_a_header_is_expected(tmp_path: Path) -> None:
    assert _open_error(_write(tmp_path, "events.csv", "")) == (
        "events.csv: file is empty; expected a header row"
    )


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    message = _open_error(_write(tmp_path, "events.csv", b"PK\x03\x04\x00\x00\x08binary"))
    assert message.startswith("events.csv: binary file, not CSV")


def test_a_semicolon_separated_file_is_detected_and_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "user_id;type;ts\nu1;view;2024-01-01\n")
    assert _open_error(path) == (
        "events.csv:1: the header is separated by semicolons, not commas; "
        "save the file as comma-separated CSV"
    )


def test_missing_required_columns_are_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "user_id,type\nu1,view\n")
    assert "missing required column(s): ts" in _open_error(path)


def test_unknown_columns_of_events_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "user_id,type,ts,colour\nu1,view,2024-01-01,red\n")
    assert "unknown column(s): colour" in _open_error(path)


def test_extra_user_columns_become_attributes(tmp_path: Path) -> None:
    path = _write(tmp_path, "users.csv", "user_id,vip,email\nu1,gold,a@example.com\n")
    with open_csv(path, "users") as csv_file:
        (line, row), = list(csv_file.rows())
        assert line == 2
        assert user_record(csv_file, row)["attributes"] == {"vip": "gold"}


def test_non_utf8_bytes_report_their_line_and_byte(tmp_path: Path) -> None:
    text = "user_id,type,ts\nu1,view,2024-01-01\nu\xe9,view,2024-01-01\n".encode("latin-1")
    path = _write(tmp_path, "events.csv", text)
    with pytest.raises(InputError) as caught, open_csv(path, "events") as csv_file:
        list(csv_file.rows())
    assert caught.value.line == 3
    assert "not UTF-8: byte 0xe9 at byte 36" in str(caught.value)


def test_a_byte_order_mark_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "\ufeffuser_id,type,ts\n\nu1,view,2024-01-01\n")
    with open_csv(path, "events") as csv_file:
        assert csv_file.header == ["user_id", "type", "ts"]
        assert [line for line, _ in csv_file.rows()] == [3]


def _chunk_errors(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, "events.csv", text)
    with open_csv(path, "events") as csv_file:
        chunks = list(event_chunks(csv_file, {"u1": 1}, {"p1": 7}))
    return [str(error) for chunk in chunks for error, _ in chunk.errors]


def test_event_errors_name_file_line_and_column(tmp_path: Path) -> None:
    errors = _chunk_errors(
        tmp_path,
        "event_id,user_id,type,ts,product_id,amount,quantity\n"
        "e1,u1,view,2024-13-01,,,\n"
        "e2,u9,view,2024-01-01,,,\n"
        "e3,u1,teleport,2024-01-01,,,\n"
        "e4,u1,purchase,2024-01-01,p1,,\n"
        "e5,u1,purchase,2024-01-01,p1,1.234,\n"
        "e6,u1,view,2024-01-01,p9,,\n"
        "e7,u1,view,2024-01-01,,,0\n"
        "ok,u1,view,2024-01-01,,,\n"
        "ok,u1,view,2024-01-02,,,\n"
        "e8,u1,view\n",
    )
    assert errors == [
        "events.csv:2: ts: not an ISO 8601 timestamp: '2024-13-01'",
        "events.csv:3: user_id: unknown user 'u9' (import users first)",
        "events.csv:4: type: unknown event type 'teleport' (known: cart, purchase, search, "
        "view, visit)",
        "events.csv:5: amount: required for purchase events",
        "events.csv:6: amount: more decimals than CNY has (2 decimals): '1.234'",
        "events.csv:7: product_id: unknown product 'p9' (import products first)",
        "events.csv:8: quantity: not a whole number from 1 to 2147483647: '0'",
        "events.csv:10: event_id: duplicate event_id 'ok' (first on line 9)",
        "events.csv:11: expected 7 fields, found 3",
    ]


def test_valid_events_become_records_with_utc_text_timestamps(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "events.csv",
        "user_id,type,ts,product_id,amount,quantity\n"
        "u1,purchase,2024-01-01T10:00:00+08:00,p1,9.5,2\n"
        "u1,purchase,2024-01-01T02:00:00Z,p1,9.50,2\n",
    )
    with open_csv(path, "events") as csv_file:
        (chunk,) = list(event_chunks(csv_file, {"u1": 1}, {"p1": 7}))
    # The second row is the same event written differently: one content hash.
    assert chunk.collapsed == 1 and chunk.errors == []
    (record,) = chunk.records
    assert record[:8] == (1, 7, "purchase", "2024-01-01 02:00:00.000000", None, 2, 950, None)
    assert record[8].startswith("hash:")


@given(
    st.lists(
        st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                         max_size=8), min_size=3, max_size=3),
        max_size=5,
    )
)
def test_csv_rows_round_trip_through_the_reader(rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["user_id", "vip", "note"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "users.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        with open_csv(path, "users") as csv_file:
            read = [row for _, row in csv_file.rows()]
    assert read == rows


def test_csv_file_exposes_the_header_index(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "ts,type,user_id\n")
    with open_csv(path, "events") as csv_file:
        assert isinstance(csv_file, CsvFile)
        assert csv_file.column("user_id") == 2 and csv_file.column("amount") == -1


@pytest.mark.parametrize(
    ("column", "meant"),
    [("e_mail", "email"), ("E-Mail", "email"), ("mail", "email"), ("Phone", "phone"),
     ("consent_mail", "consent_email"), ("time_zone", "timezone"), ("vip", None),
     ("email", None), ("loyalty_tier", None)],
)
def test_lookalike_columns_name_the_contract_column(column: str, meant: str | None) -> None:
    assert lookalike(column, "users") == meant


@given(st.sampled_from(SPECS["users"].required + SPECS["users"].optional))
def test_a_contract_column_with_case_or_separators_changed_is_recognized(name: str) -> None:
    variant = name.upper().replace("_", "-")
    assert lookalike(variant, "users") == name
