"""``ledger audit report``'s page: one self-contained HTML file of credentials' lifecycles.

``render_report`` turns audit events (oldest first) into a page an auditor opens in a browser or
prints: a summary of every credential's state at a chosen instant (the *point in time*), one
overview chart with a lane per credential (minted → renewed → consumed or revoked, replays, the
instant as a dashed line), and for each credential its events in order, with who did what and
why. Membership changes of a workspace follow in their own list.

The page loads nothing: its CSS is inline, its charts are inline SVG, it has no script, font,
image or link to anything outside itself (the unit tests hold it to that). Every stored value
(names, ids, reasons, daemon ids: text anyone with a token could have chosen) goes through
``html.escape`` before it reaches the page; no template engine is needed for that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from uuid import UUID

from ledger.application.audit import AuditEvent, CredentialState
from ledger.projections.queries import states_as_of

KIND_LABELS = {
    "personal_access_token": "personal access token",
    "install_token": "install token",
    "daemon_token": "daemon token",
}
TYPE_LABELS = {
    "minted": "minted",
    "renewed": "renewed",
    "consumed": "consumed",
    "revoked": "revoked",
    "replay_detected": "replay detected",
    "member_added": "member added",
    "member_role_changed": "role changed",
    "member_removed": "member removed",
}
COLOURS = {
    "minted": "#2e7d32",
    "renewed": "#1565c0",
    "consumed": "#6a1b9a",
    "revoked": "#c62828",
    "replay_detected": "#ef6c00",
}
OTHER_COLOUR = "#546e7a"
MARKER_COLOUR = "#d81b60"

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2327;
  background: #f6f7f9; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid #dde1e6; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 0; }
.meta { color: #50575e; margin: 0 0 4px; }
code, .id { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.85em; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e5e8eb;
  vertical-align: top; }
th { background: #f0f2f4; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em;
  font-weight: 600; color: #fff; background: #546e7a; white-space: nowrap; }
.usable { background: #2e7d32; } .revoked { background: #c62828; }
.consumed { background: #6a1b9a; } .expired { background: #8d6e00; }
.not-yet { background: #90a4ae; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0 0; font-size: 0.9em; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px;
  border-radius: 50%; margin-right: 5px; background: var(--c); }
svg { display: block; width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2327; }
article { border: 1px solid #dde1e6; border-radius: 6px; padding: 12px 16px; margin: 14px 0;
  break-inside: avoid; }
article header { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: baseline; }
ol.timeline { list-style: none; margin: 10px 0 0; padding: 0 0 0 18px;
  border-left: 3px solid #dde1e6; }
ol.timeline li { position: relative; margin: 0 0 8px; padding-left: 8px; }
ol.timeline li::before { content: ""; position: absolute; left: -27px; top: 5px; width: 12px;
  height: 12px; border-radius: 50%; background: var(--c, #546e7a); border: 2px solid #fff; }
ol.timeline li.marker { color: #d81b60; font-weight: 600; }
ol.timeline li.marker::before { border-radius: 0; transform: rotate(45deg); }
li time { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em;
  color: #50575e; margin-right: 6px; }
.why { color: #50575e; }
footer { margin-top: 32px; color: #50575e; font-size: 0.85em; }
@media print {
  body { background: #fff; font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  article, tr, .overview { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


@dataclass(frozen=True, slots=True)
class Lane:
    """One credential's row: its state after every event and as of the point in time."""

    credential_id: UUID
    events: list[AuditEvent]
    final: CredentialState | None
    then: CredentialState | None


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _who(actor_type: str, actor_id: str, names: Mapping[str, str]) -> str:
    name = names.get(actor_id)
    label = f"{actor_type} {name}" if name else actor_type
    return f'{_text(label)} <span class="id">{_text(actor_id)}</span>'


