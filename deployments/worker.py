"""A process worker for the mysqlops pool that stops cleanly on SIGTERM.

    python -m deployments.worker --pool mysqlops [--name NAME] [--work-queue Q ...] [--limit N]

Prefect's own ``prefect worker start`` (3.9.1) exits within a second of SIGTERM, but the flow
run it was running stays *Running* in the UI forever (the engine process is killed while
the worker tears down, nobody reports its end) and a backup's ``mariadb-dump``, in its own
process group, keeps running as an orphan. A systemd stop, a deploy or a reboot leaves that
behind on every running backup.

This runs the same Prefect ``ProcessWorker`` in-process, with a stop sequence of its own. On
SIGTERM (or SIGINT):

1. it stops taking new runs and asks Prefect to cancel each flow run it is executing (state
   *Cancelling*, the message names the worker): Prefect's cancellation path signals the run's
   process, the flow's tasks stop (mysqlops kills their child process groups) and the run is
   marked *Cancelled*;
2. it waits up to ``--cancel-timeout`` seconds (default 20) for those runs to be final; a run
   still going then has its process group killed and is marked *Crashed* with the reason;
3. it stops the worker and exits 0. A second SIGTERM skips the wait.

Only process pools: Docker and Kubernetes workers run flow runs in containers, use
``prefect worker start --pool <pool> --type docker|kubernetes`` for those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

logger = logging.getLogger("mysqlops.worker")

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def _children(parent: int) -> list[int]:
    """Direct children of ``parent`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                out.append(int(entry))
    return out


def _flow_run_id(pid: int) -> UUID | None:
    """The flow run a child process executes (``PREFECT__FLOW_RUN_ID`` in its environment);
    only that variable is read."""
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/environ", "rb") as fh:
            for item in fh.read().split(b"\0"):
                if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                    return UUID(item.split(b"=", 1)[1].decode())
    return None


def running_flow_runs(parent: int | None = None) -> dict[UUID, int]:
    """Flow run id -> pid of every flow-run process this worker process started."""
    found: dict[UUID, int] = {}
    for pid in _children(os.getpid() if parent is None else parent):
        run_id = _flow_run_id(pid)
        if run_id is not None:
            found[run_id] = pid
    return found


async def _state_types(client: Any, run_ids: Sequence[UUID]) -> dict[UUID, str]:
    out = {}
    for run_id in run_ids:
        run = await client.read_flow_run(run_id)
        out[run_id] = run.state.type.value if run.state else ""
    return out


async def stop_runs(client: Any, worker_name: str, cancel_timeout: float, hurry: asyncio.Event) -> None:
    """Cancel the flow runs this process executes, wait for them, kill what is left."""
    from prefect.states import Cancelling, Crashed

    runs = running_flow_runs()
    if not runs:
        return
    reason = f"worker {worker_name!r} is stopping (SIGTERM): the run was cancelled"
    for run_id in runs:
        logger.warning("cancelling flow run %s: %s", run_id, reason)
        with contextlib.suppress(Exception):
            await client.set_flow_run_state(run_id, Cancelling(message=reason), force=True)
    deadline = time.monotonic() + cancel_timeout
    pending = list(runs)
    while pending and time.monotonic() < deadline and not hurry.is_set():
        await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            states = await _state_types(client, pending)
            pending = [r for r in pending if states.get(r) not in FINAL]
    for run_id in pending:
        pid = runs[run_id]
        logger.error("flow run %s did not stop within %ss: killing its process group", run_id, cancel_timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            await asyncio.sleep(2)
        with contextlib.suppress(Exception):
            await client.set_flow_run_state(
                run_id,
                Crashed(
                    message=f"worker {worker_name!r} stopped and killed the run after {cancel_timeout:g}s"
                ),
                force=True,
            )


async def serve(args: argparse.Namespace) -> int:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(args.pool)
        except ObjectNotFound:
            print(
                f"error: work pool {args.pool!r} does not exist: run python -m deployments.setup first",
                file=sys.stderr,
            )
            return 2
    if pool.type != "process":
        print(
            f"error: work pool {args.pool!r} is of type {pool.type!r}: this worker runs process pools; "
            f"use prefect worker start --pool {args.pool} --type {pool.type}",
            file=sys.stderr,
        )
        return 2

    worker = ProcessWorker(
        work_pool_name=args.pool,
        work_queues=args.work_queue or None,
        name=args.name,
        limit=args.limit,
        create_pool_if_not_found=False,
    )
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            hurry.set()
        else:
            logger.warning("received %s: stopping", signal.Signals(signum).name)
            stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    running = asyncio.create_task(worker.start(printer=print))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running in done:
        stopping.cancel()
        running.result()
        return 0
    # the worker keeps running during the cancellation: its cancellation observer kills the
    # flow-run processes and marks the runs Cancelled
    async with get_client() as client:
        await stop_runs(client, worker.name, args.cancel_timeout, hurry)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(running, timeout=15)
    print(f"Worker {worker.name!r} stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.worker",
        description="Prefect process worker for the mysqlops pool that cancels its flow runs on SIGTERM.",
    )
    parser.add_argument("--pool", "-p", default="mysqlops", help="work pool (default mysqlops)")
    parser.add_argument("--name", "-n", default=None, help="worker name (default: Prefect's)")
    parser.add_argument(
        "--work-queue", "-q", action="append", default=None, help="only these queues (repeatable)"
    )
    parser.add_argument("--limit", "-l", type=int, default=None, help="flow runs at once")
    parser.add_argument(
        "--cancel-timeout",
        type=float,
        default=20,
        help="seconds the runs get to stop after SIGTERM before they are killed (default 20)",
    )
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
