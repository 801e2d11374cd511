"""One request for many executions: calls that threads of one process make at about the same time, to the same
endpoint of the same account, are gathered and sent together (HubSpot's batch reads and batch callback completion).

The first caller of a key leads: it waits up to `window` seconds for others (less once `limit` are in), sends
them all in one request, and hands each caller its own answer. It waits only when the key is busy (another call
of it began within `busy_within` seconds), so a lone execution is not slowed; under load every call saves
requests. A failure of the shared request is every caller's failure: nothing is answered for a call not made.
"""

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

# How long the leader waits for others to join (seconds): small next to an API call's own latency.
DEFAULT_WINDOW = 0.02


@dataclass
class _Batch:
    wait: float = 0.0  # how long its leader waits for others
    items: list = field(default_factory=list)
    answers: Sequence | None = None
    error: BaseException | None = None
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Coalescer:
    def __init__(self, window: float = DEFAULT_WINDOW, busy_within: float | None = None, throttled_window: float = 0.0):
        self.window = window
        self.busy_within = max(0.5, 5 * window) if busy_within is None else busy_within
        # While the rate limiter makes requests wait, a call waits for its turn anyway: a leader may as well wait
        # this long for company, and each turn carries up to a whole batch instead of one call.
        self.throttled_window = max(throttled_window, window)
        self.throttled_until = 0.0  # monotonic time; see throttled()
        self._open: dict[Hashable, _Batch] = {}
        self._last_call: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self.sent = 0  # shared requests made (for tests and the benchmark)

    def throttled(self, _policy: str = "", _seconds: float = 0.0) -> None:
        """The rate limiter just made a request wait (its on_wait hook): batch generously for a while."""
        self.throttled_until = time.monotonic() + 2.0

    def call(
        self,
        key: Hashable,
        item: Any,
        send: Callable[[list], Sequence],
        limit: int = 100,
        before_joining: Callable[[], None] | None = None,
    ) -> Any:
        """`send(items)` answers one value per item, in order (an Exception instance is raised to its caller).

        `before_joining()`, when given, runs before the item may go with others; when the key is not busy the
        item is sent alone without it (a write whose batch carries no idempotency key of its own marks itself
        first, so a retry after an unanswered batch knows to look before writing again)."""
        if before_joining is not None:
            if not self._busy(key):
                return self._alone(key, item, send)
            before_joining()
        with self._lock:
            now = time.monotonic()
            busy = now - self._last_call.get(key, float("-inf")) < self.busy_within
            self._last_call[key] = now
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                window = self.throttled_window if now < self.throttled_until else self.window
                batch = self._open[key] = _Batch(wait=window if busy else 0.0)
            index = len(batch.items)
            batch.items.append(item)
            if len(batch.items) >= limit:
                del self._open[key]  # full: the next caller starts another
                batch.full.set()
        if leader:
            self._lead(key, batch, send)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        answer = batch.answers[index]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _busy(self, key: Hashable) -> bool:
        with self._lock:
            return time.monotonic() - self._last_call.get(key, float("-inf")) < self.busy_within

    def _alone(self, key: Hashable, item: Any, send) -> Any:
        with self._lock:
            self._last_call[key] = time.monotonic()
        self.sent += 1
        answer = send([item])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _lead(self, key, batch: _Batch, send) -> None:
        if batch.wait > 0:
            batch.full.wait(batch.wait)
        with self._lock:
            if self._open.get(key) is batch:
                del self._open[key]  # closed: later callers start another
        try:
            answers = send(list(batch.items))
            if len(answers) != len(batch.items):
                raise RuntimeError(f"a batch of {len(batch.items)} got {len(answers)} answers")
            batch.answers = answers
        except BaseException as error:  # noqa: BLE001 - handed to every caller, re-raised in each
            batch.error = error
        finally:
            self.sent += 1
            batch.done.set()


def init_app(app) -> None:
    """app.extensions["coalescer"]: this process's, or None when COALESCE_WINDOW_SECONDS is 0 (each call alone)."""
    window = float(app.config["COALESCE_WINDOW_SECONDS"])
    if window <= 0:
        app.extensions["coalescer"] = None
        return
    from app import limits

    coalescer = Coalescer(window=window, throttled_window=float(app.config["COALESCE_THROTTLED_WINDOW_SECONDS"]))
    limits.on_wait.append(coalescer.throttled)
    app.extensions["coalescer"] = coalescer
