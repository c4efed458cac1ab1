"""Group commit: commands share a transaction, and each keeps its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from ledger.adapters.recorder import (
    BatchCommand,
    BatchIntegrityError,
    LedgerRecorder,
    batch_params,
)
from ledger.adapters.writer import GroupCommitWriter
from ledger.application.ports import WriteOutcome
from ledger.bootstrap import PostgresLedger
from ledger.domain import Actor, Credential, RevocationReason, TokenKind
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import ServiceUnavailable
from ledger.domain.tokens import issue
from tests.support.principals import START, load_credential, new_user


def minted(ledger: PostgresLedger) -> tuple[Credential, BatchCommand]:
    """A new personal access token and the batch command that would store it."""
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    owner = Actor.system("test")
    credential = Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="batch",
        user_id=Credential.create_id(token.token_hash),
        expires_at=None,
        at=START,
        actor=owner,
    )
    return credential, command_for(ledger, credential)


def command_for(ledger: PostgresLedger, credential: Credential) -> BatchCommand:
    events = credential.collect_events()
    return BatchCommand(
        [ledger.mapper.to_stored_event(e) for e in events], [CredentialRow.of(credential)]
    )


def stale_revocation(ledger: PostgresLedger) -> tuple[Credential, BatchCommand]:
    """A revocation of a stored credential, made on a copy that is one version behind."""
    credential, command = minted(ledger)
    ledger.writer.submit(command)
    fresh = load_credential(ledger, credential.id)
    stale = load_credential(ledger, credential.id)
    fresh.revoke(reason=RevocationReason.USER_REQUEST, at=START, actor=Actor.system("a"))
    ledger.writer.submit(command_for(ledger, fresh))
    stale.revoke(reason=RevocationReason.ADMIN, at=START, actor=Actor.system("b"))
    return stale, command_for(ledger, stale)


def recorder_of(ledger: PostgresLedger) -> LedgerRecorder:
    recorder = ledger.recorder
    assert isinstance(recorder, LedgerRecorder)
    return recorder


def test_a_conflicting_command_does_not_fail_its_neighbours(ledger: PostgresLedger) -> None:
    first, first_command = minted(ledger)
    _, stale_command = stale_revocation(ledger)
    third, third_command = minted(ledger)

    outcomes = recorder_of(ledger).insert_batch([first_command, stale_command, third_command])

    assert outcomes[1] is None
    first_ids, third_ids = outcomes[0], outcomes[2]
    assert isinstance(first_ids, list) and len(first_ids) == 1
    assert isinstance(third_ids, list) and len(third_ids) == 1
    assert third_ids[0] > first_ids[0]
    for credential in (first, third):
        assert load_credential(ledger, credential.id).version == 1
        assert ledger.credentials.get(credential.id) is not None


def stale_pair(ledger: PostgresLedger) -> tuple[Credential, BatchCommand]:
    """One command of two events: a new mint (its key free) and a stale revocation (its key
    taken): it must be refused whole, the mint's event taken back before the commit."""
    new, new_command = minted(ledger)
    _, stale_command = stale_revocation(ledger)
    return new, BatchCommand(
        [*new_command.events, *stale_command.events],
        [*new_command.credential_rows, *stale_command.credential_rows],
    )


def test_a_command_is_taken_back_whole_under_the_append_only_trigger(
    ledger: PostgresLedger, database_url: str
) -> None:
    """The append-only trigger lets a batch delete its own uncommitted event (refusing a command
    whole); its neighbours commit, and the committed rows stay undeletable."""
    new, pair = stale_pair(ledger)
    neighbour, neighbour_command = minted(ledger)

    outcomes = recorder_of(ledger).insert_batch([pair, neighbour_command])

    assert outcomes[0] is None and outcomes[1] is not None
    assert ledger.credentials.get(new.id) is None
    assert ledger.credentials.get(neighbour.id) is not None
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE originator_id = %s", (new.id,)
        ).fetchone()
        assert row == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_events WHERE originator_id = %s", (neighbour.id,))