def _user(user_id: UUID | str | None, names: Mapping[str, str]) -> str:
    if user_id is None:
        return ""
    name = names.get(str(user_id))
    shown = f"{_text(name)} " if name else ""
    return f'{shown}<span class="id">{_text(user_id)}</span>'


def _short_user(user_id: UUID | None, names: Mapping[str, str]) -> str:
    """A user by name (the id on hover), or by the id's first block when the name is unknown."""
    if user_id is None:
        return ""
    name = names.get(str(user_id)) or f"{str(user_id)[:8]}…"
    return f'<span title="{_text(user_id)}">{_text(name)}</span>'


def _why(event: AuditEvent, names: Mapping[str, str]) -> str:
    """The type-specific part of an event, in words."""
    data = event.data
    parts: list[str] = []
    if event.type == "revoked":
        parts.append(f"reason: {_text(data.get('reason'))}")
    elif event.type == "renewed":
        before, after = data.get("expires_at_before"), data.get("expires_at_after")
        parts.append(f"expiry {_text(before or 'never')} → {_text(after)}")
    elif event.type == "consumed" and data.get("daemon_token_id"):
        parts.append(f"exchanged for daemon token {_text(data['daemon_token_id'])}")
    elif event.type == "minted":
        if data.get("expires_at"):
            parts.append(f"expires {_text(data['expires_at'])}")
        if data.get("install_token_id"):
            parts.append(f"through install token {_text(data['install_token_id'])}")
    elif event.type.startswith("member_"):
        parts.append(f"member {_user(event.user_id, names)}")
        for key in ("role", "role_before", "role_after"):
            if data.get(key) is not None:
                parts.append(f"{key.replace('_', ' ')}: {_text(data[key])}")
        if data.get("left"):
            parts.append("left by themself")
    else:
        parts.extend(f"{_text(k)}: {_text(v)}" for k, v in data.items() if v is not None)
    if event.type == "replay_detected" and data.get("daemon_id"):
        parts = [f"presented again with daemon id {_text(data['daemon_id'])}"]
    return "; ".join(parts)


def _state_badge(state: CredentialState | None, at: datetime) -> str:
    if state is None:
        return '<span class="badge not-yet">not minted yet</span>'
    if state.revoked_at is not None:
        reason = f" ({_text(state.revoked_reason)})" if state.revoked_reason else ""
        return f'<span class="badge revoked">revoked{reason}</span>'
    if state.consumed_at is not None:
        return '<span class="badge consumed">consumed</span>'
    if state.expires_at is not None and state.expires_at <= at:
        return '<span class="badge expired">expired</span>'
    return '<span class="badge usable">usable</span>'


def _label(lane: Lane) -> str:
    state = lane.final
    if state is None:
        return f"credential {lane.credential_id}"
    kind = KIND_LABELS.get(state.kind, state.kind)
    name = state.name or state.daemon_id or ""
    return f"{kind} {state.token_prefix}… {name}".strip()


def _lanes(events: list[AuditEvent], at: datetime) -> list[Lane]:
    by_credential: dict[UUID, list[AuditEvent]] = {}
    for event in events:
        if event.credential_id is not None:
            by_credential.setdefault(event.credential_id, []).append(event)
    final = states_as_of(events, None)
    then = states_as_of(events, at)
    return [Lane(cid, evs, final.get(cid), then.get(cid)) for cid, evs in by_credential.items()]


