"""A flow for the worker tests (deployed from tests/e2e): one task that runs a long child
process through mysqlops' process runner, as a backup runs mariadb-dump."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mysqlops.adapters import process


@task(cache_policy=NO_CACHE)
def child(seconds: int) -> None:
    process.run(("sleep", str(seconds)), timeout=seconds + 60)


@flow(name="e2e-slow")
def slow(seconds: int = 300) -> None:
    get_run_logger().info("child process started")
    child(seconds)
