"""`ledger audit verify` against a store tampered with in every way an insider with a superuser
role could (the append-only triggers disabled first): each problem is named exactly."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.adapters import audit_verify
from ledger.adapters.audit_verify import (
    NamedCheckpoint,
    VerifyReport,
    take_checkpoint,
    trusted_key,
    verify_store,
)
from ledger.adapters.audit_watch import AuditWatch
from ledger.adapters.auth_repair import repair_auth
from ledger.adapters.signing import sign_checkpoint
from ledger.application import Principal
from ledger.bootstrap import PostgresLedger, build_ledger, stored_event_mapper
from ledger.config import Settings
from ledger.domain import Actor, Credential, RevocationReason
from ledger.domain.chain import canonical_encoding, event_hash
from ledger.domain.checkpoint import Checkpoint, parse_checkpoint
from ledger.domain.clock import ManualClock
from ledger.domain.merkle import leaf_data, leaf_hash
from tests.integration.test_cli import ledger_cli
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user

TRIGGERS = (
    ("ledger_events", "append_only"),
    ("ledger_events", "no_truncate"),
    ("ledger_events", "no_delete"),
    ("ledger_log_leaves", "append_only"),
    ("ledger_log_leaves", "no_truncate"),
)


@dataclass
class Store:
    url: str
    ledger: PostgresLedger
    key_file: Path
    checkpoint: Checkpoint
    initial_pat: UUID
    laptop: UUID
    install: UUID
    daemon: UUID
    workspace: UUID
    alice: Principal

    def verify(self, *checkpoints: Checkpoint) -> VerifyReport:
        named = [NamedCheckpoint(f"cp{i}", c) for i, c in enumerate(checkpoints)]
        return verify_store(self.url, self.ledger.mapper, named, trusted=trusted_key(self.key_file))

    def position(self, stream: UUID, version: int) -> int:
        return int(
            self.one(
                "SELECT notification_id FROM ledger_events "
                "WHERE originator_id = %s AND originator_version = %s",
                stream,
                version,
            )
        )

    def one(self, query: str, *params: Any) -> Any:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def tamper(self, *statements: str) -> None:
        """Run ``statements`` as a superuser with the append-only triggers disabled."""
        with psycopg.connect(self.url) as conn:
            conn.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
            conn.execute("ALTER TABLE ledger_log_leaves DISABLE TRIGGER USER")
            for statement in statements:
                conn.execute(statement)
            for table, trigger in TRIGGERS:
                conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{trigger}")


def found(report: VerifyReport) -> set[tuple[str, int | None, str | None]]:
    return {
        (p.problem.value, p.position, str(p.credential_id) if p.credential_id else None)
        for p in report.problems
    }


@pytest.fixture
def store(server_url: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: a user, a PAT minted then revoked, a workspace, an install token exchanged
    for a daemon token; checkpointed at the end."""
    url = fresh_database(server_url)
    ledger = build_ledger(url, settings=Settings(pool_size=2), clock=ManualClock(START))
    try:
        alice, _ = new_user(ledger, "alice")
        laptop = ledger.mint_personal_access_token(alice, "laptop").info.id
        ledger.revoke_personal_access_token(alice, laptop)
        workspace = ledger.create_workspace(alice, "acme").id
        install = ledger.mint_install_token(alice, workspace)
        daemon = ledger.exchange_install_token(install.token, "box-1")
        key_file = tmp_path / "signing.key"
        checkpoint = take_checkpoint(url, key_file, at=START)
        assert alice.credential_id is not None
        yield Store(
            url,
            ledger,
            key_file,
            checkpoint,
            alice.credential_id,
            laptop,
            install.id,
            daemon.token_id,
            workspace,
            alice,
        )
    finally:
        ledger.close()


def test_an_untouched_store_verifies(store: Store) -> None:
    report = store.verify(store.checkpoint)
    assert report.ok, report.problems
    assert report.events == store.checkpoint.log_size == report.witnessed
    assert report.credentials == 4
    assert report.to_json()["ok"] is True


