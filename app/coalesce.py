"""One request for many executions: calls that threads of one process make at about the same time, to the same
endpoint of the same account, are gathered and sent together (HubSpot's batch reads and batch callback completion).

The first caller of a key leads: it waits up to `window` seconds for others (less once `limit` are in), then
for the request's turn within the rate limits (`turn`) with the batch still open, sends them all in one request,
and hands each caller its own answer. It waits the window only when the key is busy (another call of it began
within `busy_within` seconds), so a lone execution is not slowed; while the rate limits make requests wait
(month-end), every call that arrives during the leader's wait for its turn rides along: the busier, the fuller
each request. A failure of the shared request is every caller's failure: nothing is answered for a call not made.
"""

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

# How long the leader waits for others to join (seconds): small next to an API call's own latency.
DEFAULT_WINDOW = 0.02


@dataclass
class _Batch:
    wait: float = 0.0  # how long its leader waits for others
    items: list = field(default_factory=list)
    weight: int = 0
    answers: Sequence | None = None
    error: BaseException | None = None
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Coalescer:
    def __init__(self, window: float = DEFAULT_WINDOW, busy_within: float | None = None):
        self.window = window
        self.busy_within = max(0.5, 5 * window) if busy_within is None else busy_within
        self._open: dict[Hashable, _Batch] = {}
        self._last_call: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self.sent = 0  # shared requests made (for tests and the benchmark)

    def call(
        self,
        key: Hashable,
        item: Any,
        send: Callable[[list], Sequence],
        limit: int = 100,
        before_joining: Callable[[], None] | None = None,
        turn: Callable[[], AbstractContextManager] | None = None,
        weight: int = 1,
        window: float | None = None,
    ) -> Any:
        """`send(items)` answers one value per item, in order (an Exception instance is raised to its caller).

        `before_joining()`, when given, runs before the item may go with others; when the key is not busy the
        item is sent alone without it (a write whose batch carries no idempotency key of its own marks itself
        first, so a retry after an unanswered batch knows to look before writing again).

        `turn()`, when given, takes the rate-limit turn of the request `send` is about to make (app/limits.py
        `turn_ahead`); the batch stays open while its leader waits for it. An item counts `weight` towards
        `limit` (an execution's several queries in one /batch of at most 30); one that does not fit starts the
        next batch. `window` overrides the coalescer's for this call (a call nobody waits for may wait longer)."""
        if before_joining is not None:
            if not self._busy(key):
                return self._alone(key, item, send)
            before_joining()
        with self._lock:
            now = time.monotonic()
            busy = now - self._last_call.get(key, float("-inf")) < self.busy_within
            self._last_call[key] = now
            batch = self._open.get(key)
            if batch is not None and batch.weight + weight > limit:
                self._seal(key, batch)  # this item does not fit: it starts the next one
                batch = None
            leader = batch is None
            if leader:
                wait = self.window if window is None else window
                batch = self._open[key] = _Batch(wait=wait if busy else 0.0)
            index = len(batch.items)
            batch.items.append(item)
            batch.weight += weight
            if batch.weight >= limit:
                self._seal(key, batch)  # full: the next caller starts another
        if leader:
            self._lead(key, batch, send, turn)
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

    def _lead(self, key, batch: _Batch, send, turn) -> None:
        if batch.wait > 0:
            batch.full.wait(batch.wait)
        try:
            with turn() if turn else nullcontext():
                self._close(key, batch)
                answers = send(list(batch.items))
            if len(answers) != len(batch.items):
                raise RuntimeError(f"a batch of {len(batch.items)} got {len(answers)} answers")
            batch.answers = answers
        except BaseException as error:  # noqa: BLE001 - handed to every caller, re-raised in each
            batch.error = error
        finally:
            self._close(key, batch)  # also when no turn came
            self.sent += 1
            batch.done.set()

    def _seal(self, key, batch: _Batch) -> None:
        """Full (the lock held): its leader need not wait out the window, and later callers start another."""
        del self._open[key]
        batch.full.set()

    def _close(self, key, batch: _Batch) -> None:
        """Later callers of the key start another batch."""
        with self._lock:
            if self._open.get(key) is batch:
                del self._open[key]


def init_app(app) -> None:
    """app.extensions["coalescer"]: this process's, or None when COALESCE_WINDOW_SECONDS is 0 (each call alone)."""
    window = float(app.config["COALESCE_WINDOW_SECONDS"])
    if window <= 0:
        app.extensions["coalescer"] = None
        return
    app.extensions["coalescer"] = Coalescer(window=window)
