"""Pure send-time rules: quiet hours across DST, Retry-After, backoff, consent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.config import QuietHours
from campaign.delivery import policy

DST_ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",
    "Asia/Shanghai",
    "Pacific/Chatham",
    "America/St_Johns",
]

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0)
)
# Instants within a few hours of a DST change, where bugs live.
TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York spring forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York fall back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Europe spring forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Europe fall back
    datetime(2026, 4, 4, 16, 0, tzinfo=UTC),  # Sydney fall back
    datetime(2026, 10, 3, 16, 0, tzinfo=UTC),  # Sydney spring forward
]
near_dst = st.tuples(st.sampled_from(TRANSITIONS), st.integers(-36 * 3600, 36 * 3600)).map(
    lambda t: t[0] + timedelta(seconds=t[1])
)


def _check_next_allowed(now: datetime, zone: str, start: time, end: time) -> None:
    tz = ZoneInfo(zone)
    window = QuietHours(start=start, end=end)
    result = policy.next_allowed_time(now, tz, window)
    assert result >= now
    assert policy.is_allowed(result, tz, window)
    assert result - now < timedelta(hours=26)
    if result > now:
        # Nothing earlier was allowed: the second before, and a grid in between.
        assert not policy.is_allowed(result - timedelta(seconds=1), tz, window)
        step = timedelta(minutes=10)
        probe = now
        while probe < result:
            assert not policy.is_allowed(probe, tz, window), probe
            probe += step


@settings(max_examples=300, deadline=None)
@given(now=st.one_of(instants, near_dst), zone=st.sampled_from(DST_ZONES), start=times, end=times)
def test_next_allowed_time_is_the_earliest_allowed_instant_in_any_timezone(
    now: datetime, zone: str, start: time, end: time
) -> None:
    _check_next_allowed(now, zone, start, end)


@pytest.mark.parametrize(
    ("now", "start", "expected_local"),
    [
        # 02:30 does not exist on the spring-forward night: the window opens at 03:00.
        (datetime(2026, 3, 8, 5, tzinfo=UTC), time(2, 30), "2026-03-08T03:00:00-04:00"),
        # 08:00 the morning after spring forward is 12:00 UTC, not 13:00.
        (datetime(2026, 3, 8, 3, tzinfo=UTC), time(8, 0), "2026-03-08T08:00:00-04:00"),
        # 08:00 the morning after fall back is 13:00 UTC.
        (datetime(2026, 11, 1, 3, tzinfo=UTC), time(8, 0), "2026-11-01T08:00:00-05:00"),
        # 01:30 happens twice on the fall-back night: the first one counts.
        (datetime(2026, 11, 1, 4, tzinfo=UTC), time(1, 30), "2026-11-01T01:30:00-04:00"),
    ],
)
def test_quiet_hours_open_at_the_right_local_time_on_dst_days(
    now: datetime, start: time, expected_local: str
) -> None:
    tz = ZoneInfo("America/New_York")
    result = policy.next_allowed_time(now, tz, QuietHours(start=start, end=time(21, 0)))
    assert result.astimezone(tz).isoformat() == expected_local


def test_a_window_across_midnight_allows_late_evening_and_early_morning() -> None:
    window = QuietHours(start=time(22, 0), end=time(6, 0))
    assert policy.in_window(time(23, 0), window)
    assert policy.in_window(time(5, 59), window)
    assert not policy.in_window(time(6, 0), window)
    assert not policy.in_window(time(12, 0), window)


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    window = QuietHours(start=time(0, 0), end=time(0, 0))
    now = datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert policy.next_allowed_time(now, ZoneInfo("UTC"), window) == now


def test_an_invalid_user_timezone_falls_back_to_the_shop_timezone() -> None:
    assert policy.resolve_timezone("Mars/Olympus", "Asia/Shanghai") == ZoneInfo("Asia/Shanghai")
    assert policy.resolve_timezone(None, "Asia/Shanghai") == ZoneInfo("Asia/Shanghai")
    assert policy.resolve_timezone("Europe/Paris", "Asia/Shanghai") == ZoneInfo("Europe/Paris")


@given(seconds=st.integers(0, 10**6))
def test_retry_after_seconds_form_parses(seconds: int) -> None:
    assert policy.parse_retry_after(str(seconds), datetime(2026, 1, 1, tzinfo=UTC)) == seconds


@given(seconds=st.integers(0, 10**6))
def test_retry_after_http_date_form_parses_relative_to_now(seconds: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=seconds), usegmt=True)
    assert policy.parse_retry_after(header, now) == seconds


def test_retry_after_in_the_past_or_garbage() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert policy.parse_retry_after(past, now) == 0
    assert policy.parse_retry_after("soon", now) is None
    assert policy.parse_retry_after(None, now) is None


@given(
    attempt=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    retry_after=st.none() | st.floats(0, 1e5),
)
def test_backoff_grows_exponentially_with_bounded_jitter(
    attempt: int, seed: int, retry_after: float | None
) -> None:
    rng = random.Random(seed)
    delay = policy.retry_delay(
        attempt, base_seconds=30, max_seconds=3600, rng=rng, retry_after=retry_after
    )
    full = min(3600, 30 * 2 ** (attempt - 1))
    assert delay >= full / 2
    assert delay <= max(full, retry_after or 0)
    if retry_after:
        assert delay >= retry_after


def test_backoff_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    delays = {policy.retry_delay(3, base_seconds=30, max_seconds=3600, rng=rng) for _ in range(50)}
    assert len(delays) > 40


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        (policy.Recipient("email", "a@x", True, False, False), None),
        (policy.Recipient("sms", "+1555", True, False, False), "no_consent"),
        (policy.Recipient("email", "a@x", False, True, False), "no_consent"),
        (policy.Recipient("email", None, True, True, False), "no_address"),
        (policy.Recipient("email", "a@x", True, True, True), "suppressed"),
        (policy.Recipient("email", "a@x", True, True, False, forgotten=True), "suppressed"),
        (policy.Recipient("email", "staff@x", False, False, False, is_test=True), None),
        (policy.Recipient("email", "staff@x", False, False, True, is_test=True), "suppressed"),
    ],
)
def test_send_time_recheck_reasons(recipient: policy.Recipient, reason: str | None) -> None:
    assert policy.skip_reason(recipient) == reason


def test_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.is_expired(now, now)
    assert not policy.is_expired(now, now + timedelta(seconds=1))
    assert not policy.is_expired(now, None)


MEDIA = {"hook": "email", "grid": "email", "text": "sms"}
sent_counts = st.dictionaries(st.sampled_from(["hook", "grid", "text", "gone"]), st.integers(0, 4))


@settings(max_examples=200)
@given(sent=sent_counts, cap=st.integers(1, 4), channel=st.sampled_from(["hook", "grid", "text"]))
def test_a_medium_cap_counts_every_channel_of_that_medium(
    sent: dict[str, int], cap: int, channel: str
) -> None:
    medium = MEDIA[channel]
    same_medium = sum(n for name, n in sent.items() if MEDIA.get(name) == medium)
    capped = policy.is_frequency_capped(channel, medium, sent, {medium: cap}, MEDIA)
    assert capped == (same_medium >= cap)


@settings(max_examples=200)
@given(sent=sent_counts, cap=st.integers(1, 4))
def test_a_cap_on_the_channel_name_beats_the_medium_cap_and_counts_that_channel_only(
    sent: dict[str, int], cap: int
) -> None:
    caps = {"hook": cap, "email": 0 if sent.get("grid") else 1}
    assert policy.is_frequency_capped("hook", "email", sent, caps, MEDIA) == (
        sent.get("hook", 0) >= cap
    )


def test_a_channel_without_a_matching_cap_is_never_capped() -> None:
    assert not policy.is_frequency_capped("text", "sms", {"text": 99}, {"email": 1}, MEDIA)
