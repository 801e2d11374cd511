"""What leaves the server in logs and Sentry events: never a token, secret, signature, OAuth code or e-mail.

One set of patterns (`redact_text`), used by Sentry and by logging:
- `redact_text` masks e-mail addresses, bearer tokens, tokens in URLs and query strings, URL passwords,
  JWTs and the server's own configured secrets in a string;
- `before_send` / `redact_breadcrumb` (Sentry) also mask every value whose key names a secret (headers
  such as Authorization, X-HubSpot-Signature*, intuit-signature; `code`/`state`; access and refresh
  tokens; client secrets), drop request bodies and cookies, and mask long opaque strings (unknown tokens)
  anywhere in the event: messages, exception values, breadcrumbs, extra, contexts, request, frame variables;
- `install_log_redaction` masks the same text in every log record, whatever logger made it, before any
  handler (console, caplog, Sentry's logging integration) sees it.

And what a log line looks like (`configure_log_format`, LOG_FORMAT): `text` for a person, `json` (one object a line:
time, level, logger, message, and execution_id, portal_id, action while an execution is worked on, from
`execution_log_context`) for a log collector. Both formatters mask once more what they print.
"""

import copy
import json
import logging
import re
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

FILTERED = "[Filtered]"
EMAIL_MASK = "[email]"

# Keys (header names, variables, form and JSON fields) whose values are secret wherever they appear.
_SECRET_KEY = re.compile(
    r"token|secret|passw|authorization|cookie|signature|api_?key|hapikey|credential|private_?key|"
    r"csrf|session|fernet|dsn|^code$|^state$|^auth$",
    re.IGNORECASE,
)

_TEXT_PATTERNS: list[tuple[re.Pattern, str]] = [
    # user:password@ in URLs (DATABASE_URL, REDIS_URL, SENTRY_DSN): before the e-mail pattern eats it
    (re.compile(r"(\w[\w+.-]*://)[^/\s:@]+(:[^/\s@]*)?@"), rf"\1{FILTERED}@"),
    # e-mail addresses, also URL-encoded (QuickBooks queries carry them in the query string)
    (re.compile(r"[\w.+-][\w.+'-]*(?:@|%40)(?:[\w-]+(?:\.[\w-]+)*)?", re.IGNORECASE), EMAIL_MASK),
    # Authorization header values quoted anywhere
    (re.compile(r"\b(Bearer|Basic)\s+(?!\[Filtered\])[^\s'\",;)\]}]+", re.IGNORECASE), rf"\1 {FILTERED}"),
    # HubSpot's token metadata and refresh-token URLs carry the token in the path
    (re.compile(r"/(access-tokens|refresh-tokens)/[^/?#\s'\"]+"), rf"/\1/{FILTERED}"),
    # token and secret fields in query strings, form bodies, JSON and reprs: access_token=..., "client_secret": "..."
    (
        re.compile(
            r"\b((?:access|refresh|id)_token|client_secret|hapikey|api_key|password|verifier_token)"
            r"([\"']?\s*[:=]\s*[\"']?)(?!\[Filtered\])[^\"'&\s,;)}\]]+",
            re.IGNORECASE,
        ),
        rf"\1\2{FILTERED}",
    ),
    # the OAuth redirect's code and state, in query strings only (a fault "code: 6240" stays readable)
    (re.compile(r"(?<![\w-])(code|state)=[^&\s'\"#]+"), rf"\1={FILTERED}"),
    # JWTs and JWEs (QuickBooks access tokens are JWEs)
    (re.compile(r"\beyJ[\w-]+(?:\.[\w-]*){1,4}"), FILTERED),
]

# In Sentry events only: a long run of token characters holding letters and digits is taken for an unknown
# token (HubSpot's and Intuit's opaque tokens, Fernet ciphertexts, signatures). Ids, UUIDs and paths are shorter
# or hold '/' and '.'.
_OPAQUE = re.compile(r"(?<![\w+=-])(?=[\w+=-]*\d)(?=[\w+=-]*[A-Za-z])[\w+=-]{40,}(?![\w+=-])")

