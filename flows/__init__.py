"""Prefect flows: thin recipes over the core (``mysqlops``).

Importing the package labels this process (:data:`mysqlops.runs.OWNER_ENV`): an
ephemeral Prefect API server that Prefect starts for a flow called from Python inherits the
label, so if this process is killed the next run stops that server (a plain environment
variable naming a PID and its start time; no secret).
"""

import os

from mysqlops import runs

os.environ[runs.OWNER_ENV] = runs.owner_label()
