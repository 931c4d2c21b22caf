"""One run of a core entry point: its context, how it reports, and what killed runs left.

:class:`RunContext` travels instead of ``staging_dir``, ``keyring``, ``log``/``progress``
callbacks and timeouts as separate parameters: a flow builds it once (inside the task, where
the key is loaded from its Secret block reference) and hands it to ``backup.run``,
``restore.run``, ``restore.restore_test`` or ``retention.apply``.

:class:`Reporter` is how the core talks to whoever runs it: log lines by level and a
percentage for a progress bar. The flows adapt Prefect's run logger and progress artifact to
it; tests and the command line pass plain functions (or nothing: the default is silent).

The leftovers part is the flows' door to :mod:`mysqlops.adapters.reaper` (flows import no
adapters): the owner label of this process and the judgement whether a labelled owner is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mysqlops.adapters import reaper
from mysqlops.errors import ConfigError
from mysqlops.progress import Progress, ProgressFn
from mysqlops.streams.crypto import Keyring

LogFn = Callable[[str], None]

#: default timeout of one child process (a dump, a load): a day
CHILD_TIMEOUT_SECONDS = 24 * 3600.0


def _silent(_message: str) -> None:
    return None


def _no_bar(_percent: float) -> None:
    return None


@dataclass(frozen=True)
class Reporter:
    """Where the core's messages go. ``progress`` gets a percentage (0-100) of the work done;
    ``stream``, when set, every :class:`~mysqlops.progress.Progress` of a byte stream itself
    (tests and benchmarks that watch the bytes go by)."""

    info: LogFn = _silent
    warning: LogFn = _silent
    error: LogFn = _silent
    progress: Callable[[float], None] = _no_bar
    stream: ProgressFn | None = None

    def transfer(self, p: Progress) -> None:
        """One report of a byte stream (a dump, a load): ``stream`` hears it, its line goes to
        ``info`` (no percentage or ETA once an estimate is exceeded), its percentage to
        ``progress``."""
        if self.stream is not None:
            self.stream(p)
        self.info(p.describe())
        self.progress(round(100 * p.fraction, 1))

    @classmethod
    def from_log(cls, log: LogFn | None) -> Reporter:
        """Every level to one function (the command line, tests)."""
        return cls(log, log, log) if log is not None else cls()


@dataclass(frozen=True)
class RunContext:
    """What every core entry point needs besides its request.

    ``staging_dir``: where dumps and fetched copies are staged (None: the system temp dir);
    ``keyring``: encryption keys, the current one first (None: no encryption; never in a repr);
    ``reporter``: log lines and progress; ``timeout``: seconds one child process may take;
    ``progress_interval``: seconds between two progress reports."""

    staging_dir: str | None = None
    keyring: Keyring | None = field(default=None, repr=False)
    reporter: Reporter = field(default_factory=Reporter)
    timeout: float | None = CHILD_TIMEOUT_SECONDS
    progress_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.staging_dir is not None and not str(self.staging_dir).strip():
            raise ConfigError(
                "staging_dir is empty: give a directory, or leave it unset for the system temp dir"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds (or None), got {self.timeout}")

    @property
    def encryption_key(self) -> bytes | None:
        """The key new files are encrypted with (the keyring's current one)."""
        return self.keyring.current if self.keyring is not None else None

    @property
    def log(self) -> LogFn:
        return self.reporter.info


# --------------------------------------------------------------------------- killed runs
OWNER_ENV = reaper.OWNER_ENV
ReapReport = reaper.ReapReport


def owner_label() -> str:
    """This process as a label (PID, start time, boot id, host): not a secret."""
    return reaper.owner_env_value()


def gone_owner(label: str) -> str | None:
    """``process <pid> on <host>`` when the process a label names is proven gone (killed, or
    the machine restarted), else None: an unreadable label, or one of another host, is never
    judged gone."""
    owner = reaper.Owner.parse(label)
    if owner is None or reaper.owner_state(owner) != "gone":
        return None
    return f"process {owner.pid} on {owner.host}"


def reap_leftovers(roots: Iterable[str | None] = ()) -> ReapReport:
    """Remove what killed runs left (staging, scratch servers, orphaned ephemeral Prefect
    servers) under ``roots`` and the default temp dirs; never raises for what it finds."""
    return reaper.reap(roots)
