"""Whole lines out of a byte stream fed in chunks (pure, no I/O): the one place that carries a
line split across two chunks, for the dump readers that look at where each line starts
(:mod:`mysqlops.streams.dumpscan`, :mod:`mysqlops.streams.tablesplit`).

A line longer than ``max_carry`` (a big BLOB row) is not held: it is passed on in pieces, so
memory stays bounded whatever the stream holds.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_CARRY = 1 << 20  # a partial line longer than this is data: stream it through

#: ``(buf, lo, hi, starts_at_line, ends_at_line)``: ``buf[lo:hi]`` is the next run of the stream
BlockFn = Callable[[bytes, int, int, bool, bool], None]


class LineChunks:
    """Feed chunks; ``on_block`` gets the stream again, in order, in runs of whole lines
    (``ends_at_line``), except a line longer than ``max_carry``, which comes in pieces (its
    continuations with ``starts_at_line`` False), and, at :meth:`finish`, a last line without
    its newline (``ends_at_line``: nothing follows it). A run within one chunk is a slice of
    that chunk; a line split across chunks is joined (a short copy)."""

    def __init__(self, on_block: BlockFn, max_carry: int = MAX_CARRY) -> None:
        self._on_block = on_block
        self._max_carry = max_carry
        self._carry = b""
        self._mid_line = False  # the carry (or the next chunk) does not start at a line start
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.total_bytes += len(chunk)
        lo = 0
        if self._carry:
            # finish the partial line carried over from the last chunk
            nl = chunk.find(b"\n")
            if nl < 0:
                self._carry += chunk
                if len(self._carry) > self._max_carry:  # one enormous line: pass it through
                    self._on_block(self._carry, 0, len(self._carry), not self._mid_line, False)
                    self._carry, self._mid_line = b"", True
                return
            head = self._carry + chunk[: nl + 1]
            self._carry = b""
            self._on_block(head, 0, len(head), not self._mid_line, True)
            self._mid_line = False
            lo = nl + 1
        cut = chunk.rfind(b"\n")
        if cut >= lo:
            self._on_block(chunk, lo, cut + 1, lo > 0 or not self._mid_line, True)
            self._mid_line = False
            lo = cut + 1
        if lo < len(chunk):
            rest = chunk[lo:]
            if len(rest) > self._max_carry:
                self._on_block(rest, 0, len(rest), not self._mid_line, False)
                self._mid_line = True
            else:
                self._carry = rest

    def finish(self) -> None:
        """The stream ended: its last line, if it had no newline."""
        if self._carry:
            carry, self._carry = self._carry, b""
            self._on_block(carry, 0, len(carry), not self._mid_line, True)
