"""What a projection makes of values it cannot store as they are (no store needed)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex

from ledger.adapters.log_order import START_MARK, LogPosition, Mark
from ledger.application.ledger import ActorAsDict
from ledger.domain import Actor, Credential, TokenKind, Workspace
from ledger.domain.tokens import issue
from ledger.projections.audit_trail import AUDIT_CHECK, audit_row
from ledger.projections.base import Positioned
from ledger.projections.eventlog import EventLog
from ledger.projections.problems import (
    INVALID_VALUE,
    MAX_TEXT,
    UNDECODABLE,
    UNKNOWN_EVENT_TYPE,
    UNSAFE_TEXT,
    EventScreen,
    InvalidValue,
    RowCheck,
    describe,
    problem,
    safe_text,
    text_problem,
)
from ledger.projections.runner import PROJECTION_CLASSES

T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
USER = uuid4()


def test_control_characters_become_control_pictures() -> None:
    assert safe_text("a\x00b") == "a\u2400b"
    assert safe_text("\x01\x1b[2J\x1f\x7f") == "\u2401\u241b[2J\u241f\u2421"
    assert safe_text("tab\there\nnewline") == "tab\u2409here\u240anewline"


def test_lone_surrogates_become_replacement_characters() -> None:
    assert safe_text("x\ud800y\udfff") == "x\ufffdy\ufffd"
    assert safe_text("x\ud800").encode() == "x\ufffd".encode()


def test_text_longer_than_the_limit_is_cut_with_an_ellipsis() -> None:
    cut = safe_text("y" * (MAX_TEXT * 100))
    assert len(cut) == MAX_TEXT
    assert cut.endswith("…")
    assert safe_text("y" * MAX_TEXT) == "y" * MAX_TEXT


def test_a_value_that_is_not_text_is_shown_in_its_json_form() -> None:
    assert safe_text({"nested": ["x", 1]}) == '{"nested": ["x", 1]}'
    assert safe_text(12) == "12"
    assert safe_text(None) == "null"


def test_safe_text_keeps_printable_unicode_as_it_is() -> None:
    for text in ("laptop", "Zo\u00eb's \u6f22\u5b57 PC", "a\u00a0b", "emoji 🔑", "[/] :smile:"):
        assert safe_text(text) == text
        assert text_problem(text) is None


def test_text_problem_names_what_is_wrong() -> None:
    assert text_problem("a\x00b") == "control characters"
    assert text_problem("x" * (MAX_TEXT + 1)) == f"{MAX_TEXT + 1} characters"
    assert text_problem(["x"]) == "not text (list)"


def test_problem_rows_hold_only_safe_text() -> None:
    row = problem(7, "not-a-uuid", "2", "x\x00" * 2000, code=UNDECODABLE, detail="bad \x1b")
    assert row.stream_id is None and row.stream_version is None
    assert "\x00" not in row.topic and len(row.topic) == MAX_TEXT
    assert row.detail == "bad \u241b"
    assert row.projected is False
    assert problem(1, uuid4(), 1, "t", code=UNSAFE_TEXT, detail="d").projected is True


def test_describe_is_one_line_with_the_exception_class() -> None:
    assert describe(ValueError("first\nsecond")) == "ValueError: first"
    assert describe(KeyError()) == "KeyError"


CHECK = RowCheck(
    {"id": "uuid", "n": "bigint", "at": "timestamp with time zone", "t": "text", "j": "jsonb"},
    required=("id", "at"),
)


def test_row_check_returns_a_clean_row_unchanged() -> None:
    row = (uuid4(), 3, T0, "text", {"k": "v", "flag": True, "none": None})
    notes: list[str] = []
    assert CHECK(row, notes) is row
    assert notes == []


def test_row_check_cleans_text_and_json_text_with_a_note_per_field() -> None:
    notes: list[str] = []
    checked = CHECK((uuid4(), None, T0, "a\x00", {"name": "b\x01", "left": "yes", "n": 5}), notes)
    assert checked[3] == "a\u2400"
    assert checked[4] == {"name": "b\u2401", "left": "yes", "n": "5"}
    assert notes == ["t: control characters", "name: control characters", "n: not text (int)"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("not-a-uuid", 1, T0, "t", {}), "id is not an id (str)"),
        ((uuid4(), True, T0, "t", {}), "n is not a 64-bit integer (bool)"),
        ((uuid4(), 2**63, T0, "t", {}), "n is not a 64-bit integer (int)"),
        ((uuid4(), 1, "2026-03-01", "t", {}), "at is not an instant with a time zone (str)"),
        ((uuid4(), 1, datetime(2026, 3, 1), "t", {}), "at is not an instant"),  # noqa: DTZ001
        ((None, 1, T0, "t", {}), "id is missing"),
        ((uuid4(), 1, T0, "t", ["x"]), "j is not an object"),
    ],
)
def test_row_check_refuses_ids_instants_and_numbers_of_the_wrong_type(
    values: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message.replace("(", r"\(").replace(")", r"\)")):
        CHECK(values, [])


def minted(**changes: Any) -> Credential.Minted:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    credential = Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="laptop",
        user_id=USER,
        expires_at=None,
        at=T0,
        actor=Actor.user(USER),
    )
    [event] = credential.collect_events()
    assert isinstance(event, Credential.Minted)
    event.__dict__.update(changes)
    return event


def test_an_audit_row_with_unsafe_text_is_kept_in_a_safe_form() -> None:
    event = minted(name="n\x00me", token_prefix=["list"])
    row = audit_row(Positioned(1, event), None)
    assert row is not None
    notes: list[str] = []
    checked = AUDIT_CHECK(row, notes)
    data = checked[11]
    assert (data["name"], data["token_prefix"]) == ("n\u2400me", '["list"]')
    assert notes == ["token_prefix: not text (list)", "name: control characters"]


@pytest.mark.parametrize(
    "changes",
    [
        {"expires_at": "next tuesday"},
        {"created_by": "someone"},
        {"install_token_id": 7},
        {"kind": None},
        {"token_prefix": None},
    ],
)
def test_an_audit_row_with_an_id_or_instant_of_the_wrong_type_is_refused(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(InvalidValue):
        audit_row(Positioned(1, minted(**changes)), None)


def test_a_workspace_named_with_a_nul_has_a_safe_audit_row() -> None:
    workspace = Workspace.create(id=uuid4(), name="a\x00b", owner_id=USER, at=T0)
    [event] = workspace.collect_events()
    row = audit_row(Positioned(1, event), None)  # type: ignore[arg-type]
    assert row is not None
    notes: list[str] = []
    assert AUDIT_CHECK(row, notes)[11]["name"] == "a\u2400b"
    assert notes == ["name: control characters"]


class _Curs:
    """Stands in for a cursor: ``EventLog`` only reads rows through it."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows
        self.connection = self

    def cursor(self, row_factory: Any) -> _Curs:
        return self

    def __enter__(self) -> _Curs:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, *args: Any, **kwargs: Any) -> None:
        return None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


