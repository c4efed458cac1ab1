"""Reading the store to check it: ``ledger audit verify``, ``checkpoint`` and ``repair-auth``.

Verify runs in one read-only, repeatable-read transaction (one consistent snapshot) and streams
everything it reads, so its memory does not grow with the log:

1. the witnessed leaves against the log (``ledger.adapters.witness``): events altered, missing,
   inserted before the last witnessed one, or reordered;
2. the log against each checkpoint: the signature (by the ledger's key when its key file is
   there), the log's length, and its tree hash after the checkpoint's ``log_size`` events
   (computed only when the witnessed leaves do not already prove it);
3. every stream in ``(originator_id, originator_version)`` order: its hash chain recomputed from
   the stored (pre-upcast) states, and, for a credential, the auth lookup table's row against
   the state folded from its events by the domain's one fold (a merge with the table read in
   the same order).

The stream pass is bound by Python (decoding, hashing, folding). It reads the stream ids in
ranges of about ``CHUNK_EVENTS`` events (memory: a few ranges); on a large log a helper process,
in the same snapshot, claims ranges in turn with this one (docs/adr/0026).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import JSONTranscoder, Mapper, Transcoding
from eventsourcing.utils import get_topic, resolve_topic
from psycopg import sql

from ledger.adapters import log_order, witness
from ledger.adapters.credentials_table import WRITE_COLUMNS
from ledger.adapters.postgres import CREDENTIALS_TABLE, EVENTS_TABLE
from ledger.adapters.reading_mapper import reading_mapper
from ledger.adapters.signing import (
    load_or_create_key,
    public_bytes,
    sign_checkpoint,
    signature_holds,
)
from ledger.domain import Credential
from ledger.domain.chain import GENESIS_HASH, stored_event_hash
from ledger.domain.checkpoint import Checkpoint
from ledger.domain.credential import EVENT_TYPES
from ledger.domain.credential_row import FIELD_NAMES, FOLDS, Change, CredentialRow, fold_values
from ledger.domain.tamper import Problem, ProblemCode, StoredLink, check_chain

log = logging.getLogger(__name__)

FETCH = 5_000
_Range = tuple[UUID | None, UUID | None]
"""Stream ids from the first (included) to the second (excluded); ``None``: no bound."""
_EventRow = tuple[int, UUID, int, str, bytes]
"""An event as the stream pass reads it: position, stream id, version, topic, stored state."""
_stream_of = itemgetter(1)
Progress = Callable[[int, int], None]
"""Called with (work done, total work), in events read."""


class Advance(Protocol):
    def __call__(self, n: int, *, more: int = 0) -> None:
        """``n`` more done; ``more`` added to the total."""


@dataclass
class VerifyReport:
    """What verify read and every problem it found (``ok`` when there is none)."""

    events: int = 0
    streams: int = 0
    credentials: int = 0
    witnessed: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "streams": self.streams,
            "credentials": self.credentials,
            "witnessed": self.witnessed,
            "checkpoints": self.checkpoints,
        }
        if not self.ok:
            body["problems"] = [p.to_json() for p in self.problems]
        return body


@dataclass(frozen=True, slots=True)
class NamedCheckpoint:
    """A checkpoint and where it came from (its file), to name it in a problem."""

    name: str
    checkpoint: Checkpoint


def connect(url: str, *, read_only: bool) -> psycopg.Connection[Any]:
    """A repeatable-read connection: everything read in its transaction is one snapshot."""
    conn = psycopg.connect(url, connect_timeout=5)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = read_only
    return conn


# ------------------------------------------------------------------------------ checkpoints


def take_checkpoint(url: str, key_file: Path, *, at: datetime) -> Checkpoint:
    """Witness the events the log gained, then sign its length and tree hash (one snapshot)."""
    key = load_or_create_key(key_file)
    with connect(url, read_only=False) as conn:
        witness.extend(conn)
        size, root, _ = witness.log_roots(conn)
        conn.commit()
    return sign_checkpoint(key, log_size=size, root_hash=root, at=at)


def trusted_key(key_file: Path) -> bytes | None:
    """The ledger's public key, if its key file is there (never creates one)."""
    if not key_file.exists():
        return None
    return public_bytes(load_or_create_key(key_file))


