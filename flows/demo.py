"""``make demo``: the main job end to end on local defaults.

Sandbox primary + replica on 127.0.0.1 → sample data → replica provisioned (when the
replication flows are installed) → backup to a local directory and to S3 (a local moto
server) → restore test of both copies → retention plan (dry run) → report. Prints where to
look, and always stops every server and process it started.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"

#: the demo's own Prefect home and settings: set by :func:`main`, never at import
DEMO_ENV = {
    "PREFECT_HOME": str(DEMO / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MPLBACKEND": "Agg",
}


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(port: int, log: Path) -> Any:
    from mysqlops.adapters import process

    moto = process.start_background(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log_path=str(log)
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return moto
        except OSError:
            time.sleep(0.2)
    moto.kill()
    raise RuntimeError(f"moto server did not start on port {port}; see {log}")


def prepare_environment() -> str:
    """The demo's settings (:data:`DEMO_ENV`, unless already set) and its Prefect home made
    private (0700: it holds the key to the encrypted blocks in prefect.db) before Prefect is
    imported and creates anything in it. Returns the Prefect home."""
    from mysqlops.adapters.localfs import make_private

    for name, value in DEMO_ENV.items():
        os.environ.setdefault(name, value)
    make_private(os.environ["PREFECT_HOME"])
    return os.environ["PREFECT_HOME"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    prepare_environment()
    import shutil

    from pydantic import SecretStr

    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from flows.report import backup_report
    from flows.restore import restore_test
    from flows.smoke import smoke
    from mysqlops.adapters import builds, sandbox
    from mysqlops.adapters import mysql as db
    from mysqlops.adapters.localfs import make_private
    from mysqlops.report import display_frame
    from mysqlops.sampledata import create_awkward_database, create_bulk_table
    from mysqlops.units import human_bytes, human_duration

    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__)
    parser.add_argument(
        "--flavor",
        default=os.environ.get("FLAVOR") or builds.DEFAULT_BUILD,
        help=f"server build of the sandboxes: {', '.join(builds.KNOWN_BUILDS)} (default {builds.DEFAULT_BUILD})",
    )
    args = parser.parse_args(argv)
    DEMO.mkdir(exist_ok=True)
    build = builds.resolve(args.flavor, log=lambda m: print(f"    {m}", flush=True))
    sandboxes = Path(os.environ.get("MYSQLOPS_DEMO_SANDBOXES", "/tmp")) / f"mysqlops-demo-{os.getpid()}"
    say(f"starting a sandbox primary + replica of {build.describe()} in {sandboxes}")
    servers = sandbox.start_cluster(sandboxes, replicas=1, build=build)
    port = _free_port()
    moto = start_moto(port, DEMO / "moto.log")
    try:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        ).create_bucket(Bucket="mysqlops-demo")
        for server in servers:
            MySQLServer(
                host="127.0.0.1",
                port=server.port,
                user="root",
                password=SecretStr(server.root_password),
                server_name=f"demo-{server.name}",
                description="mysqlops demo sandbox",
            ).save(f"demo-{server.name}", overwrite=True)
        BackupLocation(url=f"file://{DEMO / 'backups'}", description="demo local disk").save(
            "demo-local", overwrite=True
        )
        BackupLocation(
            url="s3://mysqlops-demo/backups",
            key=SecretStr("demo"),
            secret=SecretStr("demo"),
            endpoint_url=f"http://127.0.0.1:{port}",
            offsite=True,
            description="demo S3 (local moto server)",
        ).save("demo-s3", overwrite=True)

        say("smoke flow: connect to both servers")
        for row in smoke([f"demo-{s.name}" for s in servers]):
            print(
                f"    {row['server']:<14} {row['endpoint']:<16} {row['version']}  server_id={row['server_id']}"
            )

        say("loading sample data on the primary (awkward types and objects + a 200k-row table)")
        with db.session(servers[0].spec()) as conn:
            create_awkward_database(conn, "shop")
            create_bulk_table(conn, "sales", "orders", 200_000)

        say("provisioning the replica from the primary (GTID replication, proven equal)")
        from prefect.blocks.system import Secret

        from flows.replication import provision_replica

        Secret(value=SecretStr("demo-" + os.urandom(8).hex())).save("demo-repl-password", overwrite=True)
        provision_replica(
            primary="demo-primary", replicas=["demo-replica1"], replication_password="demo-repl-password"
        )

        say("backup flow: primary → zstd → sha256 → local disk + S3, verified, manifest last")
        summary = backup(server="demo-primary", locations=["demo-local", "demo-s3"], tags=["demo"])
        print(
            f"    backup {summary['backup_id']}: {human_bytes(summary['raw_bytes'])} raw → "
            f"{human_bytes(summary['stored_bytes'])} stored; {summary['locations']}"
        )

        say("restore test: each stored copy into a scratch server, verified, certificate written")
        for row in restore_test(locations=["demo-local", "demo-s3"]):
            print(
                f"    {row['location']:<6} passed={row['passed']}  restore {human_duration(row['restore_seconds'])} "
                f"(load {human_duration(row['load_seconds'])}, verify {human_duration(row['verify_seconds'])})"
            )

        say("retention plan (dry run): what a 7-day policy would keep and delete (proven backups count)")
        from flows.retention import apply_retention

        policy = {"keep_within": "7d", "keep_last": 3}
        apply_retention(locations=["demo-local", "demo-s3"], policy=policy)

        say("report: sizes, durations, 3-2-1, restore tests (DataFrames + artifacts + HTML)")
        frames = backup_report(
            locations=["demo-local", "demo-s3"], output_location="demo-local", policy=policy
        )
        shown = frames["backups"][
            [
                "backup_id",
                "location",
                "verdict",
                "raw_bytes",
                "stored_bytes",
                "ratio",
                "duration_s",
                "finished_at",
            ]
        ]
        print(display_frame(shown).to_string(index=False))
    finally:
        say("stopping the sandbox servers and the S3 endpoint")
        sandbox.stop_servers(servers)
        shutil.rmtree(sandboxes, ignore_errors=True)
        moto.kill()
        moto.wait()
        make_private(os.environ["PREFECT_HOME"])  # prefect.db was created 0644
    say("done. Look at:")
    print(f"    backups and the HTML report: {DEMO / 'backups'}  (reports/<time>/report.html)")
    print(
        f"    Prefect runs and artifacts:  PREFECT_HOME={os.environ['PREFECT_HOME']} uv run prefect server start"
        "   # then open http://127.0.0.1:4200"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
