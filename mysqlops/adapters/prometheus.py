"""Writing metrics (``mysqlops.metrics``) with ``prometheus-client``: to a Pushgateway and/or
as ``.prom`` files for node_exporter's textfile collector.

One push per group ``(event, server, location)`` with that grouping key (``pushadd``: only
the metrics named in the push are replaced in the group); one file per group,
``mysqlops-<event>-<server>-<location>.prom``, written to a temporary name and renamed, so
node_exporter never reads half a file. A metrics failure never fails a backup: ``publish``
returns the problems for the caller to log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile

from mysqlops.metrics import HELP, PREFIX, MetricsTarget, Sample, grouped

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def registry_for(samples: Iterable[Sample], extra: dict[str, str] | None = None) -> CollectorRegistry:
    """A registry holding ``samples`` as gauges (one per metric name, labelled)."""
    registry = CollectorRegistry(auto_describe=True)
    gauges: dict[tuple[str, tuple[str, ...]], Gauge] = {}
    for s in samples:
        labels = {**(extra or {}), **s.all_labels}
        names = tuple(sorted(labels))
        gauge = gauges.get((s.name, names))
        if gauge is None:
            gauge = Gauge(PREFIX + s.name, HELP[s.name], labelnames=names, registry=registry)
            gauges[(s.name, names)] = gauge
        gauge.labels(**labels).set(s.value)
    return registry


def _file_name(event: str, server: str, location: str) -> str:
    parts = [p for p in (event, server, location) if p]
    return "mysqlops-" + "-".join(_UNSAFE.sub("_", p) for p in parts) + ".prom"


def publish(samples: Iterable[Sample], target: MetricsTarget) -> list[str]:
    """Push and/or write every group; returns the problems (empty when all went out)."""
    problems: list[str] = []
    if not target.enabled:
        return problems
    extra = dict(target.extra_labels)
    for (event, server, location), group in grouped(samples).items():
        registry = registry_for(group, extra)
        if target.pushgateway_url:
            key = {"event": event, "server": server or "-", "location": location or "-"}
            try:
                pushadd_to_gateway(
                    target.pushgateway_url,
                    job=target.job,
                    registry=registry,
                    grouping_key=key,
                    timeout=target.timeout,
                )
            except OSError as exc:
                problems.append(
                    f"push to the Pushgateway {target.pushgateway_url} failed ({event}, {server}): {exc}"
                )
        if target.textfile_dir:
            path = os.path.join(target.textfile_dir, _file_name(event, server, location))
            try:
                write_to_textfile(path, registry)
            except OSError as exc:
                problems.append(f"cannot write metrics file {path}: {exc}")
    return problems
