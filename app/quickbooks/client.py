"""BooksClient: python-quickbooks for one connection, speaking dicts to the actions.

python-quickbooks does the wire work (URLs, minorversion, requestid, fault parsing); this class adds what
it lacks: timeouts and retries of transient failures, one refresh-and-retry on a 401, and faults turned
into `QuickBooksFault` for the catalogue.
"""

import json
import re
import threading
import time
import uuid

import requests
from quickbooks import QuickBooks
from quickbooks import exceptions as qb_exceptions

from actions.errors import TRANSIENT_FAULT_CODES, QuickBooksAuthExpired, QuickBooksFault, TransientError
from actions.steps.company import COMPANY_INFO, PREFERENCES
from app.http import send

# A company's settings and lists that rarely change (preferences, company info, tax codes, currencies) are
# kept per process and realm for this many seconds: every document needs them, none needs them fresher.
PREFERENCES_TTL = 300.0
# QuickBooks takes at most 30 operations in one /batch.
BATCH_CREATES = 30
BATCH_QUERIES = 30  # QuickBooks answers 1040 to a /batch of more operations
BATCH_NAMESPACE = uuid.UUID("7d6f0c1e-4b8a-4c55-9a51-3c2f1f0b9e21")  # batch request ids, from their writes' ids
_company_cache: dict[tuple, tuple[float, object]] = {}
_company_cache_lock = threading.Lock()


class BearerSession:
    """The `session` python-quickbooks calls: a bearer token, a timeout, transient retries and, with
    `limit(url)` (a context manager), each try waiting for its turn within the company's rate limits."""

    def __init__(self, access_token: str, timeout: float, http=None, limit=None):
        self.access_token = access_token
        self.timeout = timeout
        self.http = http or requests.Session()
        self.limit = limit
        self.last_response = None  # python-quickbooks drops a fault's `element`; we read it from here

    def request(self, method, url, headers=None, params=None, data=None):
        self.last_response = send(
            self.http,
            method,
            url,
            service="QuickBooks",
            timeout=self.timeout,
            limit=(lambda: self.limit(url)) if self.limit else None,
            headers=headers,
            params=params,
            data=data,
        )
        return self.last_response


