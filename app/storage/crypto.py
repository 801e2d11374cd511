"""OAuth tokens are encrypted at rest with MultiFernet: the first key encrypts, every key decrypts (rotation)."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.types import Text, TypeDecorator

_fernet: MultiFernet | None = None


class TokenDecryptionError(RuntimeError):
    """A stored token was encrypted with a key that is no longer in TOKEN_ENCRYPTION_KEY."""


def configure(keys: list[str]) -> None:
    global _fernet
    _fernet = MultiFernet([Fernet(key) for key in keys])


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
