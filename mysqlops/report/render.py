"""Markdown and HTML rendering of a report."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt

from mysqlops.manifest import Verdict
from mysqlops.model import BackupKind

if TYPE_CHECKING:
    pass
from mysqlops.report.forecast import NOT_ENOUGH_HISTORY, _one_copy
from mysqlops.report.health import RULE_321
from mysqlops.report.schemas import RECOVERY_SCHEMA, STORAGE_SCHEMA, _empty
from mysqlops.units import human_bytes, human_duration, human_time

# --------------------------------------------------------------------------- the report

RECOVERY_RULE = (
    "From the oldest backup a restore test proved to the newest point restorable "
    "(that backup's end, or the binlogs archived after it without a gap)."
)


@dataclass
class Report:
    backups: pd.DataFrame
    databases: pd.DataFrame
    growth: pd.DataFrame
    locations: pd.DataFrame
    restores: pd.DataFrame
    freshness: pd.DataFrame
    anomalies: pd.DataFrame
    generated_at: datetime
    empty: bool
    message: str
    storage: pd.DataFrame = field(default_factory=lambda: _empty(STORAGE_SCHEMA))
    recovery: pd.DataFrame = field(default_factory=lambda: _empty(RECOVERY_SCHEMA))

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "backups": self.backups,
            "databases": self.databases,
            "growth": self.growth,
            "storage": self.storage,
            "locations": self.locations,
            "restores": self.restores,
            "freshness": self.freshness,
            "anomalies": self.anomalies,
            "recovery": self.recovery,
        }

    def summary_markdown(self) -> str:
        return _summary_markdown(self)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _fmt_time(value: Any) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return human_time(pd.Timestamp(value).to_pydatetime())


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return lines


def _summary_markdown(report: Report) -> str:
    lines = [
        "# Backup report",
        "",
        f"Generated {_fmt_time(report.generated_at)}: {report.message}.",
    ]
    if report.empty and report.freshness.empty:
        return "\n".join(lines) + "\n"
    once = _one_copy(report.backups)
    fulls = once[once["verified"] & (once["kind"] == BackupKind.FULL.value)] if not once.empty else once
    last_full: dict[str, Any] = {
        str(r["server"]): r
        for r in fulls.sort_values("finished_at").drop_duplicates("server", keep="last").to_dict("records")
    }
    server_growth = report.growth[report.growth["database"] == "*"]
    growth: dict[str, str] = {}
    for g in server_growth.to_dict("records"):
        server = str(g["server"])
        rate = g["growth_bytes_per_day"]
        if pd.isna(rate):
            days = g["history_days"]
            text = NOT_ENOUGH_HISTORY + (f" ({days:.0f} days of 7)" if pd.notna(days) else "")
        else:
            text = ("+" if rate >= 0 else "") + human_bytes(float(rate)) + "/day"
        growth[server] = text if server not in growth else growth[server] + ", " + text
    meets = dict(zip(report.locations["server"], report.locations["meets_321"], strict=True))
    rows = []
    for f in report.freshness.to_dict("records"):
        server = str(f["server"])
        lf = last_full.get(server)
        rows.append(
            (
                server,
                _fmt_time(f["newest_at"]),
                human_duration(float(f["age_s"])),
                "ok" if f["ok"] else "STALE",
                _fmt_time(f["newest_unproven_at"]) if isinstance(f["newest_unproven_id"], str) else "none",
                human_bytes(float(lf["raw_bytes"])) if lf else "n/a",
                human_bytes(float(lf["stored_bytes"])) if lf else "n/a",
                human_duration(float(lf["duration_s"])) if lf else "n/a",
                growth.get(server, "n/a"),
                "yes" if meets.get(server) else "no",
            )
        )
    lines += ["", "## Servers", ""]
    lines += _md_table(
        [
            "server",
            "newest proven",
            "age",
            "freshness",
            "newer, not proven",
            "last full raw",
            "stored",
            "took",
            "growth",
            "3-2-1",
        ],
        rows,
    )
    if not report.recovery.empty:
        lines += ["", "## Recovery window", "", RECOVERY_RULE, ""]
        lines += _md_table(
            ["server", "oldest point", "newest point", "window", "binlog gaps", "untested backups"],
            [
                (
                    r["server"],
                    f"{_fmt_time(r['oldest_at'])} ({r['oldest_backup_id']})",
                    _fmt_time(r["newest_at"]) + (" (binlogs)" if r["from_binlogs"] else ""),
                    human_duration(float(r["window_s"])),
                    r["gaps"],
                    r["untested"],
                )
                if isinstance(r["oldest_backup_id"], str)
                else (r["server"], "nothing proven restorable", "n/a", "n/a", r["gaps"], r["untested"])
                for r in report.recovery.to_dict("records")
            ],
        )
    bad = report.backups[report.backups["verdict"].isin([Verdict.FAILED.value, Verdict.DAMAGED.value])]
    if not bad.empty:
        lines += ["", "## Copies not usable", ""]
        lines += [
            f"- **{x.server}** {x.backup_id} at {x.location}: "
            + (
                "newest restore test FAILED"
                if x.verdict == Verdict.FAILED.value
                else "damaged (files missing)"
            )
            for x in bad.itertuples()
        ]
    short = report.locations[~report.locations["meets_321"]]
    if not short.empty:
        lines += ["", "## 3-2-1 gaps", "", f"The rule: {RULE_321}.", ""]
        lines += [f"- **{r.server}**: {str(r.reason).split(': ', 1)[-1]}" for r in short.itertuples()]
    if not report.storage.empty:
        lines += ["", "## Storage under retention", ""]
        lines += _md_table(
            ["server", "location", "kind", "policy", "retained", "now", "in 90 days"],
            [
                (
                    r["server"],
                    r["location"],
                    str(r["location_kind"]) + (" (offsite)" if r["offsite"] else ""),
                    r["policy"],
                    f"{r['retained_backups']}/{r['backups']}",
                    human_bytes(float(r["storage_now_bytes"])),
                    NOT_ENOUGH_HISTORY
                    if pd.isna(r["storage_needed_90d"])
                    else human_bytes(float(r["storage_needed_90d"])),
                )
                for r in report.storage.to_dict("records")
            ],
        )
    r = report.restores
    lines += ["", "## Restore tests", ""]
    if r.empty:
        lines.append("No restore test certificates: no backup has been proven restorable.")
    else:
        failed = r[~r["passed"]]
        timed = r[r["passed"]]["restore_s"].dropna()
        median = (
            f"median restore {human_duration(float(timed.median()))} over the "
            f"{_plural(len(timed), 'passed test')} whose certificate records it"
            if len(timed)
            else "no passed test records its restore time"
        )
        lines.append(
            f"{_plural(len(r), 'test')}, {len(r) - len(failed)} passed, {len(failed)} failed; {median}; "
            f"newest {_fmt_time(r['tested_at'].max())}."
        )
        lines += [
            f"- FAILED {x.server} {x.backup_id} at {x.location}: {x.failed_checks}"
            for x in failed.itertuples()
        ]
    a = report.anomalies
    lines += ["", f"## Anomalies ({len(a)})", ""]
    if a.empty:
        lines.append("None.")
    else:
        limit = 50
        lines += [
            f"- {x.kind} **{x.server}** {x.backup_id if isinstance(x.backup_id, str) else ''}: {x.detail}"
            for x in a.head(limit).itertuples()
        ]
        if len(a) > limit:
            lines.append(f"- … and {len(a) - limit} more (see anomalies.csv)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- outputs


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (ISO timestamps, None for missing): what Prefect artifacts accept."""
    records: list[dict[str, Any]] = json.loads(df.to_json(orient="records", date_format="iso"))
    return records