def test_the_stale_write_leaves_the_winners_state(ledger: PostgresLedger) -> None:
    stale, stale_command = stale_revocation(ledger)
    assert recorder_of(ledger).insert_batch([stale_command]) == [None]
    stored = load_credential(ledger, stale.id)
    assert isinstance(stored, Credential)
    assert stored.revoked_reason is RevocationReason.USER_REQUEST
    row = ledger.credentials.get(stale.id)
    assert row is not None and row.revoked_reason == "user_request"


def test_two_commands_of_one_batch_on_the_same_version_first_wins(ledger: PostgresLedger) -> None:
    credential, command = minted(ledger)
    ledger.writer.submit(command)
    one = load_credential(ledger, credential.id)
    two = load_credential(ledger, credential.id)
    one.revoke(reason=RevocationReason.USER_REQUEST, at=START, actor=Actor.system("one"))
    two.revoke(reason=RevocationReason.ADMIN, at=START, actor=Actor.system("two"))

    outcomes = recorder_of(ledger).insert_batch(
        [command_for(ledger, one), command_for(ledger, two)]
    )

    assert outcomes[0] is not None and outcomes[1] is None
    assert load_credential(ledger, credential.id).revoked_reason is RevocationReason.USER_REQUEST


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition (no fixed sleep decides a result: only the condition does)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_commands_queued_behind_a_transaction_share_the_next_one(
    ledger: PostgresLedger, database_url: str
) -> None:
    """The first command finds the writer idle and is written on its caller's thread; the
    next is taken by the writer thread; both wait behind a held lock. Everything submitted
    meanwhile queues and commits in one transaction, each command with its own outcome."""
    writer = GroupCommitWriter(recorder_of(ledger), max_batch=64)
    queued = 12
    commands = [minted(ledger) for _ in range(queued + 2)]
    stale = [stale_revocation(ledger) for _ in range(3)]
    blocker = psycopg.connect(database_url)
    observer = psycopg.connect(database_url, autocommit=True)

    def waiting_for_the_lock(count: int) -> Callable[[], bool]:
        def check() -> bool:
            row = observer.execute(
                "SELECT count(*) FROM pg_locks "
                "WHERE relation = 'ledger_events'::regclass AND NOT granted"
            ).fetchone()
            return row is not None and row[0] == count

        return check

    try:
        # Hold a lock on the events table so that the first transactions wait on it.
        blocker.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
        with ThreadPoolExecutor(queued + 5) as pool:
            first = pool.submit(writer.submit, commands[0][1])
            wait_until(waiting_for_the_lock(1))
            second = pool.submit(writer.submit, commands[1][1])
            wait_until(waiting_for_the_lock(2))
            rest = [pool.submit(writer.submit, c) for _, c in commands[2:]]
            conflicting = [pool.submit(writer.submit, c) for _, c in stale]
            wait_until(lambda: writer.queued == queued + 3)
            blocker.rollback()  # release the lock
            assert first.result() is not None
            assert second.result() is not None
            assert all(f.result() is not None for f in rest)
            assert all(f.result() is None for f in conflicting)
    finally:
        blocker.close()
        observer.close()
        writer.close()
    assert writer.stats.batches == 3
    assert writer.stats.largest_batch == queued + 3
    assert writer.stats.conflicts == 3
    for credential, _ in commands:
        assert ledger.credentials.get(credential.id) is not None


