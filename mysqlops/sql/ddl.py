"""Deferred secondary indexes and foreign keys: pure rewriting of ``SHOW CREATE TABLE`` text.

A dump's ``CREATE TABLE`` is the server's own ``SHOW CREATE TABLE`` output: one column, key or
constraint per line, two spaces of indent, a trailing comma on every body line but the last.
:func:`defer_indexes` takes out the secondary keys (unique ones only beside a primary key) and
the foreign keys so that a table is loaded with its clustered index only, and gives back the clauses to add afterwards
(as ``myloader --innodb-optimize-keys`` and MySQL Shell's ``deferTableIndexes`` do). Adding
every deferred key in one ``ALTER TABLE`` in the original order gives back the original
definition: the server sorts keys by kind (primary, unique, the rest) and keeps the order of
keys within a kind. Where that cannot be exact the table is left alone and the reason is
returned: partitioned and system-versioned tables, FULLTEXT/SPATIAL/VECTOR keys, engines
other than InnoDB, and an AUTO_INCREMENT column whose only key would be deferred.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEAD_RE = re.compile(r"^CREATE TABLE (`(?:[^`]|``)+`) \($")
_ENGINE_RE = re.compile(r"\bENGINE=(\w+)")
_FIRST_COL_RE = re.compile(r"^(?:PRIMARY KEY|(?:UNIQUE )?KEY `(?:[^`]|``)+`) \(`((?:[^`]|``)+)`")
_FK_RE = re.compile(r"^CONSTRAINT `(?:[^`]|``)+` FOREIGN KEY ")
_COLUMN_RE = re.compile(r"^`((?:[^`]|``)+)` ")
NOTHING_TO_DEFER = "no secondary key or foreign key to defer"


@dataclass(frozen=True)
class DeferredTable:
    """A ``CREATE TABLE`` without its deferrable parts, and the parts to add back."""

    create: str  # the statement to run now
    keys: tuple[str, ...] = ()  # "KEY `k` (`a`)" clauses, original order
    foreign_keys: tuple[str, ...] = ()  # "CONSTRAINT `f` FOREIGN KEY ..." clauses, original order
    kept_reason: str = ""  # why nothing was deferred (empty when something was)
    notes: tuple[str, ...] = field(default=())

    @property
    def deferred(self) -> bool:
        return bool(self.keys or self.foreign_keys)


def _keep(create: str, reason: str) -> DeferredTable:
    return DeferredTable(create=create, kept_reason=reason)


def defer_indexes(create: str) -> DeferredTable:
    """Split ``create`` (one ``CREATE TABLE`` statement as a dump writes it, with or without
    the final ``;``) into the statement to load with and the clauses to add after the data."""
    text = create.rstrip()
    semicolon = text.endswith(";")
    body_text = text[:-1] if semicolon else text
    lines = body_text.split("\n")
    if len(lines) < 3 or not _HEAD_RE.match(lines[0]):
        return _keep(create, "not a one-table CREATE TABLE in SHOW CREATE TABLE form")
    close = next((i for i in range(len(lines) - 1, 0, -1) if lines[i].startswith(")")), None)
    if close is None:
        return _keep(create, "no closing line")
    tail = "\n".join(lines[close:])
    upper = tail.upper()
    if "PARTITION BY" in upper:
        return _keep(create, "partitioned table")
    if "WITH SYSTEM VERSIONING" in upper or any("WITH SYSTEM VERSIONING" in ln for ln in lines):
        return _keep(create, "system-versioned table")
    engine = _ENGINE_RE.search(tail)
    if engine is None or engine.group(1).lower() != "innodb":
        return _keep(
            create, f"engine {engine.group(1) if engine else 'unknown'} (DISABLE KEYS does this already)"
        )
    body = lines[1:close]
    if any(not ln.startswith("  ") for ln in body):
        return _keep(create, "a body line without the SHOW CREATE TABLE indent")
    items = [ln[2:-1] if ln.endswith(",") else ln[2:] for ln in body]
    if any(it.startswith(("FULLTEXT ", "SPATIAL ", "VECTOR ")) for it in items):
        return _keep(create, "FULLTEXT/SPATIAL/VECTOR key (adding it later rebuilds the table)")
    auto_inc = next(
        (m.group(1) for it in items if (m := _COLUMN_RE.match(it)) and " AUTO_INCREMENT" in it), None
    )
    has_primary = any(it.startswith("PRIMARY KEY ") for it in items)
    # unique keys are deferred only beside a primary key: without one, InnoDB clusters the
    # table on the first UNIQUE NOT NULL key, and adding that later would rebuild the table
    kinds = ("KEY ", "UNIQUE KEY ") if has_primary else ("KEY ",)
    covering = [
        m.group(1)
        for it in items
        if (m := _FIRST_COL_RE.match(it)) and (it.startswith("PRIMARY KEY ") or not it.startswith(kinds))
    ]
    defer_keys: list[int] = []
    auto_kept = auto_inc is None or auto_inc in covering
    for kind in kinds:
        idx = [i for i, it in enumerate(items) if it.startswith(kind)]
        # a key that must stay (the AUTO_INCREMENT column's only key, a MariaDB long unique
        # USING HASH) keeps every key of its kind before it: keys added later sort after the
        # kept ones of their kind, so the order of SHOW CREATE TABLE stays exact
        last_kept = -1
        for i in idx:
            m = _FIRST_COL_RE.match(items[i])
            if "USING HASH" in items[i] or (not auto_kept and m is not None and m.group(1) == auto_inc):
                last_kept = i
                auto_kept = auto_kept or (m is not None and m.group(1) == auto_inc)
        defer_keys += [i for i in idx if i > last_kept]
    defer_keys.sort()
    defer_fks = [i for i, it in enumerate(items) if _FK_RE.match(it)]
    if not defer_keys and not defer_fks:
        return _keep(create, NOTHING_TO_DEFER)
    gone = set(defer_keys) | set(defer_fks)
    kept = [it for i, it in enumerate(items) if i not in gone]
    new = "\n".join([lines[0], ",\n".join("  " + it for it in kept), *lines[close:]])
    return DeferredTable(
        create=new + (";" if semicolon else ""),
        keys=tuple(items[i] for i in defer_keys),
        foreign_keys=tuple(items[i] for i in defer_fks),
    )


def add_clauses_sql(table: str, clauses: tuple[str, ...] | list[str]) -> str:
    """``ALTER TABLE `t` ADD <clause>, ADD <clause>`` for the deferred clauses of one table
    (``table`` already quoted, as the dump wrote it)."""
    if not clauses:
        raise ValueError("no clause to add")
    return f"ALTER TABLE {table} " + ", ".join(f"ADD {c}" for c in clauses)
