"""HMAC signatures of model artifacts (pure): what ``model_versions.artifact_signature``
holds, for every kind of model (see :mod:`campaign.churn.artifacts` for the key).

Signatures read ``hmac-sha256:<key id>:<hex>``; the key id (first 8 hex digits of
the key's SHA-256) tells which key signed a row without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SCHEME = "hmac-sha256"
_CONTEXT = b"campaign model artifact v1\x00"


def key_id(key: bytes) -> str:
    """A short public name of ``key`` (8 hex digits of its SHA-256)."""
    return hashlib.sha256(key).hexdigest()[:8]


def sign_artifact(key: bytes, kind: str, artifact: bytes) -> str:
    """The signature of ``artifact`` (a model of ``kind``) under ``key``. Pure."""
    message = _CONTEXT + kind.encode() + b"\x00" + artifact
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"{SCHEME}:{key_id(key)}:{digest}"


def verifies(signature: str | None, keys: Iterable[bytes], kind: str, artifact: bytes) -> bool:
    """Whether ``signature`` is a valid signature of ``artifact`` under one of ``keys``.

    Constant-time in the digest; a missing or malformed signature never verifies.
    """
    if not signature:
        return False
    return any(hmac.compare_digest(signature, sign_artifact(k, kind, artifact)) for k in keys)


def signed_key_id(signature: str | None) -> str | None:
    """The key id a signature names, or None for none or a malformed one."""
    parts = (signature or "").split(":")
    return parts[1] if len(parts) == 3 and parts[0] == SCHEME else None
