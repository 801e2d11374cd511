"""The fault and load suite, short: a few hundred executions of all six actions on PostgreSQL + Redis with
three worker processes, while tests/soak.py injects every fault it knows. `make soak` runs the long one.

It starts a PostgreSQL cluster and a Redis server of its own (and restarts them), so it needs PostgreSQL's
server binaries and redis-server on the machine (CI has them); it runs last (conftest orders the `faults` mark)."""

import pytest

from tests.conftest import skip_or_fail
from tests.soak import run_soak
from tests.stack import own_services_available

pytestmark = pytest.mark.faults


def test_nothing_duplicated_lost_or_throttled_when_everything_fails_at_once(tmp_path, capsys):
    if not own_services_available():
        skip_or_fail("the fault suite needs PostgreSQL's server binaries (/usr/lib/postgresql) and redis-server")
    result, problems = run_soak(tmp_path, executions=180, workers=3, seconds=40, tenants=3)
    with capsys.disabled():
        print("\nfault suite figures:", result)
    assert problems == []
    assert result["executions"] == 180
    # Once the faults stop, everything settles within two minutes (the target).
    assert result["settled after the faults stopped (s)"] <= 120
