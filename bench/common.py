"""Shared benchmark helpers: a data server, a moto S3 process, timing and result files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")
    return proc, url


def timed_shell(cmd: str, env: dict[str, str] | None = None) -> float:
    """Wall seconds of a shell pipeline (pipefail: any failing member fails)."""
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, env=env)
    return time.monotonic() - started


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of every waited-for child of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """CPU seconds used during a run: by this process's children, by the server, by moto."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids

    def __enter__(self) -> CpuMeter:
        self.start = {name: process_cpu(pid) for name, pid in self.pids.items()}
        self.start_children = children_cpu()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.started
        self.cpu = {name: round(process_cpu(pid) - self.start[name], 2) for name, pid in self.pids.items()}
        self.cpu["client"] = round(children_cpu() - self.start_children, 2)

    @property
    def total(self) -> float:
        return round(sum(self.cpu.values()), 2)


def write_result(name: str, doc: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def backup_job(spec: Any, location: Any, codec: Any, staging: str, **fields: Any) -> tuple[Any, Any]:
    """The request and run context of one backup at ``location`` staged under ``staging``."""
    from mysqlops.backup import BackupRequest
    from mysqlops.runs import RunContext

    return BackupRequest(spec, (location,), compression=codec, **fields), RunContext(staging_dir=staging)
