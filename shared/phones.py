"""Phone numbers: E.164 normalization with Indonesia as the default region.

0812…, 62812…, +62812… and "+62 812-…" are one number (docs/auth.md).
"""

from __future__ import annotations

import phonenumbers

from shared.errors import ValidationFailed

DEFAULT_REGION = "ID"


def normalize(raw: str, field: str = "phone") -> str:
    """Return the E.164 form of `raw`, or raise ValidationFailed naming `field`."""
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    # "62812…" without a plus is an Indonesian number written with its country code.
    if not text.startswith("+") and digits.startswith("62") and len(digits) >= 10:
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationFailed(field, "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(field, "is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region(e164: str) -> str:
    """The ISO region code of a normalized number ("ID"), or "ZZ" when it names none."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "ZZ"
    except phonenumbers.NumberParseException:
        return "ZZ"


def calling_code(e164: str) -> str:
    """The country calling code of an E.164 number ("62" for +62812…)."""
    return str(phonenumbers.parse(e164).country_code)
