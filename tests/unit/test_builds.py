"""Server builds, the pure parts: names, version resolution from an index, apt's resolver
output, version text, the loader argv and where it puts the option file, sandbox options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mysqlops.adapters import builds, process, sandbox
from mysqlops.adapters.builds import BuildName, ServerBuild, debian
from mysqlops.errors import BuildUnavailable, ConfigError
from mysqlops.model import Flavor, ServerVersion

PACKAGES_SNIPPET = """\
Package: mysql-server-core
Source: mysql-8.4
Version: 8.4.5-1
Architecture: amd64
Filename: pool/main/m/mysql-8.4/mysql-server-core_8.4.5-1_amd64.deb
Size: 25000000
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: mysql-server-core
Source: mysql-9.7
Version: 9.7.4-2
Architecture: amd64
Depends: libaio1t64 (>= 0.3.93), libc6 (>= 2.38)
Description: MySQL database server binaries
 This continuation line belongs to Description.
 .
 So does this one.
Filename: pool/main/m/mysql-9.7/mysql-server-core_9.7.4-2_amd64.deb
Size: 26124236
SHA256: 628d2d7d2dc827507bcae80677a9950766b002bec2c658cb96343d9f324f8660

Package: mysql-server-core
Version: 9.7.3-1
Filename: pool/main/m/mysql-9.7/mysql-server-core_9.7.3-1_amd64.deb

Package: mariadb-server-core
Version: 1:11.8.9+ds-4
Filename: pool/main/m/mariadb/mariadb-server-core_11.8.9+ds-4_amd64.deb
"""


@pytest.mark.parametrize(
    ("name", "flavor", "series", "env", "suite"),
    [
        ("mysql-9.7", Flavor.MYSQL, "9.7", "MYSQLOPS_SERVER_BUILD_MYSQL_9_7", "sid"),
        ("mariadb-11.8", Flavor.MARIADB, "11.8", "MYSQLOPS_SERVER_BUILD_MARIADB_11_8", "sid"),
        ("MariaDB-10.11 ", Flavor.MARIADB, "10.11", "MYSQLOPS_SERVER_BUILD_MARIADB_10_11", "bookworm"),
    ],
)
def test_build_names_parse(name: str, flavor: Flavor, series: str, env: str, suite: str) -> None:
    bn = builds.parse_build_name(name)
    assert (bn.flavor, bn.series, bn.env_var, bn.suite) == (flavor, series, env, suite)
    assert bn.name == name.strip().lower()
    assert bn.matches(ServerVersion(flavor, *map(int, series.split(".")), 3))
    other = Flavor.MYSQL if flavor is Flavor.MARIADB else Flavor.MARIADB
    assert not bn.matches(ServerVersion(other, *map(int, series.split(".")), 3))


@pytest.mark.parametrize(
    "bad", ["mysql", "postgres-16.1", "mysql-9", "mysql-9.7.4", "", "mysql 9.7", "../x-1.2"]
)
def test_bad_build_names_are_refused_with_examples(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        builds.parse_build_name(bad)
    assert "mysql-9.7" in str(info.value) and "mariadb-11.8" in str(info.value)


def test_version_resolution_from_a_packages_index() -> None:
    stanzas = debian.parse_stanzas(PACKAGES_SNIPPET)
    assert len(stanzas) == 4
    assert stanzas[1]["Description"].endswith("So does this one.")
    assert stanzas[1]["SHA256"].startswith("628d2d7d")  # the field after a folded one is intact
    picked = debian.pick_version(stanzas, "mysql-server-core", builds.parse_build_name("mysql-9.7"))
    assert picked["Version"] == "9.7.4-2"  # the newest of the series, not the first listed
    older = debian.pick_version(stanzas, "mysql-server-core", builds.parse_build_name("mysql-8.4"))
    assert older["Version"] == "8.4.5-1"
    maria = debian.pick_version(stanzas, "mariadb-server-core", builds.parse_build_name("mariadb-11.8"))
    assert maria["Version"] == "1:11.8.9+ds-4"
    assert builds.upstream_version("1:11.8.9+ds-4") == (11, 8, 9)
    assert builds.upstream_version("9.7.4-2") == (9, 7, 4)
    assert builds.upstream_version("2:1.0-1") is None


def test_a_series_the_index_lacks_names_what_it_holds() -> None:
    stanzas = debian.parse_stanzas(PACKAGES_SNIPPET)
    with pytest.raises(BuildUnavailable) as info:
        debian.pick_version(stanzas, "mysql-server-core", builds.parse_build_name("mysql-5.1"))
    text = str(info.value)
    assert "mysql-5.1" in text and "8.4.5-1" in text and "9.7.4-2" in text and "series 5.1" in text
    with pytest.raises(BuildUnavailable, match="no version at all"):
        debian.pick_version(stanzas, "no-such-package", builds.parse_build_name("mysql-9.7"))


def test_dependency_closure_from_apt_resolver_output() -> None:
    text = """NOTE: This is only a simulation!
