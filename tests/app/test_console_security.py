"""The console's security headers (a policy without script, never framed) and its session cookie."""

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest

from tests.conftest import PORTAL_ID, REALM_ID

POLICY = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "style-src": "'self'",
    "script-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def policy_of(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = [(part.strip() + " ").split(" ", 1) for part in header.split(";") if part.strip()]
    return {name: sources.strip() for name, sources in directives}


def assert_secured(response, *, style_src="'self'"):
    assert policy_of(response) == {**POLICY, "style-src": style_src}, response.headers.get("Content-Security-Policy")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.fixture
def signed_in(client, portal, connection):
    with client.session_transaction() as session:
        session["portal_id"] = PORTAL_ID
    return client


class Inline(HTMLParser):
    """What a policy without script and inline styles would block: script elements, event handler
    attributes, javascript: URLs, style elements and attributes."""

    def __init__(self, text):
        super().__init__()
        self.found = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}")


@pytest.mark.parametrize("path", ["/", "/sync-errors", "/history", "/settings"])
def test_console_pages_carry_the_policy_and_nothing_it_would_block(signed_in, path):
    response = signed_in.get(path)
    assert response.status_code == 200
    assert_secured(response)
    assert Inline(response.text).found == []


def test_signed_out_pages_the_stylesheet_and_redirects_carry_the_headers(client, app):
    assert_secured(client.get("/"))  # the welcome page
    assert_secured(client.get("/console/static/console.css"))
    assert_secured(client.get("/sign-in"))  # a redirect to HubSpot's install


@pytest.mark.parametrize(
    ("path", "status"),
    [("/no-such-page", 404), ("/executions/424242", 404), ("/oauth/hubspot/callback?state=x&code=y", 400)],
)
def test_error_pages_carry_the_headers(signed_in, path, status):
    response = signed_in.get(path, headers={"Accept": "text/html"})
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert_secured(response, style_src=policy_of(response)["style-src"] if path.startswith("/oauth") else "'self'")
    assert policy_of(response)["style-src"].startswith("'self'")


def test_the_oauth_pages_allow_exactly_their_one_inline_style(client, app):
    with client.session_transaction() as session:
        session["hubspot_state"] = "s"
    response = client.get("/oauth/hubspot/callback?state=s&code=not-a-code")  # HubSpot refuses the code
    assert response.status_code == 502 and "HubSpot installation failed" in response.text
    (style,) = re.findall(r'style="([^"]*)"', response.text)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy_of(response)["style-src"] == f"'self' 'unsafe-hashes' 'sha256-{digest}'"
    assert_secured(response, style_src=f"'self' 'unsafe-hashes' 'sha256-{digest}'")


def test_the_disconnect_confirmation_needs_no_script(signed_in):
    page = signed_in.get("/").text
    assert "onsubmit" not in page and "confirm(" not in page
    details = page[page.index("<details") : page.index("</details>")]
    assert "<summary" in details and "Disconnect Sandbox Company?" in details
    assert f'action="/connections/{REALM_ID}/disconnect"' in details


def test_machine_endpoints_keep_their_json(client, app):
    response = client.get("/healthz")
    assert response.mimetype == "application/json"
    assert "Content-Security-Policy" not in response.headers


# -- the session cookie ----------------------------------------------------------------------------------


@pytest.fixture
def public_url(request, monkeypatch):
    """Parametrized: the app as deployed, PUBLIC_URL in the environment and SESSION_COOKIE_SECURE left to
    app/config.py (the other tests force it off, since the test client talks plain http)."""
    url = getattr(request, "param", None)
    if url:
        monkeypatch.setenv("PUBLIC_URL", url)
    return url


@pytest.fixture
def app_config(app_config, public_url):
    if public_url is None:
        return app_config
    return {**{k: v for k, v in app_config.items() if k != "SESSION_COOKIE_SECURE"}, "PUBLIC_URL": public_url}


def session_cookie(client) -> str:
    response = client.get("/oauth/hubspot/install")  # starts the flow: the OAuth state goes in the session
    assert response.status_code == 302
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1
    return cookies[0]


@pytest.mark.parametrize("public_url", ["https://qbo-actions.example.com"], indirect=True)
def test_behind_https_the_session_cookie_is_secure_httponly_and_lax(client):
    attributes = {part.strip().split("=")[0].lower() for part in session_cookie(client).split(";")}
    assert {"secure", "httponly"} <= attributes
    assert "SameSite=Lax" in session_cookie(client)


@pytest.mark.parametrize("public_url", ["http://localhost:5000"], indirect=True)
def test_over_plain_http_in_development_the_cookie_is_not_secure_but_still_httponly_and_lax(client):
    cookie = session_cookie(client)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert "secure" not in attributes and "httponly" in attributes
    assert "SameSite=Lax" in cookie
