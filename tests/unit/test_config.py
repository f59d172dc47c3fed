"""Configuration parsing and fail-fast behaviour."""

import pytest

from shared import config
from shared.config import Settings
from shared.db import parse_database_url
from shared.errors import ConfigError

BASE = {"DATABASE_URL": "postgresql://u:p@localhost/db", "VALKEY_URL": "redis://localhost:6379/0"}


def test_missing_required_secret_fails_naming_the_variable():
    with pytest.raises(ConfigError, match="AUTH_JWT_SECRET"):
        Settings.from_env(BASE, required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))


def test_missing_database_names_both_accepted_variables():
    with pytest.raises(ConfigError, match="DATABASE_URL or CLOUD_SQL_INSTANCE"):
        Settings.from_env({"VALKEY_URL": "redis://x"}, required=(config.DATABASE,))


def test_cloud_sql_instance_satisfies_the_database_requirement():
    settings = Settings.from_env(
        {"CLOUD_SQL_INSTANCE": "p:r:i", "VALKEY_URL": "redis://x"}, required=(config.DATABASE, config.VALKEY)
    )
    assert settings.cloud_sql_instance == "p:r:i"


def test_empty_value_counts_as_missing():
    with pytest.raises(ConfigError, match="VALKEY_URL"):
        Settings.from_env({**BASE, "VALKEY_URL": ""}, required=(config.VALKEY,))


def test_malformed_integer_is_rejected_with_its_name():
    with pytest.raises(ConfigError, match="ACCESS_TOKEN_TTL_SECONDS"):
        Settings.from_env({**BASE, "ACCESS_TOKEN_TTL_SECONDS": "an hour"})


def test_out_of_range_fraction_is_rejected():
    with pytest.raises(ConfigError, match="AUTO_OFFLINE_MAX_FRACTION"):
        Settings.from_env({**BASE, "AUTO_OFFLINE_MAX_FRACTION": "1.5"})


def test_sweep_auth_none_requires_test_endpoints():
    with pytest.raises(ConfigError, match="SWEEP_AUTH=none"):
        Settings.from_env({**BASE, "SWEEP_AUTH": "none"})
    assert Settings.from_env({**BASE, "SWEEP_AUTH": "none", "ENABLE_TEST_ENDPOINTS": "1"}).sweep_auth == "none"


def test_prefix_with_braces_is_rejected_because_it_would_move_the_hash_tag():
    with pytest.raises(ConfigError, match="VALKEY_PREFIX"):
        Settings.from_env({**BASE, "VALKEY_PREFIX": "{x}:"})


def test_defaults_follow_the_spec():
    s = Settings.from_env(BASE)
    assert (s.access_token_ttl_seconds, s.refresh_token_ttl_days, s.refresh_reuse_grace_seconds) == (3600, 30, 10)
    assert (s.mitra_auto_offline_sweep_seconds, s.heartbeat_mirror_interval_seconds) == (30, 60)
    assert (s.availability_reseed_sweep_seconds, s.session_expiry_sweep_seconds) == (300, 30)
    assert (s.pairing_blast_size, s.mitra_heartbeat_stale_seconds, s.trusted_proxy_hops) == (25, 90, 1)
    assert (s.auto_offline_max_fraction, s.auto_offline_breaker_min) == (0.5, 20)


def test_the_repr_of_settings_hides_secrets():
    s = Settings.from_env({**BASE, "AUTH_JWT_SECRET": "super-secret-value", "DB_PASSWORD": "Pw12345678"})
    assert "super-secret-value" not in repr(s) and "Pw12345678" not in repr(s)


def test_tcp_database_url_is_parsed():
    p = parse_database_url("postgresql://bestie:s%40cret@db.internal:6543/app?sslmode=require")
    assert (p.user, p.password, p.host, p.port, p.database, p.ssl) == (
        "bestie",
        "s@cret",
        "db.internal",
        6543,
        "app",
        True,
    )


def test_sslmode_disable_never_asks_for_tls_prefer_asks_and_require_requires():
    # pg8000's ssl_context: False sends no SSLRequest, None asks and accepts a refusal, True requires.
    assert parse_database_url("postgresql://u@127.0.0.1:5432/app").ssl_context is False  # loopback: disable
    assert parse_database_url("postgresql://u@db.internal/app?sslmode=disable").ssl_context is False
    assert parse_database_url("postgresql://u@db.internal/app").ssl_context is None  # libpq's default, prefer
    assert parse_database_url("postgresql://u@db.internal/app?sslmode=prefer").ssl_context is None
    assert parse_database_url("postgresql://u@db.internal/app?sslmode=require").ssl_context is True


def test_cloud_sql_unix_socket_url_is_parsed():
    p = parse_database_url("postgresql://user:pass@/bestie?host=/cloudsql/proj:asia-southeast2:main")
    assert p.host is None
    assert p.unix_sock == "/cloudsql/proj:asia-southeast2:main/.s.PGSQL.5432"
    assert (p.user, p.password, p.database) == ("user", "pass", "bestie")


def test_non_postgres_url_is_rejected():
    with pytest.raises(ConfigError):
        parse_database_url("mysql://u@h/db")


@pytest.mark.parametrize("name,value", [("DATABASE_URL", "mysql://u:pw@h/db"), ("VALKEY_URL", "localhost:6379")])
def test_a_url_with_the_wrong_scheme_fails_at_cold_start_without_echoing_it(name, value):
    with pytest.raises(ConfigError, match=name) as err:
        Settings.from_env({**BASE, name: value})
    assert value not in str(err.value)


def test_the_repr_of_settings_shows_no_secret_and_no_database_password():
    settings = Settings(
        database_url="postgresql://app:pg-pass-123@db/bestie",
        valkey_url="rediss://:vk-pass-456@valkey:6379",
        auth_jwt_secret="jwt-secret-789",
        db_password="db-pass-000",
    )
    text = repr(settings)
    assert "postgresql://" not in text
    for secret in ("pg-pass-123", "vk-pass-456", "jwt-secret-789", "db-pass-000"):
        assert secret not in text


def test_otp_country_allow_list_defaults_to_indonesia_and_takes_calling_codes():
    assert Settings.from_env(BASE).otp_allowed_country_codes == ("62",)
    assert Settings.from_env({**BASE, "OTP_ALLOWED_COUNTRY_CODES": "+62, 60"}).otp_allowed_country_codes == ("62", "60")
    for bad in ("ID", "0062", "6212", "６２"):
        with pytest.raises(ConfigError, match="OTP_ALLOWED_COUNTRY_CODES"):
            Settings.from_env({**BASE, "OTP_ALLOWED_COUNTRY_CODES": bad})


def test_the_old_name_of_the_reseed_cadence_is_still_read_with_a_deprecation_line(caplog):
    from shared.config import Settings

    with caplog.at_level("WARNING"):
        settings = Settings.from_env({"VALKEY_ONLINE_MIRROR_SWEEP_SECONDS": "600"})
    assert settings.availability_reseed_sweep_seconds == 600
    assert "VALKEY_ONLINE_MIRROR_SWEEP_SECONDS is deprecated" in caplog.text
    both = Settings.from_env({"VALKEY_ONLINE_MIRROR_SWEEP_SECONDS": "600", "AVAILABILITY_RESEED_SWEEP_SECONDS": "120"})
    assert both.availability_reseed_sweep_seconds == 120  # the new name wins
