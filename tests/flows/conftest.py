"""Flow tests: ONE Prefect test harness for the whole session (it costs ~11 s to start).

The harness is a session-scoped autouse fixture of this directory; it starts only when a test
marked ``flows`` was collected, so pure tests here stay fast when run alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(request: pytest.FixtureRequest) -> Iterator[None]:
    here = os.path.dirname(__file__)
    wanted = any(
        item.get_closest_marker("flows") and str(item.path).startswith(here) for item in request.session.items
    )
    if not wanted:
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
