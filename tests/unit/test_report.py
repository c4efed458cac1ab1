"""The audit report's page: self-contained, every stored value escaped, the lifecycle and the
point in time where they belong."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from uuid import UUID, uuid4

from ledger.application.audit import AuditEvent
from ledger.domain import Actor
from ledger.entrypoints.report import render_report

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOSTILE = "<img src=https://evil.example/x.png onerror=alert(1)>\"'&"
WORKSPACE = uuid4()
OWNER = uuid4()
INSTALL = uuid4()
DAEMON = uuid4()


def _event(  # noqa: PLR0917 - an event reads best as one line of its fields
    position: int,
    type_: str,
    minutes: int,
    credential: UUID | None,
    kind: str | None,
    actor: Actor,
    **data: Any,
) -> AuditEvent:
    return AuditEvent(
        position=position,
        type=type_,
        at=T0 + timedelta(minutes=minutes),
        actor=actor,
        credential_id=credential,
        kind=kind,
        workspace_id=WORKSPACE,
        user_id=OWNER,
        data=data,
    )


OWNER_ACTOR = Actor(type="user", id=str(OWNER))
EVENTS = [
    _event(1, "member_added", 0, None, None, OWNER_ACTOR, role="owner", name=HOSTILE),
    _event(
        2,
        "minted",
        1,
        INSTALL,
        "install_token",
        OWNER_ACTOR,
        token_prefix="mit_AbCdEfGh",
        expires_at=(T0 + timedelta(minutes=16)).isoformat(),
        created_by=str(OWNER),
    ),
    _event(
        3,
        "consumed",
        2,
        INSTALL,
        "install_token",
        Actor(type="daemon", id=str(DAEMON)),
        daemon_token_id=str(DAEMON),
    ),
    _event(
        4,
        "minted",
        2,
        DAEMON,
        "daemon_token",
        Actor(type="daemon", id=str(DAEMON)),
        token_prefix="mdt_AbCdEfGh",
        daemon_id=HOSTILE,
        install_token_id=str(INSTALL),
        created_by=str(OWNER),
    ),
    _event(
        5,
        "replay_detected",
        3,
        INSTALL,
        "install_token",
        Actor(type="system", id="exchange"),
        daemon_id="<b>intruder</b>",
    ),
    _event(6, "revoked", 30, DAEMON, "daemon_token", OWNER_ACTOR, reason=HOSTILE),
]


def _page(at: datetime = T0 + timedelta(minutes=10)) -> str:
    return render_report(
        title=f"Audit report: workspace {HOSTILE}",
        events=EVENTS,
        at=at,
        generated_at=T0 + timedelta(hours=1),
        names={str(OWNER): HOSTILE, str(DAEMON): "build-box"},
    )


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_the_page_loads_nothing_from_anywhere() -> None:
    page = _page()
    tags = _tags(page)
    names = {tag for tag, _ in tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    for tag, attrs in tags:
        for attribute in ("src", "href", "xlink:href", "action", "srcset"):
            value = attrs.get(attribute)
            assert value is None or value.startswith("#"), (tag, attribute, value)
    # (Escaped text may say ``src=https://``: only a tag can load it.)
    assert not re.search(r"<[^>]*\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", page)
    assert "@import" not in page and "url(" not in page
    assert "<style>" in page and "@media print" in page


def test_every_stored_value_is_escaped() -> None:
    page = _page()
    assert HOSTILE not in page
    assert "&lt;img src=https://evil.example/x.png onerror=alert(1)&gt;&quot;&#x27;&amp;" in page
    assert "<b>intruder</b>" not in page and "&lt;b&gt;intruder&lt;/b&gt;" in page
    assert all(tag != "img" for tag, _ in _tags(page))


def test_each_credential_has_its_lifecycle_in_order_with_who_and_why() -> None:
    page = _page()
    install = page[page.index(f'<article id="credential-{INSTALL}">') :]
    install = install[: install.index("</article>")]
    words = ("<b>minted</b>", "<b>consumed</b>", "<b>replay detected</b>")
    order = [install.index(word) for word in words]
    assert order == sorted(order)
    assert "exchanged for daemon token" in install
    assert "presented again with daemon id &lt;b&gt;intruder&lt;/b&gt;" in install
    daemon = page[page.index(f'<article id="credential-{DAEMON}">') :]
    daemon = daemon[: daemon.index("</article>")]
    assert "revoked" in daemon and "reason: &lt;img" in daemon
    assert "by daemon build-box" in page  # the daemon named by its daemon id
    assert page.count("<article ") == 2
    assert "<svg " in page and page.count("<g><title>") == 5  # one mark per credential event


def test_the_point_in_time_is_marked_between_the_events_around_it() -> None:
    page = _page(at=T0 + timedelta(minutes=10))
    daemon = page[page.index(f'<article id="credential-{DAEMON}">') :]
    daemon = daemon[: daemon.index("</article>")]
    minted, marker, revoked = (
        daemon.index("<b>minted</b>"),
        daemon.index("point in time</li>"),
        daemon.index("<b>revoked</b>"),
    )
    assert minted < marker < revoked
    # Usable then (revoked later), revoked now.
    header = daemon[: daemon.index("</header>")]
    assert 'at the point in time: <span class="badge usable">' in header
    assert 'now: <span class="badge revoked">' in header


def test_before_a_credential_was_minted_it_is_shown_as_not_minted_yet() -> None:
    page = _page(at=T0)
    assert page.count("not minted yet") >= 2
    assert "stroke-dasharray" in page  # the marker line on the chart


def test_an_empty_history_still_makes_a_page() -> None:
    page = render_report(title="Audit report", events=[], at=T0, generated_at=T0)
    assert "No credential events." in page and page.startswith("<!doctype html>")
