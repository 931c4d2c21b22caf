"""The server series a dialect is for: flavor and the version facts every SQL class asks.

Supported: MariaDB 10.5.2+ and MySQL 8.0+ (:class:`Series` refuses older ones with the reason).
"""

from __future__ import annotations

from mysqlops.errors import ConfigError
from mysqlops.model import Flavor, ServerVersion


class Series:
    """One server version's facts; the base of every per-concern SQL class."""

    def __init__(self, version: ServerVersion) -> None:
        if version.flavor is Flavor.MARIADB:
            if not version.at_least(10, 5, 2):
                raise ConfigError(
                    f"{version} is not supported: mysqlops needs MariaDB 10.5.2 or newer "
                    "(the split SUPER privileges BINLOG MONITOR / REPLICATION SLAVE ADMIN)"
                )
        elif not version.at_least(8, 0, 0):
            raise ConfigError(f"{version} is not supported: mysqlops needs MySQL 8.0 or newer")
        self.version = version

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.version})"

    @property
    def flavor(self) -> Flavor:
        return self.version.flavor

    @property
    def is_mariadb(self) -> bool:
        return self.version.flavor is Flavor.MARIADB

    def _mysql_at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return not self.is_mariadb and self.version.at_least(major, minor, patch)

    @property
    def _replica_word(self) -> str:
        """REPLICA (MySQL 8.0.22+) or SLAVE (MariaDB: the only spelling in every 10.5+ release)."""
        return "REPLICA" if self._mysql_at_least(8, 0, 22) else "SLAVE"

    @property
    def _source_syntax(self) -> bool:
        """CHANGE REPLICATION SOURCE TO / SOURCE_* options: MySQL 8.0.23+."""
        return self._mysql_at_least(8, 0, 23)
