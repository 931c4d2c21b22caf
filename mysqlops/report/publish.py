"""``report.read`` and ``report.publish``: the backup report from the locations to what is shown.

:func:`read` gathers the report's input from every location (each copy counted where it was
found, with its restore-test verdict); :func:`publish` renders what the flow shows (the
summary markdown with the charts embedded as PNG, a table where a chart has under 3 points,
one table per non-empty frame) and writes
CSV, Parquet and the self-contained HTML to an output location under ``reports/<time>/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mysqlops import catalog
from mysqlops.model import Location
from mysqlops.report.frames import build_report
from mysqlops.report.render import Report, artifact_markdown, json_records
from mysqlops.report.schemas import Catalog, LocationInfo


def read(
    locations: Sequence[Location], policies: Mapping[str, Any] | None = None
) -> tuple[Catalog, list[str]]:
    """The report's input from every location, and the unreadable entries as problems."""
    scans = catalog.scan(locations)
    problems = [f"{s.location.name}: {e}" for s in scans for e in s.errors]
    return (
        Catalog(
            backups=[m for s in scans for m in s.backups],
            binlogs=[b for s in scans for b in s.binlogs],
            certificates=[c for s in scans for c in s.certificates],
            locations=[LocationInfo(loc.name, loc.kind, loc.offsite) for loc in locations],
            policies=dict(policies or {}),
            verdicts=catalog.verdicts(scans),
        ),
        problems,
    )


def build(
    locations: Sequence[Location],
    *,
    freshness_hours: float = 26,
    policies: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[Report, list[str]]:
    """Read every location and build the report (``now``: UTC, default the present)."""
    cat, problems = read(locations, policies)
    return build_report(
        cat, now or datetime.now(UTC), freshness_target=timedelta(hours=freshness_hours)
    ), problems


@dataclass
class Publication:
    """What :func:`publish` produced: the markdown, the tables by name, the files written."""

    markdown: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)


def publish(report: Report, output: Location | None = None) -> Publication:
    """Render ``report`` for display and, with ``output``, write its files there."""
    from mysqlops.report.charts import render_charts, small_tables  # matplotlib only when publishing

    publication = Publication(
        artifact_markdown(report, render_charts(report), small_tables(report)),
        {name: json_records(frame) for name, frame in report.frames().items() if len(frame)},
    )
    if output is not None:
        from mysqlops.adapters.storage import Store
        from mysqlops.report.outputs import write_outputs

        store = Store(output)
        base = store.path(f"reports/{report.generated_at:%Y%m%dT%H%M%SZ}")
        publication.written = write_outputs(report, store.fs, base)
    return publication
