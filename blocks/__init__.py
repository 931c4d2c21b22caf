"""Prefect blocks of mysqlops: typed configuration that converts to core value objects.

Registered through the ``prefect.collections`` entry point and with
``prefect block register -m blocks``.
"""

from blocks.location import BackupLocation
from blocks.metrics import MetricsBlock
from blocks.policy import RetentionPolicyBlock
from blocks.server import MySQLServer

__all__ = ["BackupLocation", "MetricsBlock", "MySQLServer", "RetentionPolicyBlock"]