def test_the_key_file_is_private(store: Store) -> None:
    assert store.key_file.stat().st_mode & 0o777 == 0o600


def test_an_edited_daemon_id_is_named(store: Store) -> None:
    store.tamper(
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        f"'box-1', 'box-9'), 'UTF8') WHERE originator_id = '{store.daemon}'"
    )
    report = store.verify(store.checkpoint)
    assert found(report) == {
        ("event_altered", store.position(store.daemon, 1), str(store.daemon)),
        ("auth_row_mismatch", None, str(store.daemon)),
    }


def test_an_unknown_kind_in_a_one_event_stream_is_named(store: Store) -> None:
    """A one-event stream has no chain link to break: an edit to a value the domain does not
    know (a token kind) is still named at its position, without a checkpoint."""
    store.tamper(
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        f"'daemon_token', 'bogus_token'), 'UTF8') WHERE originator_id = '{store.daemon}'"
    )
    report = store.verify()
    assert ("event_altered", store.position(store.daemon, 1), str(store.daemon)) in found(report)


def test_a_changed_revocation_reason_is_named(store: Store) -> None:
    store.tamper(
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        f"'user_request', 'admin'), 'UTF8') WHERE originator_id = '{store.laptop}' "
        "AND originator_version = 2"
    )
    report = store.verify(store.checkpoint)
    assert found(report) == {
        ("event_altered", store.position(store.laptop, 2), str(store.laptop)),
        ("auth_row_mismatch", None, str(store.laptop)),
    }


def test_a_deleted_revocation_is_named(store: Store) -> None:
    position = store.position(store.laptop, 2)
    store.tamper(f"DELETE FROM ledger_events WHERE notification_id = {position}")
    report = store.verify(store.checkpoint)
    # The PAT would look unrevoked: the auth table, written with the events, still says revoked.
    assert found(report) == {
        ("event_missing", position, str(store.laptop)),
        ("auth_row_mismatch", None, str(store.laptop)),
    }
    [row] = [p for p in report.problems if p.problem.value == "auth_row_mismatch"]
    assert row.extra["columns"] == ["revoked_at", "revoked_reason", "version"]


def test_a_deleted_stream_is_named(store: Store) -> None:
    positions = [store.position(store.laptop, v) for v in (1, 2)]
    store.tamper(f"DELETE FROM ledger_events WHERE originator_id = '{store.laptop}'")
    assert found(store.verify(store.checkpoint)) == {
        ("event_missing", positions[0], str(store.laptop)),
        ("event_missing", positions[1], str(store.laptop)),
        ("auth_row_mismatch", None, str(store.laptop)),
    }


def test_a_forged_event_inserted_into_the_log_is_named(store: Store) -> None:
    """A well-formed revocation, chained correctly, slipped in before the last event."""
    aggregate: object = store.ledger.repository.get(store.initial_pat)
    assert isinstance(aggregate, Credential)
    aggregate.revoke(at=START, actor=Actor.system(), reason=RevocationReason.ADMIN)
    [event] = aggregate.collect_events()
    stored = store.ledger.mapper.to_stored_event(event)
    with psycopg.connect(store.url) as conn:
        conn.execute(
            "INSERT INTO ledger_events (originator_id, originator_version, topic, state, "
            "notification_id, transaction_id) VALUES (%s, %s, %s, %s, 0, '0')",
            (stored.originator_id, stored.originator_version, stored.topic, stored.state),
        )
    assert found(store.verify(store.checkpoint)) == {
        ("event_inserted", 0, str(store.initial_pat)),
        ("auth_row_mismatch", None, str(store.initial_pat)),
    }


