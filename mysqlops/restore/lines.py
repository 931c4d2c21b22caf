"""Which object a client's ``ERROR ... at line N`` was loading, from the dump's own comments."""

from __future__ import annotations

import re

_MARK_RE = re.compile(
    rb"^-- (Table structure for table|Dumping data for table|Temporary table structure for view|"
    rb"Final view structure for view|Dumping events for database|Dumping routines for database|"
    rb"Current Database:) ([^\n]{0,300})",
    re.M,
)
_MARK_LABELS = {
    b"Table structure for table": "structure of table",
    b"Dumping data for table": "INSERT INTO: data of table",
    b"Temporary table structure for view": "placeholder of view",
    b"Final view structure for view": "view",
    b"Dumping events for database": "events of database",
    b"Dumping routines for database": "routines of database",
    b"Current Database:": "database",
}
AT_LINE_RE = re.compile(r"\bat line (\d+)")


class DumpLines:
    """Line numbers of a dump stream, and which object the statements at each line belong to
    (from the dump's own ``-- Dumping data for table `t``` comments): what a client's
    ``ERROR ... at line N`` was loading, without keeping any of the stream."""

    _MAX_PARTIAL = 64 * 1024  # a longer line is data: never a comment line

    def __init__(self) -> None:
        self.lines = 0  # complete lines seen
        self._partial = b""
        self._marks: list[tuple[int, str]] = []  # (1-based line of the comment, label)

    def feed(self, data: bytes) -> None:
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(self._partial) < self._MAX_PARTIAL:
                self._partial += data[: self._MAX_PARTIAL]
            return
        block = self._partial + data[: cut + 1] if self._partial else data[: cut + 1]
        tail = data[cut + 1 :]
        self._partial = tail[: self._MAX_PARTIAL]
        pos, line = 0, self.lines
        for m in _MARK_RE.finditer(block):
            line += block.count(b"\n", pos, m.start())
            pos = m.start()
            name = m.group(2).strip().decode("utf-8", "replace")
            self._marks.append((line + 1, f"{_MARK_LABELS[m.group(1)]} {name}"))
        self.lines = line + block.count(b"\n", pos)

    def where(self, line: int) -> str:
        """What the statement starting at 1-based ``line`` belongs to."""
        label = "the dump's header"
        for at, text in self._marks:
            if at > line:
                break
            label = text
        return label
