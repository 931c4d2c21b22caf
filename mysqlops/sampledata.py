"""Sample data for the demo, the tests and the benchmarks.

``create_awkward_database`` holds every type and object that breaks naive backups: utf8mb4
emoji, BLOBs with every byte value, JSON, DECIMAL, DOUBLE, NULL vs '', generated columns,
views, triggers, procedures, functions, events, and names with spaces, quotes and unicode.
``create_bulk_table`` makes a large table quickly (for benchmarks).
"""

from __future__ import annotations

from mysqlops.adapters import mysql as db
from mysqlops.sql.quoting import quote_identifier as q

AWKWARD_TABLE = 'odd `name` "quoted" ü'
AWKWARD_DB_SUFFIX = " spaced ü"


def create_awkward_database(conn: db.Connection, database: str = "shop") -> dict[str, int]:
    """Create ``database`` with awkward data and every object kind; returns expected counts."""
    d = q(database)
    statements = [
        f"CREATE DATABASE {d} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        f"""CREATE TABLE {d}.customers (
              id INT PRIMARY KEY AUTO_INCREMENT,
              name VARCHAR(100) NOT NULL,
              note TEXT NULL,
              balance DECIMAL(20,6) NOT NULL DEFAULT 0,
              score DOUBLE NULL,
              created DATETIME(6) NOT NULL,
              flags BIT(8) NULL,
              tier ENUM('free','pro','vip') NULL,
              profile JSON NULL,
              name_upper VARCHAR(100) AS (UPPER(name)) VIRTUAL,
              name_len INT AS (CHAR_LENGTH(name)) STORED
            )""",
        f"CREATE TABLE {d}.blobs (id INT PRIMARY KEY, data LONGBLOB NULL, small VARBINARY(16) NULL)",
        f"CREATE TABLE {d}.{q(AWKWARD_TABLE)} (`col ; --` VARCHAR(20), `ünï` INT)",
        f"CREATE TABLE {d}.audit (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT, action VARCHAR(20))",
        f"""INSERT INTO {d}.customers (name, note, balance, score, created, flags, tier, profile) VALUES
            ('Zoë 😀 Ünïcode', 'line1\\nline2\\ttab \\\\ backslash '' quote', 12345678901234.123456, 1e-300,
             '2026-11-23 10:15:00.123456', b'10100101', 'vip', '{{"k": [1, 2.5, "ü😀", null]}}'),
            ('empty note', '', 0, NULL, '1970-01-01 00:00:01', NULL, NULL, NULL),
            ('null note', NULL, -0.000001, 2.718281828459045, '2038-01-19 03:14:07.999999', b'0', 'free', '[]')""",
        f"INSERT INTO {d}.blobs VALUES (1, %s, %s), (2, '', ''), (3, NULL, NULL)",
        f"INSERT INTO {d}.{q(AWKWARD_TABLE)} VALUES ('x;y -- z', 1), ('`tick`', 2), (NULL, NULL)",
        f"CREATE VIEW {d}.rich_customers AS SELECT id, name FROM {d}.customers WHERE balance > 100",
        f"CREATE VIEW {d}.{q('view with space')} AS SELECT COUNT(*) AS n FROM {d}.blobs",
        f"""CREATE TRIGGER {d}.customers_audit AFTER INSERT ON {d}.customers FOR EACH ROW
            INSERT INTO {d}.audit (customer_id, action) VALUES (NEW.id, 'insert')""",
        f"CREATE PROCEDURE {d}.add_customer(IN n VARCHAR(100)) INSERT INTO {d}.customers (name, created) VALUES (n, NOW(6))",
        f"CREATE FUNCTION {d}.double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        f"CREATE EVENT {d}.nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM {d}.audit WHERE id < 0",
    ]
    every_byte = bytes(range(256)) * 64
    with conn.cursor() as cur:
        for sql in statements:
            if sql.startswith(f"INSERT INTO {d}.blobs"):
                cur.execute(sql, (every_byte, bytes(range(16))))
            else:
                cur.execute(sql)
    return {"tables": 4, "views": 2, "routines": 2, "triggers": 1, "events": 1}


def create_bulk_table(
    conn: db.Connection, database: str, table: str, rows: int, payload_bytes: int = 200
) -> None:
    """A table of ``rows`` rows with mixed columns, generated server-side (fast)."""
    d, t = q(database), q(table)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {d}")
        cur.execute(
            f"""CREATE TABLE IF NOT EXISTS {d}.{t} (
                  id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(255) NOT NULL,
                  amount DECIMAL(12,2) NOT NULL, ts DATETIME NOT NULL, payload TEXT NOT NULL, KEY (k)
                ) ENGINE=InnoDB"""
        )
        batch = 50_000
        # numbers 1..n without MariaDB's seq_1_to_N engine (MySQL has none) nor a recursive CTE
        # (MySQL stops those at cte_max_recursion_depth = 1000): five cross-joined digit tables
        digits = "(SELECT 0 AS n UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
        numbers = (
            f"SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n + 1 AS seq FROM {digits} a "
            f"CROSS JOIN {digits} b CROSS JOIN {digits} c CROSS JOIN {digits} e CROSS JOIN {digits} f"
        )
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            cur.execute(
                f"""INSERT INTO {d}.{t}
                    SELECT seq + %s, FLOOR(RAND(seq) * 1000000), SHA2(seq, 256),
                           ROUND(RAND(seq + 7) * 100000, 2), '2026-01-01' + INTERVAL seq SECOND,
                           REPEAT(LEFT(SHA2(seq, 224), 32), %s)
                    FROM ({numbers}) AS numbers WHERE seq <= %s""",
                (start, max(1, payload_bytes // 32), n),
            )