def test_swapped_events_are_named(store: Store) -> None:
    first, second = store.position(store.laptop, 1), store.position(store.workspace, 1)
    assert first < second
    store.tamper(
        # the two events trade their places in the log's order (transaction id and number)
        "CREATE TEMP TABLE swap AS SELECT transaction_id, notification_id FROM ledger_events "
        f"WHERE notification_id IN ({first}, {second})",
        "UPDATE ledger_events SET notification_id = -notification_id "
        f"WHERE notification_id IN ({first}, {second})",
        "UPDATE ledger_events AS e SET transaction_id = s.transaction_id, "
        "notification_id = s.notification_id FROM swap AS s "
        f"WHERE e.notification_id = s.notification_id - {first + second}",
    )
    between = store.position(store.laptop, 2)
    report = store.verify(store.checkpoint)
    # The log now runs workspace, laptop v2, laptop v1: both of the last two fall back.
    assert found(report) == {
        ("events_reordered", between, str(store.laptop)),
        ("events_reordered", second, str(store.laptop)),
    }


def test_a_truncated_log_is_named(store: Store) -> None:
    size = store.checkpoint.log_size
    last_two = store.one(
        "SELECT array_agg(notification_id) FROM (SELECT notification_id "
        "FROM ledger_events ORDER BY notification_id DESC LIMIT 2) AS t"
    )
    store.tamper(f"DELETE FROM ledger_events WHERE notification_id >= {min(last_two)}")
    report = store.verify(store.checkpoint)
    # the exchange's two events: the install token's consumption and the daemon token's mint
    assert found(report) == {
        ("log_truncated", size - 2, None),
        ("event_missing", last_two[0], str(store.daemon)),
        ("event_missing", last_two[1], str(store.install)),
        ("auth_row_mismatch", None, str(store.install)),
        ("auth_row_mismatch", None, str(store.daemon)),
    }


def test_an_auth_row_brought_back_to_life_is_named_and_repaired(store: Store) -> None:
    with psycopg.connect(store.url) as conn:
        conn.execute(
            "UPDATE ledger_credentials SET revoked_at = NULL WHERE credential_id = %s",
            (store.laptop,),
        )
    report = store.verify()
    assert found(report) == {("auth_row_mismatch", None, str(store.laptop))}
    repaired = repair_auth(store.url, store.ledger.mapper)
    assert repaired.rewritten == [store.laptop]
    assert store.verify(store.checkpoint).ok
    assert (
        store.one(
            "SELECT revoked_at FROM ledger_credentials WHERE credential_id = %s", store.laptop
        )
        is not None
    )


def test_a_forged_auth_row_is_named_and_removed(store: Store) -> None:
    forged = UUID(int=12345)
    with psycopg.connect(store.url) as conn:
        conn.execute(
            "INSERT INTO ledger_credentials SELECT %s, token_hash || 'x', kind, token_prefix, "
            "name, user_id, workspace_id, daemon_id, install_token_id, created_by, created_at, "
            "NULL, NULL, NULL, NULL, NULL, 1 FROM ledger_credentials WHERE credential_id = %s",
            (forged, store.laptop),
        )
    assert found(store.verify()) == {("auth_row_mismatch", None, str(forged))}
    assert repair_auth(store.url, store.ledger.mapper).removed == [forged]
    assert store.verify().ok


def test_a_forged_or_foreign_checkpoint_is_a_bad_signature(store: Store) -> None:
    body = store.checkpoint.to_json()
    body["log_size"] -= 1
    forged = parse_checkpoint(json.dumps(body))
    foreign = sign_checkpoint(
        Ed25519PrivateKey.generate(),
        log_size=store.checkpoint.log_size,
        root_hash=store.checkpoint.root_hash,
        at=START,
    )
    report = store.verify(store.checkpoint, forged, foreign)
    assert [(p.problem.value, p.checkpoint) for p in report.problems] == [
        ("bad_signature", "cp1"),
        ("bad_signature", "cp2"),
    ]


