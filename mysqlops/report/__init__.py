"""Reports: frames, forecast, health, render, charts, outputs."""

from mysqlops.report.charts import render_charts
from mysqlops.report.frames import build_report
from mysqlops.report.outputs import write_outputs
from mysqlops.report.render import Report, json_records
from mysqlops.report.schemas import Catalog, LocationInfo

__all__ = [
    "Catalog",
    "LocationInfo",
    "Report",
    "build_report",
    "json_records",
    "render_charts",
    "write_outputs",
]