class BooksClient:
    def __init__(
        self,
        *,
        realm_id: str,
        company_name: str,
        tokens,
        api_base_url: str,
        minor_version: int = 75,
        timeout: float = 30,
        country: str = "",
        limiter=None,
        coalescer=None,
    ):
        self.realm_id = realm_id
        self.company_name = company_name or realm_id
        self.country = country or ""  # CompanyInfo.Country as read when the company was connected
        self.tokens = tokens  # .access_token(), .refresh(rejected=...)
        self.timeout = timeout
        self.limiter = limiter  # app.limits.Limiter: this company's requests, shared with every process
        self.coalescer = coalescer  # app.coalesce.Coalescer: documents written at once go as one /batch
        self.http = requests.Session()
        self.qb = QuickBooks(company_id=realm_id, minorversion=minor_version)
        self.qb.api_url_v3 = api_base_url.rstrip("/")
        self.qb.sandbox = False  # the base URL above already says which environment

    # -- reads -------------------------------------------------------------------------------------------

    def query(self, select: str) -> list[dict]:
        result = self._call(lambda: self.qb.query(select))
        return result.get("QueryResponse", {}).get(entity_of(select), [])

    def query_batch(self, selects: list[str]) -> list[list[dict]]:
        """Several queries in one request (one /batch): answers in the order asked. Queries other executions of
        this process ask of the company at the same time join them (at most 30 in all; one asked twice goes once)."""
        if self.coalescer is None or len(selects) > BATCH_QUERIES:
            answers = self._ask_together([selects])[0]
            if isinstance(answers, Exception):
                raise answers
            return answers
        key = (self.qb.api_url_v3, self.realm_id, "read")
        turn = (lambda: self.limiter.quickbooks_ahead(self.realm_id)) if self.limiter else None
        # Display-name checks go as one query per entity for the whole batch (NameChecks): room is kept for those.
        weight = 1 + sum(1 for select in selects if not NAME_CHECK.fullmatch(select))
        limit = BATCH_QUERIES - len(NAME_ENTITIES)
        return self.coalescer.call(key, selects, self._ask_together, limit, turn=turn, weight=weight)

    def _ask_together(self, askers: list[list[str]]) -> list:
        """One request for every asker's queries: per asker its answers, or the fault of its first refused query.
        Display-name checks of several askers go as one query per entity (see NameChecks)."""
        distinct = list(dict.fromkeys(select for selects in askers for select in selects))
        checks = NameChecks(distinct)
        sent = checks.queries()
        if len(sent) == 1:
            answers = {sent[0]: self.query(sent[0])}
        else:  # one /batch; more only if long name lists made the checks outgrow it
            answers = {}
            for start in range(0, len(sent), BATCH_QUERIES):
                answers |= self._batch_queries(sent[start : start + BATCH_QUERIES])
        answers = checks.answers(answers)
        return [self._answers_for(selects, answers) for selects in askers]

    def _batch_queries(self, selects: list[str]) -> dict:
        body = {"BatchItemRequest": [{"bId": f"q{n}", "Query": select} for n, select in enumerate(selects)]}
        result = self._call(lambda: self.qb.batch_operation(json.dumps(body)))
        by_id = {item["bId"]: item for item in result.get("BatchItemResponse", [])}
        return {select: self._query_answer(by_id.get(f"q{n}", {}), select) for n, select in enumerate(selects)}

    @staticmethod
    def _query_answer(item: dict, select: str):
        if "Fault" in item:
            return fault_from_batch(item["Fault"], entity_of(select))
        return item.get("QueryResponse", {}).get(entity_of(select), [])

    @staticmethod
    def _answers_for(selects: list[str], answers: dict):
        faults = [answers[select] for select in selects if isinstance(answers[select], Exception)]
        return faults[0] if faults else [answers[select] for select in selects]

    def read(self, entity: str, entity_id: str) -> dict | None:
        try:
            return self._call(lambda: self.qb.get_single_object(entity, entity_id))[entity]
        except QuickBooksFault as fault:
            if fault.code == 610:
                return None
            raise

    def changes_since(self, entities: list[str], since: str) -> tuple[dict[str, list[dict]], str]:
        """ChangeDataCapture (GET /cdc): {entity: records changed since `since`}, and QuickBooks' `time`.

        A deleted record comes as {"Id", "status": "Deleted", "MetaData": {"LastUpdatedTime"}}. QuickBooks
        looks back at most 30 days and answers at most 1000 objects.
        """
        result = self._call(lambda: self.qb.change_data_capture(",".join(entities), since))
        changes: dict[str, list[dict]] = {entity: [] for entity in entities}
        for block in result.get("CDCResponse") or []:
            for group in block.get("QueryResponse") or []:
                for entity in entities:
                    changes[entity].extend(group.get(entity) or [])
        return changes, str(result.get("time") or "")

    def preferences(self) -> dict:
        """The company's preferences: kept as the answer to the query documents ask them by in their /batch."""
        return self._kept_record(PREFERENCES, "preferences", "Preferences")

    def company_info(self) -> dict:
        return self._kept_record(COMPANY_INFO, f"companyinfo/{self.realm_id}", "CompanyInfo")

    def query_batch_cached(self, selects: list[str]) -> list[list[dict]]:
        """query_batch for lists that rarely change (tax codes, currencies), kept like the preferences."""
        answers = self.kept_answers(selects)
        if answers is None:
            answers = self.query_batch(selects)
            self.keep_answers(selects, answers)
        return answers

    def kept_answers(self, selects: list[str]) -> list[list[dict]] | None:
        """The answers kept for these queries about the company's settings and rarely changing lists, or None
        unless every one of them is kept (and younger than PREFERENCES_TTL)."""
        now = time.monotonic()
        with _company_cache_lock:
            kept = [_company_cache.get((self.realm_id, select)) for select in selects]
        if any(entry is None or now - entry[0] >= PREFERENCES_TTL for entry in kept):
            return None
        return [answer for _, answer in kept]

    def keep_answers(self, selects: list[str], answers: list[list[dict]]) -> None:
        """Keep these answers for the company's next documents, however they were asked (alone or in a /batch)."""
        now = time.monotonic()
        with _company_cache_lock:
            for select, answer in zip(selects, answers, strict=True):
                _company_cache[(self.realm_id, select)] = (now, answer)

    def _kept_record(self, select: str, path: str, entity: str) -> dict:
        """A company-wide record (preferences, company info) read with GET, kept as its query's answer."""
        answers = self.kept_answers([select])
        if answers is None:
            url = f"{self.qb.api_url}/company/{self.realm_id}/{path}"
            answers = [[self._call(lambda: self.qb.get(url))[entity]]]
            self.keep_answers([select], answers)
        return answers[0][0]

    # -- writes ------------------------------------------------------------------------------------------

    def create(self, entity: str, body: dict, *, request_id: str, before_batch=None) -> dict:
        """Create one record; the same request_id always yields the same record (QuickBooks replays it).

        With `before_batch` (the caller's mark that this write may travel without its own request id), a write
        made while others of this company are being written joins them in one /batch of up to 30 creates. A
        batch carries one request id for all (derived from theirs, so a resend of the same batch is replayed);
        when it goes unanswered each caller hears TransientError and, marked, looks before writing again."""
        if self.coalescer is None or before_batch is None:
            return self._create_one((entity, body, request_id))
        key = (self.qb.api_url_v3, self.realm_id, "create")
        turn = (lambda: self.limiter.quickbooks_ahead(self.realm_id)) if self.limiter else None
        return self.coalescer.call(
            key, (entity, body, request_id), self._create_many, BATCH_CREATES, before_batch, turn=turn
        )

    def _create_one(self, item) -> dict:
        entity, body, request_id = item
        try:
            return self._call(lambda: self.qb.create_object(entity, json.dumps(body), request_id=request_id))[entity]
        except QuickBooksFault as fault:
            fault.entity = entity
            raise

    def _create_many(self, items) -> list:
        if len(items) == 1:
            return [self._create_one(items[0])]
        # With a request id, QuickBooks wants bIds of at most 10 characters: the position stands for the write.
        operations = [
            {"bId": f"w{n}", "operation": "create", entity: body} for n, (entity, body, _) in enumerate(items)
        ]
        batch_id = str(uuid.uuid5(BATCH_NAMESPACE, ",".join(sorted(rid for _, _, rid in items))))
        url = f"{self.qb.api_url}/company/{self.realm_id}/batch"
        payload = json.dumps({"BatchItemRequest": operations})
        result = self._call(lambda: self.qb.make_request("POST", url, payload, request_id=batch_id))
        answers = {answer.get("bId"): answer for answer in result.get("BatchItemResponse") or []}
        return [self._batch_answer(answers.get(f"w{n}"), entity) for n, (entity, _, _) in enumerate(items)]

    @staticmethod
    def _batch_answer(answer: dict | None, entity: str):
        if answer is None:
            return TransientError("QuickBooks left a write of the batch unanswered")
        if "Fault" in answer:
            try:
                return fault_from_batch(answer["Fault"], entity)
            except TransientError as transient:
                return transient
        return answer[entity]

    # -- plumbing ----------------------------------------------------------------------------------------

    def _call(self, operation):
        token = self.tokens.access_token()
        try:
            return self._attempt(operation, token)
        except qb_exceptions.AuthorizationException as exc:
            if exc.error_code != 401:
                raise fault_from(exc) from exc
        # The token died before its expiry: refresh once and try again, then give up.
        try:
            return self._attempt(operation, self.tokens.refresh(rejected=token))
        except qb_exceptions.AuthorizationException as exc:
            raise QuickBooksAuthExpired(self.company_name) from exc

    def _attempt(self, operation, token):
        limit = (lambda url: self.limiter.quickbooks(self.realm_id, url)) if self.limiter else None
        self.qb.session = BearerSession(token, self.timeout, self.http, limit=limit)
        try:
            return operation()
        except qb_exceptions.AuthorizationException:
            raise
        except qb_exceptions.QuickbooksException as exc:
            fault = fault_from(exc, self.qb.session.last_response)
            if fault.code in TRANSIENT_FAULT_CODES:
                raise TransientError(f"QuickBooks fault {fault.code}: {fault.message[:120]}") from exc
            raise fault from exc


