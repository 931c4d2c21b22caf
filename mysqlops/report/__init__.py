"""Reports: frames, forecast, health, render, charts, outputs.

Entry points: :func:`build` (read every location, build the :class:`Report`) and
:func:`publish` (markdown with charts, tables, files at an output location).
"""

from mysqlops.report.charts import render_charts, small_tables
from mysqlops.report.frames import build_report
from mysqlops.report.outputs import write_outputs
from mysqlops.report.publish import Publication, build, publish, read
from mysqlops.report.render import (
    Report,
    artifact_markdown,
    display_frame,
    html_table,
    json_records,
    render_html,
)
from mysqlops.report.schemas import Catalog, LocationInfo

__all__ = [
    "Catalog",
    "LocationInfo",
    "Publication",
    "Report",
    "artifact_markdown",
    "build",
    "build_report",
    "display_frame",
    "html_table",
    "json_records",
    "publish",
    "read",
    "render_charts",
    "render_html",
    "small_tables",
    "write_outputs",
]
