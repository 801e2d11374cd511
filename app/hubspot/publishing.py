"""Put hubspot-app.json into HubSpot: publish the action definitions, or export a developer project.

`publish_actions` lists the app's definitions, matches them to ours by `actionUrl`, and creates
or updates only what differs, so a second run changes nothing. It talks to the date-versioned
definitions API (`/automation/actions/2026-03/{appId}`) and falls back to `/automation/v4/actions/{appId}`
when HubSpot does not know the versioned path. `export_project` writes the same definitions as a
HubSpot developer project (platform 2026.03) for `hs project upload`, with the app card (app/hubspot/card/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests

from app.hubspot.app_definition import AppDefinition, action_config, action_definition_payload, resolve_url

CARD_SOURCE = Path(__file__).resolve().parent / "card"  # the card's React source, package.json and tests
CARD_NAME = "quickbooks-documents"  # src/app/cards/<CARD_NAME>.jsx and <CARD_NAME>-hsmeta.json
CARD_PUBLIC_URL = "'__QBO_ACTIONS_PUBLIC_URL__'"  # the card's placeholder for PUBLIC_URL, filled in on export

DEFAULT_API_VERSION = "2026-03"
LEGACY_API_VERSION = "v4"
PLATFORM_VERSION = "2026.03"
PAGE_SIZE = 50
MAX_PAGES = 200  # a paging cursor that never ends is HubSpot's bug; don't loop forever on it
TIMEOUT = 30.0

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
WOULD_CREATE, WOULD_UPDATE = "would create", "would update"


@dataclass(frozen=True)
class PublishRow:
    action: str
    definition_id: str  # "" when the definition does not exist yet (dry run)
    outcome: str  # created, updated, unchanged, would create, would update
    changes: tuple[str, ...] = ()  # the top-level keys that differ from HubSpot's copy


class PublishError(Exception):
    """HubSpot refused a request (or could not be reached). `hubspot_message` is HubSpot's own words."""

    def __init__(
        self,
        message: str,
        *,
        hubspot_message: str = "",
        status: int | None = None,
        action: str | None = None,
        rows: list[PublishRow] | None = None,
    ):
        super().__init__(message)
        self.hubspot_message = hubspot_message
        self.status = status
        self.action = action
        self.rows = list(rows or [])  # what was done before HubSpot refused


def publish_actions(
    *,
    app_definition: AppDefinition,
    public_url: str,
    api_base_url: str,
    app_id,
    api_version: str = DEFAULT_API_VERSION,
    developer_api_key: str | None = None,
    developer_token: str | None = None,
    dry_run: bool = False,
    session: requests.Session | None = None,
) -> list[PublishRow]:
    """Create or update each action's definition; with dry_run, only say what would change."""
    api = DefinitionsApi(
        api_base_url=api_base_url,
        app_id=app_id,
        api_version=api_version,
        developer_api_key=developer_api_key,
        developer_token=developer_token,
        session=session,
    )
    existing: dict[str, dict] = {}
    for definition in api.list_definitions():
        existing.setdefault(definition.get("actionUrl"), definition)  # the first one wins if HubSpot has duplicates

    rows: list[PublishRow] = []
    for name, action in app_definition.actions.items():
        payload = action_definition_payload(action, public_url)
        current = existing.get(payload["actionUrl"])
        try:
            rows.append(_publish_one(api, name, payload, current, dry_run))
        except PublishError as exc:
            exc.rows = rows
            raise
    return rows


def _publish_one(api: DefinitionsApi, name: str, payload: dict, current: dict | None, dry_run: bool) -> PublishRow:
    if current is None:
        if dry_run:
            return PublishRow(name, "", WOULD_CREATE)
        created = api.create(payload, action=name)
        return PublishRow(name, str(created.get("id", "")), CREATED)
    definition_id = str(current.get("id", ""))
    changes = changed_keys(payload, current)
    if not changes:
        return PublishRow(name, definition_id, UNCHANGED)
    if dry_run:
        return PublishRow(name, definition_id, WOULD_UPDATE, changes)
    api.update(definition_id, patch_body(payload), action=name)
    return PublishRow(name, definition_id, UPDATED, changes)


def patch_body(payload: dict) -> dict:
    # `functions` is not part of HubSpot's patch schema (and is read-only on project-managed actions).
    return {key: value for key, value in payload.items() if key != "functions"}


