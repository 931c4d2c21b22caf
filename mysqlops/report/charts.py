"""PNG charts of a ``Report``, rendered headless with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` directly (never ``pyplot``), so there is no
global figure state, no GUI backend is touched and rendering is safe in worker threads.

Readable at any history length: the y axis starts at 0 in the unit the largest value reads
best in (KiB..TiB, seconds..days) with at most 6 round ticks; the time axis is concise dates
(UTC) padded around the points; only the backups of one server and method are joined by a line
(restore tests and durations are points: a local and an S3 test of one backup are not a
series). A chart needs at least 3 points: with 1 or 2, :func:`small_tables` gives a table.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mysqlops.units import byte_unit, duration_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mysqlops.report.render import Report

MAX_LEGEND = 12
MIN_POINTS = 3
_SIZE = (9.0, 4.2)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC datetime64 (what matplotlib's date axis plots fastest)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _finish(ax: Axes, title: str, ylabel: str, times: pd.Series, series_count: int) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    t = _naive_utc(times)
    span = t.max() - t.min()
    pad = max(span * 0.05, pd.Timedelta(minutes=30))
    ax.set_xlim(t.min() - pad, t.max() + pad)
    ax.grid(True, alpha=0.3)
    if 0 < series_count <= MAX_LEGEND:
        ax.legend(fontsize="small", loc="best")


def _one_copy(backups: pd.DataFrame) -> pd.DataFrame:
    """One row per backup (copies at several locations hold the same data)."""
    return backups.sort_values("location", kind="stable").drop_duplicates(["server", "backup_id"])


def chart_data(report: Report) -> dict[str, pd.DataFrame]:
    """The points of each chart: ``sizes``, ``durations``, ``restores`` (empty frames left out)."""
    b = report.backups
    data: dict[str, pd.DataFrame] = {}
    if not b.empty:
        fulls = _one_copy(b[b["verified"] & (b["kind"] == "full")])
        data["sizes"] = fulls.sort_values("finished_at")[["server", "method", "finished_at", "stored_bytes"]]
        done = _one_copy(b[(b["status"] == "complete") & b["duration_s"].notna()])
        data["durations"] = done.sort_values("finished_at")[["server", "kind", "finished_at", "duration_s"]]
    r = report.restores
    if not r.empty:
        timed = r[r["restore_s"].notna()]  # a certificate without durations is no point
        data["restores"] = timed.sort_values("tested_at")[
            ["server", "backup_id", "location", "tested_at", "restore_s", "passed"]
        ]
    return {name: df.reset_index(drop=True) for name, df in data.items() if not df.empty}


def sizes_figure(points: pd.DataFrame) -> Figure:
    divisor, unit = byte_unit(float(points["stored_bytes"].max()))
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    series = 0
    for (server, method), rows in points.groupby(["server", "method"], sort=True):
        series += 1
        ax.plot(
            _naive_utc(rows["finished_at"]),
            rows["stored_bytes"] / divisor,
            marker=".",
            linewidth=1,
            label=f"{server} ({method})",
        )
    _finish(ax, "Stored size of full backups", f"{unit} (stored)", points["finished_at"], series)
    return fig


def durations_figure(points: pd.DataFrame) -> Figure:
    divisor, unit = duration_unit(float(points["duration_s"].max()))
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    series = 0
    for i, ((server, kind), rows) in enumerate(points.groupby(["server", "kind"], sort=True)):
        series += 1
        ax.scatter(
            _naive_utc(rows["finished_at"]),
            rows["duration_s"] / divisor,
            s=14,
            marker=_MARKERS[i % len(_MARKERS)],
            label=f"{server} ({kind})",
        )
    _finish(ax, "Backup duration", unit, points["finished_at"], series)
    return fig


def restores_figure(points: pd.DataFrame) -> Figure:
    divisor, unit = duration_unit(float(points["restore_s"].max()))
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    series = 0
    passed = points[points["passed"]]
    for i, ((server, location), rows) in enumerate(passed.groupby(["server", "location"], sort=True)):
        series += 1
        ax.scatter(
            _naive_utc(rows["tested_at"]),
            rows["restore_s"] / divisor,
            s=18,
            marker=_MARKERS[i % len(_MARKERS)],
            label=f"{server} at {location}",
        )
    failed = points[~points["passed"]]
    if not failed.empty:
        series += 1
        ax.scatter(
            _naive_utc(failed["tested_at"]),
            failed["restore_s"] / divisor,
            s=50,
            color="#d62828",
            marker="x",
            label="failed",
            zorder=3,
        )
    _finish(ax, "Restore test duration (red x: failed)", unit, points["tested_at"], series)
    return fig


_MAKERS = {"sizes": sizes_figure, "durations": durations_figure, "restores": restores_figure}


def chart_figures(report: Report) -> dict[str, Figure]:
    """The figures of :func:`render_charts` (for tests and notebooks)."""
    return {
        name: _MAKERS[name](points)
        for name, points in chart_data(report).items()
        if len(points) >= MIN_POINTS
    }


def render_charts(report: Report) -> dict[str, bytes]:
    """``{"sizes": png, "durations": png, "restores": png}`` for the charts with 3 points or more."""
    return {name: _png(fig) for name, fig in chart_figures(report).items()}


def small_tables(report: Report) -> dict[str, pd.DataFrame]:
    """The charts with 1 or 2 points, as tables (one dot on a four-year axis says nothing)."""
    return {name: points for name, points in chart_data(report).items() if len(points) < MIN_POINTS}


__all__ = [
    "chart_data",
    "chart_figures",
    "durations_figure",
    "render_charts",
    "restores_figure",
    "sizes_figure",
    "small_tables",
]