# Event keys that hold the event's own structure, never user data: left alone so Sentry can group and link.
_STRUCTURAL_KEYS = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "platform",
        "sdk",
        "modules",
        "release",
        "environment",
        "server_name",
        "trace_id",
        "span_id",
        "parent_span_id",
        "abs_path",
        "filename",
        "module",
        "function",
        "lineno",
        "colno",
        "in_app",
        "level",
        "logger",
        "mechanism",
    }
)

_known_secrets: set[str] = set()
# Config values never to appear in an event or a log line, even when nothing else gives them away.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "TOKEN_ENCRYPTION_KEY",
    "HUBSPOT_CLIENT_SECRET",
    "HUBSPOT_DEVELOPER_API_KEY",
    "HUBSPOT_DEVELOPER_TOKEN",
    "QBO_CLIENT_SECRET",
    "QBO_WEBHOOK_VERIFIER_TOKEN",
    "METRICS_TOKEN",
)


def remember_secrets(config) -> None:
    """Mask the server's own secrets (each of a comma-separated list) wherever they would appear."""
    for name in SECRET_SETTINGS:
        for value in str(config.get(name) or "").split(","):
            if len(value.strip()) >= 8:
                _known_secrets.add(value.strip())


def redact_text(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, FILTERED)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_event_text(text: str) -> str:
    return _OPAQUE.sub(FILTERED, redact_text(text))


def is_secret_key(key) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.replace("-", "_")))


