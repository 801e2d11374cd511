"""One request for many executions: calls that threads of one process make at about the same time, to the same
endpoint of the same account, are gathered and sent together (HubSpot's batch reads and batch callback completion).

The first caller of a key leads: it waits up to `window` seconds for others (less once `limit` are in), sends
them all in one request, and hands each caller its own answer. Alone, a call costs one window more; under load
it saves one request per caller. A failure of the shared request is every caller's failure, so nothing is
ever answered for a call that was not made.
"""

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

# How long the leader waits for others to join (seconds): small next to an API call's own latency.
DEFAULT_WINDOW = 0.02


@dataclass
class _Batch:
    items: list = field(default_factory=list)
    answers: Sequence | None = None
    error: BaseException | None = None
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Coalescer:
    def __init__(self, window: float = DEFAULT_WINDOW):
        self.window = window
        self._open: dict[Hashable, _Batch] = {}
        self._lock = threading.Lock()
        self.sent = 0  # shared requests made (for tests and the benchmark)

    def call(self, key: Hashable, item: Any, send: Callable[[list], Sequence], limit: int = 100) -> Any:
        """`send(items)` answers one value per item, in order (an Exception instance is raised to its caller)."""
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                batch = self._open[key] = _Batch()
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

    def _lead(self, key, batch: _Batch, send) -> None:
        if self.window > 0:
            batch.full.wait(self.window)
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


def coalescer(app_extensions: dict, name: str = "coalescer") -> Coalescer:
    """The process's coalescer, one per app."""
    found = app_extensions.get(name)
    if found is None:
        found = app_extensions.setdefault(name, Coalescer())
    return found
