"""Markdown and HTML rendering of a report."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.manifest import Verdict
from mysqlops.model import BackupKind

if TYPE_CHECKING:
    pass
from mysqlops.report.forecast import NOT_ENOUGH_HISTORY, _one_copy
from mysqlops.report.health import RULE_321
from mysqlops.report.schemas import STORAGE_SCHEMA, _empty
from mysqlops.units import human_bytes, human_duration

# --------------------------------------------------------------------------- the report


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
        }

    def summary_markdown(self) -> str:
        return _summary_markdown(self)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _fmt_time(value: Any) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


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
        lines += [f"- **{r.server}**: {r.reason.split(': ', 1)[-1]}" for r in short.itertuples()]
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
        lines.append(
            f"{_plural(len(r), 'test')}, {len(r) - len(failed)} passed, {len(failed)} failed; median restore "
            f"{human_duration(float(r['restore_s'].median()))}, newest {_fmt_time(r['tested_at'].max())}."
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


_HTML_ROWS = 500
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
    "img{max-width:100%;display:block;margin:1em 0}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"
)


def render_html(report: Report, charts: Mapping[str, bytes]) -> str:
    """A self-contained HTML page: summary, charts as base64 PNG, and the frames."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mysqlops backup report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>mysqlops backup report</h1>",
        f"<pre>{html.escape(report.summary_markdown())}</pre>",
    ]
    for name, png in charts.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
        )
    for name, df in report.frames().items():
        parts.append(f"<h2>{html.escape(name)} ({len(df)} rows)</h2>")
        shown = df
        if len(df) > _HTML_ROWS:
            shown = df.tail(_HTML_ROWS)
            parts.append(f"<p>Newest {_HTML_ROWS} rows shown; all rows are in {html.escape(name)}.csv.</p>")
        parts.append(shown.to_html(index=False, na_rep="", escape=True, border=0))
    parts.append("</body></html>")
    return "\n".join(parts)