# The display-name check an execution asks before it creates a customer (actions/steps/customers.py name_queries).
NAME_CHECK = re.compile(
    r"SELECT \* FROM (\w+) WHERE DisplayName IN \((.*)\) AND Active IN \(true, false\) MAXRESULTS 1000"
)
QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
NAMES_PER_CHECK = 100  # QuickBooks sets no limit on IN lists we know of; kept modest
NAME_ENTITIES = ("Customer", "Vendor", "Employee")  # display names are unique across the three


class NameChecks:
    """Several executions' display-name checks of one entity, asked as one query and answered to each.

    At month-end every new contact checks its candidate names against customers, vendors and employees: three
    queries each, which would fill a /batch (30 queries) with the checks of seven contacts. Asked together (the
    names of all in one IN list per entity, a hundred at most), a /batch carries the reads of four times as many.
    Each check is answered with the records holding one of its names (compared ignoring case, as names are
    taken). A lone check is sent as asked."""

    def __init__(self, selects: list[str]):
        self.selects = selects
        self.checks: dict[str, tuple[str, list[str]]] = {}  # select → (entity, its quoted names)
        by_entity: dict[str, list[str]] = {}
        for select in selects:
            if (match := NAME_CHECK.fullmatch(select)) and (quoted := quoted_list(match.group(2))):
                self.checks[select] = (match.group(1), quoted)
                by_entity.setdefault(match.group(1), []).append(select)
        self.checks = {select: check for select, check in self.checks.items() if len(by_entity[check[0]]) > 1}
        self.merged: dict[str, list[str]] = {}  # entity → the queries asking its checks' names
        for entity in dict.fromkeys(entity for entity, _ in self.checks.values()):
            names = list(dict.fromkeys(n for e, quoted in self.checks.values() if e == entity for n in quoted))
            self.merged[entity] = [
                f"SELECT * FROM {entity} WHERE DisplayName IN ({', '.join(names[start : start + NAMES_PER_CHECK])})"
                " AND Active IN (true, false) MAXRESULTS 1000"
                for start in range(0, len(names), NAMES_PER_CHECK)
            ]

    def queries(self) -> list[str]:
        sent = [select for select in self.selects if select not in self.checks]
        return sent + [query for queries in self.merged.values() for query in queries]

    def answers(self, sent: dict) -> dict:
        """The answer to every select asked, from the answers to the queries sent."""
        answers = {select: sent[select] for select in self.selects if select not in self.checks}
        for select, (entity, quoted) in self.checks.items():
            found = [sent[query] for query in self.merged[entity]]
            refused = [answer for answer in found if isinstance(answer, Exception)]
            names = {unquoted(name).casefold() for name in quoted}
            holding = [record for records in found if isinstance(records, list) for record in records]
            answers[select] = refused[0] if refused else [r for r in holding if display_name(r).casefold() in names]
        return answers


