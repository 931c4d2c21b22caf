"""``python -m mysqlops``: a small command line over the core.

python -m mysqlops sandbox up --replicas 1     # a practice primary + replica on 127.0.0.1
python -m mysqlops sandbox up --flavor mysql-9.7 --replicas 1
python -m mysqlops sandbox status
python -m mysqlops sandbox down
python -m mysqlops builds fetch mysql-9.7 mariadb-11.8   # server builds into the cache, once
python -m mysqlops builds list
python -m mysqlops pin prod-primary 20261123T101500Z-3fa2c1 --location file:///var/backups/mysql --reason TICKET-1
python -m mysqlops unpin prod-primary 20261123T101500Z-3fa2c1 --location file:///var/backups/mysql
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from mysqlops.adapters import builds, sandbox
from mysqlops.adapters.builds import debian
from mysqlops.errors import MysqlopsError
from mysqlops.units import human_bytes

DEFAULT_DIR = os.environ.get("MYSQLOPS_SANDBOX_DIR", os.path.join(os.getcwd(), ".sandboxes"))


def _client(server: sandbox.SandboxServer) -> str:
    """The build's own client by absolute path (its loader prefix included)."""
    program = server.client or ("mariadb" if server.flavor.value == "mariadb" else "mysql",)
    return shlex.join([*program, f"--defaults-extra-file={server.option_file}"])


def _print_server(server: sandbox.SandboxServer, role: str) -> None:
    state = "running" if server.alive() else "stopped"
    build = server.build or f"{server.flavor.value}-{server.server_version.series}"
    print(
        f"{server.name:<10} {role:<8} {state:<8} {build:<13} {server.flavor.value} {server.version}  "
        f"127.0.0.1:{server.port}  server_id={server.server_id}  pid={server.pid}"
    )
    print(f"           connect: {_client(server)}")
    print(f"           socket:  {server.socket}")


def _role(server: sandbox.SandboxServer) -> str:
    return "primary" if server.name.endswith("primary") else "replica"


def cmd_up(args: argparse.Namespace) -> int:
    existing = [s for s in sandbox.load_servers(args.dir) if s.alive()]
    if existing:
        print(f"sandboxes already running in {args.dir}; run `python -m mysqlops sandbox down` first")
        for server in existing:
            _print_server(server, _role(server))
        return 1
    for stale in sandbox.load_servers(args.dir):
        sandbox.stop_server(stale)
    build = builds.resolve(args.flavor, directory=args.server_dir, log=_say)
    servers = sandbox.start_cluster(args.dir, replicas=args.replicas, build=build)
    try:
        if args.replicas and not args.no_replication:
            from mysqlops.replication.provision import wire_sandbox_replication

            wire_sandbox_replication(servers[0], servers[1:])
    except BaseException:
        sandbox.stop_servers(servers)
        raise
    # detach: these servers outlive this command on purpose (until `sandbox down`)
    with sandbox._running_lock:
        for server in servers:
            sandbox._running.pop(server.pid, None)
    for pid in (s.pid for s in servers):
        sandbox.process.forget_group(pid)
    print(f"sandbox cluster in {args.dir}:")
    for server in servers:
        _print_server(server, _role(server))
    print(
        "root passwords are in each client.cnf (0600); stop everything with: python -m mysqlops sandbox down"
    )
    return 0


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_builds_fetch(args: argparse.Namespace) -> int:
    for name in args.build:
        if args.refresh or args.mirror or args.suite:
            build = debian.fetch(
                name,
                cache_dir=args.cache,
                mirror=args.mirror,
                suite=args.suite,
                refresh=args.refresh,
                log=_say,
            )
        else:
            build = builds.resolve(name, cache_dir=args.cache, log=_say)
        print(f"{build.name}: {build.describe()}")
    return 0