def scrub(value, key=None):
    """A copy of value (dicts, lists and strings, as Sentry serializes an event) with secrets masked."""
    if key in _STRUCTURAL_KEYS:
        return value
    if is_secret_key(key) and value not in (None, "", [], {}):
        return FILTERED
    if isinstance(value, str):
        return _redact_event_text(value)
    if isinstance(value, dict):
        return {k: scrub(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


# -- Sentry -----------------------------------------------------------------------------------------------


def before_send(event, _hint):
    """Sentry's last look at an event: no request body or cookies, and every secret masked."""
    request = event.get("request")
    if isinstance(request, dict):
        for part in ("data", "cookies"):
            if request.get(part):
                request[part] = FILTERED
    return scrub(event)


def redact_breadcrumb(crumb, _hint):
    """Breadcrumbs (HTTP calls, log lines) are kept masked from the start: HubSpot's token metadata URL
    carries the access token in its path, QuickBooks queries carry e-mails in theirs."""
    return scrub(crumb)


def sentry_options(config) -> dict:
    remember_secrets(config)
    return {
        "dsn": config["SENTRY_DSN"],
        # send_default_pii off: no user, cookies or client IP; request bodies are not sent either.
        "send_default_pii": False,
        "max_request_body_size": "never",
        "environment": config["APP_ENV"],
        "before_send": before_send,
        "before_send_transaction": before_send,  # should tracing ever be turned on: span data holds URLs too
        "before_breadcrumb": redact_breadcrumb,
        # Tests give a transport that records envelopes; production sends to the DSN.
        **({"transport": config["SENTRY_TRANSPORT"]} if config.get("SENTRY_TRANSPORT") else {}),
    }


# -- logging ----------------------------------------------------------------------------------------------


def install_log_redaction() -> None:
    """Mask e-mails, tokens and secrets in every log record as it is made (every logger, ours and libraries':
    werkzeug logs OAuth callbacks' query strings, urllib3 the URLs it calls). Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def make_record(*args, **kwargs):
        record = current(*args, **kwargs)
        redact_record(record)
        return record

    make_record.redacts = True
    logging.setLogRecordFactory(make_record)


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite a record only when it holds something to mask, so Sentry still groups plain records by template."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it itself when it formats the record
        return
    masked = redact_text(message)
    if masked != message and not _mask_named_arguments(record):
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact_text(text)
        if masked != text:
            record.exc_text = masked  # formatters print exc_text instead of formatting the traceback again


def _mask_named_arguments(record: logging.LogRecord) -> bool:
    """A record with named arguments (gunicorn's access log: `%(r)s %(s)s` and a dict of atoms) keeps them, each
    masked, so a formatter can still read the status or the path; True when that masks the whole line."""
    if not isinstance(record.args, Mapping) or not isinstance(record.msg, str):
        return False
    named = copy.copy(record.args)  # the same mapping type (gunicorn's answers "-" for an atom it lacks)
    for key, value in list(named.items()):
        if isinstance(value, str):
            named[key] = redact_text(value)
    try:
        message = record.msg % named
    except Exception:
        return False
    if redact_text(message) != message:  # a secret spread over two arguments: mask the line as a whole
        return False
    record.args = named
    return True


# -- log lines: the execution being worked on, text or JSON ------------------------------------------------

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("execution_id", "portal_id", "action")

_execution: ContextVar[dict | None] = ContextVar("qbo_actions_execution", default=None)


@contextmanager
def execution_log_context(execution_id, portal_id=None, action=None):
    """Every log line made inside (in this thread or task) carries the execution's id, and its portal and action
    when known. Yields the fields, which the caller may complete once it knows them (`fields["action"] = ...`).
    Nested contexts stack: the inner one is in force until it ends."""
    fields = {"execution_id": execution_id, "portal_id": portal_id, "action": action}
    token = _execution.set(fields)
    try:
        yield fields
    finally:
        _execution.reset(token)


def current_log_context() -> dict:
    """The fields of the execution being worked on, only those known; {} outside `execution_log_context`."""
    fields = _execution.get()
    return {key: value for key, value in (fields or {}).items() if value is not None}


class ExecutionContextFilter(logging.Filter):
    """Puts execution_id, portal_id and action (None outside an execution) on each record it passes, unless the
    record already names them (`log.info(..., extra={"execution_id": 42})`). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_log_context()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


def _context_of(record: logging.LogRecord) -> dict:
    """The record's execution fields: set by the filter, else read now (a handler without the filter)."""
    if all(hasattr(record, name) for name in CONTEXT_FIELDS):
        return {name: getattr(record, name) for name in CONTEXT_FIELDS if getattr(record, name) is not None}
    return current_log_context()


class TextFormatter(logging.Formatter):
    """`2026-01-31 23:59:59,123 INFO app.worker: invoice created [execution 42]`, masked."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt=None):
        super().__init__(fmt, datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        execution_id = _context_of(record).get("execution_id")
        return redact_text(f"{line} [execution {execution_id}]" if execution_id is not None else line)

    def formatException(self, ei) -> str:
        return redact_text(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, process, the execution's fields when
    an execution is worked on, `exception` (the traceback) when there is one, and for gunicorn's access log the
    request's method, path (no query string), status, duration_ms and bytes. Masked like every log record."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "process": record.process,
            **_context_of(record),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry.update(_access_fields(record.args))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(self.formatException(record.exc_info))  # other handlers reuse it
        if record.exc_text:
            entry["exception"] = redact_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _access_fields(atoms: Mapping) -> dict:
    def number(value, scale=1):
        try:
            return int(value) if scale == 1 else round(int(value) / scale, 3)
        except (TypeError, ValueError):
            return None

    fields = {
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "status": number(atoms.get("s")),
        "duration_ms": number(atoms.get("D"), scale=1000),  # gunicorn's D is microseconds
        "bytes": number(atoms.get("B")),
    }
    return {key: value for key, value in fields.items() if value is not None}


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")


def configure_log_format(config) -> None:
    """Give the root logger's console handlers (the one logging.basicConfig made, or gunicorn.conf.py's) the
    LOG_FORMAT formatter and the execution filter. Handlers others attached (pytest's, Sentry's) are left as
    they are; the execution fields still reach them through `current_log_context`. Idempotent."""
    from app.config import ConfigError

    log_format = str(config.get("LOG_FORMAT") or "text").strip().lower()
    try:
        formatter = formatter_for(log_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for handler in logging.getLogger().handlers:
        if type(handler) is not logging.StreamHandler:  # not a subclass: pytest's capture, files, syslog
            continue
        handler.setFormatter(formatter)
        if not any(isinstance(existing, ExecutionContextFilter) for existing in handler.filters):
            handler.addFilter(ExecutionContextFilter())
