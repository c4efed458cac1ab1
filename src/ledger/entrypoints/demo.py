"""``ledger demo``: a scripted lifecycle, narrated for a person.

On the embedded server it uses a scratch database (``ledger_demo``, recreated each run), so the
demo never mixes with real data; with ``LEDGER_DATABASE_URL`` set it adds fresh users there.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table

from ledger.bootstrap import PostgresLedger, open_ledger, scratch_ledger
from ledger.config import Settings
from ledger.domain import TokenKind, verify_chain
from ledger.domain.errors import LedgerError

DEMO_DATABASE = "ledger_demo"
RACERS = 8


def run_demo(settings: Settings, console: Console) -> None:
    if settings.database_url is not None:
        with open_ledger(settings) as ledger:
            narrate(ledger, console)
        return
    with scratch_ledger(settings, DEMO_DATABASE) as ledger:
        narrate(ledger, console)


def _refusal(action: str, error: LedgerError) -> str:
    return f"{action} → refused: [yellow]{error.code}[/yellow]"


def narrate(ledger: PostgresLedger, console: Console) -> None:
    say = console.print
    say("[bold]ledger demo[/bold]: every step below is an event in PostgreSQL\n")

    alice = ledger.create_user("Alice", "alice@example.com")
    bob = ledger.create_user("Bob")
    say(
        f"1. operator created [bold]Alice[/bold] and [bold]Bob[/bold]; Alice's initial token "
        f"[cyan]{alice.token_prefix}…[/cyan] expires {alice.expires_at:%Y-%m-%d}"
    )
    as_alice = ledger.verify(alice.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
    as_bob = ledger.verify(bob.token, {TokenKind.PERSONAL_ACCESS_TOKEN})

    workspace = ledger.create_workspace(as_alice, "acme")
    ledger.add_member(as_alice, workspace.id, bob.user_id, "admin")
    say("2. Alice created workspace [bold]acme[/bold] and made Bob an admin")

    install = ledger.mint_install_token(as_bob, workspace.id)
    say(
        f"3. Bob minted install token [cyan]{install.token[:12]}…[/cyan] "
        f"(single use, until {install.expires_at:%H:%M:%S} UTC)"
    )
    daemon = ledger.exchange_install_token(install.token, "build-box-1")
    whoami = ledger.verify(daemon.token, {TokenKind.DAEMON_TOKEN})
    say(
        f"4. machine [bold]build-box-1[/bold] exchanged it for daemon token "
        f"[cyan]{daemon.token[:12]}…[/cyan] (whoami: daemon_id={whoami.daemon_id})"
    )
    try:
        ledger.exchange_install_token(install.token, "intruder")
    except LedgerError as error:
        say("   " + _refusal("a second exchange of the same install token", error))

    race = ledger.mint_install_token(as_bob, workspace.id)

    def exchange(n: int) -> str:
        try:
            ledger.exchange_install_token(race.token, f"racer-{n}")
        except LedgerError as error:
            return error.code
        return "exchanged"

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(exchange, range(RACERS)))
    say(
        f"5. {RACERS} machines raced to exchange one install token: "
        f"{results.count('exchanged')} exchanged, "
        f"{results.count('install_token_already_used')} got install_token_already_used"
    )

    short = ledger.mint_personal_access_token(as_alice, "ci", expires_in_days=5)
    renewal = ledger.renew_personal_access_token(short.token)
    again = ledger.renew_personal_access_token(short.token)
    say(
        f"6. Alice's 5-day token [cyan]{short.info.token_prefix}…[/cyan] renewed: "
        f"{renewal.renewed}, now expires {renewal.expires_at:%Y-%m-%d}; "
        f"renewing again: {again.renewed} (more than 7 days left)"
    )

    spare = ledger.mint_install_token(as_bob, workspace.id)
    revoked = ledger.remove_member(as_alice, workspace.id, bob.user_id)
    say(
        f"7. Alice removed Bob: in the same commit {revoked} credentials he issued were revoked "
        f"(reason member_removed), his unused install token {spare.token[:12]}… among them"
    )
    try:
        ledger.verify(daemon.token, {TokenKind.DAEMON_TOKEN})
    except LedgerError as error:
        say("   " + _refusal("build-box-1 presenting its daemon token", error))
    try:
        ledger.exchange_install_token(spare.token, "late-box")
    except LedgerError as error:
        say("   " + _refusal("exchanging Bob's spare install token", error))

    table = Table(title="daemon tokens of acme, as an admin lists them")
    for column in ("daemon_id", "created", "revoked"):
        table.add_column(column)
    for token in ledger.list_daemon_tokens(as_alice, workspace.id):
        table.add_row(
            token.daemon_id,
            f"{token.created_at:%H:%M:%S}",
            f"{token.revoked_at:%H:%M:%S}" if token.revoked_at else "-",
        )
    say(table)

    events = list(ledger.events.get(install.id))
    say(
        f"8. install token {install.id} has {len(events)} events "
        f"({', '.join(type(e).__name__ for e in events)}); hash chain intact, head "
        f"{verify_chain(events)[:16]}…"
    )
