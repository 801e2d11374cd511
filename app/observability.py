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
"""

import logging
import re

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
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact_text(text)
        if masked != text:
            record.exc_text = masked  # formatters print exc_text instead of formatting the traceback again