class _Axis:
    """Instants to x coordinates across the chart's time span (the marker included)."""

    def __init__(self, instants: Iterable[datetime], left: float, right: float) -> None:
        values = list(instants)
        start, end = min(values), max(values)
        if end - start < timedelta(minutes=1):
            end = start + timedelta(minutes=1)
        pad = (end - start) * 0.03
        self.start, self.end = start - pad, end + pad
        self.left, self.right = left, right

    def x(self, value: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        fraction = (value - self.start).total_seconds() / span
        return round(self.left + fraction * (self.right - self.left), 1)


def _shape(event_type: str, x: float, y: float) -> str:
    colour = COLOURS.get(event_type, OTHER_COLOUR)
    if event_type == "revoked":
        return (
            f'<path d="M{x - 6} {y - 6} L{x + 6} {y + 6} M{x - 6} {y + 6} L{x + 6} {y - 6}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
    if event_type == "consumed":
        return f'<rect x="{x - 6}" y="{y - 6}" width="12" height="12" fill="{colour}"/>'
    if event_type == "replay_detected":
        return f'<path d="M{x} {y - 8} L{x + 7} {y + 6} L{x - 7} {y + 6} Z" fill="{colour}"/>'
    if event_type == "renewed":
        return f'<path d="M{x} {y - 7} L{x + 7} {y} L{x} {y + 7} L{x - 7} {y} Z" fill="{colour}"/>'
    return f'<circle cx="{x}" cy="{y}" r="6" fill="{colour}"/>'


def _overview(lanes: list[Lane], at: datetime) -> str:
    """One SVG: a lane per credential on a shared time axis, the point in time dashed."""
    width, label_width, row, top = 1000, 300, 30, 24
    height = top + row * len(lanes) + 24
    instants = [e.at for lane in lanes for e in lane.events] + [at]
    axis = _Axis(instants, label_width + 10, width - 20)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Timeline of {len(lanes)} credentials">',
        f'<text x="{label_width + 10}" y="14">{_text(_instant(axis.start))}</text>',
        f'<text x="{width - 20}" y="14" text-anchor="end">{_text(_instant(axis.end))}</text>',
    ]
    for index, lane in enumerate(lanes):
        y = top + row * index + row / 2
        label = _label(lane)
        short = label if len(label) <= 40 else label[:39] + "…"
        parts.append(f'<text x="4" y="{y + 4}"><title>{_text(label)}</title>{_text(short)}</text>')
        begin = axis.x(lane.events[0].at)
        state = lane.final
        ends = [s for s in (state.revoked_at, state.consumed_at) if s] if state else []
        if state is not None and state.expires_at is not None:
            ends.append(min(state.expires_at, axis.end))
        end = axis.x(min(ends)) if ends else axis.right
        parts.append(
            f'<line x1="{begin}" y1="{y}" x2="{max(end, begin)}" y2="{y}" '
            f'stroke="#b0bec5" stroke-width="4"/>'
        )
        for event in lane.events:
            x = axis.x(event.at)
            title = f"{TYPE_LABELS.get(event.type, event.type)} {_instant(event.at)}"
            parts.append(f"<g><title>{_text(title)}</title>{_shape(event.type, x, y)}</g>")
    marker = axis.x(at)
    parts.append(
        f'<line x1="{marker}" y1="20" x2="{marker}" y2="{height - 20}" stroke="{MARKER_COLOUR}" '
        f'stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{marker}" y="{height - 6}" text-anchor="middle" fill="{MARKER_COLOUR}">'
        f"point in time {_text(_instant(at))}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _event_item(event: AuditEvent, names: Mapping[str, str]) -> str:
    colour = COLOURS.get(event.type, OTHER_COLOUR)
    why = _why(event, names)
    return (
        f'<li style="--c: {colour}"><time>{_text(_instant(event.at))}</time>'
        f"<b>{_text(TYPE_LABELS.get(event.type, event.type))}</b> by "
        f"{_who(event.actor.type, event.actor.id, names)}"
        + (f' <span class="why">— {why}</span>' if why else "")
        + f' <span class="id">#{event.position}</span></li>'
    )


def _timeline(events: list[AuditEvent], at: datetime, names: Mapping[str, str]) -> str:
    """Events in order, the point in time marked where it falls among them."""
    items: list[str] = []
    marked = False
    for event in events:
        if not marked and event.at > at:
            items.append(_marker_item(at))
            marked = True
        items.append(_event_item(event, names))
    if not marked:
        items.append(_marker_item(at))
    return f'<ol class="timeline">{"".join(items)}</ol>'


def _marker_item(at: datetime) -> str:
    return (
        f'<li class="marker" style="--c: {MARKER_COLOUR}"><time>{_text(_instant(at))}</time>'
        "point in time</li>"
    )


def _card(lane: Lane, at: datetime, now: datetime, names: Mapping[str, str]) -> str:
    state = lane.final
    holder = ""
    if state is not None:
        who = state.user_id or state.created_by
        holder = f"<span>held by {_user(who, names)}</span>" if who else ""
    return (
        f'<article id="credential-{_text(lane.credential_id)}"><header>'
        f"<h3>{_text(_label(lane))}</h3>"
        f"<span>at the point in time: {_state_badge(lane.then, at)}</span>"
        f"<span>now: {_state_badge(lane.final, now)}</span>"
        f"{holder}"
        f'<span class="id">{_text(lane.credential_id)}</span></header>'
        f"{_timeline(lane.events, at, names)}</article>"
    )


def _summary(lanes: list[Lane], at: datetime, now: datetime, names: Mapping[str, str]) -> str:
    rows = []
    for lane in lanes:
        state = lane.final
        minted = _instant(lane.events[0].at)
        replays = sum(1 for e in lane.events if e.type == "replay_detected")
        holder = _short_user((state.user_id or state.created_by) if state else None, names)
        rows.append(
            f'<tr><td><a href="#credential-{_text(lane.credential_id)}">'
            f"{_text(_label(lane))}</a></td><td>{holder}</td><td>{_text(minted)}</td>"
            f"<td>{_state_badge(lane.then, at)}</td>"
            f"<td>{_state_badge(state, now)}</td>"
            f"<td>{replays or ''}</td></tr>"
        )
    return (
        "<table><thead><tr><th>credential</th><th>holder / issuer</th><th>minted</th>"
        "<th>at the point in time</th><th>now</th><th>replays</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _legend() -> str:
    items = "".join(
        f'<span style="--c: {COLOURS.get(t, OTHER_COLOUR)}">{_text(label)}</span>'
        for t, label in TYPE_LABELS.items()
        if t in COLOURS
    )
    return (
        f'<div class="legend">{items}<span style="--c: {MARKER_COLOUR}">point in time</span></div>'
    )


def render_report(
    *,
    title: str,
    events: list[AuditEvent],
    at: datetime,
    generated_at: datetime,
    names: Mapping[str, str] | None = None,
) -> str:
    """The whole page for ``events`` (in log order), the point in time ``at`` marked;
    ``names`` gives user ids (as text) the names to show beside them."""
    names = names or {}
    lanes = _lanes(events, at)
    membership = [e for e in events if e.credential_id is None]
    positions = [e.position for e in events]
    span = f"events #{min(positions)} to #{max(positions)}" if positions else "no events"
    body = [
        f"<header><h1>{_text(title)}</h1>",
        f'<p class="meta">Generated {_text(_instant(generated_at))} · point in time '
        f"<b>{_text(_instant(at))}</b> · {len(lanes)} credentials · {len(events)} events "
        f"({_text(span)})</p>{_legend()}</header>",
    ]
    if lanes:
        body += [
            "<h2>Credentials</h2>",
            _summary(lanes, at, generated_at, names),
            '<h2>Timeline</h2><div class="overview">',
            _overview(lanes, at),
            "</div><h2>Lifecycles</h2>",
            *(_card(lane, at, generated_at, names) for lane in lanes),
        ]
    else:
        body.append("<p>No credential events.</p>")
    if membership:
        body += ["<h2>Membership</h2>", _timeline(membership, at, names)]
    body.append(
        "<footer>Written by <code>ledger audit report</code> from the audit trail. "
        "Positions (#) are the events' places in the ledger's log; "
        "<code>ledger audit export</code> gives every event with its hash.</footer>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