_HTML_ROWS = 200
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
  padding:0 1.5em;color:#1f2328;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;font-size:13px;margin:.8em 0 1.5em;display:block;overflow-x:auto;
  max-width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top;white-space:nowrap}
td.text{white-space:normal;min-width:18em}
th{background:#f0f3f6;font-weight:600;white-space:nowrap}
tr:nth-child(even) td{background:#f8f9fa}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.bad{color:#b42318;font-weight:600}
img{max-width:100%;display:block;margin:.8em 0;border:1px solid #eee}
.note{color:#57606a;font-size:13px}
details{margin:.5em 0 1.5em}summary{cursor:pointer;font-weight:600}
"""
_TITLES = {
    "backups": "Backup copies",
    "databases": "Databases per backup",
    "growth": "Growth and forecasts",
    "storage": "Storage under retention",
    "locations": "3-2-1 per server",
    "restores": "Restore tests (from the certificates)",
    "freshness": "Freshness",
    "anomalies": "Anomalies",
}
_HIDDEN = {"anomalies": ("value", "expected"), "backups": ("parent_id",)}
_BYTES = re.compile(r"(^|_)bytes$|^(stored_)?forecast_\d+d$|^storage_needed_\d+d$")
_SECONDS = re.compile(r"_s$")
_WRAPPED = frozenset({"detail", "reason", "policy", "failed_checks", "locations", "kinds"})
_FORECAST = re.compile(r"per_day$|forecast_\d+d$|^storage_needed_\d+d$")


def _header(column: str) -> str:
    if column == "throughput_mib_s":
        return "throughput"
    if column == "growth_bytes_per_day":
        return "growth/day"
    if column == "stored_growth_bytes_per_day":
        return "stored growth/day"
    return column.removesuffix("_bytes").removesuffix("_s").replace("_", " ")


def _cell(column: str, value: Any) -> tuple[str, bool]:
    """(text, is a number) for one value, in the units of ``mysqlops.units``."""
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        if _FORECAST.search(column):
            return NOT_ENOUGH_HISTORY, False
        return "", False
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), False
    if isinstance(value, pd.Timestamp | datetime):
        return human_time(pd.Timestamp(value).to_pydatetime()), True
    if isinstance(value, str):
        return value, False
    number = float(value)
    if column == "throughput_mib_s":
        return f"{number:.1f} MiB/s", True
    if column.endswith("per_day"):
        return ("+" if number >= 0 else "") + human_bytes(number) + "/day", True
    if _BYTES.search(column):
        return human_bytes(number), True
    if _SECONDS.search(column):
        return human_duration(number), True
    if column == "ratio":
        return f"{number:.1f}:1", True
    if column == "history_days":
        return f"{number:.1f} days", True
    if number.is_integer():
        return f"{int(number):,}", True
    return f"{number:,.2f}", True


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as text in human units (bytes, durations, UTC times, MiB/s), headers made readable:
    for printing in a terminal or notebook; the frames themselves keep exact numbers."""
    return pd.DataFrame(
        {_header(c): [_cell(c, v)[0] for v in df[c]] for c in df.columns},
        index=df.index,
    )


def html_table(df: pd.DataFrame, hidden: Sequence[str] = ()) -> str:
    """A styled table with header cells; numbers, bytes, durations and times in human units."""
    columns = [c for c in df.columns if c not in hidden]
    head = "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
    body = []
    for row in df[columns].itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, row, strict=True):
            text, numeric = _cell(column, value)
            css = "num" if numeric else ("bad" if text in ("FAILED", "STALE", "failed", "damaged") else "")
            if column in _WRAPPED:
                css = "text"
            cells.append(
                f"<td class='{css}'>{html.escape(text)}</td>" if css else f"<td>{html.escape(text)}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def artifact_markdown(report: Report, charts: Mapping[str, bytes], small: Mapping[str, pd.DataFrame]) -> str:
    """The summary, then each chart as an embedded PNG, or a table where it has under 3 points."""
    lines = [report.summary_markdown()]
    for name, png in charts.items():
        lines += [
            f"![{_CHART_TITLES.get(name, name)}](data:image/png;base64,{base64.b64encode(png).decode()})",
            "",
        ]
    for name, df in small.items():
        lines += [f"### {_CHART_TITLES.get(name, name)} (fewer than 3 points: a table)", ""]
        rows = [
            [_cell(c, v)[0] for c, v in zip(df.columns, row, strict=True)]
            for row in df.itertuples(index=False)
        ]
        lines += [*_md_table([_header(c) for c in df.columns], rows), ""]
    return "\n".join(lines)


def render_html(
    report: Report, charts: Mapping[str, bytes], small: Mapping[str, pd.DataFrame] | None = None
) -> str:
    """A self-contained HTML page: the summary rendered from markdown, charts embedded as base64
    PNG (a table instead where a series has fewer than 3 points), and every frame as a styled
    table in human units. All times are UTC, and the page says so."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")  # names are text, never markup
    summary = md.render(report.summary_markdown())
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>mysqlops backup report</title>",
        f"<style>{_CSS}</style></head><body>",
        summary,
        "<p class='note'>All times are UTC. Sizes in binary units (1 KiB = 1024 bytes); "
        "throughput in MiB/s of uncompressed data.</p>",
    ]
    if charts or small:
        parts.append("<h2>Charts</h2>")
    for name, png in charts.items():
        data = base64.b64encode(png).decode("ascii")
        title = _CHART_TITLES.get(name, name)  # the chart draws its own title
        parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    for name, df in (small or {}).items():
        title = _CHART_TITLES.get(name, name)
        parts.append(
            f"<h3>{html.escape(title)}</h3><p class='note'>Fewer than 3 points: a table instead of a chart.</p>"
        )
        parts.append(html_table(df))
    parts.append("<h2>Details</h2>")
    for name, df in report.frames().items():
        title = _TITLES.get(name, name)
        parts.append(f"<details{' open' if name in ('anomalies', 'storage') else ''}>")
        parts.append(f"<summary>{html.escape(title)} ({_plural(len(df), 'row')})</summary>")
        if df.empty:
            parts.append("<p class='note'>None.</p></details>")
            continue
        shown = df
        if len(df) > _HTML_ROWS:
            shown = df.tail(_HTML_ROWS)
            parts.append(
                f"<p class='note'>The newest {_HTML_ROWS} rows; all rows are in {html.escape(name)}.csv.</p>"
            )
        parts.append(html_table(shown, _HIDDEN.get(name, ())))
        parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


_CHART_TITLES = {
    "sizes": "Stored size of full backups",
    "durations": "Backup duration",
    "restores": "Restore test duration",
}
