"""Catch-up and rebuild with batches read and prepared ahead (docs/adr/0014), on real PostgreSQL."""

from __future__ import annotations

import gc
import random
import threading
from typing import Any

import psycopg
import pytest

from ledger.adapters.log_order import START_MARK, Mark
from ledger.adapters.recorder import LedgerRecorder
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from ledger.projections import NAMES
from ledger.projections.audit_trail import AUDIT_TABLE, AUDIT_TYPES
from ledger.projections.base import Positioned
from ledger.projections.credentials import CREDENTIALS_VIEW, VIEW_COLUMNS, VIEW_TYPES
from ledger.projections.eventlog import BULK_GC_THRESHOLDS
from ledger.projections.runner import ASYNC_COMMIT
from tests.integration.test_projections import CREDENTIAL_COLUMNS, snapshot
from tests.integration.workload import run_workload
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user


def small(settings: Settings, batch_size: int) -> Settings:
    return Settings(**{**settings.model_dump(), "projection_batch_size": batch_size})


def inline_and_view(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        inline = conn.execute(
            f"SELECT {CREDENTIAL_COLUMNS} FROM ledger_credentials ORDER BY credential_id"
        ).fetchall()
        view = conn.execute(
            f"SELECT {CREDENTIAL_COLUMNS} FROM ledger_credentials_view ORDER BY credential_id"
        ).fetchall()
    return inline, view


def test_copy_types_are_the_types_of_the_tables_columns(database_url: str) -> None:
    query = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
    )
    with psycopg.connect(database_url) as conn:
        audit: dict[str, str] = dict(conn.execute(query, (AUDIT_TABLE,)).fetchall())
        view: dict[str, str] = dict(conn.execute(query, (CREDENTIALS_VIEW,)).fetchall())
    assert audit == AUDIT_TYPES
    assert view == VIEW_TYPES
    assert tuple(VIEW_TYPES) == VIEW_COLUMNS


def ordinal(mark: Mark | None) -> int | None:
    return None if mark is None else mark.ordinal