# ----------------------------------------------------------------------------------- verify


def verify_store(
    url: str,
    mapper: Mapper[Any],
    checkpoints: Sequence[NamedCheckpoint] = (),
    *,
    trusted: bytes | None = None,
    progress: Progress | None = None,
    processes: int = 2,
) -> VerifyReport:
    """Check the store (see the module's docstring); every problem found is in the report.

    With ``processes`` above 1 and a log of at least ``PARALLEL_MIN_EVENTS`` events, a second
    process checks streams too (the stream pass is bound by Python), in the same snapshot
    (``pg_export_snapshot``): the two claim ranges of stream ids in turn until none is left.
    From a process that runs one thread (the CLI) the helper is forked and the cyclic garbage
    collector is paused for the pass; otherwise the helper is spawned."""
    report = VerifyReport(checkpoints=len(checkpoints))
    found: dict[tuple[object, ...], Problem] = {}

    def add(problem: Problem) -> None:
        if problem.key not in found:
            found[problem.key] = problem

    with connect(url, read_only=True) as conn, contextlib.ExitStack() as stack:
        snapshot = str(_one(conn, "SELECT pg_export_snapshot()"))
        report.events = witness.log_size(conn)
        report.witnessed = witness.witnessed(conn)
        reading = reading_mapper(mapper)
        helper: Future[tuple[list[Problem], int, int]] | None = None
        transcodings = _transcodings(mapper)
        alone = _alone()
        if alone:
            stack.enter_context(_cyclic_gc_paused())
        context = _helper_context(alone=alone)
        shared = _Shared(chunk_count(report.events), context.Value("i", 0), context.Value("q", 0))
        if (
            processes > 1
            and transcodings is not None
            and report.events >= PARALLEL_MIN_EVENTS
            and (os.cpu_count() or 1) > 1
        ):
            # Shared values reach a process only as it starts: through the initializer.
            pool = ProcessPoolExecutor(
                1, mp_context=context, initializer=_adopt, initargs=(shared,)
            )
            # Its result is all that is waited for, not its exit.
            stack.callback(pool.shutdown, wait=False, cancel_futures=True)
            helper = pool.submit(_helper_streams, url, snapshot, transcodings)
        # The work is the stream pass (every event), and the tree hashes when they are read.
        work = [0, report.events]

        def advance(n: int, *, more: int = 0) -> None:
            work[0] += n
            work[1] += more
            if progress is not None:
                progress(work[0] + shared.events.value, work[1])

        witnessed_as_stored = True
        for problem in witness_problems(conn):
            witnessed_as_stored = False
            add(problem)
        for problem in _checkpoint_problems(
            conn, checkpoints, trusted, report, advance, witnessed_as_stored=witnessed_as_stored
        ):
            add(problem)
        streams = Streams(
            conn, reading, ranges=shared.claim() if helper else all_ranges(shared.chunks)
        )
        for problem in streams.check(advance):
            add(problem)
        report.streams, report.credentials = streams.streams, streams.credentials
        if helper is not None:
            problems, more_streams, more_credentials = helper.result()
            for problem in problems:
                add(problem)
            report.streams += more_streams
            report.credentials += more_credentials
        if progress is not None:
            progress(work[1], work[1])
        conn.rollback()
    report.problems = sorted(found.values(), key=_report_order)
    return report


PARALLEL_MIN_EVENTS = 20_000
CHUNK_EVENTS = 4_096
"""About how many events one range of stream ids holds: the stream pass reads a range at a
time (its memory is a few ranges, whatever the log's length) and the processes of a parallel
verify take turns to claim ranges (ids are uniformly distributed: uuid4, or uuid5 of a token's
hash), so both finish at about the same time."""


