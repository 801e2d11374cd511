"""QuickBooks OAuth through intuit-oauth: connect URL, code exchange, and per-connection token refresh.

intuit-oauth's AuthClient downloads the discovery document in its constructor, so one is built per
process; each use gets a shallow copy, so token state is never shared between connections.
"""

import json
import threading

import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from actions.errors import QuickBooksAuthExpired, TransientError
from app.storage.models import QuickBooksConnection
from app.storage.tokens import expires_soon, expiry_from, refresh_single_flight

CALLBACK_PATH = "/oauth/quickbooks/callback"

_prototypes: dict[tuple, AuthClient] = {}
_prototypes_lock = threading.Lock()


class TimedAuthClient(AuthClient):
    """AuthClient whose HTTP calls cannot hang a worker forever."""

    timeout = 30.0

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


def auth_client(config, **tokens) -> AuthClient:
    key = (config["QBO_CLIENT_ID"], config["QBO_ENVIRONMENT"], config["PUBLIC_URL"])
    with _prototypes_lock:
        if key not in _prototypes:
            TimedAuthClient.timeout = config["HTTP_TIMEOUT"]
            try:
                _prototypes[key] = TimedAuthClient(
                    config["QBO_CLIENT_ID"],
                    config["QBO_CLIENT_SECRET"],
                    config["PUBLIC_URL"] + CALLBACK_PATH,
                    config["QBO_ENVIRONMENT"],
                )
            except (AuthClientError, OSError) as exc:
                raise TransientError(f"Intuit's discovery document could not be read ({exc})") from exc
    client = fresh_copy(_prototypes[key])
    client.access_token = tokens.get("access_token")
    client.refresh_token = tokens.get("refresh_token")
    client.realm_id = tokens.get("realm_id")
    client.state_token = tokens.get("state_token")
    return client


def fresh_copy(prototype: AuthClient) -> AuthClient:
    """The prototype's endpoints and credentials on a new HTTP session (copy.copy keeps only Session state)."""
    client = TimedAuthClient.__new__(TimedAuthClient)
    requests.Session.__init__(client)
    for name, value in vars(prototype).items():
        if name not in requests.Session.__attrs__:
            setattr(client, name, value)
    return client


def authorize_url(config, state: str) -> str:
    return auth_client(config).get_authorization_url([Scopes.ACCOUNTING], state_token=state)


def exchange_code(config, code: str, realm_id: str) -> AuthClient:
    client = auth_client(config)
    client.get_bearer_token(code, realm_id=realm_id)
    return client


def revoke_token(config, token: str) -> None:
    """Ask Intuit to revoke a connection's authorization: revoking its refresh token ends the whole grant.

    Raises AuthClientError when Intuit refuses (the token may already be invalid) and TransientError when it
    cannot be reached; the caller decides whether to forget the connection anyway.
    """
    client = auth_client(config)
    try:
        client.revoke(token=token)
    except OSError as exc:  # requests' errors are OSErrors
        raise TransientError(f"Intuit's revoke endpoint could not be reached ({type(exc).__name__})") from exc


def store_tokens(connection: QuickBooksConnection, client: AuthClient) -> None:
    connection.access_token = client.access_token
    # Intuit may rotate the refresh token on any refresh: always keep the newest.
    connection.refresh_token = client.refresh_token or connection.refresh_token
    connection.access_expires_at = expiry_from(client.expires_in)
    connection.refresh_expires_at = expiry_from(getattr(client, "x_refresh_token_expires_in", None))
    connection.state = QuickBooksConnection.ACTIVE


def is_rejected_grant(error: AuthClientError) -> bool:
    if error.status_code not in (400, 401):
        return False
    try:
        body = json.loads(error.content or b"{}")
    except ValueError:
        return error.status_code == 401
    return body.get("error") in ("invalid_grant", "invalid_client", "unauthorized_client") or error.status_code == 401


class ConnectionTokens:
    """Token source for BooksClient: a fresh access token for one connection, refreshed single-flight."""

    def __init__(self, connection: QuickBooksConnection, config):
        self.connection_id = connection.id
        self.company = connection.company_name or connection.realm_id
        self.config = config
        self._token = connection.access_token
        self._expires_at = connection.access_expires_at
        if connection.state == QuickBooksConnection.RECONNECT_NEEDED:
            raise QuickBooksAuthExpired(self.company)

    def access_token(self) -> str:
        if expires_soon(self._expires_at):
            return self.refresh(rejected=None)
        return self._token

    def refresh(self, rejected: str | None) -> str:
        self._token, self._expires_at = refresh_single_flight(
            QuickBooksConnection, self.connection_id, rejected=rejected, refresh=self._renew
        )
        return self._token

    def _renew(self, connection: QuickBooksConnection) -> None:
        if connection.state == QuickBooksConnection.RECONNECT_NEEDED:
            raise QuickBooksAuthExpired(self.company)
        client = auth_client(self.config, refresh_token=connection.refresh_token, realm_id=connection.realm_id)
        try:
            client.refresh()
        except AuthClientError as exc:
            if is_rejected_grant(exc):
                connection.state = QuickBooksConnection.RECONNECT_NEEDED
                raise QuickBooksAuthExpired(self.company) from exc
            raise TransientError(f"Intuit's token endpoint answered HTTP {exc.status_code}") from exc
        except OSError as exc:
            raise TransientError(f"Intuit's token endpoint could not be reached ({type(exc).__name__})") from exc
        store_tokens(connection, client)
