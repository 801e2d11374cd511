"""HubSpot OAuth: authorize URL, code exchange, token metadata, and per-portal token refresh."""

from urllib.parse import urlencode

import requests

from app.http import send
from app.storage.models import Portal
from app.storage.tokens import expires_soon, expiry_from, refresh_single_flight

CALLBACK_PATH = "/oauth/hubspot/callback"


class HubSpotAuthError(Exception):
    """HubSpot refused a code or refresh token; `message` is HubSpot's own words."""


def redirect_uri(config) -> str:
    return config["PUBLIC_URL"] + CALLBACK_PATH


def authorize_url(config, state: str, app_settings: dict) -> str:
    """HubSpot's consent page for the scopes hubspot-app.json declares (its `app` section)."""
    query = {
        "client_id": config["HUBSPOT_CLIENT_ID"],
        "redirect_uri": redirect_uri(config),
        "scope": " ".join(app_settings["requiredScopes"]),
        "optional_scope": " ".join(app_settings.get("optionalScopes") or []),
        "state": state,
    }
    return config["HUBSPOT_AUTHORIZE_URL"] + "?" + urlencode(query)


def token_path(config) -> str:
    version = config["HUBSPOT_API_VERSION"]
    return "/oauth/v1/token" if version in ("v3", "v4") else f"/oauth/{version}/token"


def request_tokens(config, **grant) -> dict:
    form = {"client_id": config["HUBSPOT_CLIENT_ID"], "client_secret": config["HUBSPOT_CLIENT_SECRET"], **grant}
    response = send(
        requests,
        "POST",
        config["HUBSPOT_API_BASE_URL"] + token_path(config),
        service="HubSpot",
        timeout=config["HTTP_TIMEOUT"],
        data=form,
    )
    body = response.json() if response.content else {}
    if response.status_code != 200:
        raise HubSpotAuthError(body.get("message") or body.get("error_description") or f"HTTP {response.status_code}")
    return body


def exchange_code(config, code: str) -> dict:
    return request_tokens(config, grant_type="authorization_code", code=code, redirect_uri=redirect_uri(config))


def token_metadata(config, access_token: str) -> dict:
    """Which hub the token belongs to (`hub_id`), its scopes and domain."""
    url = f"{config['HUBSPOT_API_BASE_URL']}/oauth/v1/access-tokens/{access_token}"
    response = send(requests, "GET", url, service="HubSpot", timeout=config["HTTP_TIMEOUT"])
    if response.status_code != 200:
        raise HubSpotAuthError(f"HubSpot did not describe the new token (HTTP {response.status_code})")
    return response.json()


def store_tokens(portal: Portal, tokens: dict) -> None:
    portal.access_token = tokens["access_token"]
    portal.refresh_token = tokens.get("refresh_token") or portal.refresh_token
    portal.access_expires_at = expiry_from(tokens.get("expires_in"))


class PortalTokens:
    """Token source for HubSpotClient: a fresh access token for one portal, refreshed single-flight."""

    def __init__(self, portal: Portal, config):
        self.portal_id = portal.id
        self.config = config
        self._token = portal.access_token
        self._expires_at = portal.access_expires_at

    def access_token(self) -> str:
        if expires_soon(self._expires_at):
            return self.refresh(rejected=None)
        return self._token

    def refresh(self, rejected: str | None) -> str:
        def renew(portal):
            store_tokens(
                portal, request_tokens(self.config, grant_type="refresh_token", refresh_token=portal.refresh_token)
            )

        self._token, self._expires_at = refresh_single_flight(Portal, self.portal_id, rejected=rejected, refresh=renew)
        return self._token
