"""What a provider's answer means for a message: sent, retried later (backoff, its
``Retry-After``), dead, or expired before the next try."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from campaign.common.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from campaign.config import DeliveryConfig
from campaign.delivery import policy
from campaign.delivery.channels import Outcome, SendResult
from campaign.delivery.checks import CRASH_ALLOWANCE
from campaign.delivery.outbox import ClaimedMessage
from campaign.delivery.outcomes import Dead, Record, Retry, Sent, Skipped


def record_answer(
    message: ClaimedMessage,
    outcome: Outcome,
    now: datetime,
    delivery: DeliveryConfig,
    rng: random.Random,
) -> Record:
    """The outbox record for the answer to one request for ``message``.

    A request whose answer never came (``maybe_delivered``) may have been accepted:
    it is retried until the message expires rather than recorded dead (which
    ``--requeue-dead`` would send again); only a message without expiry has a last
    word, after :data:`CRASH_ALLOWANCE` more attempts.
    """
    if isinstance(outcome, SendResult):
        return Sent(message.id, outcome.provider_message_id)
    error = describe(outcome)
    if isinstance(outcome, PermanentDeliveryError) or not isinstance(outcome, DeliveryError):
        return Dead(message.id, error, attempted=True)
    attempt = message.attempts + 1
    unknown = isinstance(outcome, TransientDeliveryError) and outcome.maybe_delivered
    if attempt >= delivery.max_attempts:
        if not unknown:
            return Dead(message.id, f"attempts exhausted: {error}", attempted=True)
        if message.expires_at is None and attempt >= delivery.max_attempts + CRASH_ALLOWANCE:
            return Dead(
                message.id, f"attempts exhausted, outcome unknown: {error}", attempted=True
            )
    retry_after = outcome.retry_after if isinstance(outcome, TransientDeliveryError) else None
    delay = policy.retry_delay(
        min(attempt, delivery.max_attempts),
        base_seconds=delivery.backoff_base_seconds,
        max_seconds=delivery.backoff_max_seconds,
        rng=rng,
        retry_after=retry_after,
    )
    at = now + timedelta(seconds=delay)
    if policy.is_expired(at, message.expires_at):
        return Skipped(message.id, policy.SKIP_EXPIRED, error, attempted=True)
    return Retry(message.id, at, error, attempted=True)


def describe(outcome: BaseException) -> str:
    """The stored error text of a failed request (bounded)."""
    text = str(outcome) or type(outcome).__name__
    return text[:1000]