def cmd_builds_list(args: argparse.Namespace) -> int:
    rows = builds.cached_builds(args.cache)
    print(f"cache: {builds.cache_root(args.cache)}")
    if not rows:
        print("  (empty)")
    for row in rows:
        print(
            f"  {row['build']:<14} {row['version']:<9} Debian {row['package_version']:<16} "
            f"{human_bytes(row.get('unpacked_bytes', 0)):>10} unpacked, {human_bytes(row.get('download_bytes', 0)):>9} "
            f"downloaded from {row.get('suite')} on {row.get('fetched_at')}  {row['path']}"
        )
    print("resolved here:")
    for name in builds.KNOWN_BUILDS:
        try:
            build = builds.resolve(name, cache_dir=args.cache, fetch_missing=False)
            print(f"  {name:<14} {build.describe()}")
        except MysqlopsError as exc:
            print(f"  {name:<14} not available: {exc}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    servers = sandbox.load_servers(args.dir)
    if not servers:
        print(f"no sandboxes in {args.dir}")
        return 0
    for server in servers:
        _print_server(server, _role(server))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    servers = sandbox.load_servers(args.dir)
    for server in sorted(servers, key=lambda s: s.name.endswith("primary")):  # replicas first
        sandbox.stop_server(server, remove=not args.keep)
        print(f"stopped {server.name} (pid {server.pid})" + ("" if args.keep else ", removed its directory"))
    if not servers:
        print(f"no sandboxes in {args.dir}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from mysqlops.model import ServerSpec
    from mysqlops.users import Account, create_users, server_notes

    admin_password = os.environ.get("MYSQLOPS_ADMIN_PASSWORD") or (
        getpass.getpass(f"password of {args.admin_user}@{args.host}:{args.port}: ")
        if sys.stdin.isatty()
        else ""
    )
    admin = ServerSpec(
        name="admin",
        host=args.host,
        port=args.port,
        socket=args.socket,
        user=args.admin_user,
        password=admin_password or None,
    )
    accounts, passwords = [], {}
    for role in args.role:
        accounts.append(
            Account(
                role,
                f"mysqlops_{role}",
                args.account_host,
                args.tls,
                tuple(args.database) if args.database else None,
            )
        )
        env = f"MYSQLOPS_{role.upper()}_PASSWORD"
        passwords[role] = os.environ.get(env) or (
            getpass.getpass(f"password for mysqlops_{role}: ") if sys.stdin.isatty() else ""
        )
        if not passwords[role]:
            print(f"error: set {env} or run interactively to give the {role} password", file=sys.stderr)
            return 2
    for statement in create_users(admin, accounts, passwords, dry_run=not args.apply):
        print(statement + ";")
    for note in server_notes(admin, accounts):
        print(note)
    if not args.apply:
        print("-- dry run: nothing was changed; add --apply to run these statements")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Pin/unpin without Prefect (the pin-backup / unpin-backup flows do the same from blocks)."""
    import getpass

    from mysqlops import catalog, pins
    from mysqlops.model import Location

    options = {"client_kwargs": {"endpoint_url": args.endpoint_url}} if args.endpoint_url else {}
    locations = [
        Location(f"location-{i + 1}", url, storage_options=options if url.startswith("s3://") else {})
        for i, url in enumerate(args.location)
    ]
    written = pins.set_pin(
        catalog.scan(locations),
        args.server,
        args.backup_id,
        pinned=args.command == "pin",
        reason=args.reason,
        by=f"{getpass.getuser()} (command line)",
    )
    urls = {loc.name: loc.url for loc in locations}
    for location, key in written:
        print(f"{args.command}ned {args.server}/{args.backup_id} at {urls[location]}: {key}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mysqlops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sb = sub.add_parser("sandbox", help="throwaway local MariaDB/MySQL servers")
    sbsub = sb.add_subparsers(dest="action", required=True)
    for name, func, helptext in (
        ("up", cmd_up, "start a primary and N replicas"),
        ("status", cmd_status, "show sandboxes"),
        ("down", cmd_down, "stop and remove sandboxes"),
    ):
        p = sbsub.add_parser(name, help=helptext)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"sandbox directory (default {DEFAULT_DIR})")
        p.set_defaults(func=func)
        if name == "up":
            p.add_argument("--replicas", type=int, default=1, help="number of replicas (default 1)")
            p.add_argument(
                "--flavor",
                default=builds.DEFAULT_BUILD,
                metavar="BUILD",
                help=f"server build: {', '.join(builds.KNOWN_BUILDS)} (default {builds.DEFAULT_BUILD}); "
                "fetched into the cache when this machine lacks it",
            )
            p.add_argument(
                "--server-dir",
                default=None,
                help="a directory of installed binaries of that build (instead of the system's or the cache)",
            )
            p.add_argument(
                "--no-replication", action="store_true", help="start servers without wiring replication"
            )
        if name == "down":
            p.add_argument("--keep", action="store_true", help="keep the data directories")
    bd = sub.add_parser(
        "builds", help="server builds (MariaDB/MySQL versions) for sandboxes and restore tests"
    )
    bdsub = bd.add_subparsers(dest="action", required=True)
    bf = bdsub.add_parser(
        "fetch", help="make builds available (the system's, the cache's, or fetch them once)"
    )
    bf.add_argument("build", nargs="+", help=f"build names, e.g. {' '.join(builds.KNOWN_BUILDS)}")
    bf.add_argument(
        "--refresh", action="store_true", help="ask the archive for today's version and fetch it if new"
    )
    bf.add_argument("--mirror", default=None, help="Debian mirror URL (default: the system's)")
    bf.add_argument("--suite", default=None, help="Debian suite (default: sid; bookworm for mariadb-10.11)")
    bf.set_defaults(func=cmd_builds_fetch)
    bl = bdsub.add_parser("list", help="what is cached (versions, sizes) and what each build resolves to")
    bl.set_defaults(func=cmd_builds_list)
    for p in (bf, bl):
        p.add_argument(
            "--cache",
            default=None,
            help=f"cache directory (default ${builds.CACHE_ENV} or ~/.cache/mysqlops/servers)",
        )
    us = sub.add_parser(
        "users", help="create the least-privilege accounts mysqlops needs (dry run by default)"
    )
    us.add_argument("--host", default="127.0.0.1")
    us.add_argument("--port", type=int, default=3306)
    us.add_argument("--socket", default=None)
    us.add_argument(
        "--admin-user", default="root", help="account that creates users (password: MYSQLOPS_ADMIN_PASSWORD)"
    )
    us.add_argument(
        "--role",
        action="append",
        choices=["backup", "replication", "restore", "monitor"],
        default=None,
        help="account(s) to create (default: all); passwords: MYSQLOPS_<ROLE>_PASSWORD",
    )
    us.add_argument("--account-host", default="%", help="host part of the accounts (default %%)")
    us.add_argument("--database", action="append", help="limit backup/monitor grants to these databases")
    us.add_argument("--tls", action="store_true", help="REQUIRE SSL on the accounts")
    us.add_argument("--apply", action="store_true", help="run the statements (default: print them)")
    us.set_defaults(func=cmd_users)
    for name, helptext in (
        ("pin", "pin a backup: retention keeps it forever (a write-once marker next to its manifest)"),
        ("unpin", "unpin a backup (a later marker): retention decides about it again"),
    ):
        pp = sub.add_parser(name, help=helptext)
        pp.add_argument("server", help="server name as stored, e.g. prod-primary")
        pp.add_argument("backup_id", help="e.g. 20261123T101500Z-3fa2c1")
        pp.add_argument(
            "--location",
            action="append",
            required=True,
            help="location URL (file:///... or s3://bucket/prefix; S3 credentials from the AWS_* "
            "environment); repeat for each location holding a copy",
        )
        pp.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint (MinIO, Ceph)")
        pp.add_argument("--reason", default="", help="why (kept in the marker, shown by backup-inventory)")
        pp.set_defaults(func=cmd_pin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "users" and not args.role:
        args.role = ["backup", "replication", "restore", "monitor"]
    try:
        return int(args.func(args))
    except MysqlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
