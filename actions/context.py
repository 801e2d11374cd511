"""What an action gets to work with: the enrolled record, its inputs, the two clients and the settings.

The worker builds the context; actions never import Flask or `app`. The Protocols below are all an
action may use of the clients, so the fakes in tests and the real clients stay interchangeable.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Fixed namespace: request ids must stay the same across processes and releases for one execution step.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1b8f4e-3c57-4b0e-9a51-0c1d2e3f4a5b")


class CRM(Protocol):
    def get_object(self, object_type: str, object_id: str, properties: list[str]) -> dict: ...
    def read_objects(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict]: ...
    def associations(self, object_type: str, object_id: str, to_type: str) -> list[dict]: ...


class Books(Protocol):
    realm_id: str
    company_name: str
    country: str  # CompanyInfo.Country as stored at connect time; "" when unknown

    def query(self, select: str) -> list[dict]: ...
    def query_batch(self, selects: list[str]) -> list[list[dict]]: ...
    def read(self, entity: str, entity_id: str) -> dict | None: ...
    def preferences(self) -> dict: ...
    def company_info(self) -> dict: ...
    def query_batch_cached(self, selects: list[str]) -> list[list[dict]]: ...
    def kept_answers(self, selects: list[str]) -> list[list[dict]] | None: ...
    def keep_answers(self, selects: list[str], answers: list[list[dict]]) -> None: ...
    def create(self, entity: str, body: dict, *, request_id: str, before_batch=None) -> dict: ...


class Journal(Protocol):
    """Where an action leaves a trace that outlives a crash: writes made so far, decisions worth showing."""

    def wrote(self, step: str, entity: str, record: dict) -> None: ...
    def sending_in_batch(self, step: str, entity: str) -> None: ...
    def written(self, step: str) -> dict | None: ...
    def note(self, text: str) -> None: ...


@dataclass
class Claim:
    """The answer to "may this execution write the record's document?" (see app/storage/claims.py)."""

    outputs: dict | None = None  # an earlier execution already succeeded: its output fields
    busy: bool = False  # an earlier execution is still at work: try again later
    owner: str = ""  # the earlier execution's callbackId, if any
    inherited: list[str] = field(default_factory=list)  # write steps taken over from a failed earlier execution


class Claims(Protocol):
    """One document per (record, action, company), across executions, workers and processes."""

    def claim(self, action: str, object_type: str, object_id: str) -> Claim: ...


class Mappings(Protocol):
    """Remembered HubSpot → QuickBooks matches for this connection (kind: contact, company, product, vendor,
    payment_method, account), each with the facts a warm execution writes with (see actions/steps/memory.py)."""

    def get(self, kind: str, hubspot_id: str) -> str | None: ...
    def recall(self, kind: str, hubspot_id: str) -> tuple[str, dict] | None: ...
    def remember(self, kind: str, hubspot_id: str, quickbooks_id: str, facts: dict | None = None) -> None: ...
    def forget(self, kind: str, hubspot_id: str) -> None: ...


@dataclass
class ActionContext:
    portal_id: int
    callback_id: str
    action: str
    object_type: str  # DEAL, QUOTE or COMMERCE_PAYMENT, as HubSpot names it
    object_id: str
    inputs: Mapping[str, str]
    crm: CRM
    books: Books
    journal: Journal
    mappings: Mappings
    claims: Claims | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    quickbooks_app_url: str = "https://app.qbo.intuit.com"

    def request_id(self, step: str) -> str:
        """QuickBooks' idempotency key for one write of this execution: same step, same id, on every retry."""
        return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{self.portal_id}:{self.callback_id}:{step}"))

    def input(self, name: str, default: str = "") -> str:
        value = self.inputs.get(name)
        return default if value is None or str(value).strip() == "" else str(value).strip()

    def document_url(self, entity: str, entity_id: str) -> str:
        page = LINK_PAGES.get(entity, entity.lower())
        return f"{self.quickbooks_app_url}/app/{page}?txnId={entity_id}"


# QuickBooks' web pages for a document; an expense is a Purchase in the API but /app/expense on screen.
LINK_PAGES = {"Purchase": "expense"}


@dataclass
class ActionResult:
    document: dict  # the QuickBooks record created (or found to be ours)
    entity: str  # QuickBooks' name for it: Invoice, Estimate, ...
    customer_id: str = ""
    extra_outputs: dict[str, str] = field(default_factory=dict)

    def output_fields(self, ctx: ActionContext) -> dict[str, str]:
        document_id = str(self.document["Id"])
        return {
            "quickbooks_document_id": document_id,
            "quickbooks_document_number": str(self.document.get("DocNumber") or ""),
            "quickbooks_document_url": ctx.document_url(self.entity, document_id),
            "quickbooks_customer_id": self.customer_id,
            "error_code": "",
            "error_message": "",
            **self.extra_outputs,
        }


@dataclass
class EarlierResult:
    """The record already has its document from an earlier execution: answer with that one's outputs."""

    outputs: dict[str, str]

    def output_fields(self, ctx: ActionContext) -> dict[str, str]:
        return {key: str(value) for key, value in self.outputs.items() if key != "hs_execution_state"}
