"""HubSpotClient: the CRM reads the actions need and callback completion, for one installed portal.

Date-versioned paths (`/crm/objects/2026-03/...`) by default; `HUBSPOT_API_VERSION=v4` switches to the
legacy v3 objects / v4 associations / v4 callbacks paths. A 401 refreshes the portal's token once.
"""

import logging

import requests

from app.http import send

log = logging.getLogger(__name__)

BATCH_LIMIT = 100
ASSOCIATIONS_PAGE = 500


class HubSpotError(Exception):
    def __init__(self, status: int, message: str, category: str = ""):
        self.status = status
        self.message = message
        self.category = category
        super().__init__(f"HubSpot answered {status}: {message}")


class HubSpotNotFound(HubSpotError):
    pass


class HubSpotClient:
    def __init__(
        self,
        *,
        base_url: str,
        tokens,
        version: str = "2026-03",
        timeout: float = 30,
        session=None,
        limiter=None,
        portal_id=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens  # .access_token() -> str, .refresh(rejected: str) -> str
        self.version = version
        self.timeout = timeout
        self.session = session or requests.Session()
        self.limiter = limiter  # app.limits.Limiter: the portal's requests, shared with every process
        self.portal_id = portal_id

    @property
    def legacy(self) -> bool:
        return self.version in ("v3", "v4")

    # -- CRM reads ---------------------------------------------------------------------------------------

    def get_object(self, object_type: str, object_id: str, properties: list[str]) -> dict:
        path = self._objects_path(object_type) + f"/{object_id}"
        return self._request("GET", path, params={"properties": ",".join(properties)})

    def read_objects(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict]:
        """Batch read in chunks of 100; unknown ids are left out (HubSpot answers 207 for them)."""
        results = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            body = {"properties": properties, "inputs": [{"id": str(i)} for i in chunk]}
            results += self._request("POST", self._objects_path(object_type) + "/batch/read", json=body)["results"]
        return results

    def associations(self, object_type: str, object_id: str, to_type: str) -> list[dict]:
        """Every association of one record to one type: [{"toObjectId", "associationTypes"}] (no order promised)."""
        if self.legacy:
            path = f"/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}"
        else:
            path = f"/crm/objects/{self.version}/{object_type}/{object_id}/associations/{to_type}"
        results, after = [], None
        while True:
            params = {"limit": ASSOCIATIONS_PAGE} | ({"after": after} if after else {})
            page = self._request("GET", path, params=params)
            results += page.get("results", [])
            after = page.get("paging", {}).get("next", {}).get("after")
            if not after:
                return results

    # -- properties and record updates (the documents on the record) ------------------------------------

    def property_group(self, object_type: str, name: str) -> dict | None:
        try:
            return self._properties_request("GET", object_type, f"/groups/{name}")
        except HubSpotNotFound:
            return None

    def create_property_group(self, object_type: str, group: dict) -> None:
        try:
            self._properties_request("POST", object_type, "/groups", json=group)
        except HubSpotError as exc:
            if exc.status != 409:  # created meanwhile (another worker): as good as ours
                raise

    def property_names(self, object_type: str) -> set[str]:
        return {p["name"] for p in self._properties_request("GET", object_type, "").get("results", [])}

    def create_properties(self, object_type: str, properties: list[dict]) -> None:
        """Batch create; names that exist meanwhile come back as errors of a 207 and are fine."""
        self._properties_request("POST", object_type, "/batch/create", json={"inputs": properties})

    def update_object(self, object_type: str, object_id: str, properties: dict[str, str]) -> dict:
        path = self._objects_path(object_type) + f"/{object_id}"
        return self._request("PATCH", path, json={"properties": properties})

    def _properties_request(self, method: str, object_type: str, tail: str, **kwargs):
        """Date-versioned Properties API, falling back to v3 where the account does not route it yet."""
        if self.legacy:
            return self._request(method, f"/crm/v3/properties/{object_type}{tail}", **kwargs)
        try:
            return self._request(method, f"/crm/properties/{self.version}/{object_type}{tail}", **kwargs)
        except HubSpotNotFound as exc:
            if exc.category == "OBJECT_NOT_FOUND":  # the route exists; what it names does not
                raise
            log.info("date-versioned properties path not found; using v3 for %s", object_type)
            return self._request(method, f"/crm/v3/properties/{object_type}{tail}", **kwargs)

    # -- callbacks ---------------------------------------------------------------------------------------

    def complete_callback(self, callback_id: str, output_fields: dict[str, str]) -> None:
        body = {"outputFields": output_fields, "typedOutputs": {}}
        if self.legacy:
            self._request("POST", f"/automation/v4/actions/callbacks/{callback_id}/complete", json=body)
            return
        try:
            self._request("POST", f"/automation/actions/callbacks/{self.version}/{callback_id}/complete", json=body)
        except HubSpotNotFound:
            # Older accounts may not route the date-versioned path yet; v4 is supported until 2027-03-30.
            log.info("date-versioned callback path not found; completing %s through v4", callback_id)
            self._request("POST", f"/automation/v4/actions/callbacks/{callback_id}/complete", json=body)

    # -- plumbing ----------------------------------------------------------------------------------------

    def _objects_path(self, object_type: str) -> str:
        return f"/crm/v3/objects/{object_type}" if self.legacy else f"/crm/objects/{self.version}/{object_type}"

    def _request(self, method: str, path: str, **kwargs):
        token = self.tokens.access_token()
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            # A token can die before its expiry (revoked, rotated elsewhere): refresh once, then give up.
            response = self._send(method, path, self.tokens.refresh(rejected=token), **kwargs)
        return self._parse(response)

    def _send(self, method, path, token, **kwargs):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return send(
            self.session,
            method,
            self.base_url + path,
            service="HubSpot",
            timeout=self.timeout,
            headers=headers,
            limit=(lambda: self.limiter.hubspot(self.portal_id)) if self.limiter else None,
            **kwargs,
        )

    @staticmethod
    def _parse(response):
        if response.status_code in (200, 201, 207):
            return response.json()
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:300]}
        error = HubSpotNotFound if response.status_code == 404 else HubSpotError
        raise error(response.status_code, body.get("message", ""), body.get("category", ""))


def hubspot_client(portal, config) -> HubSpotClient:
    """The HubSpotClient for one installed portal, with its token refreshed on demand and, within the app,
    its requests rate-limited."""
    from flask import current_app, has_app_context

    from app.hubspot.oauth import PortalTokens

    return HubSpotClient(
        base_url=config["HUBSPOT_API_BASE_URL"],
        tokens=PortalTokens(portal, config),
        version=config["HUBSPOT_API_VERSION"],
        timeout=config["HTTP_TIMEOUT"],
        limiter=current_app.extensions.get("limiter") if has_app_context() else None,
        portal_id=portal.id,  # the HubSpot hub id
    )
