"""A chat body refuses every control character but newline and tab: C0, DEL and C1 alike."""

from __future__ import annotations

import pytest

from shared.chat.service import clean_body
from shared.errors import ValidationFailed


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x7f", "\x80", "\x85", "\x9b", "\x9f"])
def test_a_body_with_a_control_character_is_refused(control: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        clean_body(f"hello{control}world")
    assert err.value.extra["field"] == "body"


def test_newline_and_tab_are_kept() -> None:
    assert clean_body(" a\r\nb\tc ") == "a\nb\tc"
