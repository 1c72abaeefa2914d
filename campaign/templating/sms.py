"""SMS length: GSM-7 or UCS-2, characters and segments."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsInfo:
    """Encoding, length in that encoding's units, and segments of one SMS text."""

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int
    non_gsm: str


def sms_segments(text: str) -> SmsInfo:
    """How an SMS text is encoded and into how many segments it splits.

    GSM-7 when every character is in the GSM 03.38 basic or extension table (extension
    characters count twice): 160 units in one segment, 153 per segment when
    concatenated. Otherwise UCS-2, counted in UTF-16 code units: 70, then 67.
    """
    non_gsm = "".join(
        sorted({ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION})
    )
    if not non_gsm:
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi = 160, 153
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
        encoding = "UCS-2"
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = math.ceil(units / multi)
    return SmsInfo(encoding, units, segments, non_gsm)
