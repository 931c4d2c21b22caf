"""Pure SQL text: quoting, grants, replica and dump SQL per flavor and series."""

from mysqlops.gtid import normalize_gtid
from mysqlops.sql.dialect import Dialect, dialect_for
from mysqlops.sql.quoting import account, quote_identifier, quote_string
from mysqlops.sql.status import ReplicaStatus

__all__ = [
    "Dialect",
    "ReplicaStatus",
    "account",
    "dialect_for",
    "normalize_gtid",
    "quote_identifier",
    "quote_string",
]
