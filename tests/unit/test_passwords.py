"""Password hashing: a deployment hashes at bcrypt cost 12; the cost is a range-checked setting."""

import pytest

from shared.auth import passwords
from shared.config import Settings
from shared.errors import ConfigError


def test_production_hashes_passwords_at_bcrypt_cost_12():
    settings = Settings.from_env({})  # nothing set: the values a deployment runs with
    assert settings.bcrypt_cost == 12
    hashed = passwords.hash_password("Sandi1234", settings.bcrypt_cost)
    assert hashed.startswith("$2b$12$")
    assert passwords.verify_password("Sandi1234", hashed)


def test_bcrypt_cost_comes_from_the_environment_within_bcrypts_range():
    assert Settings.from_env({"BCRYPT_COST": "4"}).bcrypt_cost == 4
    assert passwords.hash_password("Sandi1234", 4).startswith("$2b$04$")
    for outside in ("3", "32", "twelve"):
        with pytest.raises(ConfigError, match="BCRYPT_COST"):
            Settings.from_env({"BCRYPT_COST": outside})
