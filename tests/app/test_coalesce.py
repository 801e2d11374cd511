"""Calls of many threads gathered into one request, each caller answered with its own result."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from app.coalesce import Coalescer


def busy(coalescer: Coalescer, *keys) -> None:
    """A call of each key just now: the next ones wait for company (a lone call does not)."""
    for key in keys:
        coalescer.call(key, None, lambda items: items)
    coalescer.sent = 0


def test_concurrent_calls_share_one_request_and_each_gets_its_answer():
    coalescer = Coalescer(window=0.2)
    busy(coalescer, "portal-1")
    sent = []

    def send(items):
        sent.append(list(items))
        return [item * 10 for item in items]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: coalescer.call("portal-1", n, send), range(8)))

    assert answers == [n * 10 for n in range(8)]
    assert len(sent) == 1 and sorted(sent[0]) == list(range(8))


def test_keys_never_mix():
    coalescer = Coalescer(window=0.1)
    busy(coalescer, ("portal", 0), ("portal", 1))
    sent = []

    def send(items):
        sent.append(list(items))
        return items

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: coalescer.call(("portal", n % 2), n, send), range(4)))

    assert sorted(sorted(batch) for batch in sent) == [[0, 2], [1, 3]]


def test_a_full_batch_goes_at_once_and_the_rest_start_another():
    coalescer = Coalescer(window=5)  # never waited out: the limit closes each batch
    busy(coalescer, "k")
    sent = []
    barrier = threading.Barrier(4)

    def send(items):
        sent.append(len(items))
        return items

    def call(n):
        barrier.wait()
        return coalescer.call("k", n, send, limit=2)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(call, range(4))) == [0, 1, 2, 3]
    assert sent == [2, 2]


def test_a_failed_request_fails_every_caller_and_an_item_error_only_its_own():
    coalescer = Coalescer(window=0.1)
    busy(coalescer, "k", "j")

    def refuse(items):
        raise ConnectionError("HubSpot is away")

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(coalescer.call, "k", n, refuse) for n in range(3)]
    for future in futures:
        with pytest.raises(ConnectionError):
            future.result()

    def one_bad(items):
        return [ValueError(f"no {item}") if item == 1 else item for item in items]

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {n: pool.submit(coalescer.call, "j", n, one_bad) for n in range(3)}
    assert futures[0].result() == 0 and futures[2].result() == 2
    with pytest.raises(ValueError, match="no 1"):
        futures[1].result()


def test_alone_a_call_is_sent_by_itself_at_once():
    coalescer = Coalescer(window=5)
    started = time.monotonic()
    assert coalescer.call("k", "x", lambda items: [f"{items[0]}!"]) == "x!"
    assert coalescer.sent == 1 and time.monotonic() - started < 1  # nothing under way: no waiting


def test_calls_arriving_while_the_leader_waits_for_its_turn_ride_along():
    coalescer = Coalescer(window=0.01)
    busy(coalescer, "k")
    sent = []
    turn_given = threading.Event()

    @contextmanager
    def turn():  # the rate limiter makes the request wait 0.5 s for its turn
        time.sleep(0.5)
        turn_given.set()
        yield

    def send(items):
        sent.append(len(items))
        return items

    def late(n):
        time.sleep(0.1 * n)  # arriving one after another, 100 ms apart: too late for a 10 ms window
        return coalescer.call("k", n, send, turn=turn)

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert sorted(pool.map(late, range(3))) == [0, 1, 2]
    assert sent == [3] and turn_given.is_set()


def test_no_turn_fails_every_caller_and_the_next_call_starts_afresh():
    coalescer = Coalescer(window=0.01)

    @contextmanager
    def no_turn():
        raise TimeoutError("no turn within 120 s")
        yield

    with pytest.raises(TimeoutError):
        coalescer.call("k", 1, lambda items: items, turn=no_turn)
    assert coalescer.call("k", 2, lambda items: items) == 2


def test_a_call_may_wait_longer_for_company_than_the_window():
    """A write-back nobody waits for gathers for a second while others are under way; others keep the window."""
    coalescer = Coalescer(window=0.01)
    busy(coalescer, "k")
    sent = []

    def send(items):
        sent.append(len(items))
        return items

    def late(n):
        time.sleep(0.1 * n)  # 100 ms apart: too late for the 10 ms window, in time for a patient leader's 0.5 s
        return coalescer.call("k", n, send, window=0.5)

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert sorted(pool.map(late, range(3))) == [0, 1, 2]
    assert sent == [3]
