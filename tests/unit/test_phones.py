"""Phone normalization: one Indonesian number, many spellings."""

import pytest

from shared.errors import ValidationFailed
from shared.phones import normalize


@pytest.mark.parametrize("raw", ["081234567890", "6281234567890", "+6281234567890", "+62 812-3456-7890"])
def test_indonesian_spellings_normalize_to_one_e164_number(raw):
    assert normalize(raw) == "+6281234567890"


@pytest.mark.parametrize("raw", ["", "abc", "12", "+1 555"])
def test_garbage_is_a_validation_error_naming_the_field(raw):
    with pytest.raises(ValidationFailed) as err:
        normalize(raw)
    assert err.value.extra["field"] == "phone"