def test_a_batch_the_store_refuses_is_written_one_command_at_a_time(
    ledger: PostgresLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_of(ledger)
    real_insert_batch = recorder.insert_batch
    sizes: list[int] = []

    def refuse_batches(commands: Sequence[BatchCommand]) -> list[WriteOutcome]:
        sizes.append(len(commands))
        if len(commands) > 1:
            raise BatchIntegrityError("refused")
        return real_insert_batch(commands)

    monkeypatch.setattr(recorder, "insert_batch", refuse_batches)
    writer = GroupCommitWriter(recorder, max_batch=8)
    commands = [minted(ledger) for _ in range(4)]
    try:
        outcomes = writer.write_batch([c for _, c in commands])
    finally:
        writer.close()
    assert sizes == [4, 1, 1, 1, 1]
    assert all(outcome is not None for outcome in outcomes)
    for credential, _ in commands:
        assert ledger.credentials.get(credential.id) is not None


def test_a_closed_writer_finishes_queued_work_then_refuses(ledger: PostgresLedger) -> None:
    writer = GroupCommitWriter(recorder_of(ledger), max_batch=8)
    credential, command = minted(ledger)
    assert writer.submit(command) is not None
    writer.close()
    _, another = minted(ledger)
    with pytest.raises(ServiceUnavailable):
        writer.submit(another)
    assert ledger.credentials.get(credential.id) is not None


def test_concurrent_mints_through_the_ledger_are_all_acknowledged_and_stored(
    ledger: PostgresLedger,
) -> None:
    me, _ = new_user(ledger)
    barrier = threading.Barrier(16)

    def mint(i: int) -> str:
        barrier.wait()
        return str(ledger.mint_personal_access_token(me, f"t{i}", None).info.id)

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(mint, range(16)))
    listed = {str(t.id) for t in ledger.list_personal_access_tokens(me)}
    assert set(ids) <= listed


def test_a_command_racing_an_uncommitted_write_of_its_key_is_refused_whole(
    ledger: PostgresLedger, database_url: str
) -> None:
    """No lock: the key is held by a concurrent transaction still open. The batch waits for it,
    refuses the command whose key it took (taking back the command's other event and not
    writing its credentials row) and writes its neighbour."""
    stored, command = minted(ledger)
    ledger.writer.submit(command)
    fresh = load_credential(ledger, stored.id)
    stale = load_credential(ledger, stored.id)
    fresh.revoke(reason=RevocationReason.USER_REQUEST, at=START, actor=Actor.system("a"))
    stale.revoke(reason=RevocationReason.ADMIN, at=START, actor=Actor.system("b"))
    new, new_command = minted(ledger)
    stale_command = command_for(ledger, stale)
    both = BatchCommand(
        [*new_command.events, *stale_command.events],
        [*new_command.credential_rows, *stale_command.credential_rows],
    )
    neighbour, neighbour_command = minted(ledger)
    with psycopg.connect(database_url) as held:  # a transaction left open
        held.execute(
            "SELECT * FROM ledger_write_batch(%s, %s, %s, '10s')",
            batch_params([command_for(ledger, fresh)]),
        )
        outcomes: list[WriteOutcome] = []
        racing = threading.Thread(
            target=lambda: outcomes.extend(
                recorder_of(ledger).insert_batch([both, neighbour_command])
            )
        )
        racing.start()
        wait_until_waiting(database_url)
        held.commit()
        racing.join()
    assert outcomes[0] is None
    assert outcomes[1] is not None
    assert ledger.credentials.get(new.id) is None  # nothing of the refused command
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE originator_id = %s", (new.id,)
        ).fetchone()
    assert row == (0,)
    assert load_credential(ledger, stored.id).revoked_reason == RevocationReason.USER_REQUEST
    assert ledger.credentials.get(neighbour.id) is not None


def wait_until_waiting(database_url: str) -> None:
    """Until some backend waits for a transaction's lock (bounded; not a timed assertion)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            assert time.monotonic() < deadline, "the batch never waited for the key"
            time.sleep(0.005)


def test_without_writer_threads_each_command_is_its_own_transaction(ledger: PostgresLedger) -> None:
    written: list[Sequence[BatchCommand]] = []
    writer = GroupCommitWriter(recorder_of(ledger), max_batch=8, threads=0)
    writer.after_commit = written.append
    credential, command = minted(ledger)
    _, stale_command = stale_revocation(ledger)
    assert writer.submit(command) is not None
    assert writer.submit(stale_command) is None
    assert written == [[command]]  # announced: the command written, not the refused one
    assert (writer.stats.batches, writer.stats.conflicts) == (2, 1)
    assert ledger.credentials.get(credential.id) is not None
    writer.close()
    with pytest.raises(ServiceUnavailable):
        writer.submit(minted(ledger)[1])
