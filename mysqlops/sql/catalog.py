"""What a server is and holds: identity, variables, schemas, tables, columns, grants.

The same text on both flavors unless a method says otherwise; parameters travel as ``%s``
placeholders (the driver quotes them), names through :func:`quote_identifier`.
"""

from __future__ import annotations

from mysqlops.sql.series import Series


class CatalogSql(Series):
    """Questions about one server of a version (read-only)."""
