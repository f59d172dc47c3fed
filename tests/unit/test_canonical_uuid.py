"""canonical_uuid: the fast path for ids already in canonical form agrees with uuid.UUID on every input."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.validate import canonical_uuid

FORMS = [
    lambda u: str(u),
    lambda u: str(u).upper(),
    lambda u: u.hex,
    lambda u: "{" + str(u) + "}",
    lambda u: "urn:uuid:" + str(u),
]


@given(st.uuids(), st.sampled_from(FORMS))
def test_every_spelling_of_a_uuid_gives_uuid_s_canonical_form(value, spell):
    assert canonical_uuid(spell(value)) == str(value)


def test_a_canonical_id_comes_back_as_the_same_string():
    value = str(uuid.uuid4())
    assert canonical_uuid(value) is value


ONE = "e3e70682-c209-4cac-a29f-6fbed82c07cd"  # fixed: parallel workers must collect the same test ids


@pytest.mark.parametrize("bad", ["", "not-a-uuid", ONE[:-1], ONE + "\n", ONE + "0", "g" * 32])
def test_what_is_not_a_uuid_raises_value_error(bad):
    with pytest.raises(ValueError):
        canonical_uuid(bad)
