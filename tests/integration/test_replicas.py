"""Reads from a streaming replica that replays late (ADR 0023): on a primary and a real hot
standby started from the embedded binaries (``tests/support/replication.py``) with
``recovery_min_apply_delay``, and two ledgers in separate processes.

- A revocation made through one process is never undone in the other by the replica's lag:
  once the other process has heard of it, it refuses the token although the replica still
  holds the token as valid.
- A token minted through one process is accepted by the other at once, although the replica
  does not have it yet.
- An audit query in the other process sees a write that returned; once the replica has
  replayed it, the replica serves the query.
- Unknown tokens reach the primary only within their budget.
- A replica that is down is skipped (and counted), and every read falls back to the primary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg.conninfo import conninfo_to_dict

from ledger.adapters.postgres import embedded_server
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind
from ledger.domain.errors import InvalidToken
from ledger.domain.tokens import issue
from tests.acceptance.service import wait_until
from tests.support.databases import fresh_database
from tests.support.replication import StreamingReplica, streaming_replica

PEER = Path(__file__).with_name("replica_peer.py")
ROUNDS = 50
APPLY_DELAY_MS = 500


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The maintenance database of a primary that lives for the module."""
    with embedded_server(tmp_path_factory.mktemp("primary")) as url:
        yield url


@pytest.fixture(scope="module")
def replica(primary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamingReplica]:
    with streaming_replica(
        primary, tmp_path_factory.mktemp("replica"), apply_delay_ms=APPLY_DELAY_MS
    ) as standby:
        yield standby


@pytest.fixture(scope="module")
def database(primary: str) -> str:
    return fresh_database(primary)


@pytest.fixture(scope="module")
def replica_url(database: str, replica: StreamingReplica) -> str:
    url = replica.url(str(conninfo_to_dict(database)["dbname"]))
    return url


def replica_settings(replica_url: str, **more: Any) -> Settings:
    return Settings(
        pool_size=2, read_database_urls=(replica_url,), replica_max_lag_ms=30_000, **more
    )


@pytest.fixture
def ledger(database: str, replica_url: str) -> Iterator[PostgresLedger]:
    app = build_ledger(database, settings=replica_settings(replica_url))
    try:
        yield app
    finally:
        app.close()


class Peer:
    """The other process (``replica_peer.py``): one JSON request, one JSON answer."""

    def __init__(self, database: str, replica_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PEER), database, replica_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == {"ready": True}

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the peer process exited"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, **request: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def verify(self, token: str) -> bool:
        return bool(self.ask(op="verify", token=token)["ok"])

    def required(self, credential_id: UUID) -> int:
        return int(self.ask(op="required", id=str(credential_id))["lsn"])

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        status = self.process.wait(60)
        self.process.stdout.close()
        assert status == 0


@pytest.fixture
def peer(database: str, replica_url: str) -> Iterator[Peer]:
    other = Peer(database, replica_url)
    try:
        yield other
    finally:
        other.close()


def replayed(ledger: PostgresLedger) -> int:
    [report] = ledger.replica_report()
    return report.replayed


def wait_replayed(ledger: PostgresLedger, lsn: int) -> None:
    wait_until(lambda: replayed(ledger) >= lsn, timeout=30, what="the replica to replay")


def heard(peer: Peer, credential_id: UUID, lsn: int) -> Callable[[], bool]:
    """Whether the peer knows that the credential changed at ``lsn`` (or later)."""
    return lambda: peer.required(credential_id) >= lsn


def test_revocation_and_mint_in_one_process_hold_in_the_other(
    ledger: PostgresLedger, peer: Peer
) -> None:
    me = ledger.verify(ledger.create_user("alice").token)
    minted = [ledger.mint_personal_access_token(me, f"t{n}") for n in range(ROUNDS)]
    # Mint, then verify in the other process at once: the replica does not have them yet.
    assert [peer.verify(m.token) for m in minted] == [True] * ROUNDS
    # Every mint replayed: from now on the replica answers with the tokens valid.
    wait_replayed(ledger, max(ledger.written.required(m.info.id) for m in minted))
    refused_after_heard = []
    for m in minted:
        ledger.revoke_personal_access_token(me, m.info.id)
        revoked_at = ledger.written.required(m.info.id)
        # The other process heard of the revocation (and evicted its cache entry) ...
        wait_until(heard(peer, m.info.id, revoked_at), timeout=30, what="the announcement")
        # ... while the replica still holds the token valid (it replays half a second late).
        refused_after_heard.append(not peer.verify(m.token))
    assert refused_after_heard == [True] * ROUNDS
    # And the replica did serve the other process's reads once it had what they need.
    wait_replayed(ledger, max(ledger.written.required(m.info.id) for m in minted))
    before = peer.ask(op="report")["replica_reads"]
    assert [peer.verify(m.token) for m in minted[:5]] == [False] * 5  # cached refusals
    fresh = ledger.mint_personal_access_token(me, "late")
    # The other process heard of the mint (its announced position is at or past this one's),
    # and the replica has replayed that far: the replica answers.
    wait_until(
        heard(peer, fresh.info.id, ledger.written.required(fresh.info.id)),
        timeout=30,
        what="the mint's announcement",
    )
    wait_replayed(ledger, peer.required(fresh.info.id))
    assert peer.verify(fresh.token)
    assert peer.ask(op="report")["replica_reads"] > before


