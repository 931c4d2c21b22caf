"""Server settings replication needs (blockers) and advises, each with the my.cnf line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mysqlops.errors import ConfigError
from mysqlops.sql.series import Series
from mysqlops.sql.status import _int, _text

_ON_VALUES = frozenset({"ON", "1", "YES", "TRUE", "FORCE"})


def _is_on(value: Any) -> bool:
    return _text(value).strip().upper() in _ON_VALUES


def _check_role(role: str) -> str:
    value = str(role).strip().lower()
    if value not in ("primary", "replica"):
        raise ConfigError(f"role must be 'primary' or 'replica', got {role!r}")
    return value


def _replica_updates(v: Mapping[str, str], name: str, alias: str, *, shown: str | None = None) -> list[str]:
    """Advice when the replica does not binary-log what it applies (``name``, else its
    ``alias``, as the server reports it; ``shown``: the name the advice uses)."""
    found = name if name in v else alias
    if found not in v or _is_on(v[found]):
        return []
    said = shown or found
    return [
        f"{said} is OFF: the replica's binary log misses replicated changes, so it cannot be "
        f"promoted or serve point-in-time recovery: add to [mysqld]: {said} = ON"
    ]


class Requirements(Series):
    """Replication requirements and recommendations for one server version."""

    def replication_requirements(self, variables: Mapping[str, Any], role: str) -> list[str]:
        """Settings replication cannot work without, each with the my.cnf line that fixes it.

        ``variables``: SHOW GLOBAL VARIABLES as a dict (names in any case). ``role``:
        ``primary`` (the source) or ``replica``. Only hard requirements are returned; see
        :meth:`replication_recommendations` for advice (gtid_strict_mode, log_slave_updates...).
        Primary: binary log on, ROW format (every change replicates and can be replayed for
        point-in-time recovery exactly), server_id != 0; MySQL also gtid_mode=ON and
        enforce_gtid_consistency=ON (auto-positioning). Replica: server_id != 0; MySQL
        GTID settings as on the primary (SOURCE_AUTO_POSITION needs them on both ends).
        """
        role = _check_role(role)
        v = {str(k).lower(): _text(val) for k, val in variables.items()}
        out: list[str] = []
        if role == "primary":
            if "log_bin" not in v:
                out.append("cannot check the binary log: log_bin is missing from SHOW GLOBAL VARIABLES")
            elif not _is_on(v["log_bin"]):
                hint = " (remove skip-log-bin / disable-log-bin)" if not self.is_mariadb else ""
                out.append(f"binary log is off{hint}: add to [mysqld]: log_bin = mysql-bin")
            fmt = v.get("binlog_format", "").strip().upper()
            if fmt and fmt != "ROW":
                out.append(
                    f"binlog_format is {fmt}; replicas and point-in-time recovery need every row change: "
                    "add to [mysqld]: binlog_format = ROW"
                )
        sid = v.get("server_id")
        if sid is None:
            out.append("cannot check server_id: it is missing from SHOW GLOBAL VARIABLES")
        elif _int(sid, 0) == 0:
            number = 1 if role == "primary" else 2
            out.append(
                "server_id is 0, so the server refuses to replicate (every server needs its own id): "
                f"add to [mysqld]: server_id = {number}"
            )
        if not self.is_mariadb:
            mode = v.get("gtid_mode")
            if mode is None:
                out.append("cannot check gtid_mode: it is missing from SHOW GLOBAL VARIABLES")
            elif mode.strip().upper() != "ON":
                out.append(
                    f"gtid_mode is {mode.strip().upper() or 'empty'}; GTID auto-positioning needs ON "
                    "(on a running server step OFF -> OFF_PERMISSIVE -> ON_PERMISSIVE -> ON): "
                    "add to [mysqld]: gtid_mode = ON"
                )
            enforce = v.get("enforce_gtid_consistency")
            if enforce is None:
                out.append("cannot check enforce_gtid_consistency: it is missing from SHOW GLOBAL VARIABLES")
            elif enforce.strip().upper() not in ("ON", "1"):
                out.append(
                    f"enforce_gtid_consistency is {enforce.strip().upper() or 'empty'}; gtid_mode=ON needs it: "
                    "add to [mysqld]: enforce_gtid_consistency = ON"
                )
        return out

    def replication_recommendations(self, variables: Mapping[str, Any], role: str) -> list[str]:
        """Advice (not blockers), each with the my.cnf line: durability and safer replicas."""
        role = _check_role(role)
        v = {str(k).lower(): _text(val) for k, val in variables.items()}
        out: list[str] = []
        if role == "primary":
            if "sync_binlog" in v and _int(v["sync_binlog"], 0) != 1:
                out.append(
                    "sync_binlog is not 1: a crash can lose binlogged transactions the replicas or "
                    "point-in-time recovery need: add to [mysqld]: sync_binlog = 1"
                )
            if "innodb_flush_log_at_trx_commit" in v and _int(v["innodb_flush_log_at_trx_commit"], 1) != 1:
                out.append(
                    "innodb_flush_log_at_trx_commit is not 1: a crash can lose committed transactions: "
                    "add to [mysqld]: innodb_flush_log_at_trx_commit = 1"
                )
        if self.is_mariadb:
            if "gtid_strict_mode" in v and not _is_on(v["gtid_strict_mode"]):
                out.append(
                    "gtid_strict_mode is OFF: out-of-order or duplicate GTIDs (a write on the replica) "
                    "go unnoticed: add to [mysqld]: gtid_strict_mode = ON"
                )
            if role == "replica":
                out += _replica_updates(
                    v, "log_slave_updates", "log_replica_updates", shown="log_slave_updates"
                )
        elif role == "replica":
            out += _replica_updates(v, "log_replica_updates", "log_slave_updates")
            if "relay_log_recovery" in v and not _is_on(v["relay_log_recovery"]):
                out.append(
                    "relay_log_recovery is OFF: after a crash the replica may apply a damaged relay log: "
                    "add to [mysqld]: relay_log_recovery = ON"
                )
        if role == "replica" and "read_only" in v and not _is_on(v["read_only"]):
            line = "super_read_only = ON" if not self.is_mariadb else "read_only = ON"
            out.append(f"the replica accepts client writes, which break replication: add to [mysqld]: {line}")
        return out

    def replication_pair_problems(self, primary: Mapping[str, Any], replica: Mapping[str, Any]) -> list[str]:
        """Problems only visible with both servers' variables: equal ids (cloned data dirs)."""
        p = {str(k).lower(): _text(val) for k, val in primary.items()}
        r = {str(k).lower(): _text(val) for k, val in replica.items()}
        out: list[str] = []
        if p.get("server_id") and p.get("server_id") == r.get("server_id"):
            out.append(
                f"primary and replica both have server_id = {p['server_id']}; the replica would ignore "
                "the primary's events: give the replica another one in [mysqld]: server_id = "
                f"{(_int(p['server_id'], 0) or 0) + 1}"
            )
        if not self.is_mariadb and p.get("server_uuid") and p.get("server_uuid") == r.get("server_uuid"):
            out.append(
                "primary and replica have the same server_uuid (a copied data directory): "
                "delete auto.cnf in the replica's data directory and restart it"
            )
        return out
