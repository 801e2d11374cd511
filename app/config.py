"""Every setting, read from the environment (12-factor).

Flask config keys carry the environment variable names, so `app.config["PUBLIC_URL"]` is `$PUBLIC_URL`.
In development the two keys are generated once and kept in the instance folder; production
(`APP_ENV=production`) refuses them and lists every missing setting in one message.
"""

import json
import os
import time
from pathlib import Path

from cryptography.fernet import Fernet

from app.backoff import parse_delays

QBO_API_BASE_URLS = {
    "sandbox": "https://sandbox-quickbooks.api.intuit.com/v3",
    "production": "https://quickbooks.api.intuit.com/v3",
}
QBO_APP_URLS = {
    "sandbox": "https://app.sandbox.qbo.intuit.com",
    "production": "https://app.qbo.intuit.com",
}

REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "TOKEN_ENCRYPTION_KEY",
    "DATABASE_URL",
    "PUBLIC_URL",
    "HUBSPOT_APP_ID",
    "HUBSPOT_CLIENT_ID",
    "HUBSPOT_CLIENT_SECRET",
    "QBO_CLIENT_ID",
    "QBO_CLIENT_SECRET",
)

DEFAULTS = {
    "APP_ENV": "development",
    "PORT": "5000",
    "REDIS_URL": "",
    "HUBSPOT_APP_ID": "",
    "HUBSPOT_CLIENT_ID": "",
    "HUBSPOT_CLIENT_SECRET": "",
    "HUBSPOT_DEVELOPER_API_KEY": "",
    "HUBSPOT_DEVELOPER_TOKEN": "",
    "HUBSPOT_API_BASE_URL": "https://api.hubapi.com",
    "HUBSPOT_AUTHORIZE_URL": "https://app.hubspot.com/oauth/authorize",
    "HUBSPOT_API_VERSION": "2026-03",
    "QBO_CLIENT_ID": "",
    "QBO_CLIENT_SECRET": "",
    "QBO_ENVIRONMENT": "sandbox",
    "QBO_MINOR_VERSION": "75",
    "SENTRY_DSN": "",
    # How long HubSpot keeps a blocked action waiting for our callback (ISO-8601 duration).
    "EXECUTION_EXPIRY": "P6D",
    # Seconds an HTTP call to HubSpot or QuickBooks may take before it counts as a transient failure.
    "HTTP_TIMEOUT": "30",
    "WORKER_THREADS": "4",
    "QUEUE_NAME": "qbo-actions",
    # An execution untouched this long with no job scheduled is considered lost and enqueued again.
    "STALE_AFTER_SECONDS": "180",
    # Seconds a worker's claim on an execution (a run, a callback completion) lasts; the worker renews it every
    # third of that while it works, so a worker killed on another host loses its work within one lease (and
    # the sweep, every minute, hands it on). A worker restarting on the same host takes it back at once.
    "LEASE_SECONDS": "45",
    "LOG_LEVEL": "INFO",
    # Seconds between tries of an execution after transient failures (QuickBooks or HubSpot down, throttled,
    # timing out); the last repeats, so once they are back everything settles within about a minute. After
    # RETRY_FOR_SECONDS of waiting in all: QUICKBOOKS_UNAVAILABLE (retry it from the console).
    "RETRY_DELAYS": "5,15,30,60",
    "RETRY_FOR_SECONDS": "7200",
    # Seconds between tries of a callback completion; the last repeats until the execution expires.
    "CALLBACK_RETRY_DELAYS": "5,15,30,60",
    # Seconds between tries of writing a document onto its HubSpot record, for at most a day.
    "WRITE_BACK_RETRY_DELAYS": "10,30,60,300,900",
    "WRITE_BACK_RETRY_FOR_SECONDS": "86400",
    # The verifier token of the Intuit app's webhooks (developer portal); empty: every webhook is refused.
    "QBO_WEBHOOK_VERIFIER_TOKEN": "",
    # Seconds between two ChangeDataCapture passes over a QuickBooks company (what webhooks missed).
    "RECONCILE_INTERVAL_SECONDS": "300",
    # Bytes a request body may have (1 MiB): a larger one is refused with 413 before it is read or verified.
    "MAX_CONTENT_LENGTH": str(1024 * 1024),
    # Our share of QuickBooks' limits per company (realm), kept by all web and worker processes together
    # (through Redis when REDIS_URL is set, else the database): requests per minute, requests at once, and
    # /batch requests per minute (a batch counts as a request too).
    "QBO_REQUESTS_PER_MINUTE": "500",
    "QBO_REQUESTS_IN_FLIGHT": "10",
    "QBO_BATCHES_PER_MINUTE": "120",
    # HubSpot's limit per portal, per 10 seconds.
    "HUBSPOT_REQUESTS_PER_10_SECONDS": "110",
    # Seconds a HubSpot call waits for other executions' calls of the same kind, to go as one batch request
    # (batch reads, batch callback completion), when such calls are under way; 0: every call alone. While the
    # rate limits make requests wait (month-end), calls also join during the wait for the batch's turn.
    "COALESCE_WINDOW_SECONDS": "0.02",
    # "off": send without waiting for a turn (when something in front of us limits the requests instead).
    "RATE_LIMITS": "on",
    # When set, GET /metrics (Prometheus) wants `Authorization: Bearer <METRICS_TOKEN>`; empty: open to all.
    "METRICS_TOKEN": "",
    # Log lines as `text` (development) or `json` (one object a line: time, level, logger, message, execution_id;
    # recommended in production, where a log collector reads them).
    "LOG_FORMAT": "text",
}


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message lists every problem at once."""


def load_config(instance_path: str, environ=None) -> dict:
    environ = os.environ if environ is None else environ
    config = {key: environ.get(key, default) for key, default in DEFAULTS.items()}
    for key in ("DATABASE_URL", "SECRET_KEY", "TOKEN_ENCRYPTION_KEY", "PUBLIC_URL", "QBO_API_BASE_URL", "QBO_APP_URL"):
        config[key] = environ.get(key, "")
    config["PUBLIC_URL"] = config["PUBLIC_URL"] or f"http://localhost:{config['PORT']}"
    # The session cookie only carries the signed-in portal and OAuth state; never send it over plain http
    # in production. Lax still lets it ride on the top-level redirects back from HubSpot and Intuit.
    config["SESSION_COOKIE_SECURE"] = config["PUBLIC_URL"].startswith("https://")
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + str(Path(instance_path) / "qbo-actions.db")
    config["QUEUE_SQLITE_PATH"] = environ.get("QUEUE_SQLITE_PATH", str(Path(instance_path) / "queue.db"))
    environment = config["QBO_ENVIRONMENT"]
    config["QBO_API_BASE_URL"] = config["QBO_API_BASE_URL"] or QBO_API_BASE_URLS.get(
        environment, QBO_API_BASE_URLS["production"]
    )
    config["QBO_APP_URL"] = config["QBO_APP_URL"] or QBO_APP_URLS.get(environment, QBO_APP_URLS["production"])
    return config


def finish_config(config: dict, instance_path: str) -> None:
    """Normalise types, fill development keys and check production settings (after test overrides)."""
    config["DATABASE_URL"] = normalise_database_url(config["DATABASE_URL"])
    config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")
    for key in ("HTTP_TIMEOUT", "STALE_AFTER_SECONDS"):
        config[key] = float(config[key])
    for key in ("WORKER_THREADS", "QBO_MINOR_VERSION"):
        config[key] = int(config[key])
    config["MAX_CONTENT_LENGTH"] = parse_max_content_length(config["MAX_CONTENT_LENGTH"])
    parse_rate_limits(config)
    for key in ("RETRY_DELAYS", "CALLBACK_RETRY_DELAYS", "WRITE_BACK_RETRY_DELAYS"):
        try:
            config[key] = list(parse_delays(config[key]))
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    for key in ("RETRY_FOR_SECONDS", "WRITE_BACK_RETRY_FOR_SECONDS"):
        config[key] = float(config[key])
    # Several secrets, comma-separated, let a rotated HubSpot client secret overlap with the old one.
    config["HUBSPOT_CLIENT_SECRETS"] = [s.strip() for s in config["HUBSPOT_CLIENT_SECRET"].split(",") if s.strip()]
    if config["APP_ENV"] == "production":
        missing = [key for key in REQUIRED_IN_PRODUCTION if not config.get(key)]
        if missing:
            raise ConfigError("Missing production settings: " + ", ".join(missing) + ". Set them in the environment.")
    else:
        fill_development_keys(config, instance_path)
    config["TOKEN_ENCRYPTION_KEYS"] = parse_fernet_keys(config["TOKEN_ENCRYPTION_KEY"])


def normalise_database_url(url: str) -> str:
    # Heroku-style URLs name the driver "postgres"; SQLAlchemy wants psycopg 3 spelled out.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_max_content_length(value) -> int:
    """MAX_CONTENT_LENGTH in bytes (Flask refuses a larger body with 413 before anything reads it)."""
    try:
        limit = int(str(value).strip())
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(f"MAX_CONTENT_LENGTH must be a positive number of bytes (got {value!r}), e.g. 1048576")
    return limit


RATE_LIMIT_NUMBERS = (
    "QBO_REQUESTS_PER_MINUTE",
    "QBO_REQUESTS_IN_FLIGHT",
    "QBO_BATCHES_PER_MINUTE",
    "HUBSPOT_REQUESTS_PER_10_SECONDS",
)


def parse_rate_limits(config) -> None:
    """The rate limits (app/limits.py) as numbers: a window admits at least 2 requests; 0 in flight is no cap."""
    config["RATE_LIMITS"] = str(config["RATE_LIMITS"]).strip().lower()
    if config["RATE_LIMITS"] not in ("on", "off"):
        raise ConfigError(f"RATE_LIMITS must be on or off (got {config['RATE_LIMITS']!r})")
    for key in RATE_LIMIT_NUMBERS:
        least = 0 if key == "QBO_REQUESTS_IN_FLIGHT" else 2
        given = config[key]
        try:
            config[key] = int(str(given).strip())
        except ValueError:
            config[key] = -1
        if config[key] < least:
            raise ConfigError(f"{key} must be a whole number, at least {least} (got {given!r})")


def parse_fernet_keys(value: str) -> list[str]:
    keys = [key.strip() for key in value.split(",") if key.strip()]
    problems = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)")
    if not keys or problems:
        raise ConfigError("TOKEN_ENCRYPTION_KEY is invalid: " + ("; ".join(problems) or "empty"))
    return keys


def fill_development_keys(config: dict, instance_path: str) -> None:
    """Generate SECRET_KEY and TOKEN_ENCRYPTION_KEY once and keep them beside the SQLite file."""
    if config["SECRET_KEY"] and config["TOKEN_ENCRYPTION_KEY"]:
        return
    stored = read_or_create_development_keys(Path(instance_path) / "development-keys.json")
    for key in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY"):
        config[key] = config[key] or stored[key]


def read_or_create_development_keys(path: Path) -> dict:
    # Web and worker start together: exactly one creates the file (O_EXCL); the other reads it, so both
    # processes encrypt tokens with the same key.
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {"SECRET_KEY": Fernet.generate_key().decode(), "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may not have finished writing yet
            text = path.read_text()
            if text:
                return json.loads(text)
            time.sleep(0.1)
        raise ConfigError(f"{path} is empty: delete it and start again") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(keys))
    return keys
