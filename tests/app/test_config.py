"""Configuration from the environment: defaults for development, one clear failure in production."""

import json

import pytest
from cryptography.fernet import Fernet

from app.config import ConfigError, finish_config, load_config


def test_development_defaults_need_no_settings(tmp_path):
    config = load_config(str(tmp_path), environ={})
    finish_config(config, str(tmp_path))
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'qbo-actions.db'}"
    assert config["PUBLIC_URL"] == "http://localhost:5000"
    assert config["QBO_API_BASE_URL"] == "https://sandbox-quickbooks.api.intuit.com/v3"
    assert config["HUBSPOT_API_VERSION"] == "2026-03"
    stored = json.loads((tmp_path / "development-keys.json").read_text())
    assert config["TOKEN_ENCRYPTION_KEYS"] == [stored["TOKEN_ENCRYPTION_KEY"]]


def test_development_keys_are_generated_once(tmp_path):
    first = load_config(str(tmp_path), environ={})
    finish_config(first, str(tmp_path))
    second = load_config(str(tmp_path), environ={})
    finish_config(second, str(tmp_path))
    assert first["SECRET_KEY"] == second["SECRET_KEY"]


def test_production_lists_every_missing_setting_at_once(tmp_path):
    config = load_config(str(tmp_path), environ={"APP_ENV": "production", "QBO_CLIENT_ID": "x"})
    with pytest.raises(ConfigError) as error:
        finish_config(config, str(tmp_path))
    message = str(error.value)
    for name in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY", "HUBSPOT_CLIENT_SECRET", "QBO_CLIENT_SECRET"):
        assert name in message
    assert "QBO_CLIENT_ID" not in message
    assert not (tmp_path / "development-keys.json").exists()


def test_production_with_everything_set_starts(tmp_path):
    environ = {
        "APP_ENV": "production",
        "SECRET_KEY": "s",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgres://u@h/db",
        "PUBLIC_URL": "https://q.example/",
        "HUBSPOT_APP_ID": "1",
        "HUBSPOT_CLIENT_ID": "c",
        "HUBSPOT_CLIENT_SECRET": "old,new",
        "QBO_CLIENT_ID": "q",
        "QBO_CLIENT_SECRET": "qs",
        "QBO_ENVIRONMENT": "production",
    }
    config = load_config(str(tmp_path), environ=environ)
    finish_config(config, str(tmp_path))
    assert config["DATABASE_URL"] == "postgresql+psycopg://u@h/db"
    assert config["PUBLIC_URL"] == "https://q.example"
    assert config["HUBSPOT_CLIENT_SECRETS"] == ["old", "new"]
    assert config["QBO_API_BASE_URL"] == "https://quickbooks.api.intuit.com/v3"


def test_rotated_encryption_keys_decrypt_old_tokens(tmp_path):
    from app.storage import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.configure([old])
    stored = crypto.encrypt("refresh-token")
    crypto.configure([new, old])
    assert crypto.decrypt(stored) == "refresh-token"
    crypto.configure([new])
    with pytest.raises(crypto.TokenDecryptionError):
        crypto.decrypt(stored)


def test_a_bad_encryption_key_is_refused(tmp_path):
    config = load_config(str(tmp_path), environ={"SECRET_KEY": "s", "TOKEN_ENCRYPTION_KEY": "not-a-key"})
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY"):
        finish_config(config, str(tmp_path))


def test_processes_starting_together_share_one_set_of_development_keys(tmp_path):
    import threading

    seen = []

    def start():
        config = load_config(str(tmp_path), environ={})
        finish_config(config, str(tmp_path))
        seen.append((config["SECRET_KEY"], config["TOKEN_ENCRYPTION_KEY"]))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1
    assert oct((tmp_path / "development-keys.json").stat().st_mode & 0o777) == "0o600"
