"""The shop's own webhook: tells its checkout which coupon codes a run issued.

One signed POST (Standard Webhooks headers, the same signing as the webhook channel)
per run that reserved codes. Transient failures (timeouts, connection errors, 5xx,
429) are retried a few times within the call; :mod:`campaign.coupons.announcements` keeps
trying later under the same webhook id until the shop accepts. The run itself never
depends on it: the codes are reserved in the database and ``campaign coupons export``
always has them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from campaign.common.errors import PermanentDeliveryError, TransientDeliveryError
from campaign.common.signing import sign_headers

CHANNEL = "shop coupon webhook"


def post_coupons_issued(
    url: str,
    secret: str,
    body: bytes,
    msg_id: str | None = None,
    *,
    now: Callable[[], float] = time.time,
    attempts: int = 3,
    timeout_seconds: float = 10.0,
    backoff_seconds: float = 1.0,
) -> str:
    """POST ``body`` to the shop, signed; returns the webhook id (same on every retry).

    ``msg_id`` is the webhook id (and ``Idempotency-Key``) to use, so that later
    retries of the same announcement (:mod:`campaign.coupons.announcements`) repeat it; a
    new one is made when it is None.

    Raises:
        TransientDeliveryError: still failing after ``attempts`` tries.
        PermanentDeliveryError: the shop answered a 4xx other than 429.
    """
    msg_id = msg_id or f"coupons_{uuid.uuid4().hex}"
    last: TransientDeliveryError | None = None
    with httpx.Client(timeout=timeout_seconds) as client:
        for attempt in range(attempts):
            headers = sign_headers(secret, msg_id, int(now()), body)
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = msg_id
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = TransientDeliveryError(CHANNEL, f"{type(exc).__name__}: {exc}")
            else:
                if response.is_success:
                    return msg_id
                reason = f"{url} answered {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    raise PermanentDeliveryError(CHANNEL, reason, status=response.status_code)
                last = TransientDeliveryError(CHANNEL, reason, status=response.status_code)
            if attempt + 1 < attempts:
                time.sleep(backoff_seconds * 2**attempt)
    assert last is not None
    raise last
