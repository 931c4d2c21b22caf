"""Writing report files."""

from __future__ import annotations

import importlib.util
import io
from typing import TYPE_CHECKING

from mysqlops.errors import StorageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
from mysqlops.report.render import Report, render_html
from mysqlops.report.schemas import log


def write_outputs(report: Report, fs: AbstractFileSystem, base_path: str) -> list[str]:
    """CSV per frame, parquet per frame (if pyarrow is installed), charts as PNG, summary.md and a
    self-contained report.html, all under ``base_path`` on ``fs``. Returns the written paths."""
    from mysqlops.report.charts import render_charts, small_tables  # matplotlib only when written

    base = base_path.rstrip("/")
    protocol = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    local = bool({"file", "local"} & set(protocol))
    if local:  # reports name servers, sizes and timings: 0700 directories, 0600 files
        from mysqlops.adapters.localfs import makedirs_private

        makedirs_private(base)
    else:
        fs.makedirs(base, exist_ok=True)
    files: dict[str, bytes] = {}
    parquet = importlib.util.find_spec("pyarrow") is not None
    if not parquet:
        log.warning("pyarrow is not installed: parquet files skipped (CSV and HTML written)")
    for name, df in report.frames().items():
        files[f"{name}.csv"] = df.to_csv(index=False).encode("utf-8")
        if parquet:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            files[f"{name}.parquet"] = buf.getvalue()
    charts = render_charts(report)
    for name, png in charts.items():
        files[f"{name}.png"] = png
    files["summary.md"] = report.summary_markdown().encode("utf-8")
    files["report.html"] = render_html(report, charts, small_tables(report)).encode("utf-8")
    written = []
    for name, data in files.items():  # each file is complete in memory before it is written
        path = f"{base}/{name}"
        try:
            if local:
                from mysqlops.adapters.localfs import write_private

                write_private(path, data)
            else:
                fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write report file {path}: {exc}") from exc
        written.append(path)
    return written