def test_the_event_log_returns_a_problem_in_place_of_each_event_it_cannot_decode() -> None:
    transcoder = JSONTranscoder()
    transcoder.register(ActorAsDict())
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    mapper: Mapper[UUID] = Mapper(transcoder)
    good = mapper.to_stored_event(minted())
    stream = uuid4()
    rows = [
        (good.originator_id, 1, good.topic, good.state, 100, 1),
        (stream, 1, "ledger.domain.credential:Credential.Suspended", good.state, 100, 2),
        (stream, 2, "builtins:dict", good.state, 100, 3),
        (stream, 3, "antigravity:fly", good.state, 100, 4),
        (stream, 4, good.topic, b'{"timestamp": ', 100, 5),
        (stream, 5, good.topic, b"\xff\xfe", 100, 6),
        (stream, 6, good.topic, b'{"_type_": "unknown", "_data_": 1}', 100, 7),
        (good.originator_id, 1, good.topic, good.state, 100, 8),
    ]
    log = EventLog(mapper, "ledger_events")

    page = log.page(_Curs(rows), START_MARK, 100, 101)  # type: ignore[arg-type]

    assert [item.position for item in page.events] == [1, 8]
    assert all(item.clean for item in page.events)  # screened: their rows need no check
    assert [(p.position, p.problem) for p in page.unreadable] == [
        (2, UNKNOWN_EVENT_TYPE),
        (3, UNKNOWN_EVENT_TYPE),
        (4, UNKNOWN_EVENT_TYPE),
        (5, UNDECODABLE),
        (6, UNDECODABLE),
        (7, UNDECODABLE),
    ]
    assert page.last == Mark(LogPosition(100, 8), 8)
    assert page.size == 8
    assert all(p.stream_id == stream and not p.projected for p in page.unreadable)
    assert "antigravity" not in sys.modules  # a stored topic imports nothing


def test_an_empty_page_ends_where_it_started() -> None:
    log = EventLog(Mapper(JSONTranscoder()), "ledger_events")
    after = Mark(LogPosition(7, 41), 41)
    page = log.page(_Curs([]), after, 100, 8)  # type: ignore[arg-type]
    assert (page.size, page.last) == (0, after)


def test_invalid_value_is_the_code_for_a_skipped_event() -> None:
    assert problem(1, UUID(int=1), 1, "t", code=INVALID_VALUE, detail="x").projected is False


def test_each_view_records_its_problems_under_its_projections_name() -> None:

    assert all(cls.view_class.projection == cls.name for cls in PROJECTION_CLASSES)


SCREEN = EventScreen()


def test_the_screen_passes_events_as_the_ledger_writes_them() -> None:
    workspace = Workspace.create(id=uuid4(), name="team", owner_id=USER, at=T0)
    [created] = workspace.collect_events()
    assert SCREEN(minted())
    assert SCREEN(created)
    assert SCREEN(minted())  # the verdict on the signature is kept


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "n\x00me"},
        {"daemon_id": "d\x1b[2J"},
        {"name": "x" * (MAX_TEXT + 1)},
        {"name": "laptop \ud800"},
        {"token_prefix": None},
        {"workspace_id": "not-a-uuid"},
        {"expires_at": "2026-03-01T00:00:00Z"},
        {"timestamp": datetime(2026, 3, 1)},  # noqa: DTZ001
        {"actor": Actor("user", 12)},  # type: ignore[arg-type]
        {"actor": {"type": "user", "id": "x"}},
    ],
)
def test_the_screen_sends_anything_else_to_the_checked_path(changes: dict[str, Any]) -> None:
    assert not SCREEN(minted(**changes))


def test_the_screen_refuses_an_event_missing_a_field() -> None:
    event = minted()
    del event.__dict__["name"]
    assert not SCREEN(event)
