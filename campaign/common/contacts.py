"""Addresses as they are matched: phone numbers in E.164, emails trimmed and lower-cased.

Phones arrive in every shape (``+86 100 9934 7647``, ``+86-100-8397-3564``,
``008610094904445``, ``(202) 555-0142``); a provider's inbound webhook names the
sender in E.164. So every phone is normalized with ``phonenumbers`` on import and at
every lookup: international forms parse as they are, national ones in the region of
the user's locale (``zh-CN`` → CN) or the shop's ``[shop] phone_region``. A number
that does not parse is kept as given (trimmed): it still matches itself.

Suppressions store the SHA-256 of the normalized address (:func:`address_hash`), so a
forgotten person stays suppressed without their address. Rows made before phones were
normalized hash the phone as it was stored; :func:`address_hashes` gives both forms so
those keep matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import phonenumbers

# Where a locale names no country: the country its language is mostly written in.
_LANGUAGE_REGION = {"zh": "CN", "en": "US", "ja": "JP", "ko": "KR", "de": "DE", "fr": "FR"}


def region_of_locale(locale: object) -> str | None:
    """The ISO 3166 country of a locale (``zh-CN``, ``en_GB``, ``zh-Hans-CN`` → CN, GB,
    CN; a bare language such as ``zh`` → its usual country), or None (also for a
    missing value: None, or NaN from a data frame)."""
    if not isinstance(locale, str) or not locale:
        return None
    parts = locale.replace("_", "-").split("-")
    for part in reversed(parts[1:]):
        if len(part) == 2 and part.isalpha():
            return part.upper()
    return _LANGUAGE_REGION.get(parts[0].lower())


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """``raw`` in E.164 (``+8610099347647``), parsed in ``region`` when it is national;
    the trimmed input when it does not parse; None for None or blank."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(number):
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def looks_like_phone(text: str) -> bool:
    """Whether ``text`` reads as a phone number rather than an email address."""
    stripped = text.strip()
    return "@" not in stripped and sum(ch.isdigit() for ch in stripped) >= 5


def normalize_address(address: str, region: str | None = None) -> str:
    """An email trimmed and lower-cased, a phone in E.164 (see :func:`normalize_phone`)."""
    if looks_like_phone(address):
        return normalize_phone(address, region) or address.strip()
    return address.strip().lower()


def address_hash(address: str) -> str:
    """SHA-256 hex of an address trimmed and lower-cased, as ``suppressions`` stores it.

    Callers pass the normalized form (:func:`normalize_address`); hashing is exact.
    """
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def address_hashes(addresses: Iterable[object], region: str | None = None) -> set[str]:
    """Every hash under which a suppression of these addresses may be stored: each as
    given (rows from before normalization) and normalized."""
    out: set[str] = set()
    for address in addresses:
        if isinstance(address, str) and address.strip():
            out.add(address_hash(address))
            out.add(address_hash(normalize_address(address, region)))
    return out


def mask_address(address: object) -> str:
    """An address for people who may not see it: enough to tell two apart, not to write.

    ``alice@example.com`` → ``a••••@e••••.com``, ``+8613812345678`` → ``+86•••••••5678``
    (the country code and last four digits). Empty for no address.
    """
    if not isinstance(address, str) or not address.strip():
        return ""
    text = address.strip()
    if "@" in text:
        local, _, domain = text.rpartition("@")
        name, dot, top = domain.rpartition(".")
        shown_domain = f"{name[:1]}••••{dot}{top}" if dot else f"{domain[:1]}••••"
        return f"{local[:1]}••••@{shown_domain}"
    digits = [ch for ch in text if ch.isdigit()]
    if len(digits) <= 4:
        return "••••"
    head = "+" + "".join(digits[:2]) if text.startswith("+") else ""
    hidden = len(digits) - len(head.lstrip("+")) - 4
    return f"{head}{'•' * max(hidden, 1)}{''.join(digits[-4:])}"
