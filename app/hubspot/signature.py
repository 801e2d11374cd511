"""Check that a request really comes from HubSpot; `sign_request` builds the same headers for tests.

v3 (HMAC over method, URI, raw body and timestamp) decides whenever its header is present; otherwise
v2 (SHA-256 of secret, method, URI and raw body). Every failure raises `InvalidSignature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TOLERANCE = 300  # seconds; v3 timestamps older (or further ahead) than this are rejected

V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
V2_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"

# The only escapes HubSpot decodes before signing v3: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B.
_V3_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


class InvalidSignature(Exception):
    """reason: a short sentence safe to show the caller (never the secret or the expected signature)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    method: str
    uri: str  # full public URI, see public_uri()
    body: bytes  # raw body exactly as received
    headers: Mapping[str, str]


def public_uri(public_url: str, path: str, query_string: str = "") -> str:
    uri = public_url.rstrip("/") + "/" + path.lstrip("/")
    return f"{uri}?{query_string}" if query_string else uri


def verify_request(
    request: SignedRequest, *, secrets: Sequence[str], tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> str:
    if isinstance(secrets, str) or not secrets or not all(secrets):
        raise ValueError("secrets must be a non-empty sequence of non-empty client secrets")
    if (signature := _header(request.headers, V3_HEADER)) is not None:
        _verify_v3(request, signature, secrets, tolerance, time.time() if now is None else now)
        return "v3"
    if (signature := _header(request.headers, V2_HEADER)) is not None:
        _verify_v2(request, signature, secrets)
        return "v2"
    raise InvalidSignature(f"missing {V3_HEADER} or {V2_HEADER} header")


def sign_request(
    method: str, uri: str, body: bytes, *, secret: str, version: str = "v3", timestamp_ms: int | None = None
) -> dict[str, str]:
    if version == "v2":
        return {V2_HEADER: _v2_signature(secret, method, uri, body), VERSION_HEADER: "v2"}
    if version == "v3":
        timestamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        return {V3_HEADER: _v3_signature(secret, method, uri, body, timestamp), TIMESTAMP_HEADER: timestamp}
    raise ValueError(f"cannot sign with version {version!r}: use 'v2' or 'v3'")


def _verify_v3(request: SignedRequest, signature: str, secrets: Sequence[str], tolerance: int, now: float) -> None:
    timestamp = _header(request.headers, TIMESTAMP_HEADER)
    if timestamp is None:
        raise InvalidSignature(f"missing {TIMESTAMP_HEADER} header (required with {V3_HEADER})")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not an integer number of milliseconds")
    expected = [_v3_signature(s, request.method, request.uri, request.body, timestamp) for s in secrets]
    if not _matches_any(signature, expected):
        raise InvalidSignature(f"{V3_HEADER} does not match the request")
    age = now - int(timestamp) / 1000
    if age > tolerance:
        raise InvalidSignature(f"request timestamp is too old (more than {tolerance} seconds)")
    if age < -tolerance:
        raise InvalidSignature(f"request timestamp is too far in the future (more than {tolerance} seconds ahead)")


def _verify_v2(request: SignedRequest, signature: str, secrets: Sequence[str]) -> None:
    version = _header(request.headers, VERSION_HEADER) or "v2"
    if version.lower() == "v1":
        raise InvalidSignature("signature version v1 is not accepted: custom workflow actions are signed with v2 or v3")
    if version.lower() != "v2":
        raise InvalidSignature(f"unsupported {VERSION_HEADER} (expected v2, or {V3_HEADER})")
    expected = [_v2_signature(s, request.method, request.uri, request.body) for s in secrets]
    if not _matches_any(signature, expected):
        raise InvalidSignature(f"{V2_HEADER} does not match the request")


def _v2_signature(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256((secret + method + uri).encode("utf-8") + body).hexdigest()


def _v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    decoded_uri = _V3_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), uri)
    message = (method + decoded_uri).encode("utf-8") + body + timestamp.encode("utf-8")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def _matches_any(signature: str, expected: Sequence[str]) -> bool:
    received = signature.encode("utf-8", "replace")
    # No short-circuit: every secret is compared, each in constant time.
    return sum(hmac.compare_digest(received, e.encode("ascii")) for e in expected) > 0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for Flask's headers and for plain dicts."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value
