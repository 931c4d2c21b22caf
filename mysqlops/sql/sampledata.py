"""The sample databases' SQL (pure text): what :mod:`mysqlops.sampledata` runs for the demo,
the tests and the benchmarks.

:func:`awkward_database` holds every type and object that breaks naive backups: utf8mb4
emoji, BLOBs with every byte value, JSON, DECIMAL, DOUBLE, NULL vs '', generated columns,
views, triggers, procedures, functions, events, and names with spaces, quotes and unicode.
:func:`bulk_table` makes a large table quickly; :func:`indexed_database` tables with every
kind of secondary key, foreign keys, FULLTEXT and partitions. Each returns its statements in
order, as ``(sql, params)``.
"""

from __future__ import annotations

from typing import Any

from mysqlops.sql.quoting import quote_identifier as q

Statement = tuple[str, tuple[Any, ...] | None]

AWKWARD_TABLE = 'odd `name` "quoted" ü'
AWKWARD_DB_SUFFIX = " spaced ü"
#: the objects :func:`awkward_database` and :func:`indexed_database` create
AWKWARD_COUNTS = {"tables": 4, "views": 2, "routines": 2, "triggers": 1, "events": 1}
INDEXED_COUNTS = {"tables": 7, "views": 3, "routines": 2, "triggers": 2, "events": 1}


def awkward_database(database: str = "shop") -> list[Statement]:
    """``database`` with awkward data and every object kind."""
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
    blobs = f"INSERT INTO {d}.blobs"
    return [(sql, (every_byte, bytes(range(16))) if sql.startswith(blobs) else None) for sql in statements]


