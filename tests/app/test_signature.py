import random

import pytest
from hubspot.utils.signature import Signature
from werkzeug.datastructures import Headers

from app.hubspot.signature import (
    InvalidSignature,
    SignedRequest,
    public_uri,
    sign_request,
    verify_request,
)

SECRET = "test-client-secret"
URI = "https://qbo.example.com/hubspot/actions/create_invoice?portalId=1"
BODY = b'{"callbackId":"ap-1-2-3-0","object":{"objectId":904}}'
NOW = 1_700_000_000.0
TS = int(NOW * 1000)


def signed(version="v3", *, secret=SECRET, uri=URI, body=BODY, ts=TS):
    return sign_request("POST", uri, body, secret=secret, version=version, timestamp_ms=ts)


def verify(headers, *, uri=URI, body=BODY, method="POST", secrets=(SECRET,), now=NOW):
    return verify_request(SignedRequest(method, uri, body, headers), secrets=secrets, now=now)


# --- HubSpot's published vectors (reference sheet §3) --------------------------------------------

VECTOR_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
VECTOR_URI = "https://www.example.com/webhook_uri"


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("GET", b"", "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"),
        (
            "POST",
            b'{"example_field":"example_value"}',
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        ),
    ],
)
def test_v2_published_vectors(method, body, expected):
    headers = sign_request(method, VECTOR_URI, body, secret=VECTOR_SECRET, version="v2")
    assert headers == {"X-HubSpot-Signature": expected, "X-HubSpot-Signature-Version": "v2"}
    request = SignedRequest(method, VECTOR_URI, body, {"X-HubSpot-Signature": expected})
    assert verify_request(request, secrets=[VECTOR_SECRET]) == "v2"


def test_v3_published_vector():
    body, ts = b"{'example_field':'example_value'}", 1693657560000
    expected = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    headers = sign_request("POST", VECTOR_URI, body, secret=VECTOR_SECRET, timestamp_ms=ts)
    assert headers == {"X-HubSpot-Signature-v3": expected, "X-HubSpot-Request-Timestamp": str(ts)}
    request = SignedRequest("POST", VECTOR_URI, body, headers)
    assert verify_request(request, secrets=[VECTOR_SECRET], now=ts / 1000 + 10) == "v3"


# --- cross-check against hubspot-api-client's implementation --------------------------------------


def random_cases(count=8, seed=20240601):
    rng = random.Random(seed)
    words = ["invoice", "déjà", "naïve", "😀", "a=b&c=d", "%20", "x y", '"q"', "'s'"]
    for _ in range(count):
        method = rng.choice(["GET", "POST", "PUT"])
        query = "&".join(f"k{i}={rng.randint(0, 999)}" for i in range(rng.randint(0, 3)))
        uri = public_uri(
            rng.choice(["https://qbo.example.com", "http://localhost:8080/base/"]),
            f"/hubspot/actions/{rng.choice(['create_invoice', 'create_expense'])}",
            query,
        )
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 6)))
        yield method, uri, text, rng.randint(1_600_000_000_000, 1_800_000_000_000)


@pytest.mark.parametrize(("method", "uri", "text", "ts"), list(random_cases()))
def test_signatures_match_hubspot_sdk(method, uri, text, ts):
    v2 = sign_request(method, uri, text.encode(), secret=SECRET, version="v2")
    v3 = sign_request(method, uri, text.encode(), secret=SECRET, version="v3", timestamp_ms=ts)
    assert v2["X-HubSpot-Signature"] == Signature.get_signature(SECRET, text, "v2", uri, method)
    assert v3["X-HubSpot-Signature-v3"] == Signature.get_signature(SECRET, text, "v3", uri, method, str(ts))


# --- valid requests --------------------------------------------------------------------------------


def test_valid_v3_and_v2():
    assert verify(signed("v3")) == "v3"
    assert verify(signed("v2")) == "v2"
    assert verify({"X-HubSpot-Signature": signed("v2")["X-HubSpot-Signature"]}) == "v2"  # version header absent


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_any_of_several_secrets_passes(version):
    assert verify(signed(version), secrets=["old-secret", SECRET]) == version


@pytest.mark.parametrize("offset_ms", [-300_000, 300_000])
def test_timestamp_at_the_tolerance_edge_passes(offset_ms):
    assert verify(signed(ts=TS + offset_ms)) == "v3"


def test_header_lookup_is_case_insensitive():
    lowered = {k.lower(): v for k, v in signed("v3").items()}
    assert verify(lowered) == "v3"
    assert verify({k.upper(): v for k, v in signed("v2").items()}) == "v2"
    assert verify(Headers(lowered)) == "v3"  # what Flask hands the caller


