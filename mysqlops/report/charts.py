"""PNG charts of a ``Report``, rendered headless with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` directly (never ``pyplot``), so there is no
global figure state, no GUI backend is touched and rendering is safe in worker threads.
A chart is only produced when it has data; an empty report gives ``{}``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mysqlops.report.render import Report

GIB = 1024**3
MAX_LEGEND = 12
_SIZE = (9.0, 4.5)


def _naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC datetime64 (what matplotlib's date axis plots fastest)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _finish(ax: Axes, title: str, ylabel: str, series_count: int) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("UTC")
    ax.grid(True, alpha=0.3)
    if 0 < series_count <= MAX_LEGEND:
        ax.legend(fontsize="small", loc="best")
    ax.figure.autofmt_xdate()


def _one_copy(backups: pd.DataFrame) -> pd.DataFrame:
    """One row per backup (copies at several locations hold the same data)."""
    return backups.sort_values("location", kind="stable").drop_duplicates(["server", "backup_id"])


def sizes_chart(report: Report) -> bytes | None:
    b = report.backups
    fulls = _one_copy(b[b["verified"] & (b["kind"] == "full")]) if not b.empty else b
    if fulls.empty:
        return None
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    servers = 0
    for server, rows in fulls.sort_values("finished_at").groupby("server", sort=True):
        servers += 1
        ax.plot(
            _naive_utc(rows["finished_at"]),
            rows["stored_bytes"] / GIB,
            marker=".",
            linewidth=1,
            label=str(server),
        )
    _finish(ax, "Stored size of full backups", "GiB (stored)", servers)
    return _png(fig)


def durations_chart(report: Report) -> bytes | None:
    b = report.backups
    done = _one_copy(b[b["status"] == "complete"]) if not b.empty else b
    done = done[done["duration_s"].notna()] if not done.empty else done
    if done.empty:
        return None
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    servers = 0
    for server, rows in done.groupby("server", sort=True):
        servers += 1
        ax.scatter(_naive_utc(rows["finished_at"]), rows["duration_s"] / 60, s=8, label=str(server))
    _finish(ax, "Backup duration", "minutes", servers)
    return _png(fig)


def restores_chart(report: Report) -> bytes | None:
    r = report.restores
    if r.empty:
        return None
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    r = r.sort_values("tested_at")
    servers = 0
    for server, rows in r.groupby("server", sort=True):
        servers += 1
        ax.plot(
            _naive_utc(rows["tested_at"]),
            rows["restore_s"] / 60,
            marker=".",
            linewidth=0.8,
            label=str(server),
        )
    failed = r[~r["passed"]]
    if not failed.empty:
        servers += 1
        ax.scatter(
            _naive_utc(failed["tested_at"]),
            failed["restore_s"] / 60,
            s=40,
            color="#d62828",
            marker="x",
            label="failed",
            zorder=3,
        )
    _finish(ax, "Restore test duration (red x: failed)", "minutes", servers)
    return _png(fig)


def render_charts(report: Report) -> dict[str, bytes]:
    """``{"sizes": png, "durations": png, "restores": png}``, leaving out charts without data."""
    charts: dict[str, bytes] = {}
    for name, make in (("sizes", sizes_chart), ("durations", durations_chart), ("restores", restores_chart)):
        png = make(report)
        if png is not None:
            charts[name] = png
    return charts


__all__ = ["durations_chart", "render_charts", "restores_chart", "sizes_chart"]
