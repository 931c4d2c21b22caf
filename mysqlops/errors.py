"""One exception root for mysqlops; one subclass per area.

Every message says what is wrong and how to fix it, and never contains a secret.
"""

from __future__ import annotations


class MysqlopsError(Exception):
    """Root of every error raised on purpose by mysqlops."""


class ConfigError(MysqlopsError):
    """Bad input: a parameter, block or option that cannot work."""


class EnvironmentProblem(MysqlopsError):
    """A required program or package is missing on this machine."""


class BuildUnavailable(EnvironmentProblem):
    """A server build (flavor + series) cannot be found, fetched or run on this machine."""


class ProcessError(MysqlopsError):
    """A child process failed, timed out or was cancelled."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ProcessTimeout(ProcessError):
    """A child process exceeded its timeout and was killed with its process group."""


class SandboxError(MysqlopsError):
    """A throwaway server could not be started or stopped."""


class ConnectionProblem(MysqlopsError):
    """A server could not be reached or refused the login."""


class PreflightFailed(MysqlopsError):
    """Checks before a backup/provision found problems; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"pre-flight failed with {len(self.problems)} problem(s):\n{lines}")


class StorageError(MysqlopsError):
    """A location could not be read, written, listed or deleted."""


class ObjectExists(StorageError):
    """Write-once violation: the object is already there and is never overwritten."""


class IntegrityError(MysqlopsError):
    """Stored or streamed data does not match its recorded size or sha256."""


class DumpIncomplete(MysqlopsError):
    """A dump finished without its trailer or is missing objects the server has."""


class BackupAborted(MysqlopsError):
    """The backup was abandoned (its dump failed or was cancelled) before anything was published."""


class ManifestError(MysqlopsError):
    """A manifest cannot be parsed or has an unsupported schema."""


class UnsafePath(ManifestError, StorageError):
    """A key, path or name read from a location (or given for one) could escape its prefix:
    absolute, ``..``, empty or ``.`` segments, control characters, backslashes, over-long
    names, or a symbolic link at a local location. Nothing is read, written or deleted there."""


class RetentionError(MysqlopsError):
    """A retention policy is invalid, or a plan cannot be made safely."""


class ReplicationError(MysqlopsError):
    """Replication could not be set up, or a replica is unhealthy."""


class RestoreError(MysqlopsError):
    """A restore was refused or failed; nothing half-restored is left visible."""


class VerificationFailed(MysqlopsError):
    """A restore test or replica comparison found a difference."""


class EncryptionError(MysqlopsError):
    """Encryption/decryption failed: wrong key, missing key, or tampered ciphertext."""
