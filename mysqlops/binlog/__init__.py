"""Binary logs: format parsing, planning, archiving, replay."""

from mysqlops.binlog.archive import archive_binlogs
from mysqlops.binlog.plan import ArchiveResult, BinlogError, BinlogGap, BinlogHistoryChanged
from mysqlops.binlog.replay import apply_binlogs, fetch_binlogs, replay_binlogs

__all__ = [
    "ArchiveResult",
    "BinlogError",
    "BinlogGap",
    "BinlogHistoryChanged",
    "apply_binlogs",
    "archive_binlogs",
    "fetch_binlogs",
    "replay_binlogs",
]