def test_events_and_their_leaves_rewritten_together_still_fail_the_checkpoint(
    store: Store,
) -> None:
    edit = "convert_to(replace(convert_from(state, 'UTF8'), 'acme', 'evil'), 'UTF8')"
    store.tamper(
        f"UPDATE ledger_events SET state = {edit} WHERE originator_id = '{store.workspace}'",
        "UPDATE ledger_log_leaves w SET leaf_hash = sha256('\\x00'::bytea || "
        "uuid_send(e.originator_id) || int8send(e.originator_version) || "
        "int4send(octet_length(convert_to(e.topic, 'UTF8'))) || int4send(octet_length(e.state)) "
        "|| convert_to(e.topic, 'UTF8') || e.state) FROM ledger_events e "
        "WHERE e.originator_id = w.originator_id AND e.originator_version = w.originator_version",
    )
    assert store.verify().ok  # without a checkpoint, a consistent rewrite is not seen ...
    report = store.verify(store.checkpoint)  # ... with one, it is
    assert [(p.problem.value, p.checkpoint, p.position) for p in report.problems] == [
        ("event_altered", "cp0", None)
    ]


def test_a_later_checkpoint_witnesses_only_new_events(store: Store) -> None:
    alice = store.ledger
    new_user(alice, "bob")
    later = take_checkpoint(store.url, store.key_file, at=START)
    assert later.log_size > store.checkpoint.log_size
    report = store.verify(store.checkpoint, later)
    assert report.ok, report.problems
    assert report.witnessed == later.log_size


