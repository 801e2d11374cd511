"""The fault and load suite, short: a few hundred executions of all six actions on PostgreSQL + Redis with
three worker processes, while tests/soak.py injects every fault it knows. `make soak` runs the long one.

It restarts the machine's PostgreSQL and Redis, so it runs last (conftest orders the `faults` mark last)
and only where TEST_DATABASE_URL and TEST_REDIS_URL are set (CI sets them)."""

import pytest

from tests.conftest import HOW_TO_RUN, TEST_DATABASE_URL, TEST_REDIS_URL, skip_or_fail
from tests.soak import run_soak

pytestmark = pytest.mark.faults


def test_nothing_duplicated_lost_or_throttled_when_everything_fails_at_once(tmp_path, capsys):
    if not (TEST_DATABASE_URL and TEST_REDIS_URL):
        skip_or_fail("the fault suite needs PostgreSQL + Redis: " + HOW_TO_RUN)
    result, problems = run_soak(tmp_path, executions=180, workers=3, seconds=40, tenants=3)
    with capsys.disabled():
        print("\nfault suite figures:", result)
    assert problems == []
    assert result["executions"] == 180
    # Once the faults stop, everything settles within two minutes (the target).
    assert result["settled after the faults stopped (s)"] <= 120
