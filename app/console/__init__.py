"""The operator console: a HubSpot admin's or accountant's view of one portal's connections, settings,
sync errors and history, all read from the executions the server already stores.

Server-rendered pages (Jinja), one stylesheet, no front-end build. Every page is bound to the portal the
browser signed in to (`auth.current_portal`); another portal's records answer 404.

Every page a browser reads (the console, the OAuth pages, HTML error pages) carries a strict policy: no
script at all, styles from the stylesheet only, never framed. The session cookie is HttpOnly, SameSite=Lax
and, behind an https PUBLIC_URL, Secure (app/config.py).
"""

import base64
import hashlib
import re
from functools import cache

from flask import Blueprint, request

bp = Blueprint(
    "console", __name__, template_folder="templates", static_folder="static", static_url_path="/console/static"
)

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "style-src": "'self'",
    "script-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",  # every form posts here; HubSpot and Intuit are reached by links that redirect
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
BROWSER_BLUEPRINTS = ("console", "oauth")


def content_security_policy(blueprint: str | None) -> str:
    policy = dict(CONTENT_SECURITY_POLICY)
    if blueprint == "oauth" and oauth_style_hashes():
        # The OAuth result pages style their one element inline; allow exactly that attribute, nothing else.
        policy["style-src"] += " 'unsafe-hashes' " + " ".join(oauth_style_hashes())
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


@cache
def oauth_style_hashes() -> tuple[str, ...]:
    from app.blueprints import oauth

    styles = re.findall(r'style="([^"{}]*)"', getattr(oauth, "PAGE", ""))
    return tuple(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles)


@bp.after_app_request
def security_headers(response):
    """On every response a browser renders from us: the console, the OAuth pages, and error pages."""
    if request.blueprint in BROWSER_BLUEPRINTS or response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request.blueprint))
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


from app.console import auth, connections, executions, home, settings  # noqa: E402,F401  (routes register on bp)
