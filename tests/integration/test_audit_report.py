"""``ledger audit report``: one HTML page for a workspace or a credential, from the store."""

from __future__ import annotations

from pathlib import Path

from ledger.bootstrap import PostgresLedger
from tests.integration.test_cli import ledger_cli
from tests.support.principals import new_user

HOSTILE = "<script>alert(1)</script>"


def test_workspace_and_credential_reports_show_every_lifecycle(
    database_url: str, ledger: PostgresLedger, tmp_path: Path
) -> None:
    owner, _ = new_user(ledger, HOSTILE)
    workspace = ledger.create_workspace(owner, f"ws {HOSTILE}").id
    install = ledger.mint_install_token(owner, workspace)
    daemon = ledger.exchange_install_token(install.token, HOSTILE)
    ledger.revoke_daemon_token(owner, workspace, daemon.token_id)
    env = {"LEDGER_DATABASE_URL": database_url}

    page = tmp_path / "workspace.html"
    result = ledger_cli(
        "audit", "report", "--workspace", str(workspace), "--out", str(page), env=env
    )
    assert result.returncode == 0, result.stderr
    html = page.read_text("utf-8")
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "Audit report: workspace ws &lt;script&gt;" in html
    assert html.count("<article ") == 2
    assert f'id="credential-{install.id}"' in html and f'id="credential-{daemon.token_id}"' in html
    assert "reason: admin" in html
    assert install.token not in html and daemon.token not in html

    one = tmp_path / "credential.html"
    at = ledger.clock.now().isoformat()
    args = ("audit", "report", "--credential", str(daemon.token_id), "--at", at, "--out", str(one))
    result = ledger_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    # The daemon token and the install token it came from.
    assert one.read_text("utf-8").count("<article ") == 2


def test_a_report_names_exactly_one_subject(database_url: str, tmp_path: Path) -> None:
    env = {"LEDGER_DATABASE_URL": database_url}
    out = tmp_path / "r.html"
    neither = ledger_cli("audit", "report", "--out", str(out), env=env)
    both = ledger_cli(
        "audit", "report", "--workspace", "x", "--credential", "y", "--out", str(out), env=env
    )
    unknown = ledger_cli(
        "audit",
        "report",
        "--credential",
        "8b0f0a2e-0000-4000-8000-000000000000",
        "--out",
        str(out),
        env=env,
    )
    assert (neither.returncode, both.returncode, unknown.returncode) == (2, 2, 1)
    assert "credential not found" in unknown.stderr
    assert not out.exists()
