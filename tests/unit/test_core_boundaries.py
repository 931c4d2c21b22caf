"""The core never imports Prefect; commands are data; ids and names are safe."""

from __future__ import annotations

import ast
import pathlib
from datetime import UTC, datetime

import pytest

from mysqlops import layout
from mysqlops.errors import ConfigError
from mysqlops.model import Location, ServerSpec, ServerVersion, TLSOptions
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv, table_data_dump_argv

CORE = pathlib.Path(__file__).resolve().parents[2] / "mysqlops"


def test_core_never_imports_prefect() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("prefect", "blocks", "flows")
            ]
    assert offenders == []


def test_only_process_adapter_imports_subprocess() -> None:
    allowed = {"process.py"}  # the one runner (see also test_import_contracts)
    offenders = []
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        if "import subprocess" in text and path.name not in allowed:
            offenders.append(path.name)
    assert offenders == []


def test_password_is_not_in_repr() -> None:
    spec = ServerSpec(name="db1", password="hunter2-secret")
    assert "hunter2" not in repr(spec)
    loc = Location(name="s3", url="s3://b/p", storage_options={"secret": "sk-secret"})
    assert "sk-secret" not in repr(loc)


def test_option_file_quotes_passwords() -> None:
    spec = ServerSpec(name="db1", host="10.0.0.5", port=3307, user="bk", password='p"w\\x#;y')
    text = client_option_file(spec)
    assert text.startswith("[client]\n")
    assert 'password="p\\"w\\\\x#;y"' in text
    assert "port=3307" in text and 'host="10.0.0.5"' in text and "protocol=TCP" in text
    with pytest.raises(ValueError):
        client_option_file(ServerSpec(name="db1", password="a\nb"))


def test_option_file_tls() -> None:
    spec = ServerSpec(
        name="db1", socket="/run/m.sock", tls=TLSOptions(ca="/ca.pem", cert="/c.pem", key="/k.pem")
    )
    text = client_option_file(spec)
    assert 'socket="/run/m.sock"' in text and "host=" not in text
    assert 'ssl-ca="/ca.pem"' in text and "ssl-verify-server-cert" in text


def test_dump_argv_is_data() -> None:
    argv = dump_argv(
        "mariadb-dump", "shop; DROP", DumpOptions(position_options=("--master-data=2", "--gtid"))
    )
    assert argv[0] == "mariadb-dump"
    assert argv[-2:] == ("--", "shop; DROP")
    for flag in (
        "--single-transaction",
        "--quick",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--master-data=2",
        "--gtid",
        "--databases",
    ):
        assert flag in argv
    assert not any(a.startswith("-p") or a.startswith("--password") for a in argv)


def test_table_data_dump_argv_dumps_only_the_rows_of_the_named_tables() -> None:
    argv = table_data_dump_argv("mariadb-dump", "shop; DROP", ["a`b", "-c"])
    assert argv[-4:] == ("--", "shop; DROP", "a`b", "-c")  # names are argv elements, after "--"
    assert {"--single-transaction", "--quick", "--hex-blob", "--no-create-info", "--skip-triggers"} <= set(
        argv
    )
    assert not {"--databases", "--routines", "--events", "--triggers"} & set(argv)


def test_backup_ids_sort_by_time_and_parse() -> None:
    a = layout.new_backup_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    b = layout.new_backup_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert a < b
    assert layout.parse_backup_id(a) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ConfigError):
        layout.new_backup_id(datetime(2026, 1, 2))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ConfigError):
        layout.parse_backup_id("../../etc")


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ".hidden", "spaces here", "`tick`", "ünï", "a;b"])
def test_database_names_encode_to_one_safe_segment(name: str) -> None:
    seg = layout.encode_name(name)
    assert "/" not in seg and not seg.startswith(".") and seg not in ("..", ".")
    assert layout.decode_name(seg) == name


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 65, "-lead", "a b"])
def test_server_names_are_checked(bad: str) -> None:
    with pytest.raises(ConfigError):
        ServerSpec(name=bad)


def test_version_parse() -> None:
    v = ServerVersion.parse("10.11.19-MariaDB-0+deb12u1-log")
    assert (v.flavor.value, v.series) == ("mariadb", "10.11")
    m = ServerVersion.parse("8.4.3", "MySQL Community Server - GPL")
    assert m.flavor.value == "mysql" and m.at_least(8, 0, 23)
    assert (
        str(ServerVersion.parse("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu"))
        == "MariaDB 10.11.19"
    )
