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
        coalescer=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens  # .access_token() -> str, .refresh(rejected: str) -> str
        self.version = version
        self.timeout = timeout
        self.session = session or requests.Session()
        self.limiter = limiter  # app.limits.Limiter: the portal's requests, shared with every process
        self.portal_id = portal_id
        self.coalescer = coalescer  # app.coalesce.Coalescer: this process's concurrent calls, sent as one batch

    @property
    def legacy(self) -> bool:
        return self.version in ("v3", "v4")

    # -- CRM reads ---------------------------------------------------------------------------------------

    def get_object(self, object_type: str, object_id: str, properties: list[str]) -> dict:
        """One record; gathered with other executions' reads of the same type into one batch read."""

        def one(record_id):
            path = self._objects_path(object_type) + f"/{record_id}"
            return self._request("GET", path, params={"properties": ",".join(properties)})

        def many(record_ids):
            found = {str(o["id"]): o for o in self._batch_read(object_type, record_ids, properties)}
            missing = HubSpotNotFound(404, f"{object_type} not found", "OBJECT_NOT_FOUND")
            return [found.get(record_id, missing) for record_id in record_ids]

        return self._gathered(("get", object_type, tuple(properties)), str(object_id), one, many)

    def read_objects(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict]:
        """Batch read in chunks of 100; unknown ids are left out (HubSpot answers 207 for them). Gathered with
        other executions' reads of the same type and properties."""

        def many(id_lists):
            found = {
                str(o["id"]): o for o in self._batch_read(object_type, [i for ids in id_lists for i in ids], properties)
            }
            return [[found[i] for i in ids if i in found] for ids in id_lists]

        wanted = tuple(str(i) for i in ids)
        if not wanted:
            return []
        return self._gathered(("read", object_type, tuple(properties)), wanted, lambda one: many([one])[0], many)

    def _batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict]:
        results, unique = [], list(dict.fromkeys(ids))
        for start in range(0, len(unique), BATCH_LIMIT):
            chunk = unique[start : start + BATCH_LIMIT]
            body = {"properties": properties, "inputs": [{"id": i} for i in chunk]}
            results += self._request("POST", self._objects_path(object_type) + "/batch/read", json=body)["results"]
        return results

    def associations(self, object_type: str, object_id: str, to_type: str) -> list[dict]:
        """Every association of one record to one type: [{"toObjectId", "associationTypes"}] (no order promised).
        Gathered with other executions' into one batch read; a record with more than a page is read alone."""

        def many(record_ids):
            answers = self._batch_associations(object_type, to_type, record_ids)
            return [
                self._associations_paged(object_type, i, to_type) if a is None else a
                for i, a in zip(record_ids, answers, strict=True)
            ]

        record_id = str(object_id)
        key = ("associations", object_type, to_type)
        return self._gathered(key, record_id, lambda i: self._associations_paged(object_type, i, to_type), many)

    def _batch_associations(self, object_type: str, to_type: str, record_ids: list[str]) -> list[list | None]:
        """Each record's associations, or None where this batch cannot tell (more pages, or an error other
        than "none found"): that record is then read on its own."""
        prefix = "/crm/v4/associations" if self.legacy else f"/crm/associations/{self.version}"
        unique = list(dict.fromkeys(record_ids))
        reply = self._request(
            "POST", f"{prefix}/{object_type}/{to_type}/batch/read", json={"inputs": [{"id": i} for i in unique]}
        )
        found: dict[str, list | None] = {}
        for result in reply.get("results") or []:
            paged = ((result.get("paging") or {}).get("next") or {}).get("after")
            found[str(result["from"]["id"])] = None if paged else list(result.get("to") or [])
        for error in reply.get("errors") or []:
            for record_id in (error.get("context") or {}).get("fromObjectId") or []:
                none_found = str(error.get("subCategory", "")).endswith("NO_ASSOCIATIONS_FOUND")
                found[str(record_id)] = [] if none_found else None
        return [found.get(record_id) for record_id in record_ids]

    def _associations_paged(self, object_type: str, object_id: str, to_type: str) -> list[dict]:
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

    def update_object(
        self, object_type: str, object_id: str, properties: dict[str, str], *, window: float | None = None
    ) -> dict:
        """Change one record's properties; gathered with other executions' changes into one batch update (waiting
        up to `window` seconds for them while such changes are under way, when given)."""

        def one(item):
            path = self._objects_path(object_type) + f"/{item['id']}"
            return self._request("PATCH", path, json={"properties": item["properties"]})

        def many(items):
            if len({item["id"] for item in items}) < len(items):  # one record twice: each change on its own
                return [self._answer_of(one, item) for item in items]
            try:
                reply = self._request("POST", self._objects_path(object_type) + "/batch/update", json={"inputs": items})
            except HubSpotError:  # refused as a whole for one bad change: each on its own, each its own answer
                return [self._answer_of(one, item) for item in items]
            updated = {str(record["id"]): record for record in reply.get("results") or []}
            return [updated.get(item["id"]) or self._answer_of(one, item) for item in items]

        item = {"id": str(object_id), "properties": properties}
        return self._gathered(("update", object_type), item, one, many, window=window)

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
        """Complete one callback; gathered with other executions' completions into one batch completion."""
        [refusal] = self.complete_callbacks([(callback_id, output_fields)])
        if refusal is not None:
            raise refusal

    def complete_callbacks(self, completions: list[tuple[str, dict[str, str]]]) -> list[Exception | None]:
        """Complete several callbacks (at most BATCH_LIMIT), gathered with other executions' completions into one
        batch request: per callback None, or what HubSpot refused it with. A request that fails as a whole (HubSpot
        down) raises; so does a lone callback's refusal."""
        group = tuple({"callbackId": c, "outputFields": out, "typedOutputs": {}} for c, out in completions)
        return self._gathered(("complete",), group, self._complete_group, self._complete_groups, weight=len(group))

    def _complete_group(self, group: tuple) -> list:
        if len(group) == 1:
            self._complete_one(group[0])
            return [None]
        return self._complete_many(list(group))

    def _complete_groups(self, groups: list[tuple]) -> list[list]:
        refusals = iter(self._complete_many([item for group in groups for item in group]))
        return [[next(refusals) for _ in group] for group in groups]

    def _complete_one(self, item: dict) -> None:
        body = {"outputFields": item["outputFields"], "typedOutputs": item["typedOutputs"]}
        self._callbacks_request(f"/{item['callbackId']}/complete", body)

    def _complete_many(self, items: list[dict]) -> list:
        try:
            self._callbacks_request("/complete", {"inputs": items})
        except HubSpotError:
            # HubSpot refuses the whole batch for one bad callback (one already completed, say): each on its
            # own, so each gets its own answer and the others still complete.
            return [self._answer_of(self._complete_one, item) for item in items]
        return [None] * len(items)

    def _callbacks_request(self, tail: str, body: dict) -> None:
        if self.legacy:
            self._request("POST", f"/automation/v4/actions/callbacks{tail}", json=body)
            return
        try:
            self._request("POST", f"/automation/actions/callbacks/{self.version}{tail}", json=body)
        except HubSpotNotFound:
            # Older accounts may not route the date-versioned path yet; v4 is supported until 2027-03-30.
            log.info("date-versioned callback path not found; completing through v4")
            self._request("POST", f"/automation/v4/actions/callbacks{tail}", json=body)

    # -- gathering calls across executions --------------------------------------------------------------

    def _gathered(self, key: tuple, item, one, many, weight: int = 1, window: float | None = None):
        """`one(item)` when this process has no coalescer or nothing else to send with it, else `many(items)`
        for every caller with the same key (answers in order; an exception instance is that caller's error). An
        item counts `weight` towards the batch's BATCH_LIMIT."""
        if self.coalescer is None:
            return one(item)

        def send(items):
            return [one(items[0])] if len(items) == 1 else many(items)

        turn = (lambda: self.limiter.hubspot_ahead(self.portal_id)) if self.limiter else None
        key = (self.base_url, self.portal_id, *key)
        return self.coalescer.call(key, item, send, limit=BATCH_LIMIT, turn=turn, weight=weight, window=window)

    @staticmethod
    def _answer_of(function, item):
        try:
            return function(item)
        except Exception as exc:  # noqa: BLE001 - handed to the caller it belongs to, and raised there
            return exc

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
        coalescer=current_app.extensions.get("coalescer") if has_app_context() else None,
    )
