"""Pure planner decisions: channel choice and caps, checked as properties (no database)."""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.config import CampaignConfig, VariantConfig
from campaign.coupons.policy import CODE_ALPHABET, CODE_LENGTH, looks_like_code
from campaign.planner.audience import ChannelRule, decide_channels
from campaign.planner.content import CodeDrawer
from campaign.planner.decisions import decide_treatment

RULES = [ChannelRule("email", "email", 2), ChannelRule("sms", "sms", 1)]

users = st.fixed_dictionaries(
    {
        "email": st.sampled_from([None, "", "a@b.test"]),
        "phone": st.sampled_from([None, "+8613800000000"]),
        "consent_email": st.booleans(),
        "consent_sms": st.booleans(),
        "timezone": st.sampled_from([None, "", "Asia/Shanghai", "Nowhere/Land"]),
        "suppressed_email": st.booleans(),
        "suppressed_sms": st.booleans(),
        "recent_email": st.integers(0, 3),
        "recent_sms": st.integers(0, 2),
        "cooldown": st.booleans(),
    }
)


def _eligible(user: dict, rule: ChannelRule) -> bool:
    address = user["email"] if rule.medium == "email" else user["phone"]
    consent = user["consent_email"] if rule.medium == "email" else user["consent_sms"]
    tz_ok = user["timezone"] in (None, "", "Asia/Shanghai")
    return (
        not user[f"suppressed_{rule.name}"]
        and consent
        and bool(address)
        and tz_ok
        and user[f"recent_{rule.name}"] < (rule.cap or 10**9)
        and not user["cooldown"]
    )


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(users, min_size=1, max_size=30))
def test_a_user_gets_the_first_eligible_channel_or_the_first_channels_reason(
    rows: list[dict],
) -> None:
    decided = decide_channels(pd.DataFrame(rows), RULES)
    for user, channel, reason in zip(
        rows, decided["channel"], decided["skip_reason"], strict=True
    ):
        fits = [rule.name for rule in RULES if _eligible(user, rule)]
        if fits:
            assert reason is None and channel == fits[0]
        else:
            assert reason is not None and channel == "email"


def test_suppression_beats_every_other_reason() -> None:
    row = {
        "email": None, "phone": None, "consent_email": False, "consent_sms": False,
        "timezone": "Nowhere/Land", "suppressed_email": True, "suppressed_sms": True,
        "recent_email": 9, "recent_sms": 9, "cooldown": True,
    }
    decided = decide_channels(pd.DataFrame([row]), RULES)
    assert decided["skip_reason"].tolist() == ["suppressed"]


@settings(max_examples=40, deadline=None)
@given(
    eligible=st.lists(st.booleans(), min_size=1, max_size=60),
    cap=st.integers(1, 20),
    budget=st.integers(0, 20),
    share=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_caps_are_never_exceeded_and_every_row_has_one_outcome(
    eligible: list[bool], cap: int, budget: int, share: float
) -> None:
    campaign = CampaignConfig(
        name="c", holdout_share=share, max_recipients=cap, coupon_budget=budget,
        variants=(
            VariantConfig(name="coupon", template="t", offer=True),
            VariantConfig(name="care", template="t", offer=False),
        ),
    )
    frame = pd.DataFrame(
        {
            "external_id": [f"u{i}" for i in range(len(eligible))],
            "skip_reason": [None if e else "no_consent" for e in eligible],
        }
    )
    out = decide_treatment(frame, campaign, random.Random(0))
    queued = out["status"] == "queued"
    assert queued.sum() <= cap
    assert (queued & out["offer"]).sum() <= budget
    assert set(out["status"]) <= {"queued", "held_out", "skipped"}
    assert (out.loc[out["status"] == "skipped", "skip_reason"].notna()).all()
    assert out.loc[out["status"] != "skipped", "skip_reason"].isna().all()
    # Nobody ineligible is ever queued or held out.
    assert (out.loc[~pd.Series(eligible), "status"] == "skipped").all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), prefix=st.from_regex(r"[A-Z0-9]{0,6}", fullmatch=True))
def test_drawn_coupon_codes_are_well_formed_distinct_and_repeatable(seed: int, prefix: str) -> None:
    codes = CodeDrawer(random.Random(seed), prefix)
    drawn = [codes() for _ in range(1_500)]  # more than one block
    assert all(looks_like_code(code) for code in drawn)
    assert all(code.startswith(f"{prefix}-") if prefix else "-" not in code for code in drawn)
    assert len(set(drawn)) == len(drawn)
    again = CodeDrawer(random.Random(seed), prefix)
    assert [again() for _ in range(1_500)] == drawn


def test_drawn_coupon_codes_use_every_symbol_about_equally() -> None:
    codes = CodeDrawer(random.Random(5), "")
    counts = Counter("".join(codes() for _ in range(20_000)))
    assert set(counts) == set(CODE_ALPHABET)
    expected = 20_000 * CODE_LENGTH / len(CODE_ALPHABET)
    assert all(abs(n - expected) < 0.08 * expected for n in counts.values())