def bulk_table(database: str, table: str, rows: int, payload_bytes: int = 200) -> list[Statement]:
    """A table of ``rows`` rows with mixed columns, generated server-side (fast)."""
    d, t = q(database), q(table)
    statements: list[Statement] = [
        (f"CREATE DATABASE IF NOT EXISTS {d}", None),
        (
            f"""CREATE TABLE IF NOT EXISTS {d}.{t} (
                  id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(255) NOT NULL,
                  amount DECIMAL(12,2) NOT NULL, ts DATETIME NOT NULL, payload TEXT NOT NULL, KEY (k)
                ) ENGINE=InnoDB""",
            None,
        ),
    ]
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
        statements.append(
            (
                f"""INSERT INTO {d}.{t}
                    SELECT seq + %s, FLOOR(RAND(seq) * 1000000), SHA2(seq, 256),
                           ROUND(RAND(seq + 7) * 100000, 2), '2026-01-01' + INTERVAL seq SECOND,
                           REPEAT(LEFT(SHA2(seq, 224), 32), %s)
                    FROM ({numbers}) AS numbers WHERE seq <= %s""",
                (start, max(1, payload_bytes // 32), n),
            )
        )
    return statements


def indexed_database(database: str = "ix", rows: int = 2000) -> list[Statement]:
    """Tables with secondary indexes (unique, composite, prefix, descending-free), foreign keys
    (also self-referencing and to a non-unique key), a JSON/text table with indexes, a FULLTEXT
    table and a partitioned table (where deferring indexes cannot be exact), an AUTO_INCREMENT
    counter above the highest row, views on views, a procedure, a function, triggers and an event.
    ``rows`` scales the big tables (orders ~``rows``, items ~2x``rows``, docs ~``rows`` / 2)."""
    d = q(database)
    statements = [
        f"CREATE DATABASE {d} CHARACTER SET utf8mb4",
        f"""CREATE TABLE {d}.customers (
              id INT NOT NULL AUTO_INCREMENT, email VARCHAR(120) NOT NULL, name VARCHAR(100) NOT NULL,
              city VARCHAR(40) NULL, created DATETIME NOT NULL,
              PRIMARY KEY (id), UNIQUE KEY uq_email (email), KEY ix_city_name (city, name(20)),
              KEY ix_created (created)
            ) ENGINE=InnoDB AUTO_INCREMENT=900000""",
        f"""CREATE TABLE {d}.orders (
              id BIGINT NOT NULL, customer_id INT NOT NULL, status ENUM('new','paid','sent') NOT NULL,
              total DECIMAL(12,2) NOT NULL, placed DATETIME NOT NULL, parent_id BIGINT NULL,
              PRIMARY KEY (id), KEY ix_status_placed (status, placed), KEY ix_total (total),
              CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES {d}.customers (id)
                ON DELETE CASCADE,
              CONSTRAINT fk_orders_parent FOREIGN KEY (parent_id) REFERENCES {d}.orders (id)
            ) ENGINE=InnoDB""",
        f"""CREATE TABLE {d}.items (
              order_id BIGINT NOT NULL, line INT NOT NULL, sku CHAR(12) NOT NULL, qty INT NOT NULL,
              price DECIMAL(10,2) NOT NULL,
              PRIMARY KEY (order_id, line), KEY ix_sku (sku), UNIQUE KEY uq_sku_order (sku, order_id, line),
              CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES {d}.orders (id) ON UPDATE CASCADE
            ) ENGINE=InnoDB""",
        f"""CREATE TABLE {d}.docs (
              id INT NOT NULL, title VARCHAR(200) NOT NULL, body MEDIUMTEXT NOT NULL, attrs JSON NULL,
              kind VARCHAR(20) AS (JSON_UNQUOTE(JSON_EXTRACT(attrs, '$.kind'))) STORED,
              PRIMARY KEY (id), KEY ix_kind (kind), KEY ix_title (title(50))
            ) ENGINE=InnoDB""",
        f"""CREATE TABLE {d}.notes (
              id INT NOT NULL AUTO_INCREMENT, txt TEXT NOT NULL, tag VARCHAR(10) NOT NULL,
              PRIMARY KEY (id), KEY ix_tag (tag), FULLTEXT KEY ft_txt (txt)
            ) ENGINE=InnoDB""",
        f"""CREATE TABLE {d}.events_log (
              id INT NOT NULL, at DATE NOT NULL, what VARCHAR(30) NOT NULL,
              PRIMARY KEY (id, at), KEY ix_what (what)
            ) ENGINE=InnoDB PARTITION BY RANGE (YEAR(at)) (
              PARTITION p2025 VALUES LESS THAN (2026), PARTITION pmax VALUES LESS THAN MAXVALUE)""",
        f"CREATE TABLE {d}.audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, order_id BIGINT, what VARCHAR(20))",
    ]
    statements += [
        f"CREATE TABLE {d}._n (i INT PRIMARY KEY)",
        f"INSERT INTO {d}._n VALUES " + ",".join(f"({i})" for i in range(1000)),
    ]

    def fill(sql: str, count: int) -> None:  # sql selects FROM {n} x, i = 0 .. count-1
        for start in range(0, count, 1_000_000):
            part = min(1_000_000, count - start)
            n = f"(SELECT {start} + a.i * 1000 + b.i AS i FROM {d}._n a CROSS JOIN {d}._n b WHERE a.i * 1000 + b.i < {part})"
            statements.append(sql.format(n=n))

    customers = max(10, rows // 10)
    fill(
        f"INSERT INTO {d}.customers (id, email, name, city, created) SELECT i + 1, CONCAT('c', i, '@example.org'), "
        f"CONCAT('Name ', i), ELT(1 + i % 5, 'Oslo', 'Łódź', 'Zürich', NULL, 'Porto'), "
        f"'2026-01-01' + INTERVAL i MINUTE FROM {{n}} x",
        customers,
    )
    fill(
        f"INSERT INTO {d}.orders SELECT i + 1, 1 + i % {customers}, ELT(1 + i % 3, 'new', 'paid', 'sent'), "
        f"(i * 37 % 100000) / 100, '2026-02-01' + INTERVAL i SECOND, IF(i % 7 = 0 OR i = 0, NULL, i) "
        f"FROM {{n}} x ORDER BY i",
        rows,
    )
    fill(
        f"INSERT INTO {d}.items SELECT 1 + i DIV 2, i % 2, CONCAT('SKU', LPAD(i % 9973, 9, '0')), "
        f"1 + i % 4, (i % 5000) / 10 FROM {{n}} x",
        2 * rows,
    )
    fill(
        f"INSERT INTO {d}.docs (id, title, body, attrs) SELECT i, CONCAT('Doc ', i, ' ü😀'), "
        f"REPEAT(CONCAT('line ', i, ' \\\\ \\'q\\' \\n'), 20), "
        f"JSON_OBJECT('kind', ELT(1 + i % 3, 'memo', 'spec', 'faq'), 'n', i, 'tags', JSON_ARRAY('a', i)) "
        f"FROM {{n}} x",
        max(5, rows // 2),
    )
    fill(
        f"INSERT INTO {d}.notes (txt, tag) SELECT CONCAT('note about order ', i), ELT(1 + i % 2, 'x', 'y') "
        f"FROM {{n}} x",
        200,
    )
    fill(
        f"INSERT INTO {d}.events_log SELECT i, '2025-06-01' + INTERVAL i DAY, CONCAT('w', i % 13) FROM {{n}} x",
        400,
    )
    statements.append(f"DROP TABLE {d}._n")
    statements += [
        f"CREATE VIEW {d}.v_paid AS SELECT id, customer_id, total FROM {d}.orders WHERE status = 'paid'",
        f"CREATE VIEW {d}.v_big_paid AS SELECT id, total FROM {d}.v_paid WHERE total > 500",
        f"CREATE VIEW {d}.v_a_top AS SELECT COUNT(*) AS n FROM {d}.v_big_paid",
        f"""CREATE TRIGGER {d}.orders_ai AFTER INSERT ON {d}.orders FOR EACH ROW
            INSERT INTO {d}.audit (order_id, what) VALUES (NEW.id, 'insert')""",
        f"""CREATE TRIGGER {d}.items_bi BEFORE INSERT ON {d}.items FOR EACH ROW
            SET NEW.qty = GREATEST(NEW.qty, 1)""",
        f"CREATE PROCEDURE {d}.paid_count(OUT n INT) SELECT COUNT(*) INTO n FROM {d}.v_paid",
        f"CREATE FUNCTION {d}.with_tax(x DECIMAL(12,2)) RETURNS DECIMAL(12,2) DETERMINISTIC RETURN x * 1.25",
        f"CREATE EVENT {d}.purge ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE "
        f"DO DELETE FROM {d}.audit WHERE id < 0",
        f"INSERT INTO {d}.orders (id, customer_id, status, total, placed) VALUES ({rows + 10}, 1, 'new', 1, '2026-03-01')",
    ]
    return [(sql, None) for sql in statements]
