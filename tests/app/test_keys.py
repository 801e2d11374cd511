"""`flask keys rotate`: every stored token re-encrypted under the newest TOKEN_ENCRYPTION_KEY, idempotently."""

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.storage import crypto
from app.storage.connections import get_connection, get_portal
from app.storage.models import Base
from tests.conftest import PORTAL_ID, REALM_ID

TOKEN_TABLES = ("portals", "quickbooks_connections")


def stored_ciphertexts(app) -> list[str]:
    """The token columns as the database holds them."""
    with app.app_context():
        values = []
        for table_name in TOKEN_TABLES:
            rows = db.session.execute(text(f"SELECT access_token, refresh_token FROM {table_name}")).all()
            values += [value for row in rows for value in row if value is not None]
        return values


def plain_tokens(app) -> list[str]:
    with app.app_context():
        db.session.expire_all()
        portal = get_portal(db.session, PORTAL_ID)
        connection = get_connection(db.session, portal_id=PORTAL_ID, realm_id=REALM_ID)
        return [portal.access_token, portal.refresh_token, connection.access_token, connection.refresh_token]


@pytest.fixture
def app_with_keys(app_config, tmp_path):
    """Another process of the same server (same database) started with other TOKEN_ENCRYPTION_KEY values."""
    started = []

    def start(*keys: str):
        other = create_app({**app_config, "TOKEN_ENCRYPTION_KEY": ",".join(keys)})
        started.append(other)
        return other

    yield start
    for other in started:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_rotate_reencrypts_every_token_under_the_newest_key(app, app_config, portal, connection, app_with_keys):
    old = app_config["TOKEN_ENCRYPTION_KEY"]  # the tokens were written under it alone
    new = Fernet.generate_key().decode()
    tokens = plain_tokens(app)
    assert all(tokens) and len(stored_ciphertexts(app)) == 4

    rotating = app_with_keys(new, old)
    assert plain_tokens(rotating) == tokens  # readable before rotation, through the old key
    result = rotating.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "portals: 2 re-encrypted under the newest key, 0 already were" in result.output
    assert "quickbooks_connections: 2 re-encrypted under the newest key, 0 already were" in result.output

    for ciphertext in stored_ciphertexts(rotating):
        assert Fernet(new).decrypt(ciphertext.encode())
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(ciphertext.encode())
    assert plain_tokens(rotating) == tokens
    assert plain_tokens(app_with_keys(new)) == tokens  # the old key can go

    before = stored_ciphertexts(rotating)
    again = app_with_keys(new, old).test_cli_runner().invoke(args=["keys", "rotate"])
    assert again.exit_code == 0, again.output
    assert "portals: 0 re-encrypted under the newest key, 2 already were" in again.output
    assert stored_ciphertexts(rotating) == before  # nothing rewritten


def test_rotate_leaves_tokens_it_cannot_read_and_says_so(app, app_config, portal, connection, app_with_keys):
    stranger = app_with_keys(Fernet.generate_key().decode())  # the old key was dropped too early
    before = stored_ciphertexts(app)
    result = stranger.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code != 0
    assert "portals: 0 re-encrypted under the newest key, 0 already were, 2 unreadable" in result.output
    assert "add back the key they were written with" in result.output
    assert stored_ciphertexts(app) == before


def test_a_token_refreshed_while_rotating_is_not_overwritten(app, app_config, portal, connection, monkeypatch):
    new = Fernet.generate_key().decode()
    crypto.configure([new, app_config["TOKEN_ENCRYPTION_KEY"]])
    real_rotate = crypto.rotate

    def rotate_while_a_refresh_lands(ciphertext):
        with app.app_context():  # another worker refreshes the portal's token between our read and write
            db.session.execute(text("UPDATE portals SET access_token = :t"), {"t": crypto.encrypt("refreshed")})
            db.session.commit()
        return real_rotate(ciphertext)

    monkeypatch.setattr(crypto, "rotate", rotate_while_a_refresh_lands)
    with app.app_context():
        counts = crypto.rotate_stored_tokens(db.session, Base.metadata)
    assert counts["portals"].changed == 2 and counts["portals"].rotated == 0
    assert plain_tokens(app)[0] == "refreshed"
