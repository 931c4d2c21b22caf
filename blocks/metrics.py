"""The ``MetricsBlock``: where mysqlops sends its Prometheus metrics (Pushgateway, textfile)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from mysqlops.metrics import MetricsTarget

METRICS_BLOCK = "mysqlops-metrics"


class MetricsBlock(Block):
    """Prometheus metrics of every backup, binlog archive, restore test, retention run, report and
    replica health check. Setup saves it as ``mysqlops-metrics`` from the ``[metrics]`` table of
    the environment file; without that block the flows send no metrics.

    Example::

        MetricsBlock(pushgateway_url="http://pushgateway:9091").save("mysqlops-metrics")
    """

    _block_type_name = "Metrics"
    _block_type_slug = "mysqlops-metrics"
    _logo_url = None
    _description = "Where mysqlops sends Prometheus metrics: a Pushgateway and/or a textfile directory."

    pushgateway_url: str = Field(
        default="", description="Pushgateway base URL, e.g. http://pushgateway:9091 (empty: no push)."
    )
    textfile_dir: str = Field(
        default="",
        description="node_exporter --collector.textfile.directory on the worker host (empty: no files).",
    )
    job: str = Field(default="mysqlops", description="The Pushgateway job label.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one push.")

    def to_target(self) -> MetricsTarget:
        return MetricsTarget(
            pushgateway_url=self.pushgateway_url.rstrip("/"),
            textfile_dir=self.textfile_dir,
            job=self.job,
            timeout=self.timeout_seconds,
        )