def test_audit_query_in_another_process_sees_a_returned_write(
    ledger: PostgresLedger, peer: Peer
) -> None:
    alice = ledger.create_user("alice")
    me = ledger.verify(alice.token)
    workspace = ledger.create_workspace(me, "acme")
    ledger.mint_install_token(me, workspace.id)
    types = peer.ask(op="audit", token=alice.token, workspace=str(workspace.id))["types"]
    assert types == ["member_added", "minted"]
    # Once replayed, the replica serves the same answer.
    before = peer.ask(op="report")["replica_reads"]

    def served_by_replica() -> bool:
        answer = peer.ask(op="audit", token=alice.token, workspace=str(workspace.id))
        assert answer["types"] == ["member_added", "minted"]
        return bool(peer.ask(op="report")["replica_reads"] > before)

    wait_until(served_by_replica, timeout=30, interval=0.1, what="a read served by the replica")


def test_unknown_tokens_reach_the_primary_only_within_their_budget(
    database: str, replica_url: str
) -> None:
    ledger = build_ledger(
        database, settings=replica_settings(replica_url, unknown_token_primary_reads_per_s=0)
    )
    try:
        with pytest.raises(InvalidToken):  # starts following announcements
            ledger.verify(issue(TokenKind.DAEMON_TOKEN).raw)
        # Until the replica has replayed what this process may have missed, misses go to the
        # primary whatever the token: wait for that.
        wait_replayed(ledger, ledger.written.required(UUID(int=0)))
        primary_reads = ledger.primary_reads()
        stats = ledger.unknown_token_stats()
        asked, over = stats.asked_primary, stats.over_budget
        for _ in range(100):
            with pytest.raises(InvalidToken):
                ledger.verify(issue(TokenKind.DAEMON_TOKEN).raw)
        assert (stats.asked_primary - asked, stats.over_budget - over) == (0, 100)
        assert ledger.primary_reads() == primary_reads
    finally:
        ledger.close()


def test_an_export_streams_from_a_replica_that_holds_its_scope(ledger: PostgresLedger) -> None:
    """Right after a write the export holds it (a replica that has not replayed it yet is not
    read); once the replica has replayed it, the same export is read there."""
    alice = ledger.create_user("alice")
    me = ledger.verify(alice.token)
    workspace = ledger.create_workspace(me, "acme")
    ledger.mint_install_token(me, workspace.id)

    def exported() -> list[str]:
        total, events = ledger.audit.export(workspace=workspace.id, fetch=1)
        types = [e.event.type for e in events]
        assert total == len(types)
        return types

    assert exported() == ["member_added", "minted"]
    reads = ledger.replica_report()[0].reads

    def read_on_replica() -> bool:
        assert exported() == ["member_added", "minted"]
        return ledger.replica_report()[0].reads > reads

    wait_until(read_on_replica, timeout=30, interval=0.1, what="an export read on the replica")


def test_a_replica_that_is_down_is_skipped_and_reads_fall_back(
    ledger: PostgresLedger, replica: StreamingReplica
) -> None:
    from ledger.entrypoints.http import metrics  # noqa: PLC0415 - the default registry

    alice = ledger.create_user("alice")
    me = ledger.verify(alice.token)
    workspace = ledger.create_workspace(me, "acme")
    replica.stop()
    try:
        wait_until(
            lambda: not ledger.replica_report()[0].up, timeout=30, what="the replica to look down"
        )
        token = ledger.mint_personal_access_token(me, "while down")
        assert ledger.verify(token.token).user_id == alice.user_id
        assert [e.type for e in ledger.workspace_audit(me, workspace.id).events] == ["member_added"]
        page = ledger.page_personal_access_tokens(me)
        assert "while down" in [t.name for t in page.tokens]
        [report] = ledger.replica_report()
        assert report.skips["down"] > 0 and not report.usable
        sync = metrics.ReplicaStatsSync(ledger)
        sync.sync()
        text = metrics.render().decode()
        assert 'ledger_replica_up{replica="replica-0"} 0.0' in text
        assert 'ledger_replica_skips_total{reason="down",replica="replica-0"}' in text
    finally:
        replica.start()
    wait_until(lambda: ledger.replica_report()[0].usable, timeout=30, what="the replica back")


def test_a_replica_without_the_schema_yet_is_passed_over(
    database: str, replica: StreamingReplica
) -> None:
    """As right after a deploy, before the replica has replayed the migration: its database
    (here: one the ledger never migrated) refuses the statements, and the primary answers."""
    ledger = build_ledger(database, settings=replica_settings(replica.url("postgres")))
    try:
        alice = ledger.create_user("alice")
        me = ledger.verify(alice.token)
        workspace = ledger.create_workspace(me, "acme")
        token = ledger.mint_personal_access_token(me, "laptop")
        wait_replayed(ledger, ledger.written.required(token.info.id))
        assert ledger.verify(token.token).credential_id == token.info.id
        assert "laptop" in [t.name for t in ledger.page_personal_access_tokens(me).tokens]
        assert [e.type for e in ledger.workspace_audit(me, workspace.id).events] == ["member_added"]
        [report] = ledger.replica_report()
        assert report.usable and report.reads == 0 and report.skips["behind"] >= 3
    finally:
        ledger.close()
