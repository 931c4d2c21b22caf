"""Writing metrics with ``prometheus-client``: to a Pushgateway and/or as ``.prom`` files for
node_exporter's textfile collector. Takes plain series (``mysqlops.metrics`` makes them).

One push per group ``(event, server, location)`` with that grouping key (``pushadd``: only
the metrics named in the push are replaced in the group); one file per group,
``mysqlops-<event>-<server>-<location>.prom``, written to a temporary name and renamed, so
node_exporter never reads half a file. Nothing here raises for an unreachable Pushgateway or
an unwritable directory: the problems are returned for the caller to log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Series:
    """One value of one gauge: its full name, help text and labels."""

    name: str
    help: str
    labels: Mapping[str, str]
    value: float


def registry_for(series: Iterable[Series]) -> CollectorRegistry:
    """A registry holding ``series`` as gauges (one per metric name and label set)."""
    registry = CollectorRegistry(auto_describe=True)
    gauges: dict[tuple[str, tuple[str, ...]], Gauge] = {}
    for s in series:
        names = tuple(sorted(s.labels))
        gauge = gauges.get((s.name, names))
        if gauge is None:
            gauge = Gauge(s.name, s.help, labelnames=names, registry=registry)
            gauges[(s.name, names)] = gauge
        gauge.labels(**s.labels).set(s.value)
    return registry


def _file_name(event: str, server: str, location: str) -> str:
    parts = [p for p in (event, server, location) if p]
    return "mysqlops-" + "-".join(_UNSAFE.sub("_", p) for p in parts) + ".prom"


def publish(
    groups: Mapping[tuple[str, str, str], Sequence[Series]],
    *,
    pushgateway_url: str = "",
    textfile_dir: str = "",
    job: str = "mysqlops",
    timeout: float = 10.0,
) -> list[str]:
    """Push and/or write every ``(event, server, location)`` group; returns the problems."""
    problems: list[str] = []
    for (event, server, location), series in groups.items():
        registry = registry_for(series)
        if pushgateway_url:
            key = {"event": event, "server": server or "-", "location": location or "-"}
            try:
                pushadd_to_gateway(
                    pushgateway_url, job=job, registry=registry, grouping_key=key, timeout=timeout
                )
            except OSError as exc:
                problems.append(
                    f"push to the Pushgateway {pushgateway_url} failed ({event}, {server}): {exc}"
                )
        if textfile_dir:
            path = os.path.join(textfile_dir, _file_name(event, server, location))
            try:
                write_to_textfile(path, registry)
            except OSError as exc:
                problems.append(f"cannot write metrics file {path}: {exc}")
    return problems
