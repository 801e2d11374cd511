"""One place that decides what a transient HTTP failure is and how long to wait before trying again."""

import logging
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests

from actions.errors import TransientError
from app import metrics

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
# Waits longer than this are not slept through inside a job: the step is rescheduled instead.
MAX_INLINE_WAIT = 10.0
# The first inline wait in seconds, doubled on each try (tests shorten it).
INLINE_BACKOFF = 0.5


def send(
    session,
    method: str,
    url: str,
    *,
    service: str,
    timeout: float,
    retries: int = 2,
    backoff: float | None = None,
    limit=None,
    **kwargs,
) -> requests.Response:
    """Send a request, retrying timeouts, 5xx and 429 a few times; raise TransientError when they persist.

    Safe to repeat only because every write we send is idempotent (QuickBooks `requestid`,
    HubSpot callback completion); reads are always safe.

    `limit()`, when given, is a context manager entered around each try (app/limits.py: a turn within
    the service's rate limits), so a retry waits for its own turn like any other request.
    """
    for attempt in range(retries + 1):
        reason, retry_after = None, None
        try:
            with limit() if limit else nullcontext():
                started = time.monotonic()
                response = session.request(method, url, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            metrics.request_done(service, method, "error", time.monotonic() - started)
            reason = f"{type(exc).__name__} calling {service}"
        else:
            metrics.request_done(service, method, response.status_code, time.monotonic() - started)
            if response.status_code not in TRANSIENT_STATUSES and not is_throttle_body(response):
                return response
            reason = f"{service} answered HTTP {response.status_code}"
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = (backoff or INLINE_BACKOFF) * (2**attempt) if retry_after is None else retry_after
        if attempt == retries or wait > MAX_INLINE_WAIT:
            raise TransientError(reason, retry_after=retry_after, service=service)
        log.info("%s; retrying in %.1fs", reason, wait)
        time.sleep(wait)
    raise AssertionError("unreachable")


def is_throttle_body(response: requests.Response) -> bool:
    """QuickBooks has answered throttling (fault 3001) with an XML body; never let it look like a success."""
    if response.status_code == 429:
        return True
    content_type = response.headers.get("Content-Type", "")
    return "xml" in content_type and b"ThrottleExceeded" in response.content[:2000]


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