def chunk_count(events: int) -> int:
    """How many ranges of stream ids a log of ``events`` events is read in."""
    return max(32, -(-events // CHUNK_EVENTS))


def chunk(index: int, count: int) -> _Range:
    """The ``index``-th of ``count`` equal ranges of stream ids (open at both ends)."""
    width = (1 << 128) // count
    lo = None if index == 0 else UUID(int=index * width)
    hi = None if index == count - 1 else UUID(int=(index + 1) * width)
    return lo, hi


def all_ranges(count: int) -> list[_Range]:
    return [chunk(i, count) for i in range(count)]


@dataclass(frozen=True)
class _Shared:
    """What the processes of one verify share: how many ranges of stream ids there are, the
    next one nobody claimed, and the events the helper has checked (for the progress bar)."""

    chunks: int
    next_chunk: Any  # multiprocessing.sharedctypes.Synchronized[int]
    events: Any

    def claim(self) -> Iterator[_Range]:
        """Ranges of stream ids nobody has claimed yet, until none is left."""
        while True:
            with self.next_chunk.get_lock():
                index = self.next_chunk.value
                self.next_chunk.value = index + 1
            if index >= self.chunks:
                return
            yield chunk(index, self.chunks)

    def add_events(self, n: int) -> None:
        with self.events.get_lock():
            self.events.value += n


def _alone() -> bool:
    """Whether this process runs one thread: verify is then all it does (the CLI)."""
    return threading.active_count() == 1


def _helper_context(*, alone: bool) -> multiprocessing.context.BaseContext:
    """How the helper process starts: forked from a process that runs one thread (no other
    thread can hold a lock the child would need, and the child starts at once, with all it
    needs imported: a spawned one costs about 0.6 s of CPU), spawned otherwise."""
    if alone and sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off, in a process that does nothing but verify: the pass
    makes no reference cycles, and each page it reads would otherwise be walked again and
    again by the collector's generations (a tenth of the pass's time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _one(conn: psycopg.Connection[Any], query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _transcodings(mapper: Mapper[Any]) -> list[Transcoding] | None:
    """What a helper process needs to decode as ``mapper`` does (a mapper itself does not
    pickle), or ``None`` if it cannot (a cipher, a compressor, another transcoder)."""
    transcoder = mapper.transcoder
    if mapper.cipher or mapper.compressor or type(transcoder) is not JSONTranscoder:
        return None
    return list(transcoder.names.values())


_ADOPTED: list[_Shared] = []
"""In a helper process: what it shares with the verify that started it."""


def _adopt(shared: _Shared) -> None:
    _ADOPTED.append(shared)


def _helper_streams(
    url: str, snapshot: str, transcodings: list[Transcoding]
) -> tuple[list[Problem], int, int]:
    """The stream pass over the ranges of stream ids this helper process claims, in the
    exported snapshot: problems, streams and credentials checked."""
    shared = _ADOPTED[-1]
    gc.disable()  # a process that does nothing but this (see ``_cyclic_gc_paused``)
    transcoder = JSONTranscoder()
    for transcoding in transcodings:
        transcoder.register(transcoding)
    mapper = reading_mapper(Mapper(transcoder=transcoder))
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        streams = Streams(conn, mapper, ranges=shared.claim())
        problems = list(streams.check(shared.add_events))
        conn.rollback()
    return problems, streams.streams, streams.credentials


def _report_order(problem: Problem) -> tuple[int, str, str, int]:
    return (
        problem.position if problem.position is not None else 1 << 62,
        problem.problem.value,
        str(problem.stream_id or problem.credential_id or ""),
        problem.stream_version or 0,
    )


_WITNESS_CHECKS = (
    (witness.altered, ProblemCode.EVENT_ALTERED, "the stored event no longer matches its leaf"),
    (witness.missing, ProblemCode.EVENT_MISSING, "a witnessed event is no longer in the log"),
    (
        witness.inserted,
        ProblemCode.EVENT_INSERTED,
        "an event that was never witnessed stands before the last witnessed one",
    ),
    (
        witness.reordered,
        ProblemCode.EVENTS_REORDERED,
        "the event stands right after one witnessed later than it",
    ),
)


def witness_problems(conn: psycopg.Connection[Any]) -> Iterator[Problem]:
    """Every difference between the log and its witnessed leaves."""
    for check, code, detail in _WITNESS_CHECKS:
        for position, stream_id, version, leaf_index in check(conn):
            extra = {} if leaf_index is None else {"leaf_index": leaf_index}
            yield Problem(
                code,
                detail,
                position=position,
                credential_id=stream_id if _is_credential(conn, stream_id) else None,
                stream_id=stream_id,
                stream_version=version,
                extra=extra,
            )


def _is_credential(conn: psycopg.Connection[Any], stream_id: UUID) -> bool:
    """Whether a stream is a credential's: it has an auth row or a credential event left."""
    query = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {c} WHERE credential_id = %(id)s) OR EXISTS ("
        "SELECT 1 FROM {e} WHERE originator_id = %(id)s AND topic LIKE %(topic)s)"
    ).format(c=sql.Identifier(CREDENTIALS_TABLE), e=sql.Identifier(EVENTS_TABLE))
    row = conn.execute(query, {"id": stream_id, "topic": _CREDENTIAL_TOPIC + "%"}).fetchone()
    return bool(row and row[0])


def _checkpoint_problems(
    conn: psycopg.Connection[Any],
    checkpoints: Sequence[NamedCheckpoint],
    trusted: bytes | None,
    report: VerifyReport,
    advance: Advance,
    *,
    witnessed_as_stored: bool,
) -> Iterator[Problem]:
    """Each checkpoint's signature, and the log against it: its length, and its tree hash
    after the checkpoint's ``log_size`` events.

    ``witnessed_as_stored`` says the witness checks found nothing: the log's first events are
    then exactly the witnessed leaves, in their order. When, besides, the witnessed leaves hash
    to every checkpoint's root, so does the log, and its own tree hashes are not computed (a
    pass over every event's stored bytes)."""
    valid: list[NamedCheckpoint] = []
    for named in checkpoints:
        if signature_holds(named.checkpoint, trusted):
            valid.append(named)
            continue
        other_key = trusted is not None and named.checkpoint.public_key != trusted
        yield Problem(
            ProblemCode.BAD_SIGNATURE,
            "signed by another key than the ledger's"
            if other_key
            else "the signature does not match the checkpoint's contents",
            checkpoint=named.name,
        )
    if not valid:
        return
    sizes = [n.checkpoint.log_size for n in valid]
    size = report.events
    witnessed_roots = witness.witness_roots(conn, sizes, upto=max(sizes))
    authentic = {
        n.checkpoint.log_size: witnessed_roots.get(n.checkpoint.log_size) == n.checkpoint.root_hash
        for n in valid
    }
    roots: dict[int, bytes] = {}
    if not (witnessed_as_stored and all(authentic.values()) and max(sizes) <= size):
        # The tree hashes are needed only as far as the longest checkpoint reaches.
        upto = min(max(sizes), size)
        advance(0, more=upto)
        roots = witness.log_roots(conn, sizes, advance, upto=upto)[2]
    for named in valid:
        expected = named.checkpoint
        authentic_leaves = authentic[expected.log_size]
        if size < expected.log_size and not (
            authentic_leaves and witness.holds_leaf(conn, expected.log_size - 1)
        ):
            yield Problem(
                ProblemCode.LOG_TRUNCATED,
                f"the log holds {size} events; the checkpoint of {expected.time} covers "
                f"{expected.log_size}",
                position=size,
                checkpoint=named.name,
                extra={"log_size": size, "checkpoint_size": expected.log_size},
            )
        elif (
            expected.log_size in roots
            and roots[expected.log_size] != expected.root_hash
            and not authentic_leaves
        ):
            # The leaves that would name the events were rewritten too: say what is known.
            yield Problem(
                ProblemCode.EVENT_ALTERED,
                f"the first {expected.log_size} events do not hash to the checkpoint's root, "
                "and the witnessed leaves that would name them were rewritten as well",
                checkpoint=named.name,
            )


class Streams:
    """The stream-by-stream pass: chains, and credentials against the auth lookup table."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        mapper: Mapper[Any],
        *,
        keep_folded: bool = False,
        ranges: Iterable[_Range] | None = None,
    ) -> None:
        self._conn = conn
        self._ranges = ranges
        self._cipher = mapper.cipher
        self._compressor = mapper.compressor
        self._transcode = mapper.transcoder.decode
        self.streams = 0
        self.credentials = 0
        self._keep_folded = keep_folded
        self.folded: dict[UUID, CredentialRow] = {}
        """The folded state of each credential whose row differs (when ``keep_folded``)."""

    def _chunks(self) -> Iterator[tuple[list[_EventRow], list[tuple[Any, ...]]]]:
        """Each range's final events in stream order and its auth rows in id order, the next
        range read by a thread while this one is checked (the server works meanwhile)."""

        def events_query(ids: _Range) -> sql.Composed:
            return sql.SQL(
                "SELECT {pos}, originator_id, originator_version, topic, state FROM {e} "
                "WHERE {final} AND {ids} ORDER BY originator_id, originator_version"
            ).format(
                pos=sql.Identifier(log_order.POSITION),
                e=sql.Identifier(EVENTS_TABLE),
                final=log_order.final(),
                ids=_in_range("originator_id", ids),
            )

        def rows_query(ids: _Range) -> sql.Composed:
            return sql.SQL("SELECT {cols} FROM {t} WHERE {ids} ORDER BY credential_id").format(
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in WRITE_COLUMNS),
                t=sql.Identifier(CREDENTIALS_TABLE),
                ids=_in_range("credential_id", ids),
            )

        ranges = self._ranges
        if ranges is None:
            ranges = all_ranges(chunk_count(witness.log_size(self._conn)))
        conn = self._conn
        read: queue.Queue[tuple[list[Any], list[Any]] | BaseException | None]
        read = queue.Queue(maxsize=1)
        stop = threading.Event()

        def fetch() -> None:
            try:
                for ids in ranges:
                    if stop.is_set():
                        return
                    events = conn.execute(events_query(ids), binary=True).fetchall()
                    rows = conn.execute(rows_query(ids), binary=True).fetchall()
                    read.put((events, rows))
                read.put(None)
            except BaseException as error:  # noqa: BLE001 - handed to the checking thread
                read.put(error)

        reader = threading.Thread(target=fetch, name="ledger-verify-fetch", daemon=True)
        reader.start()
        try:
            while True:
                item = read.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    return
                yield item
        finally:
            stop.set()
            while reader.is_alive():  # let a blocked put finish
                with contextlib.suppress(queue.Empty):
                    read.get(timeout=0.05)
            reader.join()

    def check(self, advance: Callable[[int], None]) -> Iterator[Problem]:
        """Every problem of the streams in the ranges of ids given (all of them by default),
        calling ``advance`` with the number of events checked as it goes."""
        for events, rows in self._chunks():
            yield from self._check(events, rows)
            advance(len(events))

    def _check(self, events: list[_EventRow], rows: list[tuple[Any, ...]]) -> Iterator[Problem]:
        """One range's streams, merged with its auth rows (both in id order)."""
        auth = iter(rows)
        row = next(auth, None)
        single = self._single
        for stream_id, group in itertools.groupby(events, key=_stream_of):
            self.streams += 1
            while row is not None and row[0] < stream_id:
                yield _orphan_row(row[0])
                row = next(auth, None)
            stored = row if row is not None and row[0] == stream_id else None
            if stored is not None:
                row = next(auth, None)
            batch = list(group)
            if len(batch) == 1 and single(batch[0], stored):
                continue
            yield from self._stream(stream_id, batch, stored)
        while row is not None:
            yield _orphan_row(row[0])
            row = next(auth, None)

    def _single(self, event: _EventRow, row: tuple[Any, ...] | None) -> bool:
        """Whether a stream of one event is sound, checked the short way (most streams are a
        token minted and never changed): a credential's minting, version 1, linked to the
        genesis hash, folding into its auth row. Anything else takes the long way."""
        _, stream_id, version, topic, state = event
        if version != 1 or row is None or self._keep_folded:
            return False
        known = _TOPICS.get(topic)
        if known is None or known[2] is None or not FOLDS[known[2]].creates:
            return False
        try:
            decoded = self._decode(stream_id, version, topic, state, hashed=False)[2]
            change = Change(known[2], stream_id, decoded["timestamp"], 1, decoded)
            values = fold_values(None, change)
            sound = (
                decoded.get("prev_hash") == GENESIS_HASH
                and decoded.get("originator_topic") == _CREDENTIAL_CLASS_TOPIC
                and values is not None
                and _write_values(values) == row
            )
        except Exception:  # noqa: BLE001 - the long way names it
            return False
        if not sound:
            return False
        self.credentials += 1
        return True

    def _stream(
        self, stream_id: UUID, batch: list[_EventRow], row: tuple[Any, ...] | None
    ) -> Iterator[Problem]:
        links: list[tuple[int, int, object, str]] = []
        states: list[dict[str, Any]] = []
        undecodable = False
        credential_id = stream_id if (batch[0][3] or "").startswith(_CREDENTIAL_TOPIC) else None
        last = len(batch) - 1
        for i, (position, _, version, topic, state) in enumerate(batch):
            try:
                # A stream's last event is linked to by nothing: its hash is not needed.
                prev_hash, hashed, decoded = self._decode(
                    stream_id, version, topic, state, hashed=i < last
                )
            except Exception:  # noqa: BLE001 - whatever a rewritten state does, it is a finding
                undecodable = True
                yield Problem(
                    ProblemCode.EVENT_ALTERED,
                    "the stored event cannot be decoded",
                    position=position,
                    credential_id=credential_id,
                    stream_id=stream_id,
                    stream_version=version,
                )
                continue
            links.append((position, version, prev_hash, hashed))
            states.append(decoded)
        stored = [StoredLink(*link) for link in links]
        chain = list(check_chain(stream_id, stored, credential_id=credential_id))
        yield from chain
        if credential_id is None:
            if row is not None:
                yield _orphan_row(row[0])
            return
        self.credentials += 1
        if undecodable or chain:
            return  # the stream itself is reported; its row is not compared with a guess
        try:
            folded = _fold(stream_id, batch, states)
        except Exception:  # noqa: BLE001 - a stream the domain refuses to replay is a finding
            yield Problem(
                ProblemCode.EVENT_ALTERED,
                "the stream's events cannot be replayed into a credential",
                position=batch[0][0],
                credential_id=credential_id,
                stream_id=stream_id,
                stream_version=batch[0][2],
            )
            return
        expected = _write_values(folded)
        if row == expected:
            return
        if self._keep_folded:
            self.folded[stream_id] = CredentialRow(*folded)
        yield from _row_problems(stream_id, expected, row)

    def _decode(
        self, stream_id: UUID, version: int, topic: str, state: bytes, *, hashed: bool
    ) -> tuple[object, str, dict[str, Any]]:
        """An event's link (its ``prev_hash`` and, if ``hashed``, its own hash) and its state
        decoded and upcast as ``Mapper.to_domain_event`` would (short of an event object)."""
        if self._cipher:
            state = self._cipher.decrypt(state)
        if self._compressor:
            state = self._compressor.decompress(state)
        decoded: dict[str, Any] = self._transcode(state)
        prev_hash = decoded.get("prev_hash")
        own = stored_event_hash(topic, stream_id, version, decoded) if hashed else ""
        cls, class_version, _ = _topic(topic)
        from_version = decoded.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(decoded)
            from_version += 1
        return prev_hash, own, decoded


_CREDENTIAL_TOPIC = "ledger.domain.credential:"


def _in_range(column: str, ids: _Range) -> sql.Composable:
    lo, hi = ids
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    if lo is not None:
        parts.append(sql.SQL("{} >= {}").format(sql.Identifier(column), sql.Literal(lo)))
    if hi is not None:
        parts.append(sql.SQL("{} < {}").format(sql.Identifier(column), sql.Literal(hi)))
    return sql.SQL(" AND ").join(parts)


_CREDENTIAL_CLASS_TOPIC = get_topic(Credential)
_TOPICS: dict[str, tuple[type, int, str | None]] = {}


def _topic(topic: str) -> tuple[type, int, str | None]:
    """The event class a stored topic names, its class version and, for a credential event,
    its type in the fold (``FOLDS``); only topics that resolve are remembered."""
    known = _TOPICS.get(topic)
    if known is None:
        cls = resolve_topic(topic)
        known = _TOPICS[topic] = (cls, getattr(cls, "class_version", 1), EVENT_TYPES.get(cls))
    return known


class RefusedStreamError(ValueError):
    """A credential stream the domain would not replay."""


def _fold(stream_id: UUID, batch: list[_EventRow], states: list[dict[str, Any]]) -> list[Any]:
    """The credential's state (its values in ``FIELD_NAMES`` order) from its decoded, upcast
    events, by the domain's one fold: what replaying the aggregate computes, without event
    objects."""
    values: list[Any] | None = None
    for (_, _, version, topic, _), state in zip(batch, states, strict=True):
        type_ = _topic(topic)[2]
        if type_ is None:
            msg = f"{topic} is not a credential event"
            raise RefusedStreamError(msg)
        if FOLDS[type_].creates:
            if values is not None or state["originator_topic"] != _CREDENTIAL_CLASS_TOPIC:
                msg = "a credential is minted once, as its first event"
                raise RefusedStreamError(msg)
        elif values is None:
            msg = "a credential's first event is its minting"
            raise RefusedStreamError(msg)
        values = fold_values(values, Change(type_, stream_id, state["timestamp"], version, state))
    assert values is not None, "a credential stream has events"
    return values


_write_values = itemgetter(*(FIELD_NAMES.index(column) for column in WRITE_COLUMNS))
"""A state's values (``FIELD_NAMES`` order) as the auth table's row (``WRITE_COLUMNS``)."""


def _orphan_row(credential_id: UUID) -> Problem:
    return Problem(
        ProblemCode.AUTH_ROW_MISMATCH,
        "the auth table has a row for a credential that has no events",
        credential_id=credential_id,
    )


def _row_problems(
    credential_id: UUID, expected: tuple[Any, ...], row: tuple[Any, ...] | None
) -> Iterator[Problem]:
    """How the auth table's row differs from the one folded from the events."""
    if row is None:
        yield Problem(
            ProblemCode.AUTH_ROW_MISMATCH,
            "the credential has no row in the auth table",
            credential_id=credential_id,
        )
        return
    differ = [c for c, a, b in zip(WRITE_COLUMNS, expected, row, strict=True) if a != b]
    if differ:
        yield Problem(
            ProblemCode.AUTH_ROW_MISMATCH,
            f"the auth table's row differs from the events in: {', '.join(differ)}",
            credential_id=credential_id,
            extra={"columns": differ},
        )
