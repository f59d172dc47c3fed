"""Pure pieces of auth: token hashing and child derivation, OTP codes, Apple nonce, cookie flags."""

from shared.auth import cookies, otp, refresh, tokens
from shared.auth.identity import nonce_hash


def test_refresh_child_depends_on_parent_and_secret():
    a, b = refresh._child_of("s1", "parent"), refresh._child_of("s1", "parent")
    assert a == b and a != refresh._child_of("s2", "parent") and a != refresh._child_of("s1", "other")
    assert len(refresh.token_hash(a)) == 32


def test_otp_codes_are_six_digits():
    codes = {otp.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


def test_key_id_names_a_secret_without_revealing_it():
    kid = tokens.key_id("secret-one")
    assert kid == tokens.key_id("secret-one") != tokens.key_id("secret-two") and "secret" not in kid


def test_apple_nonce_is_hex_sha256_of_the_raw_nonce():
    assert nonce_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_cleared_cookie_keeps_the_same_scope():
    cleared = cookies.cleared_cookie()
    assert cleared["max_age"] == 0 and cleared["path"] == "/internal/auth" and cleared["samesite"] == "Strict"
    assert cleared["httponly"] and cleared["secure"]