def changed_keys(payload: dict, current: dict) -> tuple[str, ...]:
    """The keys we send whose value HubSpot's copy does not already hold (extra keys HubSpot adds are fine)."""
    return tuple(key for key, value in patch_body(payload).items() if not _holds(current.get(key), value))


def _holds(existing, sent) -> bool:
    if existing is None or existing in ([], {}, ""):
        return sent in (None, [], {}, "", False) or sent == existing
    if isinstance(sent, dict):
        return isinstance(existing, dict) and all(_holds(existing.get(key), value) for key, value in sent.items())
    if isinstance(sent, list):
        if not isinstance(existing, list) or len(existing) != len(sent):
            return False
        if all(not isinstance(item, (dict, list)) for item in sent + existing):
            return sorted(map(json.dumps, sent)) == sorted(map(json.dumps, existing))  # order of scalars is moot
        return all(_holds(old, new) for old, new in zip(existing, sent, strict=True))
    return existing == sent


class DefinitionsApi:
    """The few calls publishing needs, with developer authentication and HubSpot's errors made readable."""

    def __init__(
        self,
        *,
        api_base_url: str,
        app_id,
        api_version: str = DEFAULT_API_VERSION,
        developer_api_key: str | None = None,
        developer_token: str | None = None,
        session: requests.Session | None = None,
        timeout: float = TIMEOUT,
    ):
        if not developer_api_key and not developer_token:
            raise ValueError("a developer API key or a developer token is needed to manage action definitions")
        self.base = api_base_url.rstrip("/")
        self.app_id = str(app_id)
        self.api_version = api_version or DEFAULT_API_VERSION
        self.developer_api_key = developer_api_key or None
        self.developer_token = developer_token or None
        self.session = session or requests.Session()
        self.timeout = timeout

    @property
    def prefix(self) -> str:
        if self.api_version == LEGACY_API_VERSION:
            return f"/automation/v4/actions/{self.app_id}"
        return f"/automation/actions/{self.api_version}/{self.app_id}"

    def list_definitions(self) -> list[dict]:
        try:
            return self._list_pages()
        except PublishError as exc:
            if exc.status != 404 or self.api_version == LEGACY_API_VERSION:
                raise
        self.api_version = LEGACY_API_VERSION  # this HubSpot does not serve the date-versioned path yet
        return self._list_pages()

    def _list_pages(self) -> list[dict]:
        definitions, after = [], None
        for _page in range(MAX_PAGES):
            params = {"limit": PAGE_SIZE, **({"after": after} if after else {})}
            body = self._request("GET", self.prefix, params=params, doing="list the action definitions")
            definitions += body.get("results") or []
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return definitions
        raise PublishError(f"HubSpot kept paging the action definitions after {MAX_PAGES} pages; giving up.")

    def create(self, payload: dict, *, action: str) -> dict:
        return self._request(
            "POST", self.prefix, json=payload, doing=f"create the definition of {action}", action=action
        )

    def update(self, definition_id: str, payload: dict, *, action: str) -> dict:
        return self._request(
            "PATCH",
            f"{self.prefix}/{definition_id}",
            json=payload,
            doing=f"update definition {definition_id} ({action})",
            action=action,
        )

    def _request(self, method: str, path: str, *, doing: str, action: str | None = None, **kwargs) -> dict:
        params = dict(kwargs.pop("params", None) or {})
        headers = {"Accept": "application/json"}
        if self.developer_api_key:
            params["hapikey"] = self.developer_api_key
        else:
            headers["Authorization"] = f"Bearer {self.developer_token}"
        url = self.base + path
        try:
            response = self.session.request(method, url, params=params, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise PublishError(
                f"Could not reach HubSpot at {self.base} to {doing}: {self._redact(str(exc))}", action=action
            ) from exc
        if response.status_code >= 400:
            message = hubspot_message(response)
            raise PublishError(
                f"HubSpot refused to {doing} (HTTP {response.status_code}): {message}",
                hubspot_message=message,
                status=response.status_code,
                action=action,
            )
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise PublishError(
                f"HubSpot answered {method} {path} with something other than JSON.",
                status=response.status_code,
                action=action,
            ) from exc
        return body if isinstance(body, dict) else {}

    def _redact(self, text: str) -> str:
        return text.replace(self.developer_api_key, "***") if self.developer_api_key else text


def hubspot_message(response: requests.Response) -> str:
    """HubSpot's `message`, with the details of `errors[]` when it gives them."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "no message").strip()[:500]
    if not isinstance(body, dict):
        return str(body)[:500]
    message = str(body.get("message") or response.reason or "no message")
    details = [
        str(error.get("message"))
        for error in body.get("errors") or []
        if isinstance(error, dict) and error.get("message") and error.get("message") != message
    ]
    return message + ("; " + "; ".join(details) if details else "")


# ---------------------------------------------------------------------------------------------------
# Developer project export


def export_project(*, app_definition: AppDefinition, public_url: str, directory) -> list[Path]:
    """Write hsproject.json, src/app/app-hsmeta.json, the app card and one workflow-action hsmeta per action."""
    directory = Path(directory)
    app = app_definition.app
    files = {
        directory / "hsproject.json": _json(
            {"name": app.get("projectName") or app["name"], "srcDir": "src", "platformVersion": PLATFORM_VERSION}
        ),
        directory / "src" / "app" / "app-hsmeta.json": _json(app_hsmeta(app, public_url)),
    }
    if app.get("card"):
        cards = directory / "src" / "app" / "cards"
        files[cards / f"{CARD_NAME}-hsmeta.json"] = _json(card_hsmeta(app["card"]))
        files[cards / f"{CARD_NAME}.jsx"] = card_source(public_url)
        files[cards / "package.json"] = _json(card_package())
    for name, action in app_definition.actions.items():
        files[directory / "src" / "app" / "workflow-actions" / f"{name}-hsmeta.json"] = _json(
            workflow_action_hsmeta(action, public_url)
        )
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return list(files)


def _json(content: dict) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def app_hsmeta(app: dict, public_url: str) -> dict:
    return {
        "uid": app["uid"],
        "type": "app",
        "config": {
            "name": app["name"],
            "description": app["description"],
            "distribution": app["distribution"],
            "auth": {
                "type": "oauth",
                "redirectUrls": [resolve_url(public_url, path) for path in app["redirectPaths"]],
                "requiredScopes": list(app["requiredScopes"]),
                "optionalScopes": list(app["optionalScopes"]),
                "conditionallyRequiredScopes": list(app["conditionallyRequiredScopes"]),
            },
            "permittedUrls": {"fetch": permitted_fetch_urls(app, public_url), "iframe": [], "img": []},
            "support": dict(app["support"]),
        },
    }


def permitted_fetch_urls(app: dict, public_url: str) -> list[str]:
    """The app's own fetch URLs, and PUBLIC_URL when the card calls it with hubspot.fetch."""
    urls = list(app["permittedFetchUrls"])
    server = public_url.rstrip("/")
    if app.get("card") and server not in urls:
        urls.append(server)
    return urls


def card_hsmeta(card: dict) -> dict:
    config = {"name": card["name"], "description": card["description"], "location": card["location"]}
    config |= {"entrypoint": f"/app/cards/{CARD_NAME}.jsx", "objectTypes": list(card["objectTypes"])}
    return {"uid": card["uid"], "type": "card", "config": config}


def card_source(public_url: str) -> str:
    """The card's React source with PUBLIC_URL in place of its placeholder."""
    source = (CARD_SOURCE / f"{CARD_NAME}.jsx").read_text(encoding="utf-8")
    if source.count(CARD_PUBLIC_URL) != 1:
        raise ValueError(f"{CARD_NAME}.jsx must hold the placeholder {CARD_PUBLIC_URL} exactly once")
    return source.replace(CARD_PUBLIC_URL, json.dumps(public_url.rstrip("/")))


def card_package() -> dict:
    """src/app/cards/package.json: the card's runtime dependencies, pinned as its tests ran them."""
    source = json.loads((CARD_SOURCE / "package.json").read_text(encoding="utf-8"))
    return {
        "name": "qbo-actions-cards",
        "version": source["version"],
        "private": True,
        "license": source["license"],
        "type": "module",
        "dependencies": dict(source["dependencies"]),
    }


def workflow_action_hsmeta(action: dict, public_url: str) -> dict:
    config = action_config(action, public_url)
    return {
        "uid": action["uid"],
        "type": "workflow-action",
        "config": {
            "actionUrl": config["actionUrl"],
            "isPublished": True,
            "supportedClients": [{"client": "WORKFLOWS"}],
            "objectTypes": config["objectTypes"],
            "inputFields": config["inputFields"],
            "outputFields": config["outputFields"],
            "objectRequestOptions": config["objectRequestOptions"],
            "labels": config["labels"],
            "executionRules": config["executionRules"],
            "inputFieldDependencies": config["inputFieldDependencies"],
        },
    }
