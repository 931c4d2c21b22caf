"""mariabackup / xtrabackup argument vectors."""

from __future__ import annotations

from collections.abc import Sequence

from mysqlops.errors import (
    ConfigError,
)
from mysqlops.model import (
    Flavor,
)
from mysqlops.tools.client import ClientTools

# --------------------------------------------------------------------------- argv builders
Program = str | Sequence[str]


def _prefix(program: Program | None, default: str) -> list[str]:
    """The argv prefix of a tool: a program name/path, or a whole prefix (a build's loader
    followed by the program's absolute path)."""
    if program is None:
        return [default]
    return [program] if isinstance(program, str) else list(program)


def stream_format(flavor: Flavor) -> str:
    return "mbstream" if flavor is Flavor.MARIADB else "xbstream"


def option_groups(flavor: Flavor) -> tuple[str, ...]:
    """Option-file groups the backup tool reads credentials from (it ignores ``[client]``
    in its server-group pass, and ``[mysqld]`` would also configure the server options)."""
    return ("mariabackup",) if flavor is Flavor.MARIADB else ("xtrabackup",)


def backup_argv(
    flavor: Flavor,
    *,
    target_dir: str,
    extra_lsndir: str,
    datadir: str | None = None,
    incremental_lsn: int | None = None,
    parallel: int = 1,
    program: Program | None = None,
    extra: Sequence[str] = (),
) -> tuple[str, ...]:
    """``mariabackup --backup --stream=mbstream`` (or ``xtrabackup ... --stream=xbstream``).

    The stream goes to stdout; ``--extra-lsndir`` keeps ``xtrabackup_checkpoints`` and
    ``xtrabackup_info`` on local disk; ``--target-dir`` only holds temporary files.
    """
    tools = ClientTools.for_flavor(flavor)
    argv = [
        *_prefix(program, tools.backup),
        "--backup",
        f"--stream={stream_format(flavor)}",
        f"--target-dir={target_dir}",
        f"--extra-lsndir={extra_lsndir}",
    ]
    if datadir:
        argv.append(f"--datadir={datadir}")
    if incremental_lsn is not None:
        if int(incremental_lsn) < 0:
            raise ConfigError(f"incremental LSN must be >= 0, got {incremental_lsn}")
        argv.append(f"--incremental-lsn={int(incremental_lsn)}")
    if parallel > 1:
        argv.append(f"--parallel={int(parallel)}")
    return (*argv, *extra)


def extract_argv(flavor: Flavor, directory: str, *, program: Program | None = None) -> tuple[str, ...]:
    """``mbstream -x -C dir`` / ``xbstream -x -C dir``: unpack a stream read from stdin."""
    return (*_prefix(program, ClientTools.for_flavor(flavor).stream), "-x", "-C", directory)


def prepare_argv(
    flavor: Flavor,
    target_dir: str,
    *,
    incremental_dir: str | None = None,
    final: bool = True,
    program: Program | None = None,
) -> tuple[str, ...]:
    """``--prepare`` of a full backup, or applying one incremental onto it.

    xtrabackup (MySQL) needs ``--apply-log-only`` on every step but the last; mariabackup
    10.2+ does not (and deprecates the option), so it is never passed for MariaDB.
    """
    argv = [
        *_prefix(program, ClientTools.for_flavor(flavor).backup),
        "--prepare",
        f"--target-dir={target_dir}",
    ]
    if incremental_dir:
        argv.append(f"--incremental-dir={incremental_dir}")
    if flavor is Flavor.MYSQL and not final:
        argv.append("--apply-log-only")
    return tuple(argv)


# --------------------------------------------------------------------------- CLONE copies (tar)
TAR_FORMAT = "tar"


def tar_create_argv(directory: str, *, program: str = "tar") -> tuple[str, ...]:
    """``tar -cf - -C directory .``: the whole directory as a tar stream on stdout (numeric
    owners: the copy is restored by whatever user runs the restore)."""
    return (program, "--create", "--file=-", "--numeric-owner", f"--directory={directory}", ".")


def tar_extract_argv(directory: str, *, program: str = "tar") -> tuple[str, ...]:
    """``tar -xf - -C directory``: unpack a stream read from stdin, owned by the restoring user
    (GNU tar refuses member names that climb out of ``directory``)."""
    return (program, "--extract", "--file=-", "--no-same-owner", f"--directory={directory}")


def unpack_argv(
    stream_format_name: str, flavor: Flavor, directory: str, *, program: Program | None = None
) -> tuple[str, ...]:
    """The unpacker of a physical backup's stream: tar for CLONE copies, else mbstream/xbstream."""
    if stream_format_name == TAR_FORMAT:
        return tar_extract_argv(directory, program=program if isinstance(program, str) else "tar")
    return extract_argv(flavor, directory, program=program)