def test_the_projections_decode_every_event_as_the_application_does(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    clock = ManualClock(START)
    ledger = build_ledger(url, settings=settings, clock=clock)
    try:
        run_workload(ledger, clock, random.Random(7), 250)
        recorder = ledger.recorder
        assert isinstance(recorder, LedgerRecorder)
        stored = recorder.select_notifications(1, 10_000)
        with recorder.datastore.transaction(commit=False) as curs:
            horizon = ledger.projections.log.horizon(curs)
            page = ledger.projections.log.page(curs, START_MARK, 10_000, horizon).events
        assert ledger.projections.log.mapper is not ledger.mapper  # the reading transcoder
        # one writer, one command after another: the log's order is the notification ids'
        assert [item.at.notification_id for item in page] == [n.id for n in stored]
        assert [item.position for item in page] == list(range(1, len(page) + 1))
        for item, notification in zip(page, stored, strict=True):
            expected = ledger.mapper.to_domain_event(notification)
            assert type(item.event) is type(expected)
            assert vars(item.event) == vars(expected)
        assert {type(item.event).__qualname__ for item in page} >= {
            "User.Created",
            "Credential.Minted",
            "Credential.Consumed",
            "Credential.Renewed",
            "Credential.Revoked",
            "Workspace.Created",
            "Workspace.MemberAdded",
            "Workspace.MemberRoleChanged",
            "Workspace.MemberRemoved",
        }
    finally:
        ledger.close()


def test_later_events_in_later_batches_carry_their_credentials_context(
    ledger: PostgresLedger,
) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws").id
    ledger.add_member(owner, workspace, admin.user_id, "admin")
    install = ledger.mint_install_token(admin, workspace)
    ledger.projections.wait_current()  # the Minted events are in earlier batches
    daemon = ledger.exchange_install_token(install.token, "host")
    ledger.projections.wait_current()
    ledger.remove_member(owner, workspace, admin.user_id)  # revokes the daemon token

    consumed = ledger.audit.history(install.id).events[-1]
    revoked = ledger.audit.history(daemon.token_id).events[-1]

    assert (consumed.type, consumed.kind) == ("consumed", "install_token")
    assert (consumed.workspace_id, consumed.user_id) == (workspace, admin.user_id)
    assert (revoked.type, revoked.kind) == ("revoked", "daemon_token")
    assert (revoked.workspace_id, revoked.user_id) == (workspace, admin.user_id)


def test_a_batch_prepared_ahead_is_used_only_at_the_position_found_under_the_locks(
    server_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(server_url)
    ours = build_ledger(url, settings=small(settings, 10))
    other = build_ledger(url, settings=small(settings, 7))
    try:
        user, _ = new_user(ours)
        for i in range(40):
            ours.mint_personal_access_token(user, f"t{i}")
        head = ours.projections.head()
        ahead = ours.projections.read_ahead(NAMES, start=START_MARK, until=head)
        try:
            prepared = ahead.next()
            assert prepared is not None
            assert (prepared.after.ordinal, prepared.last.ordinal) == (0, 10)
            assert ordinal(other.projections.step()) == 7  # another runner's turn, in between
            # The batch prepared after 0 is not used: the step reads after 7 itself.
            assert ordinal(ours.projections.step(prepared=prepared)) == 17
            nxt = ahead.next()
            assert nxt is not None
            assert (nxt.after.ordinal, nxt.last.ordinal) == (10, 20)
            at_27 = ours.projections.step(prepared=nxt)  # again not used
            assert ordinal(at_27) == 27
        finally:
            ahead.close()
        assert at_27 is not None
        with ours.projections.read_ahead(NAMES, start=at_27, until=head) as ahead:
            prepared = ahead.next()
            assert prepared is not None

            def no_reading(*_: object) -> list[Positioned]:
                raise AssertionError

            with monkeypatch.context() as patched:
                patched.setattr(ours.projections.log, "page", no_reading)
                # used: nothing read
                assert ordinal(ours.projections.step(prepared=prepared)) == 37
        ours.projections.catch_up()
        caught_up = snapshot(url)
        ours.projections.rebuild()
        assert snapshot(url) == caught_up
        assert len(caught_up["audit"]) == 42  # user_created, the initial token and 40 more
    finally:
        ours.close()
        other.close()


def test_a_rebuild_while_writers_and_live_runners_run_equals_a_quiet_rebuild(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    clock = ManualClock(START)
    writer = build_ledger(url, settings=small(settings, 5), clock=clock)
    live = build_ledger(url, settings=small(settings, 3), clock=clock)
    rebuilder = build_ledger(url, settings=small(settings, 4), clock=clock)
    try:
        run_workload(writer, clock, random.Random(5), 100)  # a backlog to rebuild
        writer.projections.start()
        live.projections.start()
        done = threading.Event()
        rebuilds: list[int | BaseException] = []

        def rebuild_until_done() -> None:
            while not done.is_set():
                try:
                    rebuilds.append(rebuilder.projections.rebuild())
                except BaseException as error:  # noqa: BLE001 - reported by the test below
                    rebuilds.append(error)
                    return

        rebuilding = threading.Thread(target=rebuild_until_done)
        rebuilding.start()
        try:
            run_workload(writer, clock, random.Random(6), 150)
        finally:
            done.set()
            rebuilding.join()
        assert rebuilds
        assert all(isinstance(r, int) for r in rebuilds), rebuilds
        writer.projections.wait_current()
        concurrent = snapshot(url)
        inline, view = inline_and_view(url)
        assert view == inline
        rebuilder.projections.rebuild()
        assert snapshot(url) == concurrent
    finally:
        for ledger in (writer, live, rebuilder):
            ledger.close()


def test_the_collector_runs_less_often_only_while_batches_are_read_ahead(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    ledger = build_ledger(url, settings=small(settings, 3))
    try:
        user, _ = new_user(ledger)
        for i in range(12):
            ledger.mint_personal_access_token(user, f"t{i}")
        before = gc.get_threshold()
        during: list[tuple[int, ...]] = []
        ledger.projections.rebuild(progress=lambda *_: during.append(gc.get_threshold()))
        assert during[0] == before  # the first batch is read in the step itself
        assert set(during[1:]) == {BULK_GC_THRESHOLDS}
        assert len(during) == 5  # 14 events, 3 a batch
        assert gc.get_threshold() == before
    finally:
        ledger.close()


def test_a_steps_commit_does_not_wait_for_the_disk_and_leaves_the_connection_as_it_was(
    ledger: PostgresLedger,
) -> None:
    user, _ = new_user(ledger)
    ledger.mint_personal_access_token(user, "t")
    recorder = ledger.recorder
    assert isinstance(recorder, LedgerRecorder)
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(ASYNC_COMMIT)
        curs.execute("SHOW synchronous_commit")
        assert curs.fetchone() == {"synchronous_commit": "off"}
    ledger.projections.catch_up()
    # SET LOCAL ends with the transaction: the pooled connections (the write path's too)
    # still wait for the disk.
    for _ in range(3):
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute("SHOW synchronous_commit")
            assert curs.fetchone() == {"synchronous_commit": "on"}
