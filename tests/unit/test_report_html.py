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
    certs = [  # the restore times the certificates state: 5.3 s and 6.5 s
        cert(
            m.server,
            m.backup_id,
            True,
            m.finished_at + timedelta(hours=1),
            {"total": (5.3, 6.5)[i % 2]},
            m.location,
        )
        for i, m in enumerate(b1)
    ]
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
    # restore times as the certificates state them (their total, never the sum of total and stages)
    assert "median restore 5.9s over the 30 passed tests whose certificate records it" in text
    # 3-2-1: local + off-site S3 meets the rule, and the page says why
    assert "meets 3-2-1: 3 copies of the data" in text


def test_html_report_escapes_names() -> None:
    evil = [backup("<script>x</script>", T0, "s3", 1000, 100)]
    page = render_html(build_report(Catalog(evil, locations=LOCS), T0 + timedelta(hours=1)), {})
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_charts_are_readable_at_any_history_length() -> None:
    from mysqlops.report.charts import chart_figures

    cat = demo_catalog()
    report = build_report(cat, cat.backups[-1].finished_at + timedelta(hours=2))
    figures = chart_figures(report)
    sizes = figures["sizes"].axes[0]
    assert sizes.get_ylabel() == "MiB (stored)"  # 240..260 MiB: not GiB with ticks of 0.02
    ticks = [t for t in sizes.get_yticks() if 0 <= t <= sizes.get_ylim()[1]]
    assert ticks[0] == 0 and len(ticks) <= 7 and all(t % 50 == 0 for t in ticks), ticks
    assert figures["durations"].axes[0].get_ylabel() == "seconds"  # 100 s: not 1.67 minutes
    # restore tests are points: no line joins the local and the S3 test of one backup
    restores = figures["restores"].axes[0]
    assert not [line for line in restores.get_lines() if len(line.get_xdata()) > 1]
    assert "UTC" in restores.get_xlabel()
    # one backup of one server: a table, not one dot on a long axis
    one = [backup("db9", T0, "local", 1000, 100)]
    single = build_report(Catalog(one, certificates=proven(one), locations=LOCS), T0 + timedelta(hours=1))
    assert chart_figures(single) == {} and set(small_tables(single)) == {"sizes", "durations"}
