"""Installing the app in HubSpot and connecting QuickBooks companies (OAuth 2 authorization-code flows)."""

import hmac
import secrets

from flask import Blueprint, abort, current_app, flash, redirect, render_template_string, request, session, url_for
from intuitlib.exceptions import AuthClientError

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from app.extensions import db
from app.hubspot import oauth as hubspot_oauth
from app.hubspot.write_back import create_properties_at_install
from app.quickbooks import oauth as quickbooks_oauth
from app.quickbooks.client import books_client
from app.storage.connections import get_or_create_connection, get_or_create_portal, get_portal

bp = Blueprint("oauth", __name__, url_prefix="/oauth")

PAGE = """<!doctype html><title>qbo-actions</title>
<main style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>{{ title }}</h1><p>{{ text }}</p>{% if link %}<p><a href="{{ link }}">{{ link_text }}</a></p>{% endif %}</main>"""


def page(title, text, link=None, link_text=None, status=200):
    return render_template_string(PAGE, title=title, text=text, link=link, link_text=link_text), status


def new_state(key: str) -> str:
    session[key] = secrets.token_urlsafe(32)
    return session[key]


def check_state(key: str) -> None:
    expected = session.pop(key, None)
    given = request.args.get("state", "")
    if not expected or not hmac.compare_digest(expected, given):
        abort(400, description="The sign-in link expired or was not started here (state mismatch). Start again.")
    if request.args.get("error"):
        abort(
            400,
            description=f"Authorization was refused: {request.args.get('error_description') or request.args['error']}.",
        )
    if not request.args.get("code"):
        abort(400, description="The authorization code is missing.")


@bp.get("/hubspot/install")
def hubspot_install():
    app_settings = current_app.extensions["hubspot_app_definition"].app
    return redirect(hubspot_oauth.authorize_url(current_app.config, new_state("hubspot_state"), app_settings))


@bp.get("/hubspot/callback")
def hubspot_callback():
    check_state("hubspot_state")
    config = current_app.config
    try:
        tokens = hubspot_oauth.exchange_code(config, request.args["code"])
        metadata = hubspot_oauth.token_metadata(config, tokens["access_token"])
    except (hubspot_oauth.HubSpotAuthError, TransientError) as exc:
        return page("HubSpot installation failed", f"HubSpot did not accept the installation: {exc}", status=502)
    portal = get_or_create_portal(db.session, int(metadata["hub_id"]))
    hubspot_oauth.store_tokens(portal, tokens)
    portal.scopes = metadata.get("scopes") or []
    portal.hub_domain = metadata.get("hub_domain")
    db.session.commit()
    create_properties_at_install(portal)
    session["portal_id"] = portal.id
    # Installing and signing in are the same flow: both land on the console, which says what to do next.
    flash(f"Signed in to HubSpot account {portal.id}: qbo-actions is installed there.", "success")
    return redirect(url_for("console.home"))


def signed_in_portal():
    portal = get_portal(db.session, session.get("portal_id") or 0)
    if portal is None:
        abort(
            401, description="Install qbo-actions from HubSpot first (/oauth/hubspot/install), then connect QuickBooks."
        )
    return portal


@bp.get("/quickbooks/connect")
def quickbooks_connect():
    signed_in_portal()
    try:
        url = quickbooks_oauth.authorize_url(current_app.config, new_state("quickbooks_state"))
    except TransientError as exc:
        return page("QuickBooks is unreachable", str(exc), status=502)
    return redirect(url)


@bp.get("/quickbooks/callback")
def quickbooks_callback():
    portal = signed_in_portal()
    check_state("quickbooks_state")
    realm_id = request.args.get("realmId", "")
    if not realm_id.isdigit():
        abort(400, description="QuickBooks did not say which company was connected (realmId).")
    config = current_app.config
    try:
        client = quickbooks_oauth.exchange_code(config, request.args["code"], realm_id)
    except (AuthClientError, TransientError) as exc:
        return page("QuickBooks connection failed", f"Intuit did not accept the authorization ({exc}).", status=502)
    connection = get_or_create_connection(db.session, portal_id=portal.id, realm_id=realm_id)
    quickbooks_oauth.store_tokens(connection, client)
    db.session.commit()
    describe_company(connection)
    db.session.commit()
    flash(
        f"{connection.company_name or realm_id} is connected to HubSpot account {portal.id}. "
        "Workflows can now use the QuickBooks actions.",
        "success",
    )
    return redirect(url_for("console.home"))


def describe_company(connection) -> None:
    """Keep the company's name and country: dropdowns and messages show them."""
    try:
        info = books_client(connection, current_app.config).company_info()
    except (QuickBooksFault, QuickBooksAuthExpired, TransientError):
        current_app.logger.warning("could not read company info of realm %s", connection.realm_id)
        return
    connection.company_name = info.get("CompanyName") or info.get("LegalName")
    connection.country = info.get("Country")
