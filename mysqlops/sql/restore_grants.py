"""What the account that loads a dump needs, from the dump's object counts (pure).

:func:`missing_restore_privileges` compares the rows of ``SHOW GRANTS FOR CURRENT_USER()``
with what loading a dump of these objects into a server of this flavor takes, and names each
missing privilege with the statement that adds it. The restore flow runs it before anything
is fetched or loaded, so a load never fails halfway on a privilege (MySQL with binary
logging: ERROR 1419 for stored functions, then ERROR 1227 for definers holding SYSTEM_USER).
"""

from __future__ import annotations

from collections.abc import Sequence

from mysqlops.model import ObjectCounts, ServerVersion
from mysqlops.sql.accounts import AccountSql
from mysqlops.sql.grants import _Need, _parse_grant_line

# the target's binary logging and whether it trusts function creators (``lb``, ``t``)
RESTORE_FLAGS = "SELECT @@log_bin AS lb, @@log_bin_trust_function_creators AS t"


def trust_function_creators(version: ServerVersion) -> str:
    """What lets the restore account create stored functions on a server with binary logging
    (else ERROR 1419: SUPER, which is not granted, or this server setting). MySQL persists it;
    on MariaDB also put ``log_bin_trust_function_creators=ON`` in ``[mysqld]``."""
    scope = "GLOBAL" if AccountSql(version).is_mariadb else "PERSIST"
    return f"SET {scope} log_bin_trust_function_creators = ON"


TRUST_FUNCTION_CREATORS = {
    "mysql": "SET PERSIST log_bin_trust_function_creators = ON;",
    "mariadb": "SET GLOBAL log_bin_trust_function_creators = ON; (and log_bin_trust_function_creators=ON in [mysqld])",
}


def restore_needs(
    version: ServerVersion,
    counts: ObjectCounts,
    *,
    log_bin: bool = False,
    trust_function_creators: bool = False,
) -> list[_Need]:
    """Global privileges that loading a dump with ``counts`` objects into ``version`` takes."""
    mariadb = AccountSql(version).is_mariadb
    g = "global"
    needs = [
        _Need("CREATE", g, "create the databases and tables"),
        _Need("DROP", g, "the dump drops each table before creating it"),
        _Need("INSERT", g, "load the rows"),
        _Need("ALTER", g, "the dump disables/enables keys around the rows"),
        _Need("LOCK TABLES", g, "the dump locks each table while loading it"),
    ]
    if counts.views:
        needs.append(_Need("CREATE VIEW", g, f"create the dump's {counts.views} view(s)"))
    if counts.triggers:
        needs.append(_Need("TRIGGER", g, f"create the dump's {counts.triggers} trigger(s)"))
    if counts.routines:
        needs += [
            _Need("CREATE ROUTINE", g, f"create the dump's {counts.routines} stored routine(s)"),
            _Need("ALTER ROUTINE", g, "the dump drops each routine before creating it"),
        ]
    if counts.events:
        needs.append(_Need("EVENT", g, f"create the dump's {counts.events} event(s)"))
    with_definer = counts.views + counts.triggers + counts.routines + counts.events
    if with_definer:
        why = "keep the DEFINER= of the dump's views, triggers, routines and events"
        if mariadb:
            if version.at_least(10, 5, 2):
                needs.append(_Need("SET USER", g, why, alternatives=(("SUPER", g, None),)))
            else:
                needs.append(_Need("SUPER", g, why))
        else:
            if version.at_least(8, 2, 0):
                needs.append(_Need("SET_ANY_DEFINER", g, why, alternatives=(("SUPER", g, None),)))
            else:
                needs.append(_Need("SET_USER_ID", g, why, alternatives=(("SUPER", g, None),)))
            if version.at_least(8, 0, 16):
                needs.append(
                    _Need(
                        "SYSTEM_USER",
                        g,
                        "a DEFINER that holds SYSTEM_USER (root@localhost, the usual definer) can only be "
                        "named by an account holding it (ERROR 1227)",
                    )
                )
    if not mariadb and version.at_least(8, 0, 14):
        needs.append(
            _Need(
                "SESSION_VARIABLES_ADMIN",
                g,
                "mysqldump output sets @@SESSION.SQL_LOG_BIN",
                alternatives=(("SYSTEM_VARIABLES_ADMIN", g, None), ("SUPER", g, None)),
            )
        )
    return needs


def missing_restore_privileges(
    version: ServerVersion,
    show_grants_lines: Sequence[str],
    counts: ObjectCounts,
    *,
    log_bin: bool = False,
    trust_function_creators: bool = False,
) -> list[str]:
    """Each privilege (or server setting) the restore account lacks, with the statement that
    fixes it. ``log_bin``/``trust_function_creators``: the target's ``@@log_bin`` and
    ``@@log_bin_trust_function_creators``."""
    d = AccountSql(version)
    grants = [g for g in (_parse_grant_line(str(line)) for line in show_grants_lines) if g]
    grantee = next((g.grantee for g in grants if g.grantee and not g.revoke), "") or "'restore'@'%'"
    allows = [g for g in grants if not g.revoke]
    revokes = [g for g in grants if g.revoke]
    out = [
        f"missing {need.privilege} ({need.why}): GRANT {need.privilege} ON *.* TO {grantee};"
        for need in restore_needs(version, counts)
        if not d._has(allows, revokes, need, None)
    ]
    if counts.routines and log_bin and not trust_function_creators:
        super_need = _Need("SUPER", "global", "")
        if not d._has(allows, revokes, super_need, None):
            fix = TRUST_FUNCTION_CREATORS["mariadb" if d.is_mariadb else "mysql"]
            out.append(
                f"the target writes a binary log and log_bin_trust_function_creators is OFF: creating the "
                f"dump's stored functions needs SUPER (ERROR 1419), which {grantee} lacks; run (as an "
                f"administrator) {fix}"
            )
    return out
