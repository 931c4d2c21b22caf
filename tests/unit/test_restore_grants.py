"""The restore pre-flight's privilege check (pure: SHOW GRANTS lines in, named fixes out)."""

from __future__ import annotations

from mysqlops.model import Flavor, ObjectCounts, ServerVersion
from mysqlops.sql.dialect import dialect_for
from mysqlops.sql.restore_grants import missing_restore_privileges

MYSQL_97 = ServerVersion(Flavor.MYSQL, 9, 7, 4)
MARIADB_1011 = ServerVersion(Flavor.MARIADB, 10, 11, 9)
EVERYTHING = ObjectCounts(tables=2, views=1, routines=2, triggers=1, events=1)


def _grants(version: ServerVersion) -> list[str]:
    """What `users` grants the restore account, as SHOW GRANTS prints it."""
    stmts = dialect_for(version).accounts.restore_user_grants("mysqlops_restore", "%", "pw")
    return [
        s.replace("'mysqlops_restore'@'%'", "`mysqlops_restore`@`%`") for s in stmts if s.startswith("GRANT")
    ]


def test_users_restore_account_passes_on_each_flavor() -> None:
    for version in (MYSQL_97, MARIADB_1011):
        assert (
            missing_restore_privileges(
                version, _grants(version), EVERYTHING, log_bin=True, trust_function_creators=True
            )
            == []
        )


def test_missing_definer_privileges_are_named_with_the_grant() -> None:
    lines = [g.replace(", SYSTEM_USER", "") for g in _grants(MYSQL_97)]
    missing = missing_restore_privileges(MYSQL_97, lines, EVERYTHING)
    assert len(missing) == 1 and "GRANT SYSTEM_USER ON *.* TO 'mysqlops_restore'@'%';" in missing[0]
    lines = [g.replace(", SET USER", "") for g in _grants(MARIADB_1011)]
    missing = missing_restore_privileges(MARIADB_1011, lines, EVERYTHING)
    assert len(missing) == 1 and "GRANT SET USER ON *.* TO 'mysqlops_restore'@'%';" in missing[0]
    # a dump of tables only names no definer privilege, no routine or event privilege
    assert missing_restore_privileges(MARIADB_1011, lines, ObjectCounts(tables=3)) == []


def test_stored_functions_on_a_binlogging_target_name_the_setting() -> None:
    missing = missing_restore_privileges(MYSQL_97, _grants(MYSQL_97), EVERYTHING, log_bin=True)
    assert len(missing) == 1 and "SET PERSIST log_bin_trust_function_creators = ON;" in missing[0]
    # SUPER, or no binary log, or no routine: nothing missing
    with_super = [*_grants(MYSQL_97), "GRANT SUPER ON *.* TO `mysqlops_restore`@`%`"]
    assert missing_restore_privileges(MYSQL_97, with_super, EVERYTHING, log_bin=True) == []
    assert missing_restore_privileges(MYSQL_97, _grants(MYSQL_97), EVERYTHING, log_bin=False) == []
    assert missing_restore_privileges(MYSQL_97, _grants(MYSQL_97), ObjectCounts(tables=1), log_bin=True) == []
    mariadb = missing_restore_privileges(MARIADB_1011, _grants(MARIADB_1011), EVERYTHING, log_bin=True)
    assert len(mariadb) == 1 and "SET GLOBAL log_bin_trust_function_creators = ON;" in mariadb[0]


def test_all_privileges_covers_everything() -> None:
    lines = ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]
    assert missing_restore_privileges(MARIADB_1011, lines, EVERYTHING, log_bin=True) == []
