"""The HTML report is real HTML: rendered markdown, styled tables, embedded charts, human units."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from html.parser import HTMLParser

import fsspec

from mysqlops.report import Catalog, build_report, render_charts, render_html, small_tables, write_outputs
from tests.unit.test_report import LOCS, PNG_MAGIC, T0, backup, binlog, cert, db1_backups, proven


class Page(HTMLParser):
    """Headings, tables (with their header cells and rows), images and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.tables: list[dict[str, list]] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        elif tag in ("th", "td"):
            self._cell = []
        elif tag == "tr":
            self._row = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()
        if tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self.tables[-1]["header"].append(text)
            else:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self._row:
            self.tables[-1]["rows"].append(self._row)

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1] in ("style", "script"):
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._stack and self._stack[-1] in ("h1", "h2", "h3"):
            self.headings.append(data.strip())


def demo_catalog() -> Catalog:
    """10 days of daily fulls at local and S3, each proven at both; a failed test, binlogs."""
    b1 = db1_backups(days=10)
    certs = proven(b1)
    certs.append(cert("db1", b1[0].backup_id, False, T0 + timedelta(hours=5), {"total": 70.0}, "s3"))
    tiny = [backup("db2", T0 + timedelta(days=9), loc, 30_000_000, 9_000_000, 4.0) for loc in ("local", "s3")]
    return Catalog(
        b1 + tiny,
        binlogs=[binlog("db1", s, hour=s) for s in (1, 2, 3, 5)],
        certificates=certs + proven(tiny),
        locations=LOCS,
        policies={"s3": {"keep_daily": 7, "keep_within": "3d"}},
    )


def test_html_report_renders(tmp_path) -> None:
    cat = demo_catalog()
    now = cat.backups[-1].finished_at + timedelta(hours=2)
    report = build_report(cat, now)
    paths = write_outputs(report, fsspec.filesystem("file"), str(tmp_path))
    page_text = (tmp_path / "report.html").read_text()
    assert str(tmp_path / "report.html") in paths
    page = Page()
    page.feed(page_text)
    text = " ".join(page.text)

    # the markdown summary is rendered, not shown as source
    assert "Backup report" in page.headings and "Servers" in page.headings
    assert "<pre>" not in page_text
    assert "|---|" not in text and "**" not in text and not re.search(r"^#", text, re.M)
    # styled tables with header cells
    assert "<style>" in page_text and "th{" in page_text
    assert len(page.tables) >= 5
    for table in page.tables:
        assert table["header"], table
        assert all(len(row) == len(table["header"]) for row in table["rows"]), table["header"]
    servers = next(t for t in page.tables if t["header"][:2] == ["server", "newest proven"])
    assert [row[0] for row in servers["rows"]] == ["db1", "db2"]
    # embedded charts (PNG) where a series has 3 points or more, a table where fewer
    images = [src for src in page.images if src.startswith("data:image/png;base64,")]
    assert len(images) == len(render_charts(report)) >= 2
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC) for src in images)
    assert set(small_tables(report)) <= {"sizes", "durations", "restores"}
    # no raw DataFrame dumps: no exponents, no microsecond timestamps, human units and zones
    assert not re.search(r"\d\.\d+e[+-]?\d+", text), "a number in scientific notation"
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", text), "a raw timestamp"
    assert not re.search(r"<td[^>]*>\d{7,}</td>", page_text), "a raw byte count"
    assert "All times are UTC" in text and " UTC" in text
    assert "MiB/s" in text and "throughput_mbps" not in page_text
    # the policy the storage forecast used is the retention policy, by its own words
    assert "keep 7 daily, within 3d; min_redundancy 1" in text
    # 3-2-1: local + off-site S3 meets the rule, and the page says why
    assert "meets 3-2-1: 3 copies of the data" in text


def test_html_report_escapes_names() -> None:
    evil = [backup("<script>x</script>", T0, "s3", 1000, 100)]
    page = render_html(build_report(Catalog(evil, locations=LOCS), T0 + timedelta(hours=1)), {})
    assert "<script>x" not in page and "&lt;script&gt;x" in page