def quoted_list(text: str) -> list[str]:
    """The quoted literals of an IN list as written ("'a', 'b'"), or [] when it is not only that."""
    quoted = [match.group(0) for match in QUOTED.finditer(text)]
    return quoted if quoted and ", ".join(quoted) == text else []


def display_name(record: dict) -> str:
    return str(record.get("DisplayName", ""))


def unquoted(literal: str) -> str:
    """The value of a quoted query literal (actions/steps/query.py `literal` made it)."""
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def entity_of(select: str) -> str:
    match = re.search(r"\bfrom\s+(\w+)", select, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a QuickBooks query: {select!r}")
    return match.group(1)


def fault_from(exc: qb_exceptions.QuickbooksException, response=None) -> QuickBooksFault:
    return QuickBooksFault(int(exc.error_code or 0), str(exc.message), str(exc.detail or ""), element_of(response))


def element_of(response) -> str:
    """The field a fault is about (`element`), which python-quickbooks does not pass on."""
    try:
        errors = response.json()["Fault"]["Error"]
    except (AttributeError, KeyError, TypeError, ValueError):
        return ""
    return str((errors[0] if errors else {}).get("element") or "")


def fault_from_batch(fault: dict, entity: str) -> QuickBooksFault:
    error = (fault.get("Error") or [{}])[0]
    code = int(error.get("code") or 0)
    if code in TRANSIENT_FAULT_CODES:
        raise TransientError(f"QuickBooks fault {code} in a batch")
    return QuickBooksFault(code, error.get("Message", ""), error.get("Detail", ""), error.get("element", ""), entity)


def books_client(connection, config) -> BooksClient:
    """The BooksClient for one stored connection, with its tokens refreshed on demand and, within the app,
    its requests rate-limited."""
    from flask import current_app, has_app_context

    from app.quickbooks.oauth import ConnectionTokens

    return BooksClient(
        realm_id=connection.realm_id,
        company_name=connection.company_name,
        tokens=ConnectionTokens(connection, config),
        api_base_url=config["QBO_API_BASE_URL"],
        minor_version=config["QBO_MINOR_VERSION"],
        timeout=config["HTTP_TIMEOUT"],
        country=connection.country or "",
        limiter=current_app.extensions.get("limiter") if has_app_context() else None,
        coalescer=current_app.extensions.get("coalescer") if has_app_context() else None,
    )