def test_v3_decodes_only_hubspots_escape_set():
    encoded = "https://x.test/a%3Ab%2fc?next=%2Fhome%20page&t=%26"
    decoded = "https://x.test/a:b/c?next=/home%20page&t=%26"
    assert signed(uri=encoded) == signed(uri=decoded)
    assert signed(uri=encoded) != signed(uri=decoded.replace("%20", " "))
    assert verify(signed(uri=decoded), uri=encoded) == "v3"
    assert signed("v2", uri=encoded) != signed("v2", uri=decoded)  # v2 signs the URI as is


def test_non_utf8_body_is_signed_as_bytes():
    body = b"\xff\xfe\x00binary"
    assert verify(signed(body=body), body=body) == "v3"
    assert verify(signed("v2", body=body), body=body) == "v2"
    with pytest.raises(InvalidSignature):
        verify(signed(body=body), body=body + b"\x00")


# --- failures ---------------------------------------------------------------------------------------


def without(headers, name):
    return {k: v for k, v in headers.items() if k != name}


FAILURES = [
    pytest.param(signed(), URI, BODY + b" ", "X-HubSpot-Signature-v3 does not match", id="tampered-body-v3"),
    pytest.param(signed("v2"), URI, BODY + b" ", "X-HubSpot-Signature does not match", id="tampered-body-v2"),
    pytest.param(signed(), URI.replace("portalId=1", "portalId=2"), BODY, "does not match", id="tampered-query"),
    pytest.param(signed(), URI.replace("create_invoice", "create_expense"), BODY, "does not match", id="tampered-path"),
    pytest.param(signed(secret="wrong"), URI, BODY, "does not match", id="wrong-secret-v3"),
    pytest.param(signed("v2", secret="wrong"), URI, BODY, "does not match", id="wrong-secret-v2"),
    pytest.param(signed(ts=TS - 301_000), URI, BODY, "too old", id="stale-timestamp"),
    pytest.param(signed(ts=TS + 301_000), URI, BODY, "in the future", id="future-timestamp"),
    pytest.param(
        without(signed(), "X-HubSpot-Request-Timestamp"),
        URI,
        BODY,
        "missing X-HubSpot-Request-Timestamp",
        id="missing-timestamp",
    ),
    pytest.param(
        {**signed(), "X-HubSpot-Request-Timestamp": "soon"}, URI, BODY, "not an integer", id="non-numeric-timestamp"
    ),
    pytest.param(
        {**signed(), "X-HubSpot-Request-Timestamp": "1.7e12"}, URI, BODY, "not an integer", id="float-timestamp"
    ),
    pytest.param(
        {**signed("v2"), "X-HubSpot-Signature-v3": "bad", "X-HubSpot-Request-Timestamp": str(TS)},
        URI,
        BODY,
        "X-HubSpot-Signature-v3 does not match",
        id="bad-v3-beside-good-v2",
    ),
    pytest.param({**signed("v2"), "X-HubSpot-Signature-Version": "v1"}, URI, BODY, "v1 is not accepted", id="v1"),
    pytest.param({**signed("v2"), "X-HubSpot-Signature-Version": "v9"}, URI, BODY, "unsupported", id="unknown-version"),
    pytest.param(signed(ts=TS - 301_000), URI, BODY + b" ", "does not match", id="signature-checked-before-age"),
    pytest.param({}, URI, BODY, "missing X-HubSpot-Signature-v3 or X-HubSpot-Signature header", id="no-headers"),
]


@pytest.mark.parametrize(("headers", "uri", "body", "reason"), FAILURES)
def test_rejected(headers, uri, body, reason):
    with pytest.raises(InvalidSignature) as excinfo:
        verify(headers, uri=uri, body=body)
    assert reason in excinfo.value.reason
    assert str(excinfo.value) == excinfo.value.reason
    expected = signed(uri=uri, body=body)["X-HubSpot-Signature-v3"]
    assert SECRET not in excinfo.value.reason and expected not in excinfo.value.reason


@pytest.mark.parametrize("secrets", ["a-secret-as-str", [], [""], [SECRET, ""]])
def test_misconfigured_secrets_are_a_programming_error(secrets):
    with pytest.raises(ValueError):
        verify(signed(), secrets=secrets)


# --- public_uri --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "path", "query", "expected"),
    [
        (
            "https://qbo.example.com",
            "/hubspot/actions/create_invoice",
            "",
            "https://qbo.example.com/hubspot/actions/create_invoice",
        ),
        (
            "https://qbo.example.com/",
            "/hubspot/actions/create_invoice",
            "a=1&b=2",
            "https://qbo.example.com/hubspot/actions/create_invoice?a=1&b=2",
        ),
        ("https://x.test/base/", "/hubspot/actions/x", "", "https://x.test/base/hubspot/actions/x"),
        (
            "http://localhost:5000/base",
            "hubspot/actions/x",
            "q=%20",
            "http://localhost:5000/base/hubspot/actions/x?q=%20",
        ),
    ],
)
def test_public_uri(public_url, path, query, expected):
    assert public_uri(public_url, path, query) == expected
