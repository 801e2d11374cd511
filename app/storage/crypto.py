"""OAuth tokens are encrypted at rest with MultiFernet: the first key encrypts, every key decrypts (rotation).

`rotate_stored_tokens` (`flask keys rotate`) re-encrypts every stored token under the first key, so the older
keys can then be dropped from TOKEN_ENCRYPTION_KEY.
"""

from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import and_, column, select, table, update
from sqlalchemy.types import Text, TypeDecorator

_fernet: MultiFernet | None = None
_newest: Fernet | None = None


class TokenDecryptionError(RuntimeError):
    """A stored token was encrypted with a key that is no longer in TOKEN_ENCRYPTION_KEY."""


def configure(keys: list[str]) -> None:
    global _fernet, _newest
    fernets = [Fernet(key) for key in keys]
    _fernet, _newest = MultiFernet(fernets), fernets[0]


def encrypt(value: str) -> str:
    return _require().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    try:
        return _require().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise TokenDecryptionError(
            "a stored token cannot be decrypted: was TOKEN_ENCRYPTION_KEY changed "
            "without keeping the old key after the new one?"
        ) from exc


def _require() -> MultiFernet:
    if _fernet is None:
        raise RuntimeError("token encryption is not configured: call app.storage.crypto.configure(keys)")
    return _fernet


class EncryptedText(TypeDecorator):
    """A text column whose value is Fernet-encrypted in the database and plain in Python."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value)


# -- rotation ---------------------------------------------------------------------------------------------


@dataclass
class RotationCount:
    rotated: int = 0  # re-encrypted under the newest key
    current: int = 0  # already under the newest key: left as they were
    changed: int = 0  # rewritten by a token refresh while rotating (the refresh used the newest key)
    unreadable: int = 0  # under no key of TOKEN_ENCRYPTION_KEY: left as they were


def is_current(ciphertext: str) -> bool:
    """Whether a stored value is encrypted under the newest key."""
    _require()
    try:
        _newest.decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def rotate(ciphertext: str) -> str:
    """The same plaintext, encrypted under the newest key (InvalidToken if no key reads it)."""
    return _require().rotate(ciphertext.encode()).decode()


def encrypted_columns(metadata) -> dict[str, list[str]]:
    """Every table holding EncryptedText columns, and their names."""
    found = {}
    for name, model_table in metadata.tables.items():
        names = [c.name for c in model_table.columns if isinstance(c.type, EncryptedText)]
        if names:
            found[name] = names
    return found


def rotate_stored_tokens(session, metadata) -> dict[str, RotationCount]:
    """Re-encrypt every EncryptedText value under the newest key, one row per transaction; idempotent.

    The stored text is read and compared as plain Text (never decrypted into the ORM), and each row is
    written only if it still holds what was read: a token refreshed meanwhile is never overwritten.
    """
    counts = {}
    for name, names in encrypted_columns(metadata).items():
        keys = [c.name for c in metadata.tables[name].primary_key.columns]
        raw = table(name, *(column(n) for n in keys), *(column(n, Text) for n in names))
        count = counts[name] = RotationCount()
        rows = session.execute(select(raw)).mappings().all()
        session.rollback()  # end the read: every write below is its own short transaction
        for row in rows:
            changes = {}
            for n in names:
                value = row[n]
                if value is None:
                    continue
                if is_current(value):
                    count.current += 1
                    continue
                try:
                    changes[n] = rotate(value)
                except InvalidToken:
                    count.unreadable += 1
            if not changes:
                continue
            unchanged = and_(*(raw.c[k] == row[k] for k in keys), *(raw.c[n] == row[n] for n in changes))
            written = session.execute(update(raw).where(unchanged).values(changes)).rowcount
            session.commit()
            if written:
                count.rotated += len(changes)
            else:
                count.changed += len(changes)
    return counts
