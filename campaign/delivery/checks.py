"""The send-time re-check of a claimed message: what the planner decided may no longer
hold when the sender gets to it (expiry, consent, suppressions, address, frequency
caps, quiet hours in the recipient's timezone), and the request it becomes if it does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from campaign.common import links
from campaign.config import ChannelConfig, Config, QuietHours
from campaign.delivery import policy
from campaign.delivery.channels import OutgoingMessage
from campaign.delivery.outbox import ClaimedMessage
from campaign.delivery.outcomes import Dead, Record, Retry, Skipped

# ``claims - attempts`` counts claims that ended in no outcome (the sender died or
# stalled holding the row). A message with an expiry is retried until it expires (its
# provider may hold it: never "dead", which --requeue-dead would send again); one
# without expiry goes dead after this many, rather than loop forever.
CRASH_ALLOWANCE = 10


def quiet_window(name: str, channel: ChannelConfig, config: Config) -> QuietHours:
    """The quiet-hours window of a channel: its own, else its medium's, else the default."""
    if channel.quiet_hours is not None:
        return channel.quiet_hours
    by_medium = config.delivery.quiet_hours_by_medium.get(channel.medium)
    return by_medium if by_medium is not None else config.delivery.quiet_hours


class SendCheck:
    """Decides, for each claimed message, "send this request now" or its outcome.

    ``channels`` are the names of the channels this sender can send through;
    ``unsubscribe_secret`` signs the unsubscribe links of e-mails (the same key the
    planner signed the message's links with).
    """

    def __init__(self, config: Config, channels: set[str], unsubscribe_secret: bytes) -> None:
        self.config = config
        self.delivery = config.delivery
        self.channels = channels
        self.unsubscribe_secret = unsubscribe_secret
        self.media = {name: channel.medium for name, channel in config.channels.items()}

    def decide(
        self,
        message: ClaimedMessage,
        now: datetime,
        passed: Mapping[str, int] | None = None,
    ) -> OutgoingMessage | Record:
        """The request to send, or the message's outcome (dead, skipped, deferred).

        ``passed`` counts, by channel, this user's messages already passed in the same
        claim (they count against the frequency cap like sent ones).
        """
        channel_config = self.config.channels.get(message.channel)
        if channel_config is None or message.channel not in self.channels:
            return Dead(message.id, f"channel {message.channel!r} is not configured")
        if message.expires_at is None and message.claims - message.attempts > CRASH_ALLOWANCE:
            return Dead(
                message.id,
                f"claimed {message.claims} times with {message.attempts} recorded requests:"
                " senders kept dying or stalling while holding it",
            )
        if policy.is_expired(now, message.expires_at):
            return Skipped(message.id, policy.SKIP_EXPIRED)
        medium = channel_config.medium
        address = message.address(medium)
        reason = policy.skip_reason(
            policy.Recipient(
                medium=medium,
                address=address,
                consent_email=message.consent_email,
                consent_sms=message.consent_sms,
                suppressed=message.is_suppressed(medium),
                forgotten=message.forgotten and not message.address_override,
                is_test=message.is_test and bool(message.address_override),
            )
        )
        if reason is not None:
            return Skipped(message.id, reason)
        if not message.is_test and self._capped(message, medium, passed):
            return Skipped(message.id, policy.SKIP_FREQUENCY_CAPPED)
        if not message.is_test:
            tz = policy.resolve_timezone(message.timezone, self.config.shop.timezone)
            window = quiet_window(message.channel, channel_config, self.config)
            allowed_at = policy.next_allowed_time(now, tz, window)
            if allowed_at > now:
                if policy.is_expired(allowed_at, message.expires_at):
                    return Skipped(message.id, policy.SKIP_EXPIRED, "quiet hours until expiry")
                return Retry(message.id, allowed_at)
        assert address is not None
        return self.outgoing(message, medium, address)

    def _capped(
        self, message: ClaimedMessage, medium: str, passed: Mapping[str, int] | None
    ) -> bool:
        caps = self.delivery.frequency_cap
        if not caps:
            return False
        sent: Mapping[str, int] = message.sent_recently
        if passed:
            sent = Counter(sent) + Counter(passed)
        return policy.is_frequency_capped(message.channel, medium, sent, caps, self.media)

    def outgoing(self, message: ClaimedMessage, medium: str, address: str) -> OutgoingMessage:
        """The provider-neutral request for ``message`` to ``address``."""
        unsubscribe_url = None
        if medium == "email" and message.user_external_id:
            unsubscribe_url = links.unsubscribe_url(
                self.config.shop.base_url,
                self.unsubscribe_secret,
                message.user_external_id,
                message.channel,
            )
        is_sms = medium == "sms"
        return OutgoingMessage(
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            channel=message.channel,
            medium=medium,
            to=address.strip(),
            campaign=message.campaign,
            subject=None if is_sms else message.subject,
            html=None if is_sms else message.body,
            text=(message.text_body or message.body) if is_sms else message.text_body,
            variant=message.variant,
            coupon_code=message.coupon_code,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=self.delivery.unsubscribe_mailto if medium == "email" else None,
            is_test=message.is_test,
        )


