"""The embedded server is not open to the machine: a password, a private socket, no TCP."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger.adapters import embedded_security
from ledger.adapters.postgres import embedded_server


def test_the_embedded_server_wants_its_generated_password(tmp_path: Path) -> None:
    with embedded_server(tmp_path) as url:
        params = conninfo_to_dict(url)
        secret_file = tmp_path / embedded_security.SECRET_FILE
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert params["password"] == secret_file.read_text().strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        for password in ("", "wrong"):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(make_conninfo(url, password=password), connect_timeout=5)
        hba = (tmp_path / "pgdata" / "pg_hba.conf").read_text()
        assert "trust" not in hba
        socket_dir = Path(str(params["host"]))
        assert socket_dir.stat().st_mode & 0o077 == 0

    with embedded_server(tmp_path) as again:  # a restart keeps the same password
        assert conninfo_to_dict(again)["password"] == params["password"]
        with psycopg.connect(again) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
