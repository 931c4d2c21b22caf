"""Reports: frames, forecast, health, render, charts, outputs.

Entry points: :func:`build` (read every location, build the :class:`Report`) and
:func:`publish` (markdown with charts, tables, files at an output location).
"""

from mysqlops.report.charts import render_charts
from mysqlops.report.frames import build_report
from mysqlops.report.outputs import write_outputs
from mysqlops.report.publish import Publication, build, publish, read
from mysqlops.report.render import Report, json_records
from mysqlops.report.schemas import Catalog, LocationInfo

__all__ = [
    "Catalog",
    "LocationInfo",
    "Publication",
    "Report",
    "build",
    "build_report",
    "json_records",
    "publish",
    "read",
    "render_charts",
    "write_outputs",
]