def test_an_upcast_event_still_verifies(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new version of ``Minted`` with an upcaster: replayed events change, stored ones do not,
    and verify hashes what is stored."""

    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["note"] = "added by an upcaster"

    monkeypatch.setattr(Credential.Minted, "class_version", 2, raising=False)
    monkeypatch.setattr(
        Credential.Minted, "upcast_v1_v2", staticmethod(upcast_v1_v2), raising=False
    )
    [minted, revoked] = store.ledger.repository.event_store.get(store.laptop)
    assert minted.note == "added by an upcaster"  # type: ignore[attr-defined]
    # Re-encoding the upcast event would break the link; the stored state still makes it.
    assert hashlib.sha256(canonical_encoding(minted)).hexdigest() != revoked.prev_hash  # type: ignore[attr-defined]
    assert revoked.prev_hash == event_hash(minted)  # type: ignore[attr-defined]
    assert store.verify(store.checkpoint).ok


def test_the_database_hashes_leaves_as_the_domain_does(store: Store) -> None:
    with psycopg.connect(store.url) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state, sha256('\\x00'::bytea || "
            "uuid_send(originator_id) || int8send(originator_version) || "
            "int4send(octet_length(convert_to(topic, 'UTF8'))) || int4send(octet_length(state)) "
            "|| convert_to(topic, 'UTF8') || state) FROM ledger_events"
        ).fetchall()
        witnessed: dict[int, bytes] = dict(
            conn.execute(
                "SELECT leaf_index, leaf_hash FROM ledger_log_leaves ORDER BY leaf_index"
            ).fetchall()
        )
    assert len(rows) == len(witnessed) > 0
    for oid, version, topic, state, in_sql in rows:
        assert leaf_hash(leaf_data(oid, version, topic, state)) == in_sql
    assert set(witnessed.values()) == {r[4] for r in rows}


def test_verify_and_checkpoint_from_the_command_line(store: Store, tmp_path: Path) -> None:
    env = {
        "LEDGER_DATABASE_URL": store.url,
        "LEDGER_SIGNING_KEY_FILE": str(store.key_file),
        "COLUMNS": "200",
    }
    out = tmp_path / "cp.json"
    made = ledger_cli("audit", "checkpoint", "--out", str(out), "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["log_size"] == store.checkpoint.log_size
    ok = ledger_cli("audit", "verify", "--checkpoint", str(out), "--json", env=env)
    assert (ok.returncode, json.loads(ok.stdout)["ok"]) == (0, True)

    with psycopg.connect(store.url) as conn:
        conn.execute(
            "UPDATE ledger_credentials SET revoked_at = NULL WHERE credential_id = %s",
            (store.laptop,),
        )
    repaired = ledger_cli("audit", "repair-auth", "--json", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(repaired.stdout)["rewritten"] == [str(store.laptop)]
    again = ledger_cli("audit", "verify", "--checkpoint", str(out), "--json", env=env)
    assert (again.returncode, json.loads(again.stdout)["ok"]) == (0, True)

    store.tamper(f"DELETE FROM ledger_events WHERE originator_id = '{store.daemon}'")
    bad = ledger_cli("audit", "verify", "--checkpoint", str(out), "--json", env=env)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert {p["problem"] for p in report["problems"]} == {
        "event_missing",
        "log_truncated",
        "auth_row_mismatch",
    }
    text = ledger_cli("audit", "verify", "--checkpoint", str(out), env=env)
    assert text.returncode == 1
    assert "TAMPERED" in text.stdout
    assert "log_truncated" in text.stdout

    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    refused = ledger_cli("audit", "verify", "--checkpoint", str(broken), "--json", env=env)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "invalid checkpoint"


def test_the_service_watch_checkpoints_and_reports_a_tampered_store(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        checkpoint_dir=tmp_path / "checkpoints",
        verify_interval_s=60,
        signing_key_file=store.key_file,
    )
    counts: list[int] = []
    watch = AuditWatch(store.url, store.ledger.mapper, settings, store.ledger.clock, counts.append)
    written = watch.checkpoint_once()
    assert written is not None
    assert parse_checkpoint(written.read_text()).log_size == store.checkpoint.log_size
    assert watch.verify_once().ok

    store.tamper(f"DELETE FROM ledger_events WHERE originator_id = '{store.laptop}'")
    with caplog.at_level(logging.ERROR, logger="ledger.adapters.audit_watch"):
        report = watch.verify_once()
    assert counts == [0, 3]
    assert len(report.problems) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "tamper evidence: event_missing",
        "tamper evidence: event_missing",
        "tamper evidence: auth_row_mismatch",
    ]


def test_the_started_watch_checkpoints_then_verifies_against_that_checkpoint(
    store: Store, tmp_path: Path
) -> None:
    directory = tmp_path / "scheduled"
    settings = Settings(
        checkpoint_dir=directory,
        checkpoint_interval_s=3600,
        verify_interval_s=3600,
        signing_key_file=store.key_file,
    )
    counts: list[int] = []
    verified = threading.Event()

    def on_problems(count: int) -> None:
        counts.append(count)
        verified.set()

    watch = AuditWatch(store.url, store.ledger.mapper, settings, store.ledger.clock, on_problems)
    watch.start()
    try:
        assert verified.wait(60)
    finally:
        watch.stop()
    assert counts == [0]
    [written] = directory.glob("checkpoint-*.json")
    assert parse_checkpoint(written.read_text()).log_size == store.checkpoint.log_size


def test_repair_does_not_copy_tampered_events_into_the_auth_table(store: Store) -> None:
    store.tamper(
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        f"'box-1', 'box-9'), 'UTF8') WHERE originator_id = '{store.daemon}'"
    )
    repaired = repair_auth(store.url, store.ledger.mapper)
    assert (repaired.kept, repaired.rewritten) == ([store.daemon], [])
    assert (
        store.one("SELECT daemon_id FROM ledger_credentials WHERE credential_id = %s", store.daemon)
        == "box-1"
    )


def test_an_event_written_after_an_upcaster_links_to_the_stored_hash(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregate replays an upcast ``Minted``; its revocation must link to the ``Minted``
    as stored, or verify (which hashes stored states) would see a broken chain."""

    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["note"] = "added by an upcaster"

    monkeypatch.setattr(Credential.Minted, "class_version", 2, raising=False)
    monkeypatch.setattr(
        Credential.Minted, "upcast_v1_v2", staticmethod(upcast_v1_v2), raising=False
    )
    store.ledger.revoke_personal_access_token(store.alice, store.initial_pat)
    [minted, revoked] = store.ledger.repository.event_store.get(store.initial_pat)
    assert minted.note == "added by an upcaster"  # type: ignore[attr-defined]
    assert revoked.prev_hash == event_hash(minted)  # type: ignore[attr-defined]
    report = store.verify()
    assert report.ok, report.problems


def test_two_processes_find_what_one_finds(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.tamper(
        f"DELETE FROM ledger_events WHERE originator_id IN ('{store.laptop}', '{store.daemon}')"
    )
    with psycopg.connect(store.url) as conn:
        conn.execute(
            "UPDATE ledger_credentials SET revoked_at = now() WHERE credential_id = %s",
            (store.initial_pat,),
        )
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN_EVENTS", 1)
    trusted = trusted_key(store.key_file)
    named = [NamedCheckpoint("cp0", store.checkpoint)]
    one = verify_store(store.url, store.ledger.mapper, named, trusted=trusted, processes=1)
    two = verify_store(store.url, store.ledger.mapper, named, trusted=trusted, processes=2)
    assert found(two) == found(one)
    # three events gone, the log shorter than the checkpoint, three auth rows that disagree
    assert len(one.problems) == 7
    assert (two.streams, two.credentials, two.events) == (one.streams, one.credentials, one.events)


HELPER_FORKED = """
import gc, json, sys, threading
from pathlib import Path
from ledger.adapters import audit_verify
from ledger.adapters.audit_verify import NamedCheckpoint, trusted_key, verify_store
from ledger.bootstrap import stored_event_mapper
from ledger.domain.checkpoint import parse_checkpoint

url, key, checkpoint = sys.argv[1:]
audit_verify.PARALLEL_MIN_EVENTS = 1
starts = []
choose = audit_verify._helper_context
audit_verify._helper_context = lambda **kw: starts.append(choose(**kw)) or starts[-1]
assert threading.active_count() == 1
named = [NamedCheckpoint("cp0", parse_checkpoint(open(checkpoint).read()))]
trusted = trusted_key(Path(key))
report = verify_store(url, stored_event_mapper(), named, trusted=trusted, processes=2)
print(json.dumps({
    "start": starts[0].get_start_method(),
    "gc_enabled_after": gc.isenabled(),
    "report": report.to_json(),
}))
"""


def test_a_single_threaded_verify_forks_its_helper_and_finds_what_one_process_finds(
    store: Store, tmp_path: Path
) -> None:
    """The CLI's way: no ledger open, one thread, so the helper is forked (and the cyclic
    collector paused for the pass, then restored); the same problems as one process."""
    store.tamper(f"DELETE FROM ledger_events WHERE originator_id = '{store.daemon}'")
    with psycopg.connect(store.url) as conn:
        conn.execute(
            "UPDATE ledger_credentials SET name = 'forged' WHERE credential_id = %s",
            (store.laptop,),
        )
    checkpoint = tmp_path / "cp0.json"
    checkpoint.write_text(store.checkpoint.dumps(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", HELPER_FORKED, store.url, str(store.key_file), str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    forked = json.loads(done.stdout)
    assert forked["start"] == ("fork" if sys.platform == "linux" else "spawn")
    assert forked["gc_enabled_after"] is True
    one = store.verify(store.checkpoint)
    assert forked["report"] == one.to_json()
    # the daemon token's events were the log's last: it is shorter than the checkpoint too
    assert {p["problem"] for p in forked["report"]["problems"]} == {
        "event_missing",
        "log_truncated",
        "auth_row_mismatch",
    }


def test_the_mapper_made_without_a_ledger_decodes_as_the_ledgers_does(store: Store) -> None:
    made = stored_event_mapper()
    assert type(made) is type(store.ledger.mapper)
    assert made.transcoder.names.keys() == store.ledger.mapper.transcoder.names.keys()  # type: ignore[attr-defined]
    assert (made.cipher, made.compressor) == (
        store.ledger.mapper.cipher,
        store.ledger.mapper.compressor,
    )


def test_the_ranges_of_stream_ids_cover_every_id_once() -> None:
    for count in (1, 2, 32, 245):
        ranges = audit_verify.all_ranges(count)
        assert len(ranges) == count
        assert ranges[0][0] is None
        assert ranges[-1][1] is None
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            assert hi == lo
    assert audit_verify.chunk_count(0) == 32
    assert audit_verify.chunk_count(10 * audit_verify.CHUNK_EVENTS + 1) == 32
    assert audit_verify.chunk_count(100 * audit_verify.CHUNK_EVENTS + 1) == 101