Reading package lists...
Inst gcc-16-base (16.2.0-4 Debian:unstable [amd64])
Inst libc6 (2.43-7 Debian:unstable [amd64])
Inst libcrypt1 (1:4.5.2+20251210-1 Debian:unstable [amd64])
Inst libfoo:amd64 [1.0-1] (1.1-1 Debian:unstable [amd64])
Conf libc6 (2.43-7 Debian:unstable [amd64])
Inst mysql-server-core (9.7.4-2 Debian:unstable [amd64])
"""
    assert debian.parse_simulated_install(text) == [
        ("gcc-16-base", "16.2.0-4"),
        ("libc6", "2.43-7"),
        ("libcrypt1", "1:4.5.2+20251210-1"),
        ("libfoo", "1.1-1"),
        ("mysql-server-core", "9.7.4-2"),
    ]


def test_version_output_is_read_after_ver_not_from_the_path() -> None:
    mysql = builds.parse_version_output(
        "/home/mariadb/cache/mariadb-11.8/root/usr/sbin/mysqld  Ver 9.7.4-2 for Linux on x86_64 ((Debian))\n"
    )
    assert mysql == ServerVersion(Flavor.MYSQL, 9, 7, 4)
    maria = builds.parse_version_output(
        "/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
    )
    assert maria == ServerVersion(Flavor.MARIADB, 10, 11, 19)
    with pytest.raises(BuildUnavailable):
        builds.parse_version_output("GLIBC_2.38 not found (required by mysqld)")


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_loader_argv_of_unpacked_trees(tmp_path: Path) -> None:
    sid = tmp_path / "sid"
    _touch(sid / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    assert builds.loader_argv(str(sid), "x86_64") == (
        f"{sid}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        f"{sid}/usr/lib/x86_64-linux-gnu",
    )
    # bookworm's libc6 is not merged-/usr: the loader and libraries live under /lib
    bookworm = tmp_path / "bookworm"
    _touch(bookworm / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    _touch(bookworm / "usr/lib/x86_64-linux-gnu/libstdc++.so.6")
    assert builds.loader_argv(str(bookworm), "x86_64") == (
        f"{bookworm}/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        f"{bookworm}/usr/lib/x86_64-linux-gnu:{bookworm}/lib/x86_64-linux-gnu",
    )
    assert builds.loader_argv(str(tmp_path / "plain"), "x86_64") == ()
    with pytest.raises(BuildUnavailable, match="MYSQLOPS_SERVER_BUILD_"):
        builds.loader_argv(str(sid), "riscv64")


def _mysql_build(root: str = "/c/mysql-9.7/9.7.4-2/root", patch: int = 4, minor: int = 7) -> ServerBuild:
    loader = (
        f"{root}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        f"{root}/usr/lib/x86_64-linux-gnu",
    )
    return ServerBuild(
        name=f"mysql-9.{minor}" if minor == 7 else f"mysql-8.{minor}",
        flavor=Flavor.MYSQL,
        series="9.7" if minor == 7 else f"8.{minor}",
        version=ServerVersion(Flavor.MYSQL, 9 if minor == 7 else 8, minor, patch),
        source="cache",
        root=root,
        server=f"{root}/usr/sbin/mysqld",
        package_version="9.7.4-2",
        loader=loader,
        client=f"{root}/usr/bin/mysql",
        dump=f"{root}/usr/bin/mysqldump",
        binlog=f"{root}/usr/bin/mysqlbinlog",
        plugin_dir=f"{root}/usr/lib/mysql/plugin",
        lc_messages_dir=f"{root}/usr/share/mysql",
        basedir=f"{root}/usr",
    )


def test_client_argv_runs_through_the_loader_and_the_option_file_follows_the_program() -> None:
    build = _mysql_build()
    argv = (*build.client_argv("dump"), "--single-transaction", "--databases", "--", "shop")
    assert argv[:3] == build.loader and argv[3] == "/c/mysql-9.7/9.7.4-2/root/usr/bin/mysqldump"
    assert build.client_argv("mysqldump") == build.client_argv("dump")
    assert process.program_index(argv) == 3 and process.program_name(argv) == "mysqldump"
    with_file = process.with_defaults_file(argv, "/tmp/x/client.cnf")
    # the client requires --defaults-extra-file as its FIRST option: right after the program,
    # never after the loader (ld.so would reject it)
    assert with_file[:5] == (*argv[:4], "--defaults-extra-file=/tmp/x/client.cnf")
    assert with_file[5:] == argv[4:]
    plain = ("/usr/bin/mariadb-dump", "--quick")
    assert process.with_defaults_file(plain, "/f")[:2] == (
        "/usr/bin/mariadb-dump",
        "--defaults-extra-file=/f",
    )
    with pytest.raises(process.ProcessError):
        process.with_defaults_file((*build.loader, "/x/mysql", "-psecret"), "/f")
    with pytest.raises(BuildUnavailable) as info:
        build.client_argv("backup")
    assert "CLONE" in str(info.value) and "mysql-9.7" in str(info.value)
    with pytest.raises(ConfigError):
        build.client_argv("rm")
    assert build.record() == {
        "build": "mysql-9.7",
        "flavor": "mysql",
        "series": "9.7",
        "version": "9.7.4",
        "package_version": "9.7.4-2",
        "source": "cache",
    }


def test_sandbox_options_fit_each_build(tmp_path: Path) -> None:
    d = str(tmp_path / "s")
    server = sandbox.SandboxServer("s", d, 3307, 7, 0, Flavor.MYSQL, "9.7.4", "pw")
    mysql97 = _mysql_build()
    opts = sandbox._server_options(mysql97, server, tuned=True, gtid=True)
    assert opts[:4] == [*mysql97.loader, mysql97.server] and opts[4] == "--no-defaults"
    assert f"--basedir={mysql97.basedir}" in opts
    assert f"--lc-messages-dir={mysql97.lc_messages_dir}" in opts
    assert f"--plugin-dir={mysql97.plugin_dir}" in opts
    assert f"--secure-file-priv={d}/files" in opts and "--mysqlx=OFF" in opts
    assert "--innodb-redo-log-capacity=512M" in opts and not any("innodb-log-file-size" in o for o in opts)
    assert "--disable-log-bin" in opts and "--skip-log-bin" not in opts
    mysql80 = _mysql_build(patch=20, minor=0)  # 8.0.20: before innodb_redo_log_capacity
    assert "--innodb-log-file-size=512M" in sandbox._server_options(mysql80, server, tuned=True, gtid=True)
    system = ServerBuild(
        name="mariadb-10.11",
        flavor=Flavor.MARIADB,
        series="10.11",
        version=ServerVersion(Flavor.MARIADB, 10, 11, 19),
        source="system",
        root="/",
        server="/usr/sbin/mariadbd",
        install_db="/usr/bin/mariadb-install-db",
    )
    mopts = sandbox._server_options(system, server, tuned=True, gtid=True)
    assert mopts[:2] == ["/usr/sbin/mariadbd", "--no-defaults"]
    assert not any(
        o.startswith(("--basedir", "--plugin-dir", "--lc-messages-dir", "--secure-file")) for o in mopts
    )
    assert "--innodb-log-file-size=512M" in mopts and "--skip-log-bin" in mopts


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_the_system_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    security_first = "\n\n".join(reversed(DEB822.split("\n\n")))
    entries = debian.parse_sources(security_first, deb822=True)
    assert debian.pick_debian_mirror(entries) == (
        "http://deb.debian.org/debian",
        "/usr/share/keyrings/debian-archive-keyring.gpg",
    )
    one_line = (
        "# comment\ndeb-src http://ftp.de.debian.org/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/etc/k.gpg] http://ftp.de.debian.org/debian/ bookworm main\n"
    )
    assert debian.pick_debian_mirror(debian.parse_sources(one_line, deb822=False)) == (
        "http://ftp.de.debian.org/debian",
        "/etc/k.gpg",
    )
    ubuntu = "deb http://archive.ubuntu.com/ubuntu noble main\n"
    assert debian.pick_debian_mirror(debian.parse_sources(ubuntu, deb822=False)) is None
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "ubuntu.sources").write_text("Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble\n")
    assert debian.system_mirror(str(d), str(tmp_path / "none")) == (
        debian.DEFAULT_MIRROR,
        debian.DEFAULT_KEYRING,
    )
    (d / "debian.sources").write_text(DEB822.replace("deb.debian.org", "mirror.example.org"))
    assert debian.system_mirror(str(d), str(tmp_path / "none"))[0] == "http://mirror.example.org/debian"


def test_cache_location_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(builds.CACHE_ENV, str(tmp_path / "c"))
    assert builds.cache_root() == str(tmp_path / "c")
    monkeypatch.delenv(builds.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert builds.cache_root() == os.path.join(str(tmp_path / "x"), "mysqlops", "servers")
    assert builds.cache_root(tmp_path / "arg") == str(tmp_path / "arg")


def test_build_name_of_a_server_version() -> None:
    assert builds.build_name_for(ServerVersion(Flavor.MYSQL, 9, 7, 4)) == "mysql-9.7"
    assert builds.build_name_for(ServerVersion.parse("10.11.19-MariaDB-log")) == "mariadb-10.11"
    assert BuildName(Flavor.MARIADB, 11, 8).name == "mariadb-11.8"


def test_private_sources_add_updates_and_security_to_a_stable_suite() -> None:
    sid = debian.apt_sources("http://deb.debian.org/debian", "sid", "/k.gpg", "amd64")
    assert sid == "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian sid main\n"
    bookworm = debian.apt_sources("http://deb.debian.org/debian/", "bookworm", "/k.gpg", "amd64").splitlines()
    assert bookworm == [
        "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian/ bookworm main",
        "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian/ bookworm-updates main",
        "deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main",
    ]


def test_a_broken_cached_build_names_the_fix(tmp_path: Path) -> None:
    import json

    version_dir = tmp_path / "mysql-9.7" / "9.7.4-2"
    (version_dir / "root" / "usr" / "sbin").mkdir(parents=True)  # mysqld deleted
    (version_dir / "build.json").write_text(
        json.dumps({"format": builds.METADATA_FORMAT, "build": "mysql-9.7", "package_version": "9.7.4-2"})
    )
    # a staging dir is never taken for a build, even with metadata
    (tmp_path / "mysql-9.7" / ".partial-1-x").mkdir()
    with pytest.raises(BuildUnavailable) as info:
        builds.resolve("mysql-9.7", cache_dir=tmp_path, fetch_missing=False)
    text = str(info.value)
    assert f"rm -rf {version_dir}" in text and "builds fetch mysql-9.7" in text and "no mysqld" in text
    assert builds.cached_builds(tmp_path)[0]["path"] == str(version_dir)


def test_argv_builders_take_a_build_program() -> None:
    from mysqlops.tools.client import DumpOptions, dump_argv, mysql_argv

    build = _mysql_build()
    dump = dump_argv(build.client_argv("dump"), "shop", DumpOptions(position_options=("--source-data=2",)))
    assert dump[:4] == build.client_argv("dump") and dump[4] == "--single-transaction"
    assert dump[-3:] == ("--databases", "--", "shop") and "--source-data=2" in dump
    load = mysql_argv(build.client_argv("mysql"), "shop")
    assert load[:4] == build.client_argv("client") and load[-2:] == ("--database", "shop")
    assert process.with_defaults_file(load, "/f")[4] == "--defaults-extra-file=/f"
    assert dump_argv("mariadb-dump", "x")[0] == "mariadb-dump"  # a plain name still works
    with pytest.raises(ValueError):
        mysql_argv(())
